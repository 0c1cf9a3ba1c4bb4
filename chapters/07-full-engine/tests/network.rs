//! The engine's networking, end to end: `run -d` on the default bridge,
//! published ports, user-defined networks with names, the other modes,
//! and nothing left after `rm` or a killed monitor.
//!
//! Each test runs in a throwaway network and mount namespace that plays
//! the host (`in_test_host`: `unshare --net --mount`), with an "uplink"
//! veth holding the host's address 192.0.2.1 (TEST-NET-1); the engine's
//! bridges, veths, nftables rules and namespace files live and die there,
//! and traffic never leaves it.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;

use berth_test_support::test_host::in_test_host;
use common::{Env, IMAGE, envs, monitors_of};

/// The test host's own address.
const HOST_ADDRESS: &str = "192.0.2.1";

/// What the network tests drive, besides the engine.
const TOOLS: [&str; 5] = ["ip", "nft", "busybox", "unshare", "timeout"];

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Inside the test host: `lo` up, and an uplink veth with the host's
/// address (its peer stays here too: nothing is routed anywhere).
fn set_up_host() {
    for step in [
        "ip link set lo up",
        "ip link add eth0 type veth peer name uplink0",
        &format!("ip addr add {HOST_ADDRESS}/24 dev eth0"),
        "ip link set eth0 up",
        "ip link set uplink0 up",
    ] {
        let (ok, text) = sh(step);
        assert!(ok, "{step}: {text}");
    }
}

/// The test's engine, in its test host, `bridge` as the default network;
/// none (the test is skipped) without root, unshare or a runtime.
fn engine(test: &str) -> Option<Env> {
    if std::env::var_os("BERTH_TEST_HOST").is_none() && !berth_test_support::require_root(test) {
        return None;
    }
    for tool in TOOLS {
        if !common::have_on_path(tool) {
            berth_test_support::skip(test, &format!("needs {tool} on PATH"));
            return None;
        }
    }
    if !in_test_host(test) {
        return None;
    }
    set_up_host();
    let mut env = envs(test).into_iter().next()?;
    env.network = "bridge";
    Some(env)
}

/// The web server every test runs: busybox httpd on port 80, its page
/// naming the container's hostname.
const HTTPD: [&str; 3] = [
    "sh",
    "-c",
    "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www",
];

fn web(env: &Env, flags: &[&str]) -> String {
    let mut args: Vec<&str> = flags.to_vec();
    args.push(IMAGE);
    args.extend(HTTPD);
    env.run_d(&args)
}

/// `wget URL` from the test host, retried until the server listens
/// (at most 50 tries; busybox 1.35's wget crashes on -T: timeout(1)
/// bounds it instead); its output, or the last error.
fn fetch(url: &str) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..50 {
        let (ok, text) = sh(&format!("timeout 5 busybox wget -q -O - {url}"));
        if ok {
            return Ok(text);
        }
        last = text;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Err(last)
}

/// A shell loop, for inside a container: `wget URL` until it answers.
fn wget_loop(url: &str) -> String {
    format!(
        "for i in $(seq 1 50); do timeout 5 wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1"
    )
}

/// What the engine's networking left in the test host: veths and bridges
/// of ours, the nftables table, namespace files, leases.
fn network_leftovers(env: &Env) -> Vec<String> {
    let mut found = Vec::new();
    let (_, links) = sh("ip -o link show");
    for line in links.lines() {
        let name = line.split(": ").nth(1).unwrap_or("");
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with("bveth") || name.starts_with("berth") {
            found.push(format!("link {name}"));
        }
    }
    let (_, tables) = sh("nft list tables");
    if tables.lines().any(|l| l.trim().ends_with(" berth")) {
        found.push("nft table berth".into());
    }
    if let Ok(entries) = std::fs::read_dir(env.run.join("netns")) {
        for entry in entries.flatten() {
            found.push(format!("netns {}", entry.file_name().to_string_lossy()));
        }
    }
    let inspect = env.ok(&["network", "inspect", "bridge"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect).expect("network inspect is JSON");
    let containers = doc[0]["Containers"]
        .as_object()
        .map(|m| m.len())
        .unwrap_or(0);
    if containers > 0 {
        found.push(format!("{containers} lease(s) on bridge"));
    }
    found
}

#[test]
fn run_d_gets_an_address_reachable_from_the_host_and_published_ports() {
    let test = "run_d_gets_an_address_reachable_from_the_host_and_published_ports";
    let Some(env) = engine(test) else { return };
    let id = web(&env, &["--name", "web", "-p", "8080:80", "--expose", "443"]);
    // inspect: docker's NetworkSettings.
    let ip: Ipv4Addr = env
        .inspect("web", "{{.NetworkSettings.IPAddress}}")
        .parse()
        .expect("IPAddress is an IPv4 address");
    assert_eq!(
        env.inspect("web", "{{.NetworkSettings.Networks.bridge.IPAddress}}"),
        ip.to_string()
    );
    let gateway = env.inspect("web", "{{.NetworkSettings.Gateway}}");
    assert!(gateway.parse::<Ipv4Addr>().is_ok(), "Gateway {gateway:?}");
    assert!(
        !env.inspect("web", "{{.NetworkSettings.MacAddress}}")
            .is_empty()
    );
    assert_eq!(
        env.inspect(
            "web",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}"
        ),
        "8080"
    );
    let sandbox = env.inspect("web", "{{.NetworkSettings.SandboxKey}}");
    assert_eq!(
        sandbox,
        env.run.join("netns").join(&id).display().to_string()
    );
    // The container's address, from the host; the published port on the
    // host's loopback and on its own address.
    let hello = format!("hello from {}", &id[..12]);
    for url in [
        format!("http://{ip}/"),
        "http://127.0.0.1:8080/".to_string(),
        format!("http://{HOST_ADDRESS}:8080/"),
    ] {
        let page = fetch(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(page.trim(), hello, "{url}");
    }
    // port, ps.
    assert_eq!(env.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:8080\n");
    assert_eq!(env.ok(&["port", "web", "80"]), "0.0.0.0:8080\n");
    assert_eq!(
        env.ok(&["ps", "--format", "{{.Ports}}"]).trim(),
        "0.0.0.0:8080->80/tcp, 443/tcp"
    );
    // The /etc files name the container's address.
    let hosts = env.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{ip}\t{}", &id[..12])),
        "/etc/hosts:\n{hosts}"
    );
    // rm: no veth, rule, namespace file or lease left.
    env.ok(&["rm", "-f", "web"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    let test = "containers_on_a_user_network_reach_each_other_by_name";
    let Some(env) = engine(test) else { return };
    env.ok(&["network", "create", "appnet"]);
    assert!(env.ok(&["network", "ls"]).contains(" appnet "));
    let id = web(
        &env,
        &[
            "--network",
            "appnet",
            "--name",
            "web",
            "--network-alias",
            "www",
        ],
    );
    let hello = format!("hello from {}", &id[..12]);
    // By name and by alias, from another container on the network.
    for url in ["http://web/", "http://www/"] {
        let page = env.ok(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            IMAGE,
            "sh",
            "-c",
            &wget_loop(url),
        ]);
        assert_eq!(page.trim(), hello, "{url}");
    }
    // Not from the default bridge: the name is not known there.
    let outside = env.berth(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "timeout 5 wget -q -O - http://web/",
    ]);
    assert_ne!(outside.code(), Some(0), "{}", outside.transcript());
    // container:web shares web's stack; none has only lo.
    let shared = env.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        IMAGE,
        "sh",
        "-c",
        &wget_loop("http://127.0.0.1/"),
    ]);
    assert_eq!(shared.trim(), hello);
    let none = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(none, "lo\n");
    // connect and disconnect a running container.
    env.ok(&["network", "create", "other"]);
    env.ok(&["network", "connect", "--alias", "far", "other", "web"]);
    let other_ip = env.inspect("web", "{{.NetworkSettings.Networks.other.IPAddress}}");
    assert!(other_ip.parse::<Ipv4Addr>().is_ok(), "{other_ip:?}");
    assert_eq!(
        env.ok(&[
            "ps",
            "--filter",
            "network=other",
            "--format",
            "{{.Names}} {{.Networks}}"
        ]),
        "web appnet,other\n"
    );
    // Kept over a restart, with its alias.
    env.ok(&["restart", "-t", "0", "web"]);
    let page = env.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        IMAGE,
        "sh",
        "-c",
        &wget_loop("http://far/"),
    ]);
    assert_eq!(page.trim(), hello);
    env.ok(&["network", "disconnect", "other", "web"]);
    assert_eq!(env.inspect("web", "{{len .NetworkSettings.Networks}}"), "1");
    // A network in use cannot go; prune keeps it and removes the other.
    let busy = env.berth(&["network", "rm", "appnet"]);
    assert_ne!(busy.code(), Some(0), "{}", busy.transcript());
    assert_eq!(
        env.ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nother\n"
    );
    env.ok(&["rm", "-f", "web"]);
    env.ok(&["network", "rm", "appnet"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn kill_9_of_the_monitor_then_the_next_command_reconciles() {
    let test = "kill_9_of_the_monitor_then_the_next_command_reconciles";
    let Some(env) = engine(test) else { return };
    web(&env, &["--name", "web", "-p", "8081:80"]);
    let pid = env.inspect("web", "{{.State.Pid}}");
    fetch("http://127.0.0.1:8081/").expect("the published port answers");
    // The monitor and the container die unseen.
    for monitor in monitors_of(&env.run) {
        let (ok, text) = sh(&format!("kill -9 {monitor}"));
        assert!(ok, "{text}");
    }
    let (ok, text) = sh(&format!("kill -9 {pid}"));
    assert!(ok, "{text}");
    // The next command finds out, and releases the network.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = env.ok(&["ps", "-a", "--format", "{{.State}}"]);
        if status.trim() == "exited" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "web stays {status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    // It starts again, with a network.
    env.ok(&["start", "web"]);
    fetch("http://127.0.0.1:8081/").expect("the published port answers again");
    env.ok(&["rm", "-f", "web"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn publish_all_and_udp_ports_reach_the_container() {
    let test = "publish_all_and_udp_ports_reach_the_container";
    let Some(env) = engine(test) else { return };
    // -P: the exposed port on a host port the engine chose.
    web(&env, &["--name", "web", "--expose", "80", "-P"]);
    let port = env.ok(&["port", "web", "80/tcp"]);
    let host_port = port.trim().rsplit(':').next().unwrap_or("").to_string();
    assert!(host_port.parse::<u16>().is_ok(), "port: {port:?}");
    fetch(&format!("http://{HOST_ADDRESS}:{host_port}/")).expect("the -P port answers");
    // UDP: a datagram to the published port lands in the container's
    // namespace (busybox has no UDP server: a socket of the test's own,
    // bound in the container's namespace, listens).
    let id = env.run_d(&["--name", "udp", "-p", "5353:5353/udp", IMAGE, "sleep", "60"]);
    assert_eq!(env.ok(&["port", "udp"]), "5353/udp -> 0.0.0.0:5353\n");
    let sandbox = std::path::PathBuf::from(env.inspect("udp", "{{.NetworkSettings.SandboxKey}}"));
    assert!(sandbox.ends_with(&id));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        ch07_network::netns::run_in_netns(&sandbox, move || {
            let socket = UdpSocket::bind("0.0.0.0:5353").expect("bind in the container");
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            socket
                .recv_from(&mut buf)
                .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .expect("enter the container's namespace")
    });
    ready_rx.recv().expect("the receiver is ready");
    let sender = UdpSocket::bind("0.0.0.0:0").unwrap();
    while !receiver.is_finished() {
        sender
            .send_to(b"datagram", (HOST_ADDRESS, 5353))
            .expect("send a datagram");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = receiver.join().expect("the receiver thread");
    assert_eq!(got.expect("a datagram arrives"), "datagram");
    env.ok(&["rm", "-f", "web", "udp"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn containers_started_at_once_get_distinct_addresses_and_leave_nothing() {
    let test = "containers_started_at_once_get_distinct_addresses_and_leave_nothing";
    let Some(env) = engine(test) else { return };
    // --ip on a network with a subnet of the user's choice.
    env.ok(&["network", "create", "--subnet", "172.30.5.0/24", "fixed"]);
    env.run_d(&[
        "--network",
        "fixed",
        "--ip",
        "172.30.5.50",
        "--name",
        "pinned",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert_eq!(
        env.inspect("pinned", "{{.NetworkSettings.Networks.fixed.IPAddress}}"),
        "172.30.5.50"
    );
    let taken = env.berth(&[
        "run",
        "-d",
        "--network",
        "fixed",
        "--ip",
        "172.30.5.50",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert_eq!(taken.code(), Some(125), "{}", taken.transcript());
    // Twelve `run -d` at once on the default bridge: twelve addresses.
    let ids: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| env.run_d(&[IMAGE, "sleep", "60"])))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let addresses: std::collections::BTreeSet<String> = ids
        .iter()
        .map(|id| env.inspect(id, "{{.NetworkSettings.IPAddress}}"))
        .collect();
    assert_eq!(addresses.len(), 12, "{addresses:?}");
    assert!(addresses.iter().all(|a| a.parse::<Ipv4Addr>().is_ok()));
    let mut rm = vec!["rm", "-f", "pinned"];
    rm.extend(ids.iter().map(String::as_str));
    env.ok(&rm);
    env.ok(&["network", "rm", "fixed"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn after_a_simulated_reboot_the_leases_are_reconciled() {
    let test = "after_a_simulated_reboot_the_leases_are_reconciled";
    let Some(env) = engine(test) else { return };
    web(&env, &["--name", "web", "-p", "8082:80"]);
    fetch("http://127.0.0.1:8082/").expect("the published port answers");
    let pid = env.inspect("web", "{{.State.Pid}}");
    // A reboot: every process gone, /run emptied, and with them the
    // kernel's side (veths, bridges, rules); the leases on disk remain.
    for monitor in monitors_of(&env.run) {
        sh(&format!("kill -9 {monitor}"));
    }
    sh(&format!("kill -9 {pid}"));
    let run = env.run.display();
    for step in [
        format!("umount -R -l {run}/netns"),
        format!("rm -rf {run}"),
        "nft delete table inet berth".to_string(),
    ] {
        let (ok, text) = sh(&step);
        assert!(ok, "{step}: {text}");
    }
    let (_, links) = sh("ip -o link show");
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with("bveth") || name.starts_with("berth") {
            sh(&format!("ip link del {name}"));
        }
    }
    // The next command finds web gone and releases its lease and port.
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.State}}"]).trim(),
        "exited"
    );
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    // It starts again with the same published port.
    env.ok(&["start", "web"]);
    fetch("http://127.0.0.1:8082/").expect("the published port answers again");
    env.ok(&["rm", "-f", "web"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn hostname_add_host_and_dns_flags_reach_the_etc_files() {
    let test = "hostname_add_host_and_dns_flags_reach_the_etc_files";
    let Some(env) = engine(test) else { return };
    let files = env.ok(&[
        "run",
        "--rm",
        "-h",
        "box",
        "--add-host",
        "db:192.0.2.9",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        IMAGE,
        "sh",
        "-c",
        "cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname -i",
    ]);
    let parts: Vec<&str> = files.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{files}");
    assert_eq!(parts[0], "box\n");
    let address = parts[3].trim();
    assert!(address.parse::<Ipv4Addr>().is_ok(), "{files}");
    assert!(parts[1].contains("192.0.2.9\tdb\n"), "{files}");
    assert!(parts[1].contains(&format!("{address}\tbox\n")), "{files}");
    let resolv: Vec<&str> = parts[2]
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(
        resolv,
        [
            "nameserver 192.0.2.53",
            "search example.org",
            "options ndots:2"
        ],
        "{files}"
    );
    // On a user-defined network the resolver is the network's DNS server.
    env.ok(&["network", "create", "named"]);
    let gateway = env.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "named",
    ]);
    let resolv = env.ok(&[
        "run",
        "--rm",
        "--network",
        "named",
        IMAGE,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(
        resolv.contains(&format!("nameserver {}\n", gateway.trim())),
        "{resolv}"
    );
    env.ok(&["network", "rm", "named"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn what_a_killed_engine_left_on_the_network_is_removed_by_the_next_ps() {
    let test = "what_a_killed_engine_left_on_the_network_is_removed_by_the_next_ps";
    let Some(env) = engine(test) else { return };
    let id = web(&env, &["-p", "8083:80"]);
    fetch("http://127.0.0.1:8083/").expect("the published port answers");
    let merged = env.inspect(&id, "{{.GraphDriver.Data.MergedDir}}");
    let pid = env.inspect(&id, "{{.State.Pid}}");
    // The container and its record vanish, its network is still there
    // (as if an engine died half-way through a removal of its own, after
    // the runtime's delete: the cgroup goes with the container, or no
    // engine could ever find it again once the record is gone).
    for monitor in monitors_of(&env.run) {
        sh(&format!("kill -9 {monitor}"));
    }
    sh(&format!("kill -9 {pid}"));
    ch07_full_engine::engine::remove::remove_cgroup(&id, std::path::Path::new("/proc"));
    let dir = env.root.join("containers").join(&id);
    for step in [
        format!("umount -l {merged}"),
        format!("rm -rf {}", dir.display()),
    ] {
        let (ok, text) = sh(&step);
        assert!(ok, "{step}: {text}");
    }
    assert!(
        !network_leftovers(&env).is_empty(),
        "the veth and lease remain"
    );
    // The next ps: no container, nothing left on the network.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}

#[test]
fn bad_network_flags_fail_with_dockers_words_and_leak_nothing() {
    let test = "bad_network_flags_fail_with_dockers_words_and_leak_nothing";
    let Some(env) = engine(test) else { return };
    let cases: [(&[&str], &str); 5] = [
        (&["--network", "nope"], "network nope not found"),
        (&["-p", "99999:80"], "invalid"),
        (
            &["--network", "container:nobody", "-p", "80"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            &["--ip", "10.1.2.3"],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &["--network-alias", "x"],
            "network-scoped alias is supported only for containers in user defined networks",
        ),
    ];
    for (flags, words) in cases {
        let mut args = vec!["run", "-d"];
        args.extend(flags);
        args.extend([IMAGE, "true"]);
        let run = env.berth(&args);
        assert_eq!(run.code(), Some(125), "{flags:?}: {}", run.transcript());
        assert!(
            run.stderr().contains(words),
            "{flags:?}: {}",
            run.transcript()
        );
    }
    // A host port taken by another container: refused at start, and the
    // failed container holds no address, veth or rule.
    web(&env, &["--name", "first", "-p", "8090:80"]);
    let second = env.berth(&[
        "run", "-d", "--name", "second", "-p", "8090:80", IMAGE, "true",
    ]);
    assert_eq!(second.code(), Some(125), "{}", second.transcript());
    assert!(second.stderr().contains("8090"), "{}", second.transcript());
    env.ok(&["rm", "-f", "first", "second"]);
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
}
