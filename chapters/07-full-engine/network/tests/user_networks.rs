//! User-defined networks, in a throwaway test host: names through the
//! embedded DNS server, isolation between networks, the network
//! commands' rules (docker's), internal networks, subnets that avoid the
//! host's routes.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use berth_test_support::test_host::in_test_host;
use ch07_network::etc::{self, EtcRequest, ResolvMode};
use ch07_network::netlink::Netlink;
use ch07_network::{CreateOptions, NetworkError};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const TOOLS: &[&str] = &[
    "busybox", "nft", "nsenter", "ip", "timeout", "unshare", "mount",
];

fn create(host: &Host, name: &str) -> ch07_network::store::NetworkConfig {
    host.networks
        .create(&CreateOptions {
            name: name.into(),
            ..Default::default()
        })
        .unwrap()
}

/// Run `script` in the container's network namespace and a private mount
/// namespace where its generated /etc files are bind-mounted, as the
/// engine will mount them.
fn in_container_with_etc(c: &Ctr, files: &etc::EtcFiles, script: &str) -> Result<String, String> {
    let full = format!(
        "mount --bind {} /etc/resolv.conf && mount --bind {} /etc/hosts && {script}",
        files.resolv_conf.display(),
        files.hosts.display()
    );
    let out = run(Command::new("nsenter")
        .arg(format!("--net={}", c.netns.display()))
        .args([
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &full,
        ]));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn containers_of_a_network_find_each_other_by_name_and_no_one_else_does() {
    let test = "containers_of_a_network_find_each_other_by_name_and_no_one_else_does";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let mut host = Host::new();
    host.uplink();
    let mynet = create(&host, "mynet");
    let other = create(&host, "othernet");
    assert_eq!(mynet.subnet.unwrap().to_string(), "10.78.0.0/24");
    assert_eq!(other.subnet.unwrap().to_string(), "10.78.1.0/24");
    assert_eq!(
        (mynet.bridge.as_str(), other.bridge.as_str()),
        ("berth1", "berth2")
    );
    let gw = mynet.gateway.unwrap();

    let web = host.container("web");
    let web_ep = host.attach(&web, "mynet", &["www"], &[]);
    host.httpd(&web, "web on mynet\n");
    let client = host.container("client");
    let client_ep = host.attach(&client, "mynet", &[], &[]);
    let stranger = host.container("stranger");
    let stranger_ep = host.attach(&stranger, "othernet", &[], &[]);
    host.httpd(&stranger, "stranger\n");

    // Names, aliases, NAME.NETWORK and the short ID, from a neighbour.
    for name in ["web.", "www.", "web.mynet.", &format!("{}.", &web.id[..12])] {
        assert_eq!(
            dns_query(&client.netns, gw, name, RecordType::A),
            Some((ResponseCode::NoError, vec![web_ep.ip])),
            "{name}"
        );
    }
    // Over TCP too.
    assert_eq!(
        dns_query_tcp(&client.netns, gw, "www."),
        Some((ResponseCode::NoError, vec![web_ep.ip]))
    );
    // Another network's container is not a name here: the query goes
    // upstream, which has never heard of it.
    let (code, found) = dns_query(&client.netns, gw, "stranger.", RecordType::A).unwrap();
    assert_eq!((code, found), (ResponseCode::NXDomain, vec![]));
    // Names of the world are forwarded to the host's servers.
    assert_eq!(
        dns_query(&client.netns, gw, "outside.example.", RecordType::A),
        Some((ResponseCode::NoError, vec![FAR_AWAY]))
    );
    // A container of the other network may not use this network's DNS
    // server (reachable, since the gateway is a host address): REFUSED.
    assert_eq!(
        dns_query(&stranger.netns, gw, "web.", RecordType::A),
        Some((ResponseCode::Refused, vec![]))
    );

    // busybox's own resolver, and wget by name through the generated
    // /etc files bind-mounted as the engine will.
    let out = run(Command::new("nsenter")
        .arg(format!("--net={}", client.netns.display()))
        .args([
            "timeout",
            "5",
            "busybox",
            "nslookup",
            "www",
            &gw.to_string(),
        ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&web_ep.ip.to_string()));
    let files = etc::write_etc_files(
        &host.tmp.path().join("client-etc"),
        &EtcRequest {
            hostname: client.id[..12].to_string(),
            addresses: vec![ip(&client_ep)],
            mode: Some(ResolvMode::Embedded(gw)),
            ..Default::default()
        },
        &host.networks.host().resolv,
        std::path::Path::new("/etc/hosts"),
    )
    .unwrap();
    let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
    assert!(
        resolv.contains(&format!("nameserver {gw}\n")) && resolv.contains("ndots:0"),
        "{resolv}"
    );
    assert_eq!(
        in_container_with_etc(
            &client,
            &files,
            "timeout 5 busybox wget -q -O - http://web/"
        )
        .as_deref(),
        Ok("web on mynet\n")
    );
    assert_eq!(
        in_container_with_etc(
            &client,
            &files,
            "timeout 5 busybox wget -q -O - http://www.mynet/"
        )
        .as_deref(),
        Ok("web on mynet\n")
    );

    // Isolation: by address, neither way.
    assert!(wget(Some(&client.netns), &format!("http://{}/", stranger_ep.ip)).is_err());
    assert!(wget(Some(&stranger.netns), &format!("http://{}/", web_ep.ip)).is_err());
    // ...while the host reaches both, and both reach the outside.
    assert_eq!(
        wget(None, &format!("http://{}/", web_ep.ip)).as_deref(),
        Ok("web on mynet\n")
    );
    assert_eq!(
        wget(Some(&stranger.netns), &format!("http://{FAR_AWAY}/")).as_deref(),
        Ok("outside says hello\n")
    );

    // The DNS servers go with their networks' last containers.
    let store = host.networks.store();
    assert!(ch07_network::dns::running(store, "/proc".as_ref(), &mynet.id).is_some());
    host.networks.detach(&stranger.id, "othernet").unwrap();
    assert!(ch07_network::dns::running(store, "/proc".as_ref(), &other.id).is_none());
    assert!(
        Netlink::open().unwrap().link("berth2").unwrap().is_none(),
        "the bridge outlived its last container"
    );
    host.networks.detach(&web.id, "mynet").unwrap();
    // web is gone from the names.
    let (code, found) = dns_query(&client.netns, gw, "web.", RecordType::A).unwrap();
    assert_eq!((code, found), (ResponseCode::NXDomain, vec![]));
    host.networks.detach(&client.id, "mynet").unwrap();
    assert_eq!(leftovers(&host), Vec::<String>::new());
}

#[test]
fn network_commands_follow_dockers_rules() {
    let test = "network_commands_follow_dockers_rules";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let host = Host::new();
    let names: Vec<String> = host
        .networks
        .list()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    let mynet = create(&host, "mynet");
    let err = host
        .networks
        .create(&CreateOptions {
            name: "mynet".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "network with name mynet already exists");
    for predefined in ["bridge", "host", "none"] {
        let err = host.networks.remove(predefined).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{predefined} is a pre-defined network and cannot be removed")
        );
    }
    // Subnets: an overlap with another network is refused.
    let err = host
        .networks
        .create(&CreateOptions {
            name: "clash".into(),
            subnet: Some("10.78.0.128/25".parse().unwrap()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid pool request: Pool overlaps"),
        "{err}"
    );
    // Aliases and --ip only on user-defined networks.
    let c = host.container("c");
    let mut request = host.request(&c, "bridge", &["alias"], &[]);
    assert!(host.networks.attach(&request).is_err());
    request.aliases.clear();
    request.ip = Some(Ipv4Addr::new(10, 77, 0, 50));
    assert!(host.networks.attach(&request).is_err());
    let mut request = host.request(&c, "mynet", &[], &[]);
    request.ip = Some(Ipv4Addr::new(10, 78, 0, 50));
    let (_, ep) = host.networks.attach(&request).unwrap();
    assert_eq!(ep.ip, Ipv4Addr::new(10, 78, 0, 50));
    // host and none take no endpoints.
    assert!(
        host.networks
            .attach(&host.request(&c, "host", &[], &[]))
            .is_err()
    );
    assert!(
        host.networks
            .attach(&host.request(&c, "none", &[], &[]))
            .is_err()
    );
    // A network with a container cannot go; inspect lists it.
    let err = host.networks.remove("mynet").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "error while removing network: network mynet id {} has active endpoints",
            mynet.id
        )
    );
    let doc = serde_json::to_value(host.networks.inspect(&mynet.id[..6]).unwrap()).unwrap();
    assert_eq!(doc["Containers"][&c.id]["IPv4Address"], "10.78.0.50/24");
    assert_eq!(doc["Options"]["com.docker.network.bridge.name"], "berth1");
    // A second network to connect to: eth1, and the default route stays.
    let second = create(&host, "second");
    let ep2 = host.attach(&c, "second", &[], &[]);
    assert_eq!(ep2.ifname, "eth1");
    let routes = Netlink::open_in(&c.netns).unwrap().ipv4_routes().unwrap();
    let defaults: Vec<_> = routes
        .iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .collect();
    assert_eq!(defaults.len(), 1, "{routes:?}");
    assert_eq!(defaults[0].gateway, mynet.gateway);
    // Disconnect, then prune takes the empty networks, not the others.
    let err = host.networks.detach(&c.id, "bridge").unwrap_err();
    assert!(matches!(err, NetworkError::NotConnected { .. }), "{err}");
    host.networks.detach(&c.id, "second").unwrap();
    let empty = create(&host, "empty");
    let mut pruned = host.networks.prune().unwrap();
    pruned.sort();
    assert_eq!(pruned, ["empty", "second"]);
    assert!(host.networks.find(&second.id).is_err() && host.networks.find(&empty.name).is_err());
    host.networks.detach_all(&c.id).unwrap();
    host.networks.remove("mynet").unwrap();
    assert_eq!(
        host.networks.find("mynet").unwrap_err().to_string(),
        "network mynet not found"
    );
    assert_eq!(leftovers(&host), Vec::<String>::new());
}

#[test]
fn an_internal_network_keeps_its_traffic_inside() {
    let test = "an_internal_network_keeps_its_traffic_inside";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let mut host = Host::new();
    host.uplink();
    let net = host
        .networks
        .create(&CreateOptions {
            name: "vault".into(),
            internal: true,
            ..Default::default()
        })
        .unwrap();
    let a = host.container("a");
    let a_ep = host.attach(&a, "vault", &[], &["8080:80"]);
    host.httpd(&a, "inside\n");
    let b = host.container("b");
    host.attach(&b, "vault", &[], &[]);
    let gw = net.gateway.unwrap();
    // Neighbours and names work.
    assert_eq!(
        wget(Some(&b.netns), &format!("http://{}/", a_ep.ip)).as_deref(),
        Ok("inside\n")
    );
    assert_eq!(
        dns_query(&b.netns, gw, "a.", RecordType::A),
        Some((ResponseCode::NoError, vec![a_ep.ip]))
    );
    // Nothing leaves: no default route, no forwarding, no DNS forwarding,
    // no published port.
    let routes = Netlink::open_in(&b.netns).unwrap().ipv4_routes().unwrap();
    assert!(
        !routes.iter().any(|r| r.destination.prefix_len() == 0),
        "{routes:?}"
    );
    sh(&[
        "nsenter",
        &format!("--net={}", b.netns.display()),
        "ip",
        "route",
        "add",
        "default",
        "via",
        &gw.to_string(),
    ]);
    assert!(wget(Some(&b.netns), &format!("http://{FAR_AWAY}/")).is_err());
    assert!(
        !host.outside_log().contains("url:"),
        "{}",
        host.outside_log()
    );
    let (code, _) = dns_query(&b.netns, gw, "outside.example.", RecordType::A).unwrap();
    assert_eq!(code, ResponseCode::ServFail);
    assert!(wget(None, "http://127.0.0.1:8080/").is_err());
}

#[test]
fn subnets_avoid_the_hosts_routes() {
    let test = "subnets_avoid_the_hosts_routes";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    // The host already routes 10.77.0.0/16 and 10.78.0.0/24 (a VPN, say).
    sh(&[
        "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn0p",
    ]);
    sh(&["ip", "link", "set", "vpn0p", "up"]);
    sh(&["ip", "link", "set", "vpn0", "up"]);
    sh(&["ip", "route", "add", "10.77.0.0/16", "dev", "vpn0"]);
    sh(&["ip", "route", "add", "10.78.0.0/24", "dev", "vpn0"]);
    let host = Host::new();
    assert_eq!(
        host.networks
            .find("bridge")
            .unwrap()
            .subnet
            .unwrap()
            .to_string(),
        "10.76.0.0/16"
    );
    assert_eq!(
        create(&host, "auto").subnet.unwrap().to_string(),
        "10.78.1.0/24"
    );
    let err = host
        .networks
        .create(&CreateOptions {
            name: "given".into(),
            subnet: Some("10.78.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("overlaps the host's route to 10.78.0.0/24"),
        "{err}"
    );
    // A route that appears after the network was made: the attach that
    // would make the bridge says so, and leaves nothing behind.
    sh(&["ip", "route", "add", "10.78.1.128/25", "dev", "vpn0"]);
    let c = host.container("c");
    let err = host
        .networks
        .attach(&host.request(&c, "auto", &[], &[]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("overlaps the host's route to 10.78.1.128/25"),
        "{err}"
    );
    assert_eq!(leftovers(&host), Vec::<String>::new());
    assert_eq!(
        Netlink::open_in(&c.netns).unwrap().links().unwrap().len(),
        1
    );
}
