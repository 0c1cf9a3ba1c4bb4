//! # Chapter 7, networking: bridges, veths, NAT, published ports, names
//!
//! Chapter 2 gave each container a network namespace with nothing in it
//! but `lo`. This crate gives it a real network, the way docker's default
//! bridge and user-defined networks (and podman's netavark) do: a bridge
//! on the host, a veth pair per container with an address from a locked,
//! persisted IPAM, a default route, outbound NAT and published ports in
//! nftables, isolation between networks, an embedded DNS server so
//! containers find each other by name, the /etc files that go with it,
//! and pasta for rootless containers.
//!
//! The networking lives in the engine, not in the runtime: the engine
//! makes a network namespace per container, plumbs it with this crate,
//! and hands the runtime the namespace's path to join (as CNI and
//! netavark do).
//!
//! Read the modules in this order:
//!
//! 1. [`netns`] — a container's network namespace as a bind-mounted file.
//! 2. [`netlink`] — talking to the kernel over rtnetlink, inside a namespace too.
//! 3. [`store`] — the state directory and the lock every change holds.
//! 4. [`ipam`] — subnets, addresses and MACs.
//! 5. [`bridge`] — the bridge, the veth pairs, ip_forward.
//! 6. [`ports`] — `-p` and `-P`, and the host ports they get.
//! 7. [`firewall`] — the nftables table: forwarding, NAT, published ports, isolation.
//! 8. [`dns`] — the embedded DNS server of a user-defined network.
//! 9. [`etc`] — /etc/hostname, /etc/hosts, /etc/resolv.conf.
//! 10. [`networks`] — what the engine calls: create, attach, detach, reconcile.
//! 11. [`mode`] — `--network bridge|none|host|container:ID|NAME`.
//! 12. [`inspect`] — docker's NetworkSettings and network inspect documents.
//! 13. [`rootless`] — pasta, for a normal user's containers.
//!
//! [`error`] holds the one error type.

pub mod bridge;
pub mod dns;
pub mod error;
pub mod etc;
pub mod firewall;
pub mod inspect;
pub mod ipam;
pub mod mode;
pub mod netlink;
pub mod netns;
pub mod networks;
pub mod ports;
pub mod rootless;
pub mod store;

pub use error::{NetworkError, Result};
pub use networks::{AttachRequest, CreateOptions, HostConfig, Networks};
