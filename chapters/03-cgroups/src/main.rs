//! `ch03-cgroups`: chapter 2's engine, with limits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use ch01_chroot::rootfs::Source;
use ch02_namespaces::cli::{self, RunArgs, container_config, random_id};
use ch02_namespaces::container::{Hooks, run_container_with};
use ch03_cgroups::{Cgroup, LinuxResources, ResourceFlags, Stats, detect, format_size};
use clap::{Args, Parser, Subcommand};
use nix::unistd::Pid;

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
    Exec {
        /// The host PID of the container's first process (printed by run).
        pid: i32,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
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
struct RunCmd {
    #[command(flatten)]
    limits: ResourceFlags,
    /// Print what the container used (from its cgroup) on stderr when it ends.
    #[arg(long)]
    stats: bool,
    /// Run without a cgroup: no limits, no stats, no pause. For hosts where
    /// we may not make one (rootless without delegation).
    #[arg(long, conflicts_with = "stats")]
    no_cgroups: bool,
    #[command(flatten)]
    run: RunArgs,
}

fn main() -> ExitCode {
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
        Command::Exec { pid, cmd } => cli::exec_command(pid, cmd),
        Command::Mkrootfs { from, dir } => cli::mkrootfs_command(from, &dir),
    }
}

/// The start sequence of chapter 2, with a cgroup made first and the child
/// put in it before it is released.
// ANCHOR: run
fn run(cmd: RunCmd) -> anyhow::Result<i32> {
    // 1. Read the limits and refuse bad ones before anything exists.
    let resources = LinuxResources::from_flags(&cmd.limits)?;
    let id = random_id();
    let mut args = cmd.run;
    args.hostname.get_or_insert_with(|| id.clone());
    let config = container_config(args)?;

    // 2. The container's cgroup, with its limits written: a limit the host
    //    cannot apply fails here, before the container exists.
    let cgroup = if cmd.no_cgroups {
        if !resources.is_empty() {
            bail!(
                "--no-cgroups with a limit: a limit needs a cgroup; drop the limit or --no-cgroups"
            );
        }
        None
    } else {
        let proc_root = Path::new("/proc");
        let layout = detect(proc_root)?;
        Some(Cgroup::create(&layout, proc_root, &id, &resources)?)
    };

    // 3. Chapter 2's start sequence. The child joins the cgroup while it
    //    waits for release, so the command never runs unconfined, and
    //    unshares its cgroup namespace after that: it sees itself at the root.
    let join = |pid: Pid| {
        if let Some(cgroup) = &cgroup {
            cgroup.add_process(pid)?;
        }
        // Only now is it really starting: say so, with its id and host PID.
        eprintln!("ch03-cgroups: container {id} started, pid {pid}");
        Ok(())
    };
    let hooks = Hooks {
        before_release: &join,
        ..Hooks::default()
    };
    let code = run_container_with(&config, &hooks)?;

    // 4. How it ended, from the cgroup: the OOM killer, and the usage.
    let Some(cgroup) = cgroup else {
        return Ok(code);
    };
    if let Some(oom) = cgroup.oom_report()? {
        eprintln!("ch03-cgroups: {oom}");
    }
    if cmd.stats {
        for line in stats_lines(&cgroup.stats()?).lines() {
            eprintln!("ch03-cgroups: {line}");
        }
    }
    // 5. Kill whatever is left in it and remove it.
    cgroup.remove()?;
    Ok(code)
}
// ANCHOR_END: run

/// Usage as labelled lines.
fn stats_lines(stats: &Stats) -> String {
    let peak = stats.memory_peak.map_or("unknown".to_string(), format_size);
    let throttled = stats
        .nr_throttled
        .map_or("unknown".to_string(), |n| n.to_string());
    format!(
        "memory: {} (peak {peak})\ncpu: {:.3} s\npids: {}\nthrottled periods: {throttled}\n",
        format_size(stats.memory_current),
        stats.cpu_usage.as_secs_f64(),
        stats.pids_current,
    )
}
