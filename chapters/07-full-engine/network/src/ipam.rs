//! IP address management: which subnet a network gets, which address a
//! container gets, and the MAC address that goes with it.
//!
//! The subnets. Docker's default bridge `docker0` is 172.17.0.0/16 and its
//! user-defined networks come from 172.18-31.0.0/16 and 192.168.0.0/16;
//! podman's default is 10.88.0.0/16 and its own networks come from
//! 10.89.0.0/24 upwards. Berth takes addresses neither uses, so the three
//! engines can share a host: the default network `bridge` is
//! **10.77.0.0/16** (10.76, 10.75, ... 10.70 if the host already routes
//! that one), and user-defined networks get a /24 each from
//! **10.78.0.0/16** (256 networks of 253 containers), unless `--subnet`
//! says otherwise. A subnet is never chosen if a route of the host
//! overlaps it (the host's LAN or VPN may use 10.x): a container's
//! packets for the host's LAN would otherwise go to the bridge.
//!
//! The addresses. `.1` is the gateway (the bridge's own address); the rest
//! are leased in order, starting after the last one leased and wrapping
//! round, as docker's IPAM does, so a freed address is not handed out
//! again at once (a peer's ARP cache or connection table may still name
//! the old container). The leases are the network's endpoints file, read
//! and written under the state lock (see `store`): two attaches can never
//! take one address.
//!
//! The MAC. Docker derives a container's MAC from its IPv4 address behind
//! the prefix 02:42, so an address always comes with the same MAC and
//! neighbours' ARP caches stay right when it is reused. Berth does the same
//! behind its own prefix **be:27**: 0xbe has the "locally administered"
//! bit (0x02) set and the "multicast" bit (0x01) clear, so no vendor's
//! card can have it, and it is not docker's 02:42, so the two engines'
//! containers are told apart in a packet capture.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{NetworkError, Result};
use crate::store::Endpoints;

/// The default network's subnet, and the fallbacks if the host routes it.
pub fn default_bridge_subnets() -> impl Iterator<Item = Ipv4Net> {
    (70..=77u8)
        .rev()
        .map(|b| Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16).expect("a /16 is valid"))
}

/// The pool user-defined networks get a /24 from.
pub fn user_subnet_pool() -> impl Iterator<Item = Ipv4Net> {
    let pool = Ipv4Net::new(Ipv4Addr::new(10, 78, 0, 0), 16).expect("a /16 is valid");
    pool.subnets(24).expect("/24 inside a /16")
}

/// True if the two subnets share an address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

// ANCHOR: choose_subnet
/// The first candidate that overlaps neither another network's subnet nor
/// a route of the host (default routes excepted: every subnet is inside
/// 0.0.0.0/0).
pub fn choose_subnet(
    candidates: impl IntoIterator<Item = Ipv4Net>,
    taken: &[Ipv4Net],
    host_routes: &[Ipv4Net],
) -> Option<Ipv4Net> {
    candidates.into_iter().find(|candidate| {
        !taken.iter().any(|t| overlaps(*t, *candidate))
            && !host_routes
                .iter()
                .filter(|r| r.prefix_len() > 0)
                .any(|r| overlaps(*r, *candidate))
    })
}
// ANCHOR_END: choose_subnet

/// The gateway of `subnet`: its first host address (`.1`).
pub fn gateway_of(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

/// Check a `--subnet`/`--gateway` pair as docker does, and fill in the
/// gateway if not given.
pub fn check_subnet(subnet: Ipv4Net, gateway: Option<Ipv4Addr>) -> Result<(Ipv4Net, Ipv4Addr)> {
    if subnet.prefix_len() > 30 {
        return Err(NetworkError::Invalid(format!(
            "invalid subnet {subnet}: a bridge network needs at least a /30 (2 usable addresses)"
        )));
    }
    if subnet.network() != subnet.addr() {
        return Err(NetworkError::Invalid(format!(
            "invalid subnet {subnet}: it has host bits set; did you mean {}?",
            subnet.trunc()
        )));
    }
    let gateway = match gateway {
        Some(g) => g,
        None => gateway_of(subnet).ok_or_else(|| {
            NetworkError::Invalid(format!("invalid subnet {subnet}: no host addresses"))
        })?,
    };
    if !usable(subnet, gateway) {
        return Err(NetworkError::Invalid(format!(
            "invalid gateway {gateway}: not a host address of subnet {subnet}"
        )));
    }
    Ok((subnet, gateway))
}

/// True if `ip` is a host address of `subnet` (neither the network's own
/// address nor its broadcast).
fn usable(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

// ANCHOR: allocate
/// Lease an address of `subnet` for a new endpoint: `requested` (`--ip`)
/// if given and free, else the next free one after the last leased.
/// Records it as the last leased; the caller adds the endpoint and saves.
pub fn allocate(
    network: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    leases: &mut Endpoints,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let taken = |ip: Ipv4Addr| ip == gateway || leases.endpoints.values().any(|e| e.ip == ip);
    if let Some(ip) = requested {
        if !usable(subnet, ip) {
            return Err(NetworkError::Invalid(format!(
                "no configured subnet contains the IP address {ip} (network {network} is {subnet})"
            )));
        }
        if taken(ip) {
            return Err(NetworkError::Invalid(format!(
                "Address already in use: {ip}"
            )));
        }
        return Ok(ip);
    }
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    let size = last - first + 1;
    let start = match leases.last {
        Some(ip) if usable(subnet, ip) => u32::from(ip) - first + 1,
        _ => 0,
    };
    for step in 0..size {
        let ip = Ipv4Addr::from(first + (start + step) % size);
        if !taken(ip) {
            leases.last = Some(ip);
            return Ok(ip);
        }
    }
    Err(NetworkError::Exhausted(network.to_string()))
}
// ANCHOR_END: allocate

/// The MAC address that goes with `ip`: be:27 and the address's 4 bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0xbe, 0x27, a, b, c, d]
}

/// A MAC address as `be:27:0a:4d:00:02`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `--mac-address` (`aa:bb:cc:dd:ee:ff`); multicast addresses are
/// refused, as the kernel would.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bad = || {
        NetworkError::Invalid(format!(
            "invalid MAC address {text:?}: expected six hex bytes like be:27:0a:4d:00:02"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(NetworkError::Invalid(format!(
            "invalid MAC address {text}: it is a multicast address (lowest bit of the first byte set)"
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Endpoint;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn lease(eps: &mut Endpoints, id: &str, ip: Ipv4Addr) {
        eps.endpoints.insert(
            id.into(),
            Endpoint {
                container_id: id.into(),
                container_name: String::new(),
                endpoint_id: String::new(),
                aliases: vec![],
                ip,
                mac: String::new(),
                host_veth: String::new(),
                ifname: String::new(),
                netns: Default::default(),
                ports: vec![],
                dns_servers: vec![],
            },
        );
    }

    #[test]
    fn the_default_subnet_avoids_the_hosts_routes_and_docker0() {
        let docker0 = net("172.17.0.0/16");
        let default = net("0.0.0.0/0");
        assert_eq!(
            choose_subnet(default_bridge_subnets(), &[], &[docker0, default]),
            Some(net("10.77.0.0/16"))
        );
        // The host's LAN is 10.77.3.0/24: the next candidate is taken.
        assert_eq!(
            choose_subnet(default_bridge_subnets(), &[], &[net("10.77.3.0/24")]),
            Some(net("10.76.0.0/16"))
        );
        // A host route covering all of 10/8 leaves nothing.
        assert_eq!(
            choose_subnet(default_bridge_subnets(), &[], &[net("10.0.0.0/8")]),
            None
        );
    }

    #[test]
    fn user_networks_get_distinct_24s() {
        let first = choose_subnet(user_subnet_pool(), &[], &[]).unwrap();
        assert_eq!(first, net("10.78.0.0/24"));
        let second = choose_subnet(user_subnet_pool(), &[first], &[]).unwrap();
        assert_eq!(second, net("10.78.1.0/24"));
    }

    #[test]
    fn leases_go_round_skipping_the_gateway_and_taken_addresses() {
        let subnet = net("10.9.0.0/29"); // hosts .1-.6, gateway .1
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut eps = Endpoints::default();
        let a = allocate("n", subnet, gw, &mut eps, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        lease(&mut eps, "a", a);
        let b = allocate("n", subnet, gw, &mut eps, None).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        lease(&mut eps, "b", b);
        // Freeing .2 does not make it the next lease: .4 is.
        eps.endpoints.remove("a");
        assert_eq!(
            allocate("n", subnet, gw, &mut eps, None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
        for (id, last) in [("c", 4), ("d", 5), ("e", 6)] {
            lease(&mut eps, id, Ipv4Addr::new(10, 9, 0, last));
        }
        eps.last = Some(Ipv4Addr::new(10, 9, 0, 6));
        // After .6 it wraps to .2 (free again), never .1 or .7.
        assert_eq!(
            allocate("n", subnet, gw, &mut eps, None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        lease(&mut eps, "f", Ipv4Addr::new(10, 9, 0, 2));
        let err = allocate("n", subnet, gw, &mut eps, None).unwrap_err();
        assert_eq!(err.to_string(), "no available IPv4 addresses on network n");
    }

    #[test]
    fn a_requested_address_must_be_free_and_inside() {
        let subnet = net("10.9.0.0/24");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut eps = Endpoints::default();
        lease(&mut eps, "a", Ipv4Addr::new(10, 9, 0, 5));
        let ask = |ip, eps: &mut Endpoints| allocate("n", subnet, gw, eps, Some(ip));
        assert_eq!(
            ask(Ipv4Addr::new(10, 9, 0, 9), &mut eps).unwrap(),
            Ipv4Addr::new(10, 9, 0, 9)
        );
        for bad in [
            [10, 9, 0, 5],
            [10, 9, 0, 1],
            [10, 9, 0, 0],
            [10, 9, 0, 255],
            [10, 9, 1, 2],
        ] {
            assert!(ask(Ipv4Addr::from(bad), &mut eps).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subnets_and_gateways_are_checked() {
        assert_eq!(
            check_subnet(net("10.99.0.0/24"), None).unwrap().1,
            Ipv4Addr::new(10, 99, 0, 1)
        );
        assert!(check_subnet(net("10.99.0.5/24"), None).is_err());
        assert!(check_subnet(net("10.99.0.0/31"), None).is_err());
        assert!(check_subnet(net("10.99.0.0/24"), Some(Ipv4Addr::new(10, 98, 0, 1))).is_err());
        assert!(check_subnet(net("10.99.0.0/24"), Some(Ipv4Addr::new(10, 99, 0, 255))).is_err());
    }

    #[test]
    fn macs_follow_the_address_and_are_local_unicast() {
        let mac = mac_for(Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(format_mac(mac), "be:27:0a:4d:00:02");
        assert_eq!(mac[0] & 0b10, 0b10, "locally administered");
        assert_eq!(mac[0] & 0b01, 0, "unicast");
        assert_eq!(parse_mac("be:27:0a:4d:00:02").unwrap(), mac);
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("be:27:0a:4d:00").is_err());
        assert!(parse_mac("be:27:0a:4d:00:zz").is_err());
    }
}
