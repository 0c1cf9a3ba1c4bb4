//! `ch02-namespaces`: chapter 1's engine, isolated by namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ch01_chroot::error::EXIT_ENGINE;
use ch01_chroot::rootfs::{self, Source};
use ch01_chroot::{Process, escape};
use ch02_namespaces::cli::{RunArgs, container_config};
use ch02_namespaces::container::{ContainerError, Hooks, run_container_with};
use ch02_namespaces::exec::{ExecError, exec_in};
use clap::{Parser, Subcommand};
use nix::unistd::Pid;

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
    /// Six namespaces by default (mnt, uts, ipc, pid, net, cgroup), and the
    /// seventh, user, when rootless or with --userns; a tiny init runs as
    /// PID 1. Exit codes as in chapter 1: CMD's status, 128+N for signal N,
    /// 125/126/127.
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

/// exec joins a container: it has its own hostname, so HOSTNAME is left out.
fn without_hostname(mut process: Process) -> Process {
    process.env.retain(|kv| !kv.starts_with("HOSTNAME="));
    process
}
