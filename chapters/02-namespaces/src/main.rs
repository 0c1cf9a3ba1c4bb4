//! `ch02-namespaces`: chapter 1's engine, isolated by namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ch01_chroot::error::EXIT_ENGINE;
use ch01_chroot::rootfs::{self, Source};
use ch01_chroot::{Process, escape};
use ch02_namespaces::container::{ContainerConfig, ContainerError, Hooks, run_container_with};
use ch02_namespaces::exec::{ExecError, exec_in};
use ch02_namespaces::idmap::IdMapping;
use ch02_namespaces::namespaces::{self, Namespace};
use clap::{Args, Parser, Subcommand};
use nix::unistd::{Gid, Pid, Uid};

/// Chapter 2 of Berth: a container is a process in its own namespaces.
#[derive(Parser)]
#[command(name = "ch02-namespaces", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD in new namespaces with ROOTFS as its root (pivot_root).
    ///
    /// All seven namespaces by default; a tiny init runs as PID 1. Exit codes
    /// as in chapter 1: CMD's status, 128+N for signal N, 125/126/127.
    Run(RunArgs),
    /// Run CMD inside the running container whose first process is PID
    /// (joins its namespaces with setns, like `docker exec`).
    Exec {
        /// The host PID of the container's first process (printed by run).
        pid: i32,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Try chapter 1's chroot escape inside a container: it finds no way out.
    Escape {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Make a minimal root filesystem in DIR (chapter 1's mkrootfs).
    Mkrootfs {
        /// Where to take the programs from.
        #[arg(long, value_enum, default_value_t = Source::Auto)]
        from: Source,
        /// The directory to create (it may exist, but must be empty).
        dir: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The container's hostname (default: a random container id).
    #[arg(long)]
    hostname: Option<String>,
    /// The namespaces to create, comma-separated: mnt,uts,ipc,pid,net,user,cgroup or all.
    #[arg(long, default_value = "mnt,uts,ipc,pid,net,cgroup", value_parser = namespaces::parse_list)]
    ns: namespaces::Namespaces,
    /// Map your own uid and gid to root in a user namespace (the default when
    /// not run as root).
    #[arg(long)]
    rootless: bool,
    /// As root: add a user namespace with --uidmap/--gidmap (default
    /// 0:100000:65536).
    #[arg(long)]
    userns: bool,
    /// A uid mapping CONTAINER:HOST:SIZE for --userns (repeatable).
    #[arg(long, value_parser = IdMapping::parse)]
    uidmap: Vec<IdMapping>,
    /// A gid mapping CONTAINER:HOST:SIZE for --userns (repeatable).
    #[arg(long, value_parser = IdMapping::parse)]
    gidmap: Vec<IdMapping>,
    /// Run CMD itself as PID 1, without the tiny init (to see why it's there).
    #[arg(long)]
    no_init: bool,
    /// The directory to use as /.
    rootfs: PathBuf,
    /// The command and its arguments, looked up on PATH inside ROOTFS.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch02-namespaces: {err:#}");
            let code = if let Some(e) = err.downcast_ref::<ContainerError>() {
                e.exit_code()
            } else if let Some(ExecError::Container(e)) = err.downcast_ref::<ExecError>() {
                e.exit_code()
            } else {
                EXIT_ENGINE
            };
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run(args, &|| Ok(())),
        Command::Escape { run: args } => run(args, &escape::break_out_of_chroot),
        Command::Exec { pid, cmd } => {
            let process = Process::new(cmd, "", std::env::var("TERM").ok().as_deref());
            Ok(exec_in(
                Pid::from_raw(pid),
                &without_hostname(process),
                "/proc".as_ref(),
            )?)
        }
        Command::Mkrootfs { from, dir } => {
            let report = rootfs::mkrootfs(&dir, from, "/".as_ref()).context("mkrootfs")?;
            println!("rootfs {}: {} entries", dir.display(), report.entries);
            Ok(0)
        }
    }
}

fn run(args: RunArgs, before_exec: ch01_chroot::launch::ChildStep) -> anyhow::Result<i32> {
    let config = container_config(args)?;
    let hooks = Hooks {
        before_exec,
        on_start: &|pid| {
            eprintln!(
                "ch02-namespaces: container {} started, pid {pid}",
                config.hostname
            )
        },
        ..Hooks::default()
    };
    Ok(run_container_with(&config, &hooks)?)
}

/// Turn the flags into a ContainerConfig: which namespaces, which maps.
fn container_config(args: RunArgs) -> anyhow::Result<ContainerConfig> {
    let mut namespaces = args.ns;
    let root = Uid::effective().is_root();
    let rootless = args.rootless || !root;
    let (uid_mappings, gid_mappings) = if rootless {
        // Rootless: the only IDs we may map are our own.
        namespaces.insert(Namespace::User);
        (
            vec![IdMapping::root_is(Uid::effective().as_raw())],
            vec![IdMapping::root_is(Gid::effective().as_raw())],
        )
    } else if args.userns || namespaces.contains(&Namespace::User) {
        namespaces.insert(Namespace::User);
        let default = IdMapping::parse("0:100000:65536")?;
        let uids = if args.uidmap.is_empty() {
            vec![default]
        } else {
            args.uidmap
        };
        let gids = if args.gidmap.is_empty() {
            uids.clone()
        } else {
            args.gidmap
        };
        (uids, gids)
    } else {
        anyhow::ensure!(
            args.uidmap.is_empty() && args.gidmap.is_empty(),
            "--uidmap and --gidmap need a user namespace: add --userns"
        );
        (vec![], vec![])
    };
    let hostname = args.hostname.unwrap_or_else(random_id);
    let process = Process::new(args.cmd, &hostname, std::env::var("TERM").ok().as_deref());
    Ok(ContainerConfig {
        rootfs: args.rootfs,
        process,
        namespaces,
        hostname,
        uid_mappings,
        gid_mappings,
        deny_setgroups: rootless,
        init: !args.no_init,
    })
}

/// exec joins a container: it has its own hostname, so HOSTNAME is left out.
fn without_hostname(mut process: Process) -> Process {
    process.env.retain(|kv| !kv.starts_with("HOSTNAME="));
    process
}

/// A short random container id, like docker's: 12 hex digits from the
/// kernel's random pool.
fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        bytes[..4].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
