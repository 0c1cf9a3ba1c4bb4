//! `ch07-network`: the networking library from the command line, for
//! the tests and for trying it by hand (the engine, `berth`, offers
//! the same through `berth network ...`, `run -p`, `port`).
//!
//! ```text
//! ch07-network [--state DIR] [--netns-dir DIR] [--resolv-conf FILE] COMMAND
//!   create NAME [--subnet CIDR] [--gateway IP] [--internal] [--label K=V]...
//!   ls | inspect NAME... | rm NAME... | prune
//!   netns-add ID | netns-del ID
//!   attach ID --netns PATH [--name NAME] [--network NET] [--alias A]... [-p SPEC]... [--ip IP] [--dns IP]...
//!   detach ID [--network NET]
//!   port ID
//!   reconcile [LIVE-ID]...
//!   pasta-start --netns PATH [--userns PATH] --pidfile FILE [-p SPEC]...
//!   pasta-stop --pidfile FILE
//!   dns-serve --state DIR --network ID --resolv-conf FILE   (started by attach)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use ch07_network::dns::{DnsServerConfig, Launcher};
use ch07_network::etc::HostResolv;
use ch07_network::ports::{self, PortSpec};
use ch07_network::rootless::{PastaRequest, start_pasta, stop_pasta};
use ch07_network::{AttachRequest, CreateOptions, HostConfig, Networks, netns};
use clap::{Parser, Subcommand};
use ipnet::Ipv4Net;

#[derive(Parser)]
#[command(name = "ch07-network", about = "Berth chapter 7: container networking")]
struct Cli {
    /// The network state directory.
    #[arg(long, global = true, default_value = "/var/lib/berth/network")]
    state: PathBuf,
    /// Where container network namespaces are bind-mounted.
    #[arg(long, global = true, default_value = "/run/berth/netns")]
    netns_dir: PathBuf,
    /// The host's resolv.conf (the DNS servers' upstreams).
    #[arg(long, global = true, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a user-defined bridge network.
    Create {
        name: String,
        #[arg(long)]
        subnet: Option<Ipv4Net>,
        #[arg(long)]
        gateway: Option<Ipv4Addr>,
        #[arg(long)]
        internal: bool,
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List networks.
    Ls,
    /// Show networks as docker's network inspect.
    Inspect { names: Vec<String> },
    /// Remove networks.
    Rm { names: Vec<String> },
    /// Remove user-defined networks without containers.
    Prune,
    /// Make a container's network namespace; prints its path.
    NetnsAdd { id: String },
    /// Remove a container's network namespace file.
    NetnsDel { id: String },
    /// Attach a container's namespace to a network; prints the endpoint.
    Attach {
        id: String,
        #[arg(long)]
        netns: PathBuf,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "bridge")]
        network: String,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        #[arg(long = "dns")]
        dns: Vec<IpAddr>,
    },
    /// Detach a container from one network, or from all.
    Detach {
        id: String,
        #[arg(long)]
        network: Option<String>,
    },
    /// A container's published ports, as `docker port` prints them.
    Port { id: String },
    /// Remove everything of containers not listed.
    Reconcile { live: Vec<String> },
    /// Start pasta for a rootless container's namespace.
    PastaStart {
        #[arg(long)]
        netns: PathBuf,
        #[arg(long)]
        userns: Option<PathBuf>,
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
    },
    /// Stop a container's pasta.
    PastaStop {
        #[arg(long)]
        pidfile: PathBuf,
    },
    /// Run a network's DNS server (started by attach).
    #[command(hide = true)]
    DnsServe {
        #[arg(long = "network")]
        network_id: String,
    },
}

fn open(cli: &Cli) -> Result<Networks> {
    let exe = std::env::current_exe().context("find this program for the DNS server")?;
    let host = HostConfig {
        state_dir: cli.state.clone(),
        netns_dir: cli.netns_dir.clone(),
        proc_root: "/proc".into(),
        resolv: HostResolv {
            path: cli.resolv_conf.clone(),
            ..HostResolv::default()
        },
        dns_launcher: Launcher {
            program: exe,
            args: vec!["dns-serve".into()],
        },
    };
    Ok(Networks::open(host)?)
}

fn parse_publish(values: &[String]) -> Result<Vec<PortSpec>> {
    let mut specs = Vec::new();
    for value in values {
        specs.extend(ports::parse_publish(value)?);
    }
    Ok(specs)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("ch07-network: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Cmd::Create {
            name,
            subnet,
            gateway,
            internal,
            labels,
        } => {
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let options = CreateOptions {
                name: name.clone(),
                subnet: *subnet,
                gateway: *gateway,
                internal: *internal,
                labels,
                options: BTreeMap::new(),
            };
            println!("{}", open(cli)?.create(&options)?.id);
        }
        Cmd::Ls => {
            println!("{:<14}{:<20}{:<10}SCOPE", "NETWORK ID", "NAME", "DRIVER");
            for n in open(cli)?.list()? {
                println!("{:<14}{:<20}{:<10}local", &n.id[..12], n.name, n.driver);
            }
        }
        Cmd::Inspect { names } => {
            let networks = open(cli)?;
            let docs = names
                .iter()
                .map(|n| networks.inspect(n))
                .collect::<Result<Vec<_>, _>>()?;
            print_json(&docs)?;
        }
        Cmd::Rm { names } => {
            let networks = open(cli)?;
            for name in names {
                networks.remove(name)?;
                println!("{name}");
            }
        }
        Cmd::Prune => {
            let removed = open(cli)?.prune()?;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for name in removed {
                    println!("{name}");
                }
            }
        }
        Cmd::NetnsAdd { id } => println!("{}", netns::create_netns(&cli.netns_dir, id)?.display()),
        Cmd::NetnsDel { id } => netns::remove_netns(&netns::netns_path(&cli.netns_dir, id))?,
        Cmd::Attach {
            id,
            netns,
            name,
            network,
            aliases,
            publish,
            ip,
            dns,
        } => {
            let request = AttachRequest {
                container_id: id.clone(),
                container_name: name.clone(),
                netns: netns.clone(),
                network: network.clone(),
                aliases: aliases.clone(),
                publish: parse_publish(publish)?,
                ip: *ip,
                mac: None,
                dns_servers: dns.clone(),
            };
            let (_, endpoint) = open(cli)?.attach(&request)?;
            print_json(&endpoint)?;
        }
        Cmd::Detach { id, network } => {
            let networks = open(cli)?;
            match network {
                Some(network) => networks.detach(id, network)?,
                None => networks.detach_all(id)?,
            }
        }
        Cmd::Port { id } => {
            for port in open(cli)?.published_ports(id)? {
                println!("{port}");
            }
        }
        Cmd::Reconcile { live } => {
            let live: BTreeSet<String> = live.iter().cloned().collect();
            let done = open(cli)?.reconcile(&live)?;
            eprintln!("{done:?}");
        }
        Cmd::PastaStart {
            netns,
            userns,
            pidfile,
            publish,
        } => {
            let specs = parse_publish(publish)?;
            let range = ports::ephemeral_range("/proc".as_ref())?;
            let chosen = ports::choose_host_ports(&specs, &[], range)?;
            let pid = start_pasta(&PastaRequest {
                program: "pasta".as_ref(),
                netns,
                userns: userns.as_deref(),
                ports: &chosen,
                pidfile,
            })?;
            println!("{pid}");
            for port in chosen {
                println!("{port}");
            }
        }
        Cmd::PastaStop { pidfile } => stop_pasta(pidfile, "/proc".as_ref())?,
        Cmd::DnsServe { network_id } => {
            let config = DnsServerConfig {
                state_dir: cli.state.clone(),
                network_id: network_id.clone(),
                resolv_conf: cli.resolv_conf.clone(),
            };
            ch07_network::dns::serve(&config, || {
                println!("ready {}", std::process::id());
                // Nobody reads stdout after this line: point it at
                // /dev/null so a stray write cannot hit a closed pipe.
                if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                    let _ = std::io::stdout().flush();
                    let _ = nix::unistd::dup2_stdout(&null);
                }
            })?;
        }
    }
    Ok(())
}
