//! `ch02-namespaces`: chapter 1's engine, isolated by namespaces.

use std::process::ExitCode;

use ch01_chroot::escape;
use ch02_namespaces::cli::{self, RunArgs, container_config};
use ch02_namespaces::container::{Hooks, run_container_with};
use ch02_namespaces::sealed_exe;
use clap::{Parser, Subcommand};

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
    Mkrootfs(cli::MkrootfsArgs),
}

fn main() -> ExitCode {
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch02-namespaces: {err:#}");
            let code = cli::exit_code(&err);
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    // Before a container exists: run from a binary it cannot write.
    if !matches!(command, Command::Mkrootfs(_)) {
        sealed_exe::ensure_sealed()?;
    }
    match command {
        Command::Run(args) => run(args, &|| Ok(())),
        Command::Escape { run: args } => run(args, &escape::break_out_of_chroot),
        Command::Exec { pid, cmd } => cli::exec_command(pid, cmd),
        Command::Mkrootfs(args) => cli::mkrootfs_command(&args),
    }
}

fn run(args: RunArgs, before_exec: ch01_chroot::launch::ChildStep) -> anyhow::Result<i32> {
    let config = container_config(args.namespaces, args.process, args.rootfs, args.cmd)?;
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
