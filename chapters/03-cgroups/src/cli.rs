//! The `run` of chapter 3 — chapter 2's start sequence inside a cgroup —
//! and its flags, shared with the chapters after this one, which wrap more
//! around it (chapter 4 mounts the rootfs first).

use std::path::Path;

use anyhow::bail;
use ch01_chroot::launch::ChildStep;
use ch02_namespaces::container::{ContainerConfig, Hooks, run_container_with};
use clap::Args;
use nix::unistd::Pid;

use crate::{Cgroup, LinuxResources, ResourceFlags, Stats, detect, format_size};

/// The limit flags of `run`, and what to do about cgroups.
#[derive(Args)]
pub struct LimitArgs {
    #[command(flatten)]
    pub limits: ResourceFlags,
    /// Print what the container used (from its cgroup) on stderr when it ends.
    #[arg(long)]
    pub stats: bool,
    /// Run without a cgroup: no limits, no stats, no pause. For hosts where
    /// we may not make one (rootless without delegation).
    #[arg(long, conflicts_with = "stats")]
    pub no_cgroups: bool,
}

/// The start sequence of chapter 2, with a cgroup made first and the child
/// put in it before it is released. `engine` names the binary in messages.
// ANCHOR: run
pub fn run_limited(
    engine: &str,
    id: &str,
    config: &ContainerConfig,
    cmd: &LimitArgs,
) -> anyhow::Result<i32> {
    run_limited_with(engine, id, config, cmd, &|| Ok(()))
}

/// [`run_limited`] with a step for the child before its rootfs is set up
/// (chapter 2's `before_rootfs` hook).
pub fn run_limited_with(
    engine: &str,
    id: &str,
    config: &ContainerConfig,
    cmd: &LimitArgs,
    before_rootfs: ChildStep,
) -> anyhow::Result<i32> {
    // 1. Read the limits and refuse bad ones before anything exists.
    let resources = LinuxResources::from_flags(&cmd.limits)?;

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
        Some(Cgroup::create(&layout, proc_root, id, &resources)?)
    };

    // 3. Chapter 2's start sequence. The child joins the cgroup while it
    //    waits for release, so the command never runs unconfined, and
    //    unshares its cgroup namespace after that: it sees itself at the root.
    let join = |pid: Pid| {
        if let Some(cgroup) = &cgroup {
            cgroup.add_process(pid)?;
        }
        // Only now is it really starting: say so, with its id and host PID.
        eprintln!("{engine}: container {id} started, pid {pid}");
        Ok(())
    };
    let hooks = Hooks {
        before_release: &join,
        before_rootfs,
        ..Hooks::default()
    };
    let code = run_container_with(config, &hooks)?;

    // 4. How it ended, from the cgroup: the OOM killer, and the usage.
    let Some(cgroup) = cgroup else {
        return Ok(code);
    };
    if let Some(oom) = cgroup.oom_report()? {
        eprintln!("{engine}: {oom}");
    }
    if cmd.stats {
        for line in stats_lines(&cgroup.stats()?).lines() {
            eprintln!("{engine}: {line}");
        }
    }
    // 5. Kill whatever is left in it and remove it.
    cgroup.remove()?;
    Ok(code)
}
// ANCHOR_END: run

/// Usage as labelled lines.
pub fn stats_lines(stats: &Stats) -> String {
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
