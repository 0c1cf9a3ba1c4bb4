//! `network create|ls|inspect|rm|connect|disconnect|prune` and `port`:
//! docker's network commands over the network crate (`ch07_network`),
//! and the hidden `network dns-serve` the crate starts for a
//! user-defined network's DNS server.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::Status;

/// `berth network ...`.
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm { networks: Vec<String> },
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Serve a network's DNS (started by the engine)
    #[command(hide = true)]
    DnsServe {
        #[arg(long)]
        state: PathBuf,
        #[arg(long = "network")]
        network_id: String,
        #[arg(long)]
        resolv_conf: PathBuf,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Driver to manage the Network (bridge)
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Option<ipnet::Ipv4Net>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub options: Vec<String>,
    pub name: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    pub network: String,
    pub container: String,
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
#[derive(Args)]
pub struct PortArgs {
    pub container: String,
    pub private_port: Option<String>,
}

fn fail(e: impl ToString) -> Failure {
    Failure::new(e.to_string(), 1)
}

fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `berth network ...`.
pub fn network(engine: &Engine, command: NetworkCommand) -> Outcome {
    let mut out = std::io::stdout().lock();
    match command {
        NetworkCommand::DnsServe {
            state,
            network_id,
            resolv_conf,
        } => {
            let config = ch07_network::dns::DnsServerConfig {
                state_dir: state,
                network_id,
                resolv_conf,
            };
            ch07_network::dns::serve(&config, || {
                println!("ready {}", std::process::id());
                // Nobody reads stdout after this line.
                if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                    let _ = std::io::stdout().flush();
                    let _ = nix::unistd::dup2_stdout(&null);
                }
            })
            .map_err(fail)?;
        }
        NetworkCommand::Create(args) => {
            if args.driver != "bridge" {
                return Err(fail(format!(
                    "plugin \"{}\" not found: berth has the bridge driver only",
                    args.driver
                )));
            }
            let options = ch07_network::CreateOptions {
                name: args.name,
                subnet: args.subnet,
                gateway: args.gateway,
                internal: args.internal,
                labels: key_values(&args.labels),
                options: key_values(&args.options),
            };
            let network = engine.networks()?.create(&options).map_err(fail)?;
            let _ = writeln!(out, "{}", network.id);
        }
        NetworkCommand::Ls(args) => {
            engine.reconcile_networks()?;
            let list = engine.networks()?.list().map_err(fail)?;
            let id = |id: &str| {
                if args.no_trunc {
                    id.to_string()
                } else {
                    id[..12.min(id.len())].to_string()
                }
            };
            if args.quiet {
                for n in list {
                    let _ = writeln!(out, "{}", id(&n.id));
                }
            } else {
                // docker's table: tab-aligned columns, 10 wide at least.
                let mut lines = vec!["NETWORK ID\tNAME\tDRIVER\tSCOPE".to_string()];
                for n in list {
                    lines.push(format!("{}\t{}\t{}\tlocal", id(&n.id), n.name, n.driver));
                }
                let _ = write!(out, "{}", super::format::align(&lines, 10));
            }
        }
        NetworkCommand::Inspect(args) => {
            let template = match args.format.as_deref() {
                Some(text) if text != "json" => Some(super::format::template(text).map_err(fail)?),
                _ => None,
            };
            let networks = engine.networks()?;
            let mut docs = Vec::new();
            for name in &args.networks {
                docs.push(networks.inspect(name).map_err(fail)?);
            }
            match &template {
                Some(template) => {
                    for doc in &docs {
                        let value = gotmpl::ser::to_value(doc).map_err(fail)?;
                        let text = super::format::render(template, &value).map_err(fail)?;
                        let _ = writeln!(out, "{text}");
                    }
                }
                None => {
                    let _ = writeln!(out, "{}", super::inspect::to_json_4(&docs));
                }
            }
        }
        NetworkCommand::Rm { networks } => {
            let all = engine.networks()?;
            let mut failed = None;
            for name in networks {
                match all.remove(&name) {
                    Ok(_) => {
                        let _ = writeln!(out, "{name}");
                    }
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            if let Some(message) = failed {
                return Err(fail(message));
            }
        }
        NetworkCommand::Prune { .. } => {
            engine.reconcile_networks()?;
            let removed = engine.networks()?.prune().map_err(fail)?;
            if !removed.is_empty() {
                let _ = writeln!(out, "Deleted Networks:");
                for name in removed {
                    let _ = writeln!(out, "{name}");
                }
            }
        }
        NetworkCommand::Connect(args) => {
            engine
                .connect(&args.container, &args.network, &args.aliases, args.ip)
                .map_err(fail)?;
        }
        NetworkCommand::Disconnect(args) => {
            engine
                .disconnect(&args.container, &args.network)
                .map_err(fail)?;
        }
    }
    Ok(0)
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`, as docker prints it.
pub fn port(engine: &Engine, args: &PortArgs) -> Outcome {
    let c = engine.container(&args.container)?;
    let mut out = std::io::stdout().lock();
    if !matches!(c.state.status, Status::Running | Status::Paused) {
        return Ok(0);
    }
    let wanted = match &args.private_port {
        Some(text) => {
            let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| fail(format!("invalid port: {text}")))?;
            Some(format!("{port}/{proto}"))
        }
        None => None,
    };
    let mut found = false;
    for (key, bindings) in &c.network_settings.ports {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings.iter().flatten() {
            found = true;
            if wanted.is_some() {
                let _ = writeln!(out, "{}:{}", b.host_ip, b.host_port);
            } else {
                let _ = writeln!(out, "{key} -> {}:{}", b.host_ip, b.host_port);
            }
        }
    }
    if let Some(w) = wanted
        && !found
    {
        return Err(fail(format!(
            "No public port '{w}' published for {}",
            args.container
        )));
    }
    Ok(0)
}

/// `ps`'s PORTS column, as docker writes it: `0.0.0.0:8080->80/tcp`
/// for a published port, `80/tcp` for one only exposed.
pub fn ports_text(c: &crate::engine::record::Container) -> String {
    let mut keys: Vec<(&String, u16)> = c
        .network_settings
        .ports
        .keys()
        .map(|k| {
            (
                k,
                k.split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect();
    keys.sort_by_key(|(k, port)| (*port, k.to_string()));
    let mut parts = Vec::new();
    for (key, _) in keys {
        match &c.network_settings.ports[key] {
            Some(bindings) if !bindings.is_empty() => {
                for b in bindings {
                    parts.push(format!("{}:{}->{key}", b.host_ip, b.host_port));
                }
            }
            _ => parts.push(key.clone()),
        }
    }
    parts.join(", ")
}

/// `ps`'s NETWORKS column: the networks the container is on (its
/// `--network` value before its first start).
pub fn networks_text(c: &crate::engine::record::Container) -> String {
    if c.network_settings.networks.is_empty() {
        return c.host_config.network_mode.clone();
    }
    let names: Vec<&str> = c
        .network_settings
        .networks
        .keys()
        .map(String::as_str)
        .collect();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ch07_network::inspect::PortBinding;

    #[test]
    fn ports_read_as_dockers_column() {
        let mut c = crate::engine::record::Container::default();
        c.network_settings.ports.insert("443/tcp".into(), None);
        c.network_settings.ports.insert(
            "80/tcp".into(),
            Some(vec![PortBinding {
                host_ip: "0.0.0.0".into(),
                host_port: "8080".into(),
            }]),
        );
        assert_eq!(ports_text(&c), "0.0.0.0:8080->80/tcp, 443/tcp");
    }
}
