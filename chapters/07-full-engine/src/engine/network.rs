//! Networking, the engine's side: a network namespace per container,
//! plumbed before the runtime starts it and released when it stops.
//!
//! The engine does what CNI's and netavark's callers (containerd, podman)
//! do; the plumbing itself is the network crate's (`ch07_network`). At
//! each start, for `--network bridge` or a user-defined network:
//!
//! 1. **a namespace file**: a new network namespace bind-mounted at
//!    `RUN/netns/ID` (`ch07_network::netns`), so it exists before any
//!    process is in it, and outlives none of the container's runs;
//! 2. **attach**: a veth into it, an address, the rules, the published
//!    ports and the network's DNS server (`Networks::attach`), for the
//!    mode's network and every network joined with `network connect`;
//! 3. **/etc files**: hostname, hosts and resolv.conf, from the addresses
//!    the attach gave (`ch07_network::etc`);
//! 4. **the record**: `NetworkSettings`, as docker's inspect shows it;
//! 5. **the runtime** joins the namespace by path (`linux.namespaces` in
//!    config.json, [`NetNamespace::Join`]).
//!
//! `none` gets a namespace the runtime makes (only `lo`), `host` none at
//! all, `container:NAME` joins the other container's. When the container
//! stops, [`Engine::unplumb_network`] detaches it from every network and
//! removes the namespace file (from `release_resources`, which also runs
//! after a crash); [`Engine::reconcile_networks`] removes whatever a
//! killed engine left that no container owns.
//!
//! Man pages: ip-netns(8), veth(4), nft(8), resolv.conf(5), hosts(5).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ch07_network::dns::Launcher;
use ch07_network::etc::{self, DnsFlags, EtcRequest, HostResolv, ResolvMode};
use ch07_network::mode::NetworkMode;
use ch07_network::ports::{self, PortSpec, Protocol};
use ch07_network::{AttachRequest, HostConfig, NetworkError, Networks, netns};

use super::record::{Config, ConnectedNetwork, Container, ContainerDir, NetworkSettings, Status};
use super::{Engine, EngineError, Result};

/// The network namespace config.json asks the runtime for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNamespace {
    /// None: the host's stack (`--network host`).
    Host,
    /// A new one the runtime makes (`--network none`).
    New,
    /// This one, by path (a namespace file, or another container's).
    Join(PathBuf),
}

impl From<NetworkError> for EngineError {
    fn from(err: NetworkError) -> EngineError {
        EngineError::Message(err.to_string())
    }
}

/// The `--network` a container gets without the flag: docker's `bridge`
/// as root; `none` for a normal user, who cannot make bridges.
pub fn default_network_mode() -> &'static str {
    if nix::unistd::geteuid().is_root() {
        "bridge"
    } else {
        "none"
    }
}

/// The container's exposed ports (`Config.ExposedPorts`: the image's
/// EXPOSE, `--expose`, and the published ones).
pub fn exposed_ports(config: &Config) -> Vec<(u16, Protocol)> {
    let mut all = Vec::new();
    for key in config.exposed_ports.iter().flat_map(|m| m.keys()) {
        if let Ok(ports) = ports::parse_exposed(key) {
            all.extend(ports);
        }
    }
    all.sort();
    all.dedup();
    all
}

/// `-p` values and `-P`, parsed into what an attach publishes.
pub fn publish_specs(c: &Container) -> Result<Vec<PortSpec>> {
    let mut specs = Vec::new();
    for text in &c.berth.network.publish {
        specs.extend(ports::parse_publish(text)?);
    }
    if c.host_config.publish_all_ports {
        for spec in ports::publish_all(&exposed_ports(&c.config)) {
            if !specs
                .iter()
                .any(|s| s.container_port == spec.container_port && s.protocol == spec.protocol)
            {
                specs.push(spec);
            }
        }
    }
    Ok(specs)
}

impl Engine {
    /// Where container network namespaces are bind-mounted.
    pub fn netns_dir(&self) -> PathBuf {
        self.roots().run.join("netns")
    }

    /// This engine's networks (state under `ROOT/network`); the DNS
    /// servers are this program, re-executed (`network dns-serve`).
    pub fn networks(&self) -> Result<Networks> {
        let exe = std::env::current_exe()
            .map_err(|e| EngineError::msg(format!("find our own binary: {e}")))?;
        let host = HostConfig {
            state_dir: self.roots().root.join("network"),
            netns_dir: self.netns_dir(),
            proc_root: self.proc_root().to_path_buf(),
            resolv: HostResolv::default(),
            dns_launcher: Launcher {
                program: exe,
                args: vec!["network".into(), "dns-serve".into()],
            },
        };
        Ok(Networks::open_planned(
            host,
            self.settings().address_plan(),
        )?)
    }

    /// Give container `c` its network before the runtime starts it: the
    /// namespace, the attachments, the /etc files, `NetworkSettings`.
    /// On failure nothing is left (the caller unmounts the rest).
    pub fn plumb_network(&self, dir: &ContainerDir, c: &mut Container) -> Result<NetNamespace> {
        let mode = NetworkMode::parse(&c.host_config.network_mode)?;
        if let NetworkMode::Container(target) = &mode {
            return self.join_container_network(c, target);
        }
        let mut addresses = Vec::new();
        let mut resolv = ResolvMode::Filtered;
        let mut gateway = None;
        let namespace = match &mode {
            NetworkMode::Host => {
                resolv = ResolvMode::Host;
                NetNamespace::Host
            }
            NetworkMode::None => {
                // Only lo: the container's own name is 127.0.0.1, so a
                // program that looks itself up still finds itself.
                addresses.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
                NetNamespace::New
            }
            _ if !nix::unistd::geteuid().is_root() => {
                return Err(EngineError::msg(format!(
                    "--network {}: bridges, addresses and firewall rules need root; a normal \
                     user's containers take --network none (the default) or host",
                    c.host_config.network_mode
                )));
            }
            _ => {
                let path = self.attach_all(c, &mode)?;
                let networks = self.networks()?;
                for (network, endpoint) in networks.endpoints_of(&c.id)? {
                    addresses.push(IpAddr::V4(endpoint.ip));
                    if network.dns && resolv == ResolvMode::Filtered {
                        resolv = ResolvMode::Embedded(network.gateway.unwrap_or(endpoint.ip));
                    }
                    gateway = gateway.or(network.gateway);
                }
                NetNamespace::Join(path)
            }
        };
        let written = self.write_etc(dir, c, addresses, resolv, gateway);
        let settings = written.and_then(|()| self.settings_of(c, &mode, &namespace));
        match settings {
            Ok(settings) => {
                c.network_settings = settings;
                Ok(namespace)
            }
            Err(e) => {
                let _ = self.unplumb_network(c);
                Err(e)
            }
        }
    }

    /// Steps 1 and 2 for a container with a network: its namespace file
    /// and its endpoints; undone on failure.
    fn attach_all(&self, c: &mut Container, mode: &NetworkMode) -> Result<PathBuf> {
        let networks = self.networks()?;
        // A namespace file left by a run that was never cleaned up.
        networks.detach_all(&c.id)?;
        let path = netns::netns_path(&self.netns_dir(), &c.id);
        netns::remove_netns(&path)?;
        let path = netns::create_netns(&self.netns_dir(), &c.id)?;
        c.berth.network.netns = path.display().to_string();
        let publish = publish_specs(c)?;
        let dns_servers: Vec<IpAddr> = c
            .host_config
            .dns
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        // The mode's network (with -p, --ip, --network-alias), then those
        // joined with `network connect` (with theirs).
        let mut wanted: Vec<ConnectedNetwork> = Vec::new();
        if let Some(name) = mode.network_name() {
            wanted.push(ConnectedNetwork {
                name: name.to_string(),
                aliases: if matches!(mode, NetworkMode::Named(_)) {
                    c.berth.network.aliases.clone()
                } else {
                    vec![]
                },
                ip: c.berth.network.ip.clone(),
            });
        }
        for extra in &c.berth.network.networks {
            if !wanted.iter().any(|w| w.name == extra.name) {
                wanted.push(extra.clone());
            }
        }
        for (i, network) in wanted.iter().enumerate() {
            let request = AttachRequest {
                container_id: c.id.clone(),
                container_name: c.name().to_string(),
                netns: path.clone(),
                network: network.name.clone(),
                aliases: network.aliases.clone(),
                publish: if i == 0 { publish.clone() } else { vec![] },
                ip: match &network.ip {
                    Some(ip) => Some(
                        ip.parse()
                            .map_err(|_| EngineError::msg(format!("invalid IPv4 address: {ip}")))?,
                    ),
                    None => None,
                },
                mac: None,
                dns_servers: dns_servers.clone(),
            };
            if let Err(e) = networks.attach(&request) {
                let _ = networks.detach_all(&c.id);
                let _ = netns::remove_netns(&path);
                c.berth.network.netns.clear();
                return Err(e.into());
            }
        }
        Ok(path)
    }

    /// `--network container:NAME`: the other container's namespace, and
    /// its /etc files and hostname, as docker shares them.
    fn join_container_network(&self, c: &mut Container, target: &str) -> Result<NetNamespace> {
        let other = self.container(target)?;
        if other.id == c.id {
            return Err(EngineError::msg(
                "cannot join own network namespace: use a network of its own",
            ));
        }
        if !matches!(other.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::msg(format!(
                "cannot join network namespace of a non running container: {}",
                other.name()
            )));
        }
        c.hosts_path = other.hosts_path.clone();
        c.resolv_conf_path = other.resolv_conf_path.clone();
        c.hostname_path = other.hostname_path.clone();
        c.config.hostname = other.config.hostname.clone();
        c.network_settings = NetworkSettings::default();
        if other.host_config.network_mode == "host" {
            return Ok(NetNamespace::Host);
        }
        let path = if other.berth.network.netns.is_empty() {
            self.proc_root()
                .join(other.state.pid.to_string())
                .join("ns/net")
        } else {
            PathBuf::from(&other.berth.network.netns)
        };
        Ok(NetNamespace::Join(path))
    }

    /// Step 3: /etc/hostname, hosts and resolv.conf in the container's
    /// directory (bind-mounted by config.json).
    fn write_etc(
        &self,
        dir: &ContainerDir,
        c: &Container,
        addresses: Vec<IpAddr>,
        resolv: ResolvMode,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let host = &c.host_config;
        let extra_hosts = host
            .extra_hosts
            .iter()
            .flatten()
            .map(|h| etc::parse_add_host(h, gateway))
            .collect::<Result<Vec<_>, _>>()?;
        let request = EtcRequest {
            hostname: c.config.hostname.clone(),
            domainname: c.config.domainname.clone(),
            addresses,
            extra_hosts,
            dns: DnsFlags {
                servers: host.dns.iter().filter_map(|s| s.parse().ok()).collect(),
                search: host.dns_search.clone(),
                options: host.dns_options.clone(),
            },
            mode: Some(resolv),
        };
        etc::write_etc_files(
            &dir.0,
            &request,
            &HostResolv::default(),
            Path::new("/etc/hosts"),
        )?;
        Ok(())
    }

    /// Step 4: `NetworkSettings` for inspect.
    fn settings_of(
        &self,
        c: &Container,
        mode: &NetworkMode,
        namespace: &NetNamespace,
    ) -> Result<NetworkSettings> {
        let sandbox = match namespace {
            NetNamespace::Join(path) => Some(path.as_path()),
            _ => None,
        };
        let exposed = exposed_ports(&c.config);
        match self.networks() {
            Ok(networks) => Ok(networks.network_settings(&c.id, sandbox, &exposed, mode)?),
            // A normal user without a network state: the ports only.
            Err(_) if !mode.has_own_netns() || *mode == NetworkMode::None => Ok(NetworkSettings {
                ports: ch07_network::inspect::port_map(&exposed, &[]),
                ..NetworkSettings::default()
            }),
            Err(e) => Err(e),
        }
    }

    /// The container stopped: off every network, its namespace file
    /// gone, its addresses and ports out of `NetworkSettings`. Safe to
    /// repeat, and to run for a container that never had a network.
    pub fn unplumb_network(&self, c: &mut Container) -> Result<()> {
        let mode = NetworkMode::parse(&c.host_config.network_mode).unwrap_or(NetworkMode::None);
        let had_network = mode.network_name().is_some()
            || !c.berth.network.networks.is_empty()
            || !c.berth.network.netns.is_empty();
        if had_network {
            self.networks()?.detach_all(&c.id)?;
            netns::remove_netns(&netns::netns_path(&self.netns_dir(), &c.id))?;
        }
        c.berth.network.netns.clear();
        let networks = std::mem::take(&mut c.network_settings.networks);
        c.network_settings = NetworkSettings {
            // docker keeps the networks a stopped container is on, empty.
            networks: networks
                .into_iter()
                .map(|(name, e)| {
                    let kept = ch07_network::inspect::EndpointSettings {
                        network_id: e.network_id,
                        aliases: e.aliases,
                        dns_names: e.dns_names,
                        ..Default::default()
                    };
                    (name, kept)
                })
                .collect(),
            ..NetworkSettings::default()
        };
        Ok(())
    }

    /// `network connect`: remembered for the next starts, and attached
    /// now if the container runs.
    pub fn connect(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
        ip: Option<Ipv4Addr>,
    ) -> Result<()> {
        let id = self.resolve(container)?;
        let dir = self.dir(&id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        let mode = NetworkMode::parse(&c.host_config.network_mode)?;
        if matches!(
            mode,
            NetworkMode::Host | NetworkMode::None | NetworkMode::Container(_)
        ) {
            return Err(EngineError::msg(format!(
                "container cannot be connected to network {network}: its network mode is {}",
                c.host_config.network_mode
            )));
        }
        let networks = self.networks()?;
        let found = networks.find(network)?;
        let already = mode.network_name() == Some(found.name.as_str())
            || c.berth
                .network
                .networks
                .iter()
                .any(|n| n.name == found.name);
        if already {
            return Err(EngineError::msg(format!(
                "endpoint with name {} already exists in network {}",
                c.name(),
                found.name
            )));
        }
        if matches!(c.state.status, Status::Running | Status::Paused) {
            let request = AttachRequest {
                container_id: c.id.clone(),
                container_name: c.name().to_string(),
                netns: PathBuf::from(&c.berth.network.netns),
                network: found.name.clone(),
                aliases: aliases.to_vec(),
                publish: vec![],
                ip,
                mac: None,
                dns_servers: vec![],
            };
            networks.attach(&request)?;
            let exposed = exposed_ports(&c.config);
            let sandbox = PathBuf::from(&c.berth.network.netns);
            c.network_settings =
                networks.network_settings(&c.id, Some(&sandbox), &exposed, &mode)?;
        }
        c.berth.network.networks.push(ConnectedNetwork {
            name: found.name,
            aliases: aliases.to_vec(),
            ip: ip.map(|ip| ip.to_string()),
        });
        dir.save(&c)?;
        Ok(())
    }

    /// `network disconnect`: detached now, and not joined again.
    pub fn disconnect(&self, container: &str, network: &str) -> Result<()> {
        let id = self.resolve(container)?;
        let dir = self.dir(&id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        let mode = NetworkMode::parse(&c.host_config.network_mode)?;
        let networks = self.networks()?;
        let found = networks.find(network)?;
        let listed = mode.network_name() == Some(found.name.as_str())
            || c.berth
                .network
                .networks
                .iter()
                .any(|n| n.name == found.name);
        if !listed {
            return Err(EngineError::msg(format!(
                "container {} is not connected to network {}",
                c.name(),
                found.name
            )));
        }
        if matches!(c.state.status, Status::Running | Status::Paused) {
            networks.detach(&c.id, &found.id)?;
            let exposed = exposed_ports(&c.config);
            let sandbox = PathBuf::from(&c.berth.network.netns);
            c.network_settings =
                networks.network_settings(&c.id, Some(&sandbox), &exposed, &mode)?;
        } else {
            c.network_settings.networks.remove(&found.name);
        }
        c.berth.network.networks.retain(|n| n.name != found.name);
        dir.save(&c)?;
        Ok(())
    }

    /// After a killed engine: remove every endpoint, veth, bridge, DNS
    /// server and namespace file of containers that cannot be running.
    /// Only when this engine has something on a network (an endpoint or
    /// a namespace file): a reconcile also removes links and rules of
    /// ours that nothing names, which must not happen to another engine's
    /// (another `--root`) on the same host while this one has nothing.
    pub fn reconcile_networks(&self) -> Result<()> {
        if !self.roots().root.join("network").exists() || !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let networks = self.networks()?;
        let mut in_use = !netns::list_netns(&self.netns_dir())?.is_empty();
        for network in networks.list()? {
            in_use = in_use
                || !networks
                    .store()
                    .endpoints(&network.id)?
                    .endpoints
                    .is_empty();
        }
        if !in_use {
            return Ok(());
        }
        let live: BTreeSet<String> = self
            .containers()?
            .into_iter()
            .filter(|c| {
                c.state.status != Status::Exited && c.state.status != Status::Dead
                    || c.berth.needs_cleanup
            })
            .map(|c| c.id)
            .collect();
        let done = networks.reconcile(&live)?;
        if done != ch07_network::networks::Reconciled::default() {
            eprintln!("berth: reconciled networks: {done:?}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn exposed_ports_come_from_the_config() {
        let config = Config {
            exposed_ports: Some(BTreeMap::from([
                ("80/tcp".to_string(), serde_json::json!({})),
                ("53/udp".to_string(), serde_json::json!({})),
                ("8000-8001".to_string(), serde_json::json!({})),
            ])),
            ..Config::default()
        };
        assert_eq!(
            exposed_ports(&config),
            vec![
                (53, Protocol::Udp),
                (80, Protocol::Tcp),
                (8000, Protocol::Tcp),
                (8001, Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn publish_all_adds_the_exposed_ports_not_published() {
        let mut c = Container::default();
        c.config.exposed_ports = Some(BTreeMap::from([
            ("80/tcp".to_string(), serde_json::json!({})),
            ("443/tcp".to_string(), serde_json::json!({})),
        ]));
        c.berth.network.publish = vec!["8080:80".into()];
        c.host_config.publish_all_ports = true;
        let specs = publish_specs(&c).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].host_port, ports::HostPort::Fixed(8080));
        assert_eq!(specs[1].container_port, 443);
        assert_eq!(specs[1].host_port, ports::HostPort::Any);
    }
}
