//! Many at once, and after a crash: 30 attaches from 30 processes, then
//! 30 detaches; a reconcile after containers died and the engine was
//! killed; `kill -9` of an attach at any moment.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_test_support::test_host::in_test_host;
use ch07_network::netlink::Netlink;
use ch07_network::store::Endpoint;
use ch07_network::{CreateOptions, firewall, netns};
use common::*;

const TOOLS: &[&str] = &["busybox", "nft", "nsenter", "ip", "timeout"];

/// PIDs of DNS servers started for the state directory `state`.
fn dns_processes(state: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie
            && cmdline.contains("dns-serve")
            && cmdline.contains(&state.display().to_string())
        {
            pids.push(pid);
        }
    }
    pids
}

fn wait_no_dns(state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dns_processes(state).is_empty() {
        assert!(
            Instant::now() < deadline,
            "DNS servers left: {:?}",
            dns_processes(state)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn thirty_concurrent_attaches_get_thirty_addresses_and_leave_nothing() {
    let test = "thirty_concurrent_attaches_get_thirty_addresses_and_leave_nothing";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let host = Host::new();
    let crowd = host
        .networks
        .create(&CreateOptions {
            name: "crowd".into(),
            ..Default::default()
        })
        .unwrap();
    let containers: Vec<Ctr> = (0..30).map(|i| host.container(&format!("c{i}"))).collect();
    // 30 processes at once, each `attach ... -p 80` (a host port chosen).
    let children: Vec<Child> = containers
        .iter()
        .map(|c| {
            host.cli()
                .args(["attach", &c.id, "--netns"])
                .arg(&c.netns)
                .args(["--name", &c.name, "--network", "crowd", "-p", "80"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let endpoints: Vec<Endpoint> = children
        .into_iter()
        .map(|child| serde_json::from_str(&finish(child, "attach")).unwrap())
        .collect();
    let ips: BTreeSet<_> = endpoints.iter().map(|e| e.ip).collect();
    let ports: BTreeSet<_> = endpoints.iter().map(|e| e.ports[0].host_port).collect();
    let veths: BTreeSet<_> = endpoints.iter().map(|e| e.host_veth.clone()).collect();
    assert_eq!(
        (ips.len(), ports.len(), veths.len()),
        (30, 30, 30),
        "{ips:?} {ports:?}"
    );
    assert!(
        ips.iter()
            .all(|ip| crowd.subnet.unwrap().contains(ip) && Some(*ip) != crowd.gateway)
    );
    // The kernel agrees: 30 ports on the bridge, 30 DNAT rules, each
    // container has its address; one DNS server.
    let nl = Netlink::open().unwrap();
    let bridge = nl.link("berth1").unwrap().unwrap();
    let ports_on_bridge = nl
        .links()
        .unwrap()
        .iter()
        .filter(|l| l.controller == Some(bridge.index))
        .count();
    assert_eq!(ports_on_bridge, 30);
    let table = firewall::current_table().unwrap().unwrap();
    assert_eq!(
        firewall::rules_of(&table)
            .iter()
            .filter(|r| r.chain == "published")
            .count(),
        30
    );
    for (c, e) in containers.iter().zip(&endpoints) {
        assert_eq!(
            Netlink::open_in(&c.netns)
                .unwrap()
                .ipv4_addresses("eth0")
                .unwrap()[0]
                .addr(),
            e.ip
        );
    }
    let state = &host.networks.host().state_dir;
    assert_eq!(dns_processes(state).len(), 1, "one DNS server per network");

    // 30 detaches at once.
    let children: Vec<Child> = containers
        .iter()
        .map(|c| {
            host.cli()
                .args(["detach", &c.id])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        finish(child, "detach");
    }
    assert_eq!(leftovers(&host), Vec::<String>::new());
    wait_no_dns(state);
    for c in &containers {
        assert_eq!(
            Netlink::open_in(&c.netns).unwrap().links().unwrap().len(),
            1,
            "eth0 left in {}",
            c.name
        );
        netns::remove_netns(&c.netns).unwrap();
    }
    assert!(netns::list_netns(&host.netns_dir).unwrap().is_empty());
}

#[test]
fn reconcile_removes_what_dead_containers_left() {
    let test = "reconcile_removes_what_dead_containers_left";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let mut host = Host::new();
    host.networks
        .create(&CreateOptions {
            name: "crashnet".into(),
            ..Default::default()
        })
        .unwrap();
    let live = host.container("live");
    host.attach(&live, "bridge", &[], &["8080:80"]);
    host.httpd(&live, "still here\n");
    let died = host.container("died");
    host.attach(&died, "bridge", &[], &["8081:80"]);
    let orphan = host.container("orphan");
    let orphan_ep = host.attach(&orphan, "crashnet", &[], &[]);
    // The crash: `died`'s namespace is gone (its veth with it), `orphan`'s
    // is still mounted; a veth and a bridge of ours that no record names.
    netns::remove_netns(&died.netns).unwrap();
    sh(&[
        "ip",
        "link",
        "add",
        "bveth0000dead00",
        "type",
        "veth",
        "peer",
        "name",
        "bvethpeer",
    ]);
    sh(&["ip", "link", "add", "berth9", "type", "bridge"]);
    let state = host.networks.host().state_dir.clone();
    assert_eq!(dns_processes(&state).len(), 1);

    let keep: BTreeSet<String> = [live.id.clone()].into_iter().collect();
    let done = host.networks.reconcile(&keep).unwrap();
    assert_eq!(done.endpoints.len(), 2, "{done:?}");
    assert_eq!(done.netns, vec![orphan.id.clone()]);
    let nl = Netlink::open().unwrap();
    for gone in [
        orphan_ep.host_veth.as_str(),
        "bveth0000dead00",
        "bvethpeer",
        "berth9",
        "berth1",
    ] {
        assert!(
            nl.link(gone).unwrap().is_none(),
            "{gone} survived the reconcile"
        );
    }
    wait_no_dns(&state);
    assert!(host.networks.endpoints_of(&died.id).unwrap().is_empty());
    assert!(host.networks.endpoints_of(&orphan.id).unwrap().is_empty());
    // The live container is untouched: its address, its published port.
    assert_eq!(
        wget(None, "http://127.0.0.1:8080/").as_deref(),
        Ok("still here\n")
    );
    assert!(wget(None, "http://127.0.0.1:8081/").is_err());
    // Reconciling again changes nothing.
    assert_eq!(host.networks.reconcile(&keep).unwrap(), Default::default());

    // A reboot: nothing lives any more.
    host.networks.reconcile(&BTreeSet::new()).unwrap();
    assert_eq!(leftovers(&host), Vec::<String>::new());
    assert!(netns::list_netns(&host.netns_dir).unwrap().is_empty());
}

#[test]
fn kill_9_during_an_attach_leaves_nothing_a_reconcile_misses() {
    let test = "kill_9_during_an_attach_leaves_nothing_a_reconcile_misses";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let host = Host::new();
    host.networks
        .create(&CreateOptions {
            name: "fragile".into(),
            ..Default::default()
        })
        .unwrap();
    let state = host.networks.host().state_dir.clone();
    // Kill the attach at different moments of its work.
    for delay_ms in [0u64, 1, 2, 4, 8, 16, 32, 64, 128] {
        let c = host.container(&format!("k{delay_ms}"));
        let mut child = host
            .cli()
            .args(["attach", &c.id, "--netns"])
            .arg(&c.netns)
            .args(["--network", "fragile", "-p", "80"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // The engine comes back: the container never started.
        host.networks.reconcile(&BTreeSet::new()).unwrap();
        assert_eq!(
            leftovers(&host),
            Vec::<String>::new(),
            "killed after {delay_ms} ms"
        );
        wait_no_dns(&state);
        let left = Netlink::open_in(&c.netns).map(|nl| nl.links().unwrap().len());
        assert!(
            left.is_err() || left.unwrap() == 1,
            "killed after {delay_ms} ms: an interface stayed in the namespace"
        );
    }
    // The lock was not left taken: a normal attach works.
    let c = host.container("after");
    host.attach(&c, "fragile", &[], &[]);
    host.networks.detach_all(&c.id).unwrap();
    assert_eq!(leftovers(&host), Vec::<String>::new());
}
