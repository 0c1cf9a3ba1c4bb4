//! The bridge and the veth pairs: how a container's namespace is wired to
//! the host.
//!
//! Kernel features: a **bridge** is a virtual Ethernet switch inside the
//! kernel; giving it an address makes the host a member of the switched
//! network, and that address is the containers' default gateway. A
//! **veth pair** is a virtual cable: what goes in one end comes out of the
//! other. One end is plugged into the bridge on the host; the other is
//! created straight into the container's namespace as `eth0`, with the
//! container's address, MAC and a default route via the gateway. Packets
//! between the container and the rest of the world are then routed by the
//! host, which must forward them (`net.ipv4.ip_forward = 1`, which docker
//! also turns on for the whole host namespace when it starts, and never
//! turns off).
//!
//! Deleting the host end of a veth deletes both ends; so does the death of
//! the container's namespace. The bridge exists while its network has
//! containers (podman does the same): the first attach makes it, the last
//! detach removes it.
//!
//! Names: the default network's bridge is `berth0`, the next ones
//! `berth1`, `berth2`... (podman's `podman0`, `podman1`...; docker's
//! `docker0`, `br-<id>`). A host end is `bveth` and 10 hex digits of the
//! sha256 of the container's and network's IDs: 15 characters, the
//! kernel's limit (IFNAMSIZ is 16 with the NUL), and a prefix no other
//! engine uses, so the reconcile never takes another engine's veth for a
//! leftover of ours.
//!
//! Man pages: bridge(8), veth(4), ip-link(8), proc_sys_net_ipv4(5)
//! (ip_forward, route_localnet).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{NetworkError, Result, io_err};
use crate::ipam::mac_for;
use crate::netlink::Netlink;
use crate::store::{Endpoint, NetworkConfig};

/// Prefix of every host-side veth Berth makes.
pub const VETH_PREFIX: &str = "bveth";
/// Prefix of every bridge Berth makes.
pub const BRIDGE_PREFIX: &str = "berth";

/// The host end's name for `container_id` on `network_id`.
pub fn host_veth_name(container_id: &str, network_id: &str) -> String {
    let digest = Sha256::digest(format!("{container_id}/{network_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{VETH_PREFIX}{}", &hex[..10])
}

/// True for a name of the form berth<digits>: one of our bridges.
pub fn is_our_bridge(name: &str) -> bool {
    name.strip_prefix(BRIDGE_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Write a sysctl under `proc_root/sys/` (only if it differs).
fn write_sysctl(proc_root: &Path, key: &str, value: &str) -> Result<()> {
    let path = proc_root.join("sys").join(key);
    let current = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    if current.trim() != value {
        std::fs::write(&path, value).map_err(io_err(&path))?;
    }
    Ok(())
}

/// `sysctl net.ipv4.ip_forward=1`: the host routes between its
/// interfaces, and so between the bridge and the uplink.
pub fn enable_ip_forward(proc_root: &Path) -> Result<()> {
    write_sysctl(proc_root, "net/ipv4/ip_forward", "1")
}

/// `sysctl net.ipv4.conf.BRIDGE.route_localnet=1`: packets from 127/8 may
/// leave through the bridge, which the DNAT of a port published on
/// 127.0.0.1 needs (see `firewall`).
pub fn enable_route_localnet(proc_root: &Path, bridge: &str) -> Result<()> {
    write_sysctl(
        proc_root,
        &format!("net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}

// ANCHOR: bridge_up
/// Make the network's bridge if it is missing: `ip link add NAME type
/// bridge`, a fixed MAC, the gateway address, up; then the sysctls.
/// Returns the bridge's index.
pub fn bridge_up(nl: &Netlink, network: &NetworkConfig, proc_root: &Path) -> Result<u32> {
    let (Some(subnet), Some(gateway)) = (network.subnet, network.gateway) else {
        return Err(NetworkError::Invalid(format!(
            "network {} has no subnet",
            network.name
        )));
    };
    let index = match nl.link(&network.bridge)? {
        Some(link) if link.kind.as_deref() == Some("bridge") => link.index,
        Some(_) => {
            return Err(NetworkError::Invalid(format!(
                "interface {} exists and is not a bridge: remove it or rename it, berth needs the name",
                network.bridge
            )));
        }
        None => {
            let index = nl.add_bridge(&network.bridge)?;
            // A bridge takes the lowest MAC of its ports unless it has one
            // of its own: then the gateway's MAC would change whenever a
            // container comes or goes, and every container's ARP entry for
            // the gateway would go stale. be:27 + the gateway's address.
            nl.set_mac(&network.bridge, mac_for(gateway))?;
            index
        }
    };
    if !nl
        .ipv4_addresses(&network.bridge)?
        .iter()
        .any(|a| a.addr() == gateway && a.prefix_len() == subnet.prefix_len())
    {
        nl.add_address(&network.bridge, gateway, subnet.prefix_len())?;
    }
    nl.set_up(&network.bridge)?;
    enable_route_localnet(proc_root, &network.bridge)?;
    enable_ip_forward(proc_root)?;
    Ok(index)
}
// ANCHOR_END: bridge_up

/// Remove the network's bridge (its route goes with it).
pub fn bridge_down(nl: &Netlink, network: &NetworkConfig) -> Result<()> {
    nl.delete_link(&network.bridge).map(drop)
}

// ANCHOR: plug
/// Wire a container in: the veth pair (its peer made inside the
/// container's namespace as `endpoint.ifname`), the host end into the
/// bridge, then inside the container: `lo` up, the address, the link up,
/// the default route via the gateway (not on `--internal` networks, and
/// not if the container already has one from its first network).
pub fn plug(nl: &Netlink, network: &NetworkConfig, bridge: u32, endpoint: &Endpoint) -> Result<()> {
    let mac = crate::ipam::parse_mac(&endpoint.mac)?;
    let host_end = nl.add_veth_into(&endpoint.host_veth, &endpoint.ifname, &endpoint.netns, mac)?;
    let configured = (|| {
        nl.plug_into_bridge(host_end, bridge)?;
        let inside = Netlink::open_in(&endpoint.netns)?;
        inside.set_up("lo")?;
        inside.add_address(&endpoint.ifname, endpoint.ip, network.prefix_len())?;
        inside.set_up(&endpoint.ifname)?;
        let has_default = inside
            .ipv4_routes()?
            .iter()
            .any(|r| r.destination.prefix_len() == 0 && r.table == 254);
        if let (false, false, Some(gateway)) = (network.internal, has_default, network.gateway) {
            inside.add_default_route(gateway, &endpoint.ifname)?;
        }
        Ok(())
    })();
    if configured.is_err() {
        let _ = nl.delete_link(&endpoint.host_veth);
    }
    configured
}
// ANCHOR_END: plug

/// Unplug a container: delete the host end (the peer goes with it). A
/// veth already gone (its namespace died) is fine.
pub fn unplug(nl: &Netlink, endpoint: &Endpoint) -> Result<()> {
    nl.delete_link(&endpoint.host_veth).map(drop)
}

/// The first `ethN` name free in the namespace at `netns` (eth0 for the
/// first network, eth1 for the next `network connect`...).
pub fn next_ifname(netns: &Path) -> Result<String> {
    let inside = Netlink::open_in(netns)?;
    let links = inside.links()?;
    Ok((0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !links.iter().any(|l| &l.name == name))
        .expect("an unbounded range has a free name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_ifnamsiz_and_differ() {
        let a = host_veth_name(&"a".repeat(64), "n1");
        let b = host_veth_name(&"a".repeat(64), "n2");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with(VETH_PREFIX));
        assert_ne!(a, b);
        assert_eq!(a, host_veth_name(&"a".repeat(64), "n1"), "stable");
    }

    #[test]
    fn our_bridges_are_recognised() {
        assert!(is_our_bridge("berth0"));
        assert!(is_our_bridge("berth12"));
        assert!(!is_our_bridge("berth"));
        assert!(!is_our_bridge("berthx"));
        assert!(!is_our_bridge("docker0"));
    }

    #[test]
    fn sysctls_are_written_only_when_they_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sys/net/ipv4/conf/berth0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(tmp.path().join("sys/net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(dir.join("route_localnet"), "0\n").unwrap();
        enable_ip_forward(tmp.path()).unwrap();
        enable_route_localnet(tmp.path(), "berth0").unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("sys/net/ipv4/ip_forward")).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("route_localnet")).unwrap(),
            "1"
        );
        // A missing sysctl (a kernel without the interface) is named.
        let err = enable_route_localnet(tmp.path(), "berth9")
            .unwrap_err()
            .to_string();
        assert!(err.contains("berth9/route_localnet"), "{err}");
    }
}
