//! The nftables rules: forwarding, outbound NAT, published ports,
//! isolation between networks.
//!
//! Kernel feature: netfilter calls the chains registered at its hooks for
//! every packet (prerouting when it arrives, forward when it is routed
//! through the host, output when a local process sends it, postrouting as
//! it leaves). nftables is the interface to those chains; Berth's live in
//! a table of their own, `table inet berth`, so they never mix with the
//! host's rules or docker's, and deleting that table removes all of them.
//! The table is written through `nft -j -f -` (the JSON form of nft's
//! input, by way of the `nftables` crate, which netavark also uses) in one
//! transaction: the kernel swaps the old table for the new one atomically.
//!
//! Rather than adding and deleting single rules, Berth writes the whole
//! table from the state every time an endpoint comes or goes (under the
//! state lock): the rules are a function of the state, so a crash can
//! never leave a rule without its container, and a reconcile is one more
//! rewrite. Connections already NATed are unaffected (their translation
//! lives in conntrack, not in the rules). With no container attached
//! anywhere, the table is deleted.
//!
//! ```text
//! chain forward      (filter, hook forward)
//!   iifname BR oifname BR accept                  same network
//!   oifname @bridges ct state established,related accept   replies
//!   oifname @bridges ct status dnat accept        published ports
//!   iifname @bridges oifname @bridges drop        isolation (docker's
//!                                                 DOCKER-ISOLATION chains)
//!   iifname INTERNAL drop; oifname INTERNAL drop  --internal networks
//!   iifname @bridges accept                       outbound
//!   oifname @bridges drop                         nothing else gets in
//! chain prerouting / output  (nat, dstnat)
//!   fib daddr type local jump published           to this host's addresses
//! chain published
//!   [ip daddr HOSTIP] tcp dport 8080 dnat ip to 10.77.0.2:80
//! chain postrouting  (nat, srcnat)
//!   ip saddr SUBNET oifname != BR masquerade      outbound NAT
//!   oifname BR ct status dnat ip saddr { 127.0.0.0/8, SUBNET } masquerade
//! chain localnet     (filter, prerouting, raw)
//!   iifname @bridges ip daddr 127.0.0.0/8 drop
//! ```
//!
//! **Published ports on 127.0.0.1.** A connection from the host itself to
//! 127.0.0.1:8080 goes through the output hook, where the DNAT rewrites
//! its destination to the container; its source is still 127.0.0.1, which
//! the kernel refuses to route out of anything but `lo` unless
//! `route_localnet` is set on the outgoing interface. Docker solves this
//! with a userland proxy (docker-proxy, one process per published port
//! copying bytes); Berth does what docker with `userland-proxy: false`
//! and netavark do: `route_localnet=1` on its bridges, and the masquerade
//! rule above rewrites the source to the gateway's address, so the
//! container can answer. No process per port, no copying through user
//! space, the same path for TCP and UDP. The price: with route_localnet
//! on, the host would also accept packets that arrive *on the bridge*
//! addressed to 127.0.0.1, so a container could reach services the host
//! binds to localhost only (CVE-2020-8558 in kube-proxy). The `localnet`
//! chain drops exactly those, before routing.
//!
//! Man pages: nft(8), libnftables-json(5), proc_sys_net_ipv4(5).

use std::borrow::Cow;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{Chain, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::error::{NetworkError, Result};
use crate::ports::Protocol;
use crate::store::{Endpoint, NetworkConfig};

/// The table all of Berth's rules live in (family inet).
pub const TABLE: &str = "berth";

/// One network with its endpoints: what the rules are made of.
pub struct ActiveNetwork<'a> {
    pub network: &'a NetworkConfig,
    pub endpoints: Vec<&'a Endpoint>,
}

// --- expression and statement helpers: nft's syntax, spelled in JSON ---

fn s(text: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(text.into()))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn set(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    matches(left, Operator::EQ, right)
}

fn iifname(name: &str) -> Statement<'static> {
    eq(meta(MetaKey::Iifname), s(name))
}

fn oifname(name: &str) -> Statement<'static> {
    eq(meta(MetaKey::Oifname), s(name))
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

fn drop_() -> Statement<'static> {
    Statement::Drop(None)
}

fn port_field(protocol: Protocol) -> Expression<'static> {
    match protocol {
        Protocol::Tcp => payload("tcp", "dport"),
        Protocol::Udp => payload("udp", "dport"),
    }
}

fn chain(name: &'static str, base: Option<(NfChainType, NfHook, i32)>) -> NfListObject<'static> {
    let mut chain = Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name),
        ..Default::default()
    };
    if let Some((kind, hook, prio)) = base {
        chain._type = Some(kind);
        chain.hook = Some(hook);
        chain.prio = Some(prio);
        chain.policy = Some(NfChainPolicy::Accept);
    }
    NfListObject::Chain(chain)
}

fn rule(
    chain: &'static str,
    expr: Vec<Statement<'static>>,
    comment: Option<String>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: comment.map(Cow::Owned),
    })
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::INet,
        name: Cow::Borrowed(TABLE),
        handle: None,
    })
}

// Hook priorities, as nft names them.
const PRIO_RAW: i32 = -300;
const PRIO_DSTNAT: i32 = -100;
const PRIO_FILTER: i32 = 0;
const PRIO_SRCNAT: i32 = 100;

// ANCHOR: forward_rules
/// The forward chain: who may talk to whom through the host.
fn forward_rules(
    active: &[ActiveNetwork],
    bridges: &Expression<'static>,
) -> Vec<NfListObject<'static>> {
    let mut rules = Vec::new();
    for a in active {
        let br = &a.network.bridge;
        // Between two containers of one network (seen here only when
        // br_netfilter sends bridged frames through the IP hooks).
        rules.push(rule(
            "forward",
            vec![iifname(br), oifname(br), accept()],
            None,
        ));
    }
    let to_ours = || eq(meta(MetaKey::Oifname), bridges.clone());
    let from_ours = || eq(meta(MetaKey::Iifname), bridges.clone());
    rules.push(rule(
        "forward",
        vec![
            to_ours(),
            matches(
                ct("state"),
                Operator::IN,
                set(vec![s("established"), s("related")]),
            ),
            accept(),
        ],
        None,
    ));
    rules.push(rule(
        "forward",
        vec![
            to_ours(),
            matches(ct("status"), Operator::IN, s("dnat")),
            accept(),
        ],
        None,
    ));
    // Isolation: from one of our bridges to another, nothing but the above.
    rules.push(rule("forward", vec![from_ours(), to_ours(), drop_()], None));
    for a in active.iter().filter(|a| a.network.internal) {
        rules.push(rule(
            "forward",
            vec![iifname(&a.network.bridge), drop_()],
            None,
        ));
        rules.push(rule(
            "forward",
            vec![oifname(&a.network.bridge), drop_()],
            None,
        ));
    }
    rules.push(rule("forward", vec![from_ours(), accept()], None));
    rules.push(rule("forward", vec![to_ours(), drop_()], None));
    rules
}
// ANCHOR_END: forward_rules

// ANCHOR: nat_rules
/// The NAT chains: DNAT of published ports, masquerade of what leaves.
fn nat_rules(active: &[ActiveNetwork]) -> Vec<NfListObject<'static>> {
    let mut rules = Vec::new();
    // 1. Traffic to one of the host's own addresses, arriving
    //    (prerouting) or sent by the host itself (output), goes through
    //    the published ports.
    let local = || {
        eq(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: [FibFlag::Daddr].into_iter().collect(),
            })),
            s("local"),
        )
    };
    let jump = || {
        Statement::Jump(JumpTarget {
            target: Cow::Borrowed("published"),
        })
    };
    rules.push(rule("prerouting", vec![local(), jump()], None));
    rules.push(rule("output", vec![local(), jump()], None));
    // 2. Per network that may reach out: its published ports, then its
    //    masquerade.
    for a in active.iter().filter(|a| !a.network.internal) {
        rules.extend(published_rules(a));
        rules.extend(masquerade_rules(a));
    }
    rules
}
// ANCHOR_END: nat_rules

/// One DNAT rule per published port of the network's containers.
// ANCHOR: published_rules
fn published_rules(a: &ActiveNetwork) -> Vec<NfListObject<'static>> {
    let mut rules = Vec::new();
    for ep in &a.endpoints {
        for port in &ep.ports {
            let mut expr = Vec::new();
            if !port.host_ip.is_unspecified() {
                expr.push(eq(payload("ip", "daddr"), s(port.host_ip.to_string())));
            }
            expr.push(eq(
                port_field(port.protocol),
                Expression::Number(u32::from(port.host_port)),
            ));
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(s(ep.ip.to_string())),
                family: Some(NATFamily::IP),
                port: Some(Expression::Number(u32::from(port.container_port))),
                flags: None,
            })));
            let comment = format!(
                "{} {}",
                &ep.container_id[..12.min(ep.container_id.len())],
                port
            );
            rules.push(rule("published", expr, Some(comment)));
        }
    }
    rules
}
// ANCHOR_END: published_rules

/// The network's source NAT: outbound, and published ports reached from
/// the host's loopback or from the same bridge.
// ANCHOR: masquerade_rules
fn masquerade_rules(a: &ActiveNetwork) -> Vec<NfListObject<'static>> {
    let (Some(subnet), br) = (a.network.subnet, &a.network.bridge) else {
        return Vec::new();
    };
    // Outbound: the containers' private addresses leave as the host's.
    let outbound = rule(
        "postrouting",
        vec![
            eq(payload("ip", "saddr"), prefix(subnet)),
            matches(meta(MetaKey::Oifname), Operator::NEQ, s(br.as_str())),
            Statement::Masquerade(None),
        ],
        None,
    );
    // A published port reached from the host's 127.0.0.1, or from a
    // container of the same bridge (hairpin): the reply must come back
    // through the host to be un-NATed, so the source becomes the
    // gateway's address.
    let loopback: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("127/8");
    let hairpin = rule(
        "postrouting",
        vec![
            oifname(br),
            matches(ct("status"), Operator::IN, s("dnat")),
            eq(
                payload("ip", "saddr"),
                set(vec![prefix(loopback), prefix(subnet)]),
            ),
            Statement::Masquerade(None),
        ],
        None,
    );
    vec![outbound, hairpin]
}
// ANCHOR_END: masquerade_rules

/// The whole table for `active` networks (those with containers), as one
/// nft transaction: create the table if missing, delete it (and every
/// rule in it), write it anew. With no active network: only delete it.
pub fn ruleset(active: &[ActiveNetwork]) -> Nftables<'static> {
    let mut batch = Batch::new();
    // `add table` first so that `delete table` never fails on a host
    // where the table does not exist yet.
    batch.add(table());
    batch.delete(table());
    if active.is_empty() {
        return batch.to_nftables();
    }
    let bridges = set(active
        .iter()
        .map(|a| s(a.network.bridge.as_str()))
        .collect());
    batch.add(table());
    batch.add(chain(
        "forward",
        Some((NfChainType::Filter, NfHook::Forward, PRIO_FILTER)),
    ));
    batch.add(chain(
        "localnet",
        Some((NfChainType::Filter, NfHook::Prerouting, PRIO_RAW)),
    ));
    batch.add(chain(
        "prerouting",
        Some((NfChainType::NAT, NfHook::Prerouting, PRIO_DSTNAT)),
    ));
    batch.add(chain(
        "output",
        Some((NfChainType::NAT, NfHook::Output, PRIO_DSTNAT)),
    ));
    batch.add(chain(
        "postrouting",
        Some((NfChainType::NAT, NfHook::Postrouting, PRIO_SRCNAT)),
    ));
    batch.add(chain("published", None));
    for r in forward_rules(active, &bridges) {
        batch.add(r);
    }
    // ANCHOR: localnet_rule
    // route_localnet is on for our bridges: drop what arrives on them for
    // 127/8, so containers cannot reach the host's localhost services.
    let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("127/8");
    batch.add(rule(
        "localnet",
        vec![
            eq(meta(MetaKey::Iifname), bridges.clone()),
            eq(payload("ip", "daddr"), prefix(loopback)),
            drop_(),
        ],
        Some("containers may not reach the host's 127.0.0.0/8".into()),
    ));
    // ANCHOR_END: localnet_rule
    for r in nat_rules(active) {
        batch.add(r);
    }
    batch.to_nftables()
}

/// Write `active`'s rules (or delete the table if there are none).
pub fn apply(active: &[ActiveNetwork]) -> Result<()> {
    let rules = ruleset(active);
    nftables::helper::apply_ruleset(&rules).map_err(nft_error)
}

fn nft_error(e: nftables::helper::NftablesError) -> NetworkError {
    match e {
        nftables::helper::NftablesError::NftFailed { stderr, hint, .. } => {
            NetworkError::Nft(format!("{hint}: {}", stderr.trim()))
        }
        other => NetworkError::Nft(other.to_string()),
    }
}

/// Our table as the kernel has it now (`nft -j list table inet berth`),
/// `None` if it does not exist: what the tests look at.
pub fn current_table() -> Result<Option<Nftables<'static>>> {
    let output = std::process::Command::new("nft")
        .args(["-j", "list", "table", "inet", TABLE])
        .output()
        .map_err(crate::error::io_err("nft"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(NetworkError::Nft(format!(
            "list table inet {TABLE}: {}",
            stderr.trim()
        )));
    }
    let table: Nftables = serde_json::from_slice(&output.stdout)
        .map_err(|e| NetworkError::Nft(format!("list table inet {TABLE}: unreadable JSON: {e}")))?;
    Ok(Some(table))
}

/// The rules of our table, each as its chain and statements (for tests
/// and `berth network inspect --verbose`-like views).
pub fn rules_of<'t>(table: &'t Nftables<'static>) -> Vec<&'t Rule<'static>> {
    table
        .objects
        .iter()
        .filter_map(|o| match o {
            NfObject::ListObject(NfListObject::Rule(r)) => Some(r),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortMapping;
    use std::path::PathBuf;

    fn network(name: &str, bridge: &str, subnet: &str, internal: bool) -> NetworkConfig {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        NetworkConfig {
            name: name.into(),
            id: format!("{name:0>64}"),
            driver: "bridge".into(),
            bridge: bridge.into(),
            subnet: Some(subnet),
            gateway: subnet.hosts().next(),
            internal,
            dns: false,
            labels: Default::default(),
            options: Default::default(),
            created: String::new(),
        }
    }

    fn endpoint(id: &str, ip: [u8; 4], ports: Vec<PortMapping>) -> Endpoint {
        Endpoint {
            container_id: id.repeat(64 / id.len()),
            container_name: id.into(),
            endpoint_id: String::new(),
            aliases: vec![],
            ip: Ipv4Addr::from(ip),
            mac: String::new(),
            host_veth: String::new(),
            ifname: "eth0".into(),
            netns: PathBuf::new(),
            ports,
            dns_servers: vec![],
        }
    }

    #[test]
    fn no_active_network_only_deletes_the_table() {
        let json = serde_json::to_value(ruleset(&[])).unwrap();
        let cmds = json["nftables"].as_array().unwrap();
        assert_eq!(cmds.len(), 2);
        assert!(cmds[0]["add"]["table"].is_object());
        assert_eq!(cmds[1]["delete"]["table"]["name"], "berth");
    }

    #[test]
    fn published_ports_become_dnat_rules_with_their_host_address() {
        let net = network("bridge", "berth0", "10.77.0.0/16", false);
        let ep = endpoint(
            "a",
            [10, 77, 0, 2],
            vec![
                PortMapping {
                    host_ip: Ipv4Addr::UNSPECIFIED,
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                },
                PortMapping {
                    host_ip: Ipv4Addr::LOCALHOST,
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::Udp,
                },
            ],
        );
        let active = [ActiveNetwork {
            network: &net,
            endpoints: vec![&ep],
        }];
        let json = serde_json::to_string(&ruleset(&active)).unwrap();
        assert!(json.contains(r#"{"match":{"left":{"payload":{"protocol":"tcp","field":"dport"}},"right":8080,"op":"=="}},{"dnat":{"addr":"10.77.0.2","family":"ip","port":80}}"#), "{json}");
        assert!(json.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"127.0.0.1","op":"=="}},{"match":{"left":{"payload":{"protocol":"udp","field":"dport"}},"right":5353"#), "{json}");
        assert!(json.contains(r#""masquerade":null"#), "{json}");
    }

    #[test]
    fn internal_networks_get_no_nat_and_drops_both_ways() {
        let net = network("secret", "berth3", "10.78.3.0/24", true);
        let ep = endpoint(
            "b",
            [10, 78, 3, 2],
            vec![PortMapping {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 9090,
                container_port: 90,
                protocol: Protocol::Tcp,
            }],
        );
        let active = [ActiveNetwork {
            network: &net,
            endpoints: vec![&ep],
        }];
        let json = serde_json::to_string(&ruleset(&active)).unwrap();
        assert!(!json.contains("masquerade"), "{json}");
        assert!(!json.contains("dnat\":{"), "{json}");
        assert!(json.contains(r#"{"match":{"left":{"meta":{"key":"iifname"}},"right":"berth3","op":"=="}},{"drop":null}"#), "{json}");
    }
}
