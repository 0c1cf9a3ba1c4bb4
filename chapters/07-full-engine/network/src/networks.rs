//! The networks of one host, and what the engine calls: create, list,
//! inspect, remove and prune networks; attach a container to one and
//! detach it; reconcile after a crash.
//!
//! Every operation takes the state lock (see `store`) and follows one
//! rule for crash safety: **the record comes first**. An attach writes the
//! endpoint (with its address, host port reservations and the name of its
//! veth) before it makes the veth, the bridge or a rule, and takes the
//! record back if a later step fails; a detach removes the veth before the
//! record. A crash between two steps therefore never leaves a kernel
//! resource that no record names: [`Networks::reconcile`] removes
//! whatever belongs to containers that are gone, plus anything of ours
//! that nothing names (a veth with our prefix, a bridge `berthN` of a
//! network without containers, a DNS server of an empty network, a
//! namespace file of a dead container), and rewrites the rules.
//!
//! Who owns what:
//! - a veth: its endpoint record (deleted by detach, or with its namespace);
//! - an address lease and host port reservations: the endpoint record;
//! - the bridge: the network while it has endpoints (first attach makes
//!   it, last detach removes it);
//! - the rules: the state (rewritten on every change, table deleted when
//!   no network has a container);
//! - the DNS server: the network while it has endpoints (pid file);
//! - the namespace file: the engine (`netns`), per container.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::bridge::{self, VETH_PREFIX, host_veth_name, is_our_bridge};
use crate::dns::{self, Launcher};
use crate::error::{NetworkError, Result};
use crate::etc::HostResolv;
use crate::firewall::{self, ActiveNetwork};
use crate::inspect::{self, NetworkResource, NetworkSettings};
use crate::ipam;
use crate::netlink::Netlink;
use crate::netns;
use crate::ports::{self, PortMapping, PortSpec, Protocol};
use crate::store::{Endpoint, Endpoints, NetworkConfig, Store, random_id};

/// Where things are on this host: the engine fills it in (`/var/lib/berth/network`,
/// `/run/berth/netns`, `/proc`, `/etc/resolv.conf`, its own binary).
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The network state: definitions, leases, endpoints, DNS pid files.
    pub state_dir: PathBuf,
    /// Where the containers' namespace files are bind-mounted.
    pub netns_dir: PathBuf,
    /// `/proc` (sysctls, the ephemeral port range, process start times).
    pub proc_root: PathBuf,
    /// The host's resolver files.
    pub resolv: HostResolv,
    /// How to start a network's DNS server.
    pub dns_launcher: Launcher,
}

/// `network create`'s options.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// What an attach needs from the engine.
#[derive(Clone, Debug, Default)]
pub struct AttachRequest {
    /// The container's 64-hex ID.
    pub container_id: String,
    /// Its name (the DNS name on user-defined networks).
    pub container_name: String,
    /// Its network namespace ([`crate::netns::create_netns`]).
    pub netns: PathBuf,
    /// The network's name or ID.
    pub network: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `-p`/`-P`, parsed ([`crate::ports::parse_publish`]).
    pub publish: Vec<PortSpec>,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`.
    pub mac: Option<[u8; 6]>,
    /// `--dns`: upstreams of the network's DNS server for this container.
    pub dns_servers: Vec<IpAddr>,
}

/// What a reconcile removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    pub endpoints: Vec<String>,
    pub links: Vec<String>,
    pub dns_servers: Vec<String>,
    pub netns: Vec<String>,
}

/// The pre-defined networks, as docker has them.
const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// Where subnets come from, when the engine's settings say (`bip`,
/// `default-address-pools`); by default, [`ipam`]'s.
#[derive(Clone, Debug, Default)]
pub struct AddressPlan {
    /// The default bridge's own address and prefix (`172.26.0.1/16`).
    pub default_bridge: Option<Ipv4Net>,
    /// Networks of prefix `.1` cut from `.0`, in order, for networks
    /// created without `--subnet`.
    pub pools: Vec<(Ipv4Net, u8)>,
}

/// The networks of this host.
pub struct Networks {
    host: HostConfig,
    store: Store,
    plan: AddressPlan,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

fn check_network_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(NetworkError::Invalid(format!(
            "invalid network name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

impl Networks {
    /// Open the state, creating the pre-defined networks `bridge`, `host`
    /// and `none` the first time.
    pub fn open(host: HostConfig) -> Result<Networks> {
        Networks::open_planned(host, AddressPlan::default())
    }

    /// [`Networks::open`], subnets chosen by `plan`. The default bridge's
    /// subnet is chosen when it is first made.
    pub fn open_planned(host: HostConfig, plan: AddressPlan) -> Result<Networks> {
        let store = Store::open(&host.state_dir)?;
        let networks = Networks { host, store, plan };
        let _lock = networks.store.lock()?;
        let existing = networks.store.networks()?;
        for name in PREDEFINED {
            if existing.iter().any(|n| n.name == name) {
                continue;
            }
            let mut network = NetworkConfig {
                name: name.into(),
                id: random_id()?,
                driver: if name == "none" {
                    "null".into()
                } else {
                    name.into()
                },
                bridge: String::new(),
                subnet: None,
                gateway: None,
                internal: false,
                dns: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                created: now_rfc3339(),
            };
            if name == "bridge" {
                let taken: Vec<Ipv4Net> = existing.iter().filter_map(|n| n.subnet).collect();
                let routes = networks.foreign_routes(&[])?;
                let (subnet, gateway) = networks.default_bridge_subnet(&taken, &routes)?;
                network.bridge = "berth0".into();
                network.subnet = Some(subnet);
                network.gateway = gateway;
                network.options.insert(
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                );
            }
            networks.store.save_network(&network)?;
        }
        Ok(networks)
    }

    /// The default bridge's subnet and gateway: the plan's (`bip`), which
    /// must be free, or the first free one of [`ipam`]'s.
    fn default_bridge_subnet(
        &self,
        taken: &[Ipv4Net],
        routes: &[Ipv4Net],
    ) -> Result<(Ipv4Net, Option<Ipv4Addr>)> {
        if let Some(bip) = self.plan.default_bridge {
            let subnet = bip.trunc();
            if ipam::choose_subnet([subnet], taken, routes).is_none() {
                return Err(NetworkError::Invalid(format!(
                    "bip {bip}: {subnet} overlaps another network or a route of the host: choose another"
                )));
            }
            return Ok((subnet, Some(bip.addr())));
        }
        let subnet = ipam::choose_subnet(ipam::default_bridge_subnets(), taken, routes)
            .ok_or_else(|| {
                NetworkError::Invalid(
                    "no free subnet for the default bridge: the host routes all of 10.70.0.0/16-10.77.0.0/16".into(),
                )
            })?;
        Ok((subnet, ipam::gateway_of(subnet)))
    }

    /// The state store (for the DNS server and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The host configuration.
    pub fn host(&self) -> &HostConfig {
        &self.host
    }

    /// The host's IPv4 routes that are not ours (not through a bridge of
    /// `ours`), as subnets.
    fn foreign_routes(&self, ours: &[&str]) -> Result<Vec<Ipv4Net>> {
        let nl = Netlink::open()?;
        let our_indexes: Vec<u32> = nl
            .links()?
            .into_iter()
            .filter(|l| ours.contains(&l.name.as_str()))
            .map(|l| l.index)
            .collect();
        Ok(nl
            .ipv4_routes()?
            .into_iter()
            .filter(|r| !r.oif.is_some_and(|oif| our_indexes.contains(&oif)))
            .map(|r| r.destination)
            .collect())
    }

    /// Every network, sorted by name.
    pub fn list(&self) -> Result<Vec<NetworkConfig>> {
        self.store.networks()
    }

    /// A network by name, full ID or unique ID prefix (docker's lookup).
    pub fn find(&self, name_or_id: &str) -> Result<NetworkConfig> {
        find_in(&self.store.networks()?, name_or_id)
    }

    // ANCHOR: create
    /// `network create`: a bridge network with a subnet of its own.
    pub fn create(&self, options: &CreateOptions) -> Result<NetworkConfig> {
        check_network_name(&options.name)?;
        let _lock = self.store.lock()?;
        let existing = self.store.networks()?;
        if existing.iter().any(|n| n.name == options.name) {
            return Err(NetworkError::Exists(options.name.clone()));
        }
        // 1. The subnet: --subnet if it is free, or the pool's first free /24.
        let (subnet, gateway) = self.choose_network_subnet(options, &existing)?;
        // 2. The bridge's name: the first berthN that no network and no
        //    link of the host has.
        let links: Vec<String> = Netlink::open()?
            .links()?
            .into_iter()
            .map(|l| l.name)
            .collect();
        let bridge = (1..)
            .map(|n| format!("berth{n}"))
            .find(|b| !existing.iter().any(|n| &n.bridge == b) && !links.contains(b))
            .expect("an unbounded range has a free name");
        // 3. The record; the kernel sees nothing until a container attaches.
        let network = NetworkConfig {
            name: options.name.clone(),
            id: random_id()?,
            driver: "bridge".into(),
            bridge,
            subnet: Some(subnet),
            gateway: Some(gateway),
            internal: options.internal,
            dns: true,
            labels: options.labels.clone(),
            options: options.options.clone(),
            created: now_rfc3339(),
        };
        self.store.save_network(&network)?;
        Ok(network)
    }
    // ANCHOR_END: create

    /// A new network's subnet and gateway: `--subnet` (and `--gateway`),
    /// which must overlap no other network and no route of the host; or
    /// the first /24 of the pool that overlaps neither.
    // ANCHOR: choose_network_subnet
    fn choose_network_subnet(
        &self,
        options: &CreateOptions,
        existing: &[NetworkConfig],
    ) -> Result<(Ipv4Net, Ipv4Addr)> {
        let taken: Vec<Ipv4Net> = existing.iter().filter_map(|n| n.subnet).collect();
        let routes = self.foreign_routes(&[])?;
        let Some(subnet) = options.subnet else {
            if options.gateway.is_some() {
                return Err(NetworkError::Invalid("--gateway needs --subnet".into()));
            }
            // The pools: daemon.json's default-address-pools, else docker's.
            let pools: Vec<Ipv4Net> = if self.plan.pools.is_empty() {
                ipam::user_subnet_pool().collect()
            } else {
                (self.plan.pools.iter())
                    .flat_map(|(base, size)| base.subnets(*size).into_iter().flatten())
                    .collect()
            };
            let subnet = ipam::choose_subnet(pools, &taken, &routes).ok_or_else(|| {
                NetworkError::Invalid(
                    "all predefined address pools have been fully subnetted: remove unused networks (network prune) or give --subnet".into(),
                )
            })?;
            return Ok((subnet, ipam::gateway_of(subnet).expect("a /24 has hosts")));
        };
        let (subnet, gateway) = ipam::check_subnet(subnet, options.gateway)?;
        if taken.iter().any(|t| ipam::overlaps(*t, subnet)) {
            return Err(NetworkError::Invalid(format!(
                "invalid pool request: Pool overlaps with other one on this address space ({subnet})"
            )));
        }
        if let Some(route) = routes
            .iter()
            .find(|r| r.prefix_len() > 0 && ipam::overlaps(**r, subnet))
        {
            return Err(NetworkError::Invalid(format!(
                "subnet {subnet} overlaps the host's route to {route}: choose another --subnet"
            )));
        }
        Ok((subnet, gateway))
    }
    // ANCHOR_END: choose_network_subnet

    /// `network rm`: refused for the pre-defined networks and for a
    /// network with containers.
    pub fn remove(&self, name_or_id: &str) -> Result<NetworkConfig> {
        let _lock = self.store.lock()?;
        let network = self.find(name_or_id)?;
        if PREDEFINED.contains(&network.name.as_str()) {
            return Err(NetworkError::Predefined(network.name));
        }
        if !self.store.endpoints(&network.id)?.endpoints.is_empty() {
            return Err(NetworkError::InUse {
                name: network.name,
                id: network.id,
            });
        }
        self.tear_down_network(&Netlink::open()?, &network)?;
        self.store.delete_network(&network)?;
        Ok(network)
    }

    /// `network prune`: remove every user-defined network without
    /// containers; returns their names.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for network in self.store.networks()? {
            if PREDEFINED.contains(&network.name.as_str()) {
                continue;
            }
            match self.remove(&network.id) {
                Ok(n) => removed.push(n.name),
                Err(NetworkError::InUse { .. }) | Err(NetworkError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// `network inspect`.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkResource> {
        let network = self.find(name_or_id)?;
        let endpoints = self.store.endpoints(&network.id)?;
        let list: Vec<Endpoint> = endpoints.endpoints.into_values().collect();
        Ok(inspect::network_resource(&network, &list))
    }

    /// Attach a container to a network (`run`, `network connect`): lease
    /// an address, reserve its host ports, wire its namespace to the
    /// network's bridge, write the rules, start the network's DNS server.
    // ANCHOR: attach
    pub fn attach(&self, request: &AttachRequest) -> Result<(NetworkConfig, Endpoint)> {
        let _lock = self.store.lock()?;
        // 0. What docker refuses, in docker's words; once per network.
        let network = self.find(&request.network)?;
        check_attach(&network, request)?;
        let mut endpoints = self.store.endpoints(&network.id)?;
        if endpoints.endpoints.contains_key(&request.container_id) {
            return Err(NetworkError::EndpointExists {
                name: request.container_name.clone(),
                network: network.name.clone(),
            });
        }
        // 1. The records: the lease and the host ports, saved first.
        let (subnet, gateway) = match (network.subnet, network.gateway) {
            (Some(s), Some(g)) => (s, g),
            _ => {
                return Err(NetworkError::Invalid(format!(
                    "network {} has no subnet",
                    network.name
                )));
            }
        };
        let ip = ipam::allocate(&network.name, subnet, gateway, &mut endpoints, request.ip)?;
        let taken = self.published_everywhere()?;
        let range = ports::ephemeral_range(&self.host.proc_root)?;
        let ports = ports::choose_host_ports(&request.publish, &taken, range)?;
        let endpoint = Endpoint {
            container_id: request.container_id.clone(),
            container_name: request.container_name.clone(),
            endpoint_id: random_id()?,
            aliases: request.aliases.clone(),
            ip,
            mac: ipam::format_mac(request.mac.unwrap_or_else(|| ipam::mac_for(ip))),
            host_veth: host_veth_name(&request.container_id, &network.id),
            ifname: bridge::next_ifname(&request.netns)?,
            netns: request.netns.clone(),
            ports,
            dns_servers: request.dns_servers.clone(),
        };
        endpoints
            .endpoints
            .insert(endpoint.container_id.clone(), endpoint.clone());
        self.store.save_endpoints(&network.id, &endpoints)?;
        // 2. The kernel: bridge, veth, rules, DNS. Undone on failure.
        let nl = Netlink::open()?;
        let plumbed = self.plumb(&nl, &network, &endpoint, endpoints.endpoints.len() == 1);
        if let Err(e) = plumbed {
            let _ = bridge::unplug(&nl, &endpoint);
            endpoints.endpoints.remove(&endpoint.container_id);
            let _ = self.store.save_endpoints(&network.id, &endpoints);
            if endpoints.endpoints.is_empty() {
                let _ = self.tear_down_network(&nl, &network);
            }
            let _ = self.write_rules();
            return Err(e);
        }
        Ok((network, endpoint))
    }
    // ANCHOR_END: attach

    /// The kernel side of an attach, in order.
    fn plumb(
        &self,
        nl: &Netlink,
        network: &NetworkConfig,
        endpoint: &Endpoint,
        first: bool,
    ) -> Result<()> {
        // The network's first container: check no host route took its
        // subnet since it was made, then make the bridge.
        if first || nl.link(&network.bridge)?.is_none() {
            let subnet = network.subnet.expect("bridge networks have a subnet");
            let routes = self.foreign_routes(&[network.bridge.as_str()])?;
            if let Some(route) = routes
                .iter()
                .find(|r| r.prefix_len() > 0 && ipam::overlaps(**r, subnet))
            {
                return Err(NetworkError::Invalid(format!(
                    "network {}'s subnet {subnet} overlaps the host's route to {route}: remove that route, or recreate the network with another --subnet",
                    network.name
                )));
            }
        }
        let bridge_index = bridge::bridge_up(nl, network, &self.host.proc_root)?;
        bridge::plug(nl, network, bridge_index, endpoint)?;
        self.write_rules()?;
        if network.dns {
            let (resolv, _) = self.host.resolv.read()?;
            dns::start(
                &self.host.dns_launcher,
                &self.store,
                &self.host.proc_root,
                network,
                &resolv,
            )?;
        }
        Ok(())
    }

    /// Every host port published by any container, for reservations.
    fn published_everywhere(&self) -> Result<Vec<PortMapping>> {
        let mut all = Vec::new();
        for network in self.store.networks()? {
            for endpoint in self.store.endpoints(&network.id)?.endpoints.into_values() {
                all.extend(endpoint.ports);
            }
        }
        Ok(all)
    }

    /// Rewrite the nftables table from the state.
    fn write_rules(&self) -> Result<()> {
        let networks = self.store.networks()?;
        let mut loaded: Vec<(NetworkConfig, Endpoints)> = Vec::new();
        for network in networks.into_iter().filter(NetworkConfig::is_bridge) {
            let endpoints = self.store.endpoints(&network.id)?;
            if !endpoints.endpoints.is_empty() {
                loaded.push((network, endpoints));
            }
        }
        let active: Vec<ActiveNetwork> = loaded
            .iter()
            .map(|(network, endpoints)| ActiveNetwork {
                network,
                endpoints: endpoints.endpoints.values().collect(),
            })
            .collect();
        firewall::apply(&active)
    }

    /// A network without containers: its DNS server and bridge go.
    fn tear_down_network(&self, nl: &Netlink, network: &NetworkConfig) -> Result<()> {
        dns::stop(&self.store, &self.host.proc_root, &network.id)?;
        if network.is_bridge() {
            bridge::bridge_down(nl, network)?;
        }
        Ok(())
    }

    // ANCHOR: detach
    /// Detach a container from a network (`network disconnect`, `rm`):
    /// its veth, its lease and ports, its rules; the network's bridge and
    /// DNS server if it was the last.
    pub fn detach(&self, container_id: &str, network: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        let network = self.find(network)?;
        self.detach_locked(&network, container_id)?;
        self.write_rules()
    }
    // ANCHOR_END: detach

    fn detach_locked(&self, network: &NetworkConfig, container_id: &str) -> Result<()> {
        let mut endpoints = self.store.endpoints(&network.id)?;
        let Some(endpoint) = endpoints.endpoints.get(container_id).cloned() else {
            return Err(NetworkError::NotConnected {
                container: container_id.to_string(),
                network: network.name.clone(),
            });
        };
        let nl = Netlink::open()?;
        bridge::unplug(&nl, &endpoint)?;
        endpoints.endpoints.remove(container_id);
        self.store.save_endpoints(&network.id, &endpoints)?;
        if endpoints.endpoints.is_empty() {
            self.tear_down_network(&nl, network)?;
        }
        Ok(())
    }

    /// Detach a container from every network it is on (its removal).
    pub fn detach_all(&self, container_id: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        for network in self.store.networks()? {
            if self
                .store
                .endpoints(&network.id)?
                .endpoints
                .contains_key(container_id)
            {
                self.detach_locked(&network, container_id)?;
            }
        }
        self.write_rules()
    }

    /// The container's endpoints, one per network it is on.
    pub fn endpoints_of(&self, container_id: &str) -> Result<Vec<(NetworkConfig, Endpoint)>> {
        let mut found = Vec::new();
        for network in self.store.networks()? {
            if let Some(e) = self
                .store
                .endpoints(&network.id)?
                .endpoints
                .remove(container_id)
            {
                found.push((network, e));
            }
        }
        Ok(found)
    }

    /// `port CONTAINER`: its published ports, sorted.
    pub fn published_ports(&self, container_id: &str) -> Result<Vec<PortMapping>> {
        let mut ports: Vec<PortMapping> = self
            .endpoints_of(container_id)?
            .into_iter()
            .flat_map(|(_, e)| e.ports)
            .collect();
        ports.sort();
        Ok(ports)
    }

    /// A container's `NetworkSettings` for inspect. `sandbox` is its
    /// namespace file (none for `host`), `mode` its `--network` value.
    pub fn network_settings(
        &self,
        container_id: &str,
        sandbox: Option<&Path>,
        exposed: &[(u16, Protocol)],
        mode: &crate::mode::NetworkMode,
    ) -> Result<NetworkSettings> {
        let endpoints = self.endpoints_of(container_id)?;
        let mode_network = match mode {
            crate::mode::NetworkMode::Host => Some(self.find("host")?),
            crate::mode::NetworkMode::None => Some(self.find("none")?),
            _ => None,
        };
        Ok(inspect::network_settings(
            &endpoints,
            sandbox,
            exposed,
            mode_network.as_ref(),
        ))
    }

    /// After a crash or a reboot: given the containers that still exist,
    /// remove every endpoint, veth, bridge, DNS server and namespace file
    /// of ours that belongs to none of them, and rewrite the rules.
    // ANCHOR: reconcile
    pub fn reconcile(&self, live: &BTreeSet<String>) -> Result<Reconciled> {
        let lock = self.store.lock()?;
        let mut done = Reconciled::default();
        let nl = Netlink::open()?;
        let networks = self.store.networks()?;
        let mut wanted_links: BTreeSet<String> = BTreeSet::new();
        for network in &networks {
            let mut endpoints = self.store.endpoints(&network.id)?;
            let gone: Vec<String> = endpoints
                .endpoints
                .keys()
                .filter(|id| !live.contains(*id))
                .cloned()
                .collect();
            for id in gone {
                if let Some(endpoint) = endpoints.endpoints.remove(&id) {
                    bridge::unplug(&nl, &endpoint)?;
                    done.endpoints
                        .push(format!("{}/{}", network.name, endpoint.container_id));
                }
            }
            self.store.save_endpoints(&network.id, &endpoints)?;
            if endpoints.endpoints.is_empty() {
                if dns::running(&self.store, &self.host.proc_root, &network.id).is_some() {
                    done.dns_servers.push(network.name.clone());
                }
                self.tear_down_network(&nl, network)?;
            } else {
                wanted_links.insert(network.bridge.clone());
                wanted_links.extend(endpoints.endpoints.values().map(|e| e.host_veth.clone()));
                if network.dns && nl.link(&network.bridge)?.is_some() {
                    let (resolv, _) = self.host.resolv.read()?;
                    dns::start(
                        &self.host.dns_launcher,
                        &self.store,
                        &self.host.proc_root,
                        network,
                        &resolv,
                    )?;
                }
            }
        }
        for link in nl.links()? {
            let ours = link.name.starts_with(VETH_PREFIX) || is_our_bridge(&link.name);
            if ours && !wanted_links.contains(&link.name) && nl.delete_link(&link.name)? {
                done.links.push(link.name);
            }
        }
        for id in netns::list_netns(&self.host.netns_dir)? {
            if !live.contains(&id) {
                netns::remove_netns(&netns::netns_path(&self.host.netns_dir, &id))?;
                done.netns.push(id);
            }
        }
        self.write_rules()?;
        drop(lock);
        Ok(done)
    }
    // ANCHOR_END: reconcile
}

/// Docker's network lookup: exact name, exact ID, then a unique ID prefix.
fn find_in(networks: &[NetworkConfig], key: &str) -> Result<NetworkConfig> {
    if let Some(n) = networks.iter().find(|n| n.name == key || n.id == key) {
        return Ok(n.clone());
    }
    let matching: Vec<&NetworkConfig> = networks
        .iter()
        .filter(|n| !key.is_empty() && n.id.starts_with(key))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(NetworkError::NotFound(key.to_string())),
        _ => Err(NetworkError::Invalid(format!(
            "network {key} is ambiguous ({} matches)",
            matching.len()
        ))),
    }
}

/// docker's rules for `--network NAME` and `network connect`: only bridge
/// networks take containers, and aliases and a fixed `--ip` only
/// user-defined ones.
fn check_attach(network: &NetworkConfig, request: &AttachRequest) -> Result<()> {
    match network.driver.as_str() {
        "bridge" => {}
        "host" => {
            return Err(NetworkError::Invalid(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        _ => {
            return Err(NetworkError::Invalid(format!(
                "container cannot be connected to network {}: it is the none network (lo only)",
                network.name
            )));
        }
    }
    if !network.dns && !request.aliases.is_empty() {
        return Err(NetworkError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    if !network.dns && request.ip.is_some() {
        return Err(NetworkError::Invalid(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, id: &str) -> NetworkConfig {
        NetworkConfig {
            name: name.into(),
            id: id.into(),
            driver: "bridge".into(),
            bridge: String::new(),
            subnet: None,
            gateway: None,
            internal: false,
            dns: true,
            labels: Default::default(),
            options: Default::default(),
            created: String::new(),
        }
    }

    #[test]
    fn networks_are_found_by_name_id_or_unique_prefix() {
        let all = [
            net("web", "abc123"),
            net("db", "abd456"),
            net("abc", "fff000"),
        ];
        assert_eq!(find_in(&all, "web").unwrap().id, "abc123");
        assert_eq!(find_in(&all, "abd").unwrap().name, "db");
        // A name wins over an ID prefix.
        assert_eq!(find_in(&all, "abc").unwrap().name, "abc");
        assert!(
            find_in(&all, "ab")
                .unwrap_err()
                .to_string()
                .contains("ambiguous")
        );
        assert_eq!(
            find_in(&all, "nope").unwrap_err().to_string(),
            "network nope not found"
        );
    }

    #[test]
    fn network_names_are_checked() {
        assert!(check_network_name("my-net_1.x").is_ok());
        for bad in ["", "a", "-net", "my net", "net/x"] {
            assert!(check_network_name(bad).is_err(), "{bad}");
        }
    }
}
