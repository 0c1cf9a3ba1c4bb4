//! `ch03-cgroups`: chapter 2's engine, with limits.

use std::path::Path;
use std::process::ExitCode;

use ch02_namespaces::cli::{self, RunArgs, container_config, random_id};
use ch03_cgroups::cli::{
    DevicesView, LimitArgs, default_capabilities, devices_text, run_limited, stats_lines,
};
use ch03_cgroups::{Cgroup, detect};
use clap::{Args, Parser, Subcommand};

/// Chapter 3 of Berth: a container is a process in its own namespaces and
/// its own cgroup.
#[derive(Parser)]
#[command(name = "ch03-cgroups", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD in new namespaces and a cgroup of its own, with limits.
    ///
    /// The limits take docker's flag names. When the kernel's OOM killer ends
    /// the command, the engine says so and exits 137. Exit codes as in
    /// chapters 1 and 2.
    Run(Box<RunCmd>),
    /// Show a running container's usage, read from its cgroup.
    Stats {
        /// The container's id (printed by run).
        id: String,
    },
    /// Freeze every process of a running container.
    Pause {
        /// The container's id (printed by run).
        id: String,
    },
    /// Thaw a paused container.
    Unpause {
        /// The container's id (printed by run).
        id: String,
    },
    /// Run CMD inside the running container whose first process is PID.
    ///
    /// The new process joins the container's namespaces and its cgroups
    /// (so its limits, stats and pause). Refused while it is paused.
    Exec {
        /// The host PID of the container's first process (printed by run).
        pid: i32,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Show the device rules a container gets.
    ///
    /// As a list of rules, as what cgroup v1 is given (writes to
    /// devices.deny and devices.allow), or as cgroup v2's BPF program.
    Devices {
        /// Also allow these devices, as `run --device-cgroup-rule` does.
        #[arg(long, value_name = "RULE")]
        device_cgroup_rule: Vec<String>,
        /// What to show.
        #[arg(long, value_enum, default_value = "rules")]
        show: DevicesView,
    },
    /// Make a minimal root filesystem in DIR (chapter 1's mkrootfs).
    Mkrootfs(cli::MkrootfsArgs),
}

#[derive(Args)]
struct RunCmd {
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    run: RunArgs,
}

fn main() -> ExitCode {
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch03-cgroups: {err:#}");
            let code = cli::exit_code(&err);
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    let proc_root = Path::new("/proc");
    if matches!(command, Command::Run(_) | Command::Exec { .. }) {
        // Before a container exists: run from a binary it cannot write.
        ch02_namespaces::sealed_exe::ensure_sealed()?;
    }
    match command {
        Command::Run(cmd) => run(*cmd),
        Command::Stats { id } => {
            let cgroup = Cgroup::open(&detect(proc_root)?, proc_root, &id)?;
            print!("{}", stats_lines(&cgroup.stats()?));
            Ok(0)
        }
        Command::Pause { id } => {
            Cgroup::open(&detect(proc_root)?, proc_root, &id)?.freeze()?;
            println!("{id}: paused");
            Ok(0)
        }
        Command::Unpause { id } => {
            Cgroup::open(&detect(proc_root)?, proc_root, &id)?.thaw()?;
            println!("{id}: running");
            Ok(0)
        }
        Command::Exec { pid, cmd } => ch03_cgroups::exec::exec_command("ch03-cgroups", pid, cmd),
        Command::Devices {
            device_cgroup_rule,
            show,
        } => {
            print!("{}", devices_text(&device_cgroup_rule, show)?);
            Ok(0)
        }
        Command::Mkrootfs(args) => cli::mkrootfs_command(&args),
    }
}

/// `run`: the container's id doubles as its default hostname.
fn run(cmd: RunCmd) -> anyhow::Result<i32> {
    let id = random_id();
    let mut namespaces = cmd.run.namespaces;
    namespaces.hostname.get_or_insert_with(|| id.clone());
    namespaces.security.defaults = Some(default_capabilities(&cmd.limits));
    let config = container_config(namespaces, cmd.run.process, cmd.run.rootfs, cmd.run.cmd)?;
    run_limited("ch03-cgroups", &id, &config, &cmd.limits)
}
