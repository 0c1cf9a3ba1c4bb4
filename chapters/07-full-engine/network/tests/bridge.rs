//! The default bridge network, in a throwaway test host: a container's
//! address, outbound NAT, published ports (TCP and UDP, on the host's
//! addresses and on 127.0.0.1), port reservations, and the protection of
//! the host's localhost services.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use berth_test_support::test_host::in_test_host;
use ch07_network::netlink::Netlink;
use ch07_network::{NetworkError, netns};
use common::*;

const TOOLS: &[&str] = &["busybox", "nft", "nsenter", "ip", "timeout"];

#[test]
fn container_is_reachable_by_its_address() {
    if !in_test_host("container_is_reachable_by_its_address")
        || !have_tools("container_is_reachable_by_its_address", TOOLS)
    {
        return;
    }
    let mut host = Host::new();
    let web = host.container("web");
    let ep = host.attach(&web, "bridge", &[], &[]);
    let bridge = host.networks.find("bridge").unwrap();
    assert_eq!(bridge.subnet.unwrap().to_string(), "10.77.0.0/16");
    assert_eq!(ep.ip, Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!(ep.mac, "be:27:0a:4d:00:02");
    assert_eq!(ep.ifname, "eth0");

    // Inside: lo and eth0 with the address, the MAC and the default route.
    let inside = Netlink::open_in(&web.netns).unwrap();
    let names: Vec<String> = inside
        .links()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["lo", "eth0"]);
    assert_eq!(
        inside.ipv4_addresses("eth0").unwrap()[0].to_string(),
        "10.77.0.2/16"
    );
    let routes = inside.ipv4_routes().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r.destination.prefix_len() == 0
                && r.gateway == Some(Ipv4Addr::new(10, 77, 0, 1))),
        "{routes:?}"
    );
    let eth0 = inside.link("eth0").unwrap().unwrap();
    assert_eq!(eth0.mac.as_deref(), Some("be:27:0a:4d:00:02"));

    // On the host: the bridge with the gateway address, forwarding on,
    // route_localnet on the bridge.
    let nl = Netlink::open().unwrap();
    assert_eq!(
        nl.ipv4_addresses("berth0").unwrap()[0].to_string(),
        "10.77.0.1/16"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/berth0/route_localnet")
            .unwrap()
            .trim(),
        "1"
    );
    let veth = nl.link(&ep.host_veth).unwrap().expect("the host end");
    assert_eq!(
        veth.controller,
        Some(nl.link("berth0").unwrap().unwrap().index)
    );

    host.httpd(&web, "web says hello\n");
    assert_eq!(wget(None, "http://10.77.0.2/").unwrap(), "web says hello\n");

    // Inspect shows what docker shows.
    let settings = host
        .networks
        .network_settings(
            &web.id,
            Some(&web.netns),
            &[],
            &ch07_network::mode::NetworkMode::Bridge,
        )
        .unwrap();
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(json["IPAddress"], "10.77.0.2");
    assert_eq!(json["Gateway"], "10.77.0.1");
    assert_eq!(json["Networks"]["bridge"]["NetworkID"], bridge.id);

    host.networks.detach(&web.id, "bridge").unwrap();
    assert!(wget(None, "http://10.77.0.2/").is_err());
    assert_eq!(leftovers(&host), Vec::<String>::new());
}

#[test]
fn a_none_container_has_only_lo() {
    if !in_test_host("a_none_container_has_only_lo")
        || !have_tools("a_none_container_has_only_lo", TOOLS)
    {
        return;
    }
    let host = Host::new();
    let c = host.container("lonely");
    let inside = Netlink::open_in(&c.netns).unwrap();
    let links = inside.links().unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"]
    );
    assert_eq!(
        inside.ipv4_addresses("lo").unwrap()[0].to_string(),
        "127.0.0.1/8",
        "lo is up"
    );
    // `container:lonely` joins the same file; removing it unmounts it.
    netns::remove_netns(&c.netns).unwrap();
    assert!(!c.netns.exists());
    assert!(netns::list_netns(&host.netns_dir).unwrap().is_empty());
}

#[test]
fn outbound_traffic_leaves_with_the_hosts_address() {
    if !in_test_host("outbound_traffic_leaves_with_the_hosts_address")
        || !have_tools("outbound_traffic_leaves_with_the_hosts_address", TOOLS)
    {
        return;
    }
    let mut host = Host::new();
    host.uplink();
    let c = host.container("client");
    host.attach(&c, "bridge", &[], &[]);
    assert_eq!(
        wget(Some(&c.netns), &format!("http://{FAR_AWAY}/")).unwrap(),
        "outside says hello\n"
    );
    let log = host.outside_log();
    assert!(
        log.contains(&HOST_UPLINK.to_string()),
        "the outside saw: {log}"
    );
    assert!(!log.contains("10.77."), "a private address leaked: {log}");
}

#[test]
fn published_ports_answer_on_the_hosts_addresses_and_loopback() {
    if !in_test_host("published_ports_answer_on_the_hosts_addresses_and_loopback")
        || !have_tools(
            "published_ports_answer_on_the_hosts_addresses_and_loopback",
            TOOLS,
        )
    {
        return;
    }
    let mut host = Host::new();
    host.uplink();
    let web = host.container("web");
    let ep = host.attach(&web, "bridge", &[], &["8080:80", "127.0.0.1:8081:80", "80"]);
    host.httpd(&web, "published\n");
    let auto = ep
        .ports
        .iter()
        .find(|p| p.host_port != 8080 && p.host_port != 8081)
        .unwrap()
        .host_port;
    let (lo, hi) = ch07_network::ports::ephemeral_range(Path::new("/proc")).unwrap();
    assert!((lo..=hi).contains(&auto), "{auto} outside {lo}-{hi}");

    // From the host itself: its uplink address and 127.0.0.1.
    for url in [
        "http://127.0.0.1:8080/",
        &format!("http://{HOST_UPLINK}:8080/"),
        "http://127.0.0.1:8081/",
        &format!("http://127.0.0.1:{auto}/"),
    ] {
        assert_eq!(wget(None, url).as_deref(), Ok("published\n"), "{url}");
    }
    // From the outside, to the host's address: 8080 yes, 8081 (bound to
    // 127.0.0.1 only) no.
    let outside = host.outside.clone().unwrap();
    assert_eq!(
        wget(Some(&outside), &format!("http://{HOST_UPLINK}:8080/")).as_deref(),
        Ok("published\n")
    );
    assert!(wget(Some(&outside), &format!("http://{HOST_UPLINK}:8081/")).is_err());
    // The outside cannot reach the container's address directly.
    let out = Netlink::open_in(&outside).unwrap();
    drop(out);
    sh(&[
        "nsenter",
        &format!("--net={}", outside.display()),
        "ip",
        "route",
        "add",
        "10.77.0.0/16",
        "via",
        &HOST_UPLINK.to_string(),
    ]);
    assert!(
        wget(Some(&outside), "http://10.77.0.2/").is_err(),
        "unpublished traffic reached the container"
    );
    // Another container of the bridge, through the host's address (hairpin).
    let other = host.container("other");
    host.attach(&other, "bridge", &[], &[]);
    assert_eq!(
        wget(Some(&other.netns), &format!("http://{HOST_UPLINK}:8080/")).as_deref(),
        Ok("published\n")
    );
    // `port` lists them, and the rules go with the container.
    let ports: Vec<String> = host
        .networks
        .published_ports(&web.id)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        ports.contains(&"80/tcp -> 0.0.0.0:8080".to_string()),
        "{ports:?}"
    );
    assert!(
        ports.contains(&"80/tcp -> 127.0.0.1:8081".to_string()),
        "{ports:?}"
    );
    host.networks.detach(&web.id, "bridge").unwrap();
    assert!(wget(None, "http://127.0.0.1:8080/").is_err());
    let table = ch07_network::firewall::current_table()
        .unwrap()
        .expect("other still attached");
    let published: Vec<_> = ch07_network::firewall::rules_of(&table)
        .into_iter()
        .filter(|r| r.chain == "published")
        .collect();
    assert!(
        published.is_empty(),
        "a DNAT rule outlived its container: {published:?}"
    );
    host.networks.detach(&other.id, "bridge").unwrap();
    assert_eq!(leftovers(&host), Vec::<String>::new());
}

#[test]
fn udp_ports_are_published_too() {
    if !in_test_host("udp_ports_are_published_too")
        || !have_tools("udp_ports_are_published_too", TOOLS)
    {
        return;
    }
    let mut host = Host::new();
    host.uplink();
    let dns = host.container("echo");
    host.attach(&dns, "bridge", &[], &["5353:53/udp"]);
    udp_echo(&dns.netns, 53);
    assert_eq!(
        udp_ask(SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)), "ping").as_deref(),
        Some("pong ping")
    );
    assert_eq!(
        udp_ask(SocketAddr::from((HOST_UPLINK, 5353)), "ping2").as_deref(),
        Some("pong ping2")
    );
    let outside = host.outside.clone().unwrap();
    let from_outside = netns::run_in_netns(&outside, || {
        udp_ask(SocketAddr::from((HOST_UPLINK, 5353)), "far")
    })
    .unwrap();
    assert_eq!(from_outside.as_deref(), Some("pong far"));
    // TCP on the same port is not published.
    assert!(wget(None, "http://127.0.0.1:5353/").is_err());
}

#[test]
fn a_taken_host_port_is_refused_and_nothing_is_left() {
    if !in_test_host("a_taken_host_port_is_refused_and_nothing_is_left")
        || !have_tools("a_taken_host_port_is_refused_and_nothing_is_left", TOOLS)
    {
        return;
    }
    let host = Host::new();
    let first = host.container("first");
    host.attach(&first, "bridge", &[], &["8080:80"]);
    let second = host.container("second");
    let err = host
        .networks
        .attach(&host.request(&second, "bridge", &[], &["8080:80"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    // Also a narrower address: 127.0.0.1:8080 overlaps 0.0.0.0:8080.
    let err = host
        .networks
        .attach(&host.request(&second, "bridge", &[], &["127.0.0.1:8080:80"]))
        .unwrap_err();
    assert!(matches!(err, NetworkError::PortAllocated(_)), "{err}");
    // A port a process of the host holds.
    let holder = TcpListener::bind("0.0.0.0:9999").unwrap();
    let err = host
        .networks
        .attach(&host.request(&second, "bridge", &[], &["9999:80"]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bind for 0.0.0.0:9999/tcp failed"),
        "{err}"
    );
    drop(holder);
    // Nothing of the second container exists: no lease, no veth, no rule.
    assert!(host.networks.endpoints_of(&second.id).unwrap().is_empty());
    let links = Netlink::open_in(&second.netns).unwrap().links().unwrap();
    assert_eq!(
        links.len(),
        1,
        "the failed attach left an interface in the container: {links:?}"
    );
    let table = serde_json::to_string(&ch07_network::firewall::current_table().unwrap()).unwrap();
    assert!(!table.contains("9999"), "{table}");
    // Attaching twice is refused too.
    let err = host
        .networks
        .attach(&host.request(&first, "bridge", &[], &[]))
        .unwrap_err();
    assert!(matches!(err, NetworkError::EndpointExists { .. }), "{err}");
    host.networks.detach_all(&first.id).unwrap();
    assert_eq!(leftovers(&host), Vec::<String>::new());
}

/// The attack route_localnet opens: a container routes packets for
/// 127.0.0.1 to the gateway, hoping to reach a service the host binds to
/// its loopback only. The `localnet` chain must drop them; with the rule
/// flushed, the same attack succeeds (so the test can see the hole).
#[test]
fn containers_cannot_reach_the_hosts_localhost_services() {
    if !in_test_host("containers_cannot_reach_the_hosts_localhost_services")
        || !have_tools(
            "containers_cannot_reach_the_hosts_localhost_services",
            TOOLS,
        )
    {
        return;
    }
    let mut host = Host::new();
    let www = host.tmp.path().join("secret");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "host secret\n").unwrap();
    let server = Command::new("busybox")
        .args(["httpd", "-f", "-p", "127.0.0.1:7777", "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    host.keep(server);
    assert_eq!(
        wget(None, "http://127.0.0.1:7777/").as_deref(),
        Ok("host secret\n")
    );
    let evil = host.container("evil");
    host.attach(&evil, "bridge", &[], &["8080:80"]);
    // Inside the container (root there): send 127.0.0.1 to the gateway.
    let ns = format!("--net={}", evil.netns.display());
    for cmd in [
        // 127.0.0.1 must not be the container's own address, or its
        // kernel takes the answers for martians.
        "ip addr del 127.0.0.1/8 dev lo",
        "ip route add 127.0.0.1/32 via 10.77.0.1 dev eth0",
        "sysctl -qw net.ipv4.conf.all.route_localnet=1",
        "sysctl -qw net.ipv4.conf.eth0.route_localnet=1",
    ] {
        let mut args = vec!["nsenter", ns.as_str()];
        args.extend(cmd.split(' '));
        sh(&args);
    }
    assert!(
        wget(Some(&evil.netns), "http://127.0.0.1:7777/").is_err(),
        "the container reached the host's localhost"
    );
    // Without the protection the attack works: flush the chain, try again.
    sh(&["nft", "flush", "chain", "inet", "berth", "localnet"]);
    assert_eq!(
        wget(Some(&evil.netns), "http://127.0.0.1:7777/").as_deref(),
        Ok("host secret\n"),
        "the attack itself must work without the rule"
    );
}
