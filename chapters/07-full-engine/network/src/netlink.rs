//! Talking to the kernel's network stack over rtnetlink.
//!
//! Kernel feature: a NETLINK_ROUTE socket is how `ip link`, `ip addr` and
//! `ip route` talk to the kernel: each request is a message (RTM_NEWLINK,
//! RTM_NEWADDR, RTM_NEWROUTE, RTM_GETLINK...) and the kernel answers with
//! an acknowledgement or an errno. Berth sends the same messages through
//! the rust-netlink crates (`rtnetlink` builds the requests,
//! `netlink-packet-route` defines the messages), never by running `ip` and
//! reading its output, which is made for people and changes between
//! versions.
//!
//! A netlink socket belongs to the network namespace it was created in,
//! for its whole life. To configure a container's namespace, [`Netlink::open_in`]
//! creates the socket on a thread of its own that first joins that
//! namespace with setns(2) (a thread can switch network namespace alone;
//! the rest of the process stays where it was), then lets the thread end:
//! the socket keeps talking to the container's namespace.
//!
//! `rtnetlink` is asynchronous (tokio). The rest of Berth is not, so each
//! [`Netlink`] owns a small single-threaded tokio runtime and blocks on
//! each request: the async code stays inside this module.
//!
//! Man pages: rtnetlink(7), netlink(7), setns(2), ip-link(8), ip-address(8),
//! ip-route(8), veth(4).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use tokio::runtime::Runtime;

use crate::error::{NetworkError, Result, io_err};

/// A link as a dump lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, ... (`None` for devices without a kind, like lo).
    pub kind: Option<String>,
    /// The bridge it is plugged into, if any.
    pub controller: Option<u32>,
    /// Its MAC address (`be:27:0a:4d:00:02`), if it has one.
    pub mac: Option<String>,
}

/// An IPv4 route as a dump lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub table: u32,
}

/// An rtnetlink socket in one network namespace.
pub struct Netlink {
    runtime: Runtime,
    handle: Handle,
}

/// Turn rtnetlink's error into ours, with the errno's name when there is one.
fn nl_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let what = what.into();
    move |e| NetworkError::Netlink {
        what,
        cause: match errno_of(&e) {
            Some(errno) => errno.to_string(),
            None => e.to_string(),
        },
    }
}

/// The errno a netlink request failed with.
fn errno_of(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| Errno::from_raw(-c.get())),
        _ => None,
    }
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(io_err("tokio runtime for netlink"))
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let runtime = runtime()?;
        let _entered = runtime.enter();
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(io_err("netlink socket"))?;
        runtime.spawn(connection);
        drop(_entered);
        Ok(Netlink { runtime, handle })
    }

    // ANCHOR: open_in
    /// A socket in the network namespace bound at `netns`: made on a
    /// thread that joins the namespace first, then ends.
    pub fn open_in(netns: &Path) -> Result<Netlink> {
        let runtime = runtime()?;
        let ns = File::open(netns).map_err(io_err(netns))?;
        let tokio = runtime.handle().clone();
        let made = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|errno| NetworkError::Sys {
                        what: format!("setns {} (CLONE_NEWNET)", netns.display()),
                        errno,
                    })?;
                    let _entered = tokio.enter();
                    rtnetlink::new_connection().map_err(io_err("netlink socket"))
                })
                .join()
        });
        let (connection, handle, _) = made.map_err(|_| NetworkError::Helper {
            program: "netlink".into(),
            message: "the thread that joins the namespace panicked".into(),
        })??;
        runtime.spawn(connection);
        Ok(Netlink { runtime, handle })
    }
    // ANCHOR_END: open_in

    /// Every link of the namespace.
    pub fn links(&self) -> Result<Vec<Link>> {
        let request = self.handle.link().get().execute();
        let messages: Vec<LinkMessage> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(nl_err("list links"))?;
        Ok(messages.iter().map(link_of).collect())
    }

    /// The link called `name`, if there is one.
    pub fn link(&self, name: &str) -> Result<Option<Link>> {
        let request = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match self.runtime.block_on(request.try_collect::<Vec<_>>()) {
            Ok(messages) => Ok(messages.first().map(link_of)),
            Err(e) if errno_of(&e) == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(format!("get link {name}"))(e)),
        }
    }

    fn index_of(&self, name: &str) -> Result<u32> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetworkError::Netlink {
                what: format!("get link {name}"),
                cause: Errno::ENODEV.to_string(),
            })
    }

    /// `ip link add NAME type bridge`, then up; returns its index.
    pub fn add_bridge(&self, name: &str) -> Result<u32> {
        let message = LinkBridge::new(name).build();
        self.runtime
            .block_on(self.handle.link().add(message).execute())
            .map_err(nl_err(format!("add bridge {name}")))?;
        self.index_of(name)
    }

    // ANCHOR: add_veth
    /// `ip link add HOST type veth peer name PEER netns NETNS address MAC`:
    /// one request makes the pair with its peer already in the container's
    /// namespace under its final name, so no half-made pair is ever seen
    /// under a temporary name.
    pub fn add_veth_into(&self, host: &str, peer: &str, netns: &Path, mac: [u8; 6]) -> Result<u32> {
        let ns = File::open(netns).map_err(io_err(netns))?;
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let message = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.runtime
            .block_on(self.handle.link().add(message).execute())
            .map_err(nl_err(format!(
                "add veth {host} (peer {peer} in {})",
                netns.display()
            )))?;
        drop(ns);
        self.index_of(host)
    }
    // ANCHOR_END: add_veth

    /// `ip link set INDEX master BRIDGE up`.
    pub fn plug_into_bridge(&self, index: u32, bridge: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.runtime
            .block_on(self.handle.link().set(message).execute())
            .map_err(nl_err(format!("set link {index} master {bridge} up")))
    }

    /// `ip link set NAME up`.
    pub fn set_up(&self, name: &str) -> Result<()> {
        let index = self.index_of(name)?;
        let message = LinkUnspec::new_with_index(index).up().build();
        self.runtime
            .block_on(self.handle.link().set(message).execute())
            .map_err(nl_err(format!("set link {name} up")))
    }

    /// `ip link set NAME address MAC`.
    pub fn set_mac(&self, name: &str, mac: [u8; 6]) -> Result<()> {
        let index = self.index_of(name)?;
        let message = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.runtime
            .block_on(self.handle.link().set(message).execute())
            .map_err(nl_err(format!("set link {name} address")))
    }

    /// `ip link del NAME`; false if there was no such link. Deleting one
    /// end of a veth pair deletes both.
    pub fn delete_link(&self, name: &str) -> Result<bool> {
        let Some(link) = self.link(name)? else {
            return Ok(false);
        };
        match self
            .runtime
            .block_on(self.handle.link().del(link.index).execute())
        {
            Ok(()) => Ok(true),
            // Gone meanwhile (its namespace died, taking the pair along).
            Err(e) if errno_of(&e) == Some(Errno::ENODEV) => Ok(false),
            Err(e) => Err(nl_err(format!("del link {name}"))(e)),
        }
    }

    /// The IPv4 addresses of link `name`, with their prefix lengths.
    pub fn ipv4_addresses(&self, name: &str) -> Result<Vec<Ipv4Net>> {
        let index = self.index_of(name)?;
        let request = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let messages: Vec<_> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(nl_err(format!("list addresses of {name}")))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.index == index)
            .flat_map(|m| {
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => {
                        Ipv4Net::new(*ip, m.header.prefix_len).ok()
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// `ip addr add ADDRESS/PREFIX dev NAME`.
    pub fn add_address(&self, name: &str, address: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let index = self.index_of(name)?;
        let request = self
            .handle
            .address()
            .add(index, IpAddr::V4(address), prefix_len);
        self.runtime
            .block_on(request.execute())
            .map_err(nl_err(format!(
                "add address {address}/{prefix_len} to {name}"
            )))
    }

    /// `ip route add default via GATEWAY dev NAME`.
    pub fn add_default_route(&self, gateway: Ipv4Addr, name: &str) -> Result<()> {
        let index = self.index_of(name)?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.runtime
            .block_on(self.handle.route().add(route).execute())
            .map_err(nl_err(format!(
                "add default route via {gateway} dev {name}"
            )))
    }

    /// Every IPv4 route of every table but `local` (the host's own
    /// addresses, which the connected routes of `main` cover).
    pub fn ipv4_routes(&self) -> Result<Vec<Route>> {
        let request = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let messages: Vec<_> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(nl_err("list routes"))?;
        let mut routes = Vec::new();
        for m in &messages {
            if m.header.address_family != AddressFamily::Inet {
                continue;
            }
            let mut route = Route {
                destination: Ipv4Net::default(),
                gateway: None,
                oif: None,
                table: u32::from(m.header.table),
            };
            let mut destination = Ipv4Addr::UNSPECIFIED;
            for attribute in &m.attributes {
                match attribute {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(*ip),
                    RouteAttribute::Oif(index) => route.oif = Some(*index),
                    RouteAttribute::Table(table) => route.table = *table,
                    _ => {}
                }
            }
            if route.table == 255 {
                continue;
            }
            route.destination = Ipv4Net::new(destination, m.header.destination_prefix_length)
                .map_err(|_| NetworkError::Netlink {
                    what: "list routes".into(),
                    cause: format!(
                        "a route with prefix length {}",
                        m.header.destination_prefix_length
                    ),
                })?;
            routes.push(route);
        }
        Ok(routes)
    }
}

fn link_of(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: None,
        controller: None,
        mac: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Controller(index) => link.controller = Some(*index),
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                link.mac = Some(hex.join(":"));
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(match kind {
                            InfoKind::Bridge => "bridge".to_string(),
                            InfoKind::Veth => "veth".to_string(),
                            other => other.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    link
}
