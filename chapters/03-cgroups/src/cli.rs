//! The `run` of chapter 3 — chapter 2's start sequence inside a cgroup —
//! and its flags, shared with the chapters after this one, which wrap more
//! around it (chapter 4 mounts the rootfs first).

use std::path::Path;

use anyhow::bail;
use ch01_chroot::launch::ChildStep;
use ch02_namespaces::capabilities::{self, CapabilitySet};
use ch02_namespaces::container::{ContainerConfig, Hooks, run_container_with};
use ch02_namespaces::namespaces::Namespace;
use clap::Args;
use nix::unistd::Pid;

use crate::device_filter::device_filter;
use crate::devices::{DeviceCgroupState, LinuxDeviceCgroup, default_rules};
use crate::view::CgroupfsView;
use crate::{Cgroup, LinuxResources, Placement, ResourceFlags, Stats, detect, format_size};

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

// ANCHOR: default_capabilities
/// The capabilities a container gets with no flag: docker's whole default
/// set, MKNOD included, when its devices cgroup guards the device nodes it
/// may make (as root, with a cgroup); chapter 2's set without MKNOD when not.
pub fn default_capabilities(limits: &LimitArgs) -> CapabilitySet {
    if !limits.no_cgroups && Placement::for_current_user() == Placement::Root {
        capabilities::docker_default()
    } else {
        capabilities::without_devices_cgroup()
    }
}
// ANCHOR_END: default_capabilities

/// The start sequence of chapter 2, with a cgroup made first and the child
/// put in it before it is released. `engine` names the binary in messages.
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
    run_limited_as(engine, id, id, config, cmd, before_rootfs)
}

/// [`run_limited_with`], with a cgroup name of the caller's choosing
/// (`berth/CGROUP_NAME`): the id shown stays `id`. An engine whose
/// container names are only unique within one of its stores gives each
/// container a cgroup name unique on the host.
// ANCHOR: run
pub fn run_limited_as(
    engine: &str,
    id: &str,
    cgroup_name: &str,
    config: &ContainerConfig,
    cmd: &LimitArgs,
    before_rootfs: ChildStep,
) -> anyhow::Result<i32> {
    // 1. Read the limits and refuse bad ones before anything exists.
    let resources = LinuxResources::from_flags(&cmd.limits)?;

    // 2. The container's cgroup, with its limits and device rules written:
    //    a limit the host cannot apply fails here, before the container
    //    exists.
    let cgroup = create_cgroup(cgroup_name, resources, cmd.no_cgroups)?;

    // 3. What the container will see of its cgroup at /sys/fs/cgroup,
    //    read-only: planned here, since the child may only make syscalls.
    let view = plan_view(config, cgroup.is_some())?;
    let mount_view = || view.as_ref().map_or(Ok(()), CgroupfsView::mount);

    // 4. Chapter 2's start sequence. The child joins the cgroup while it
    //    waits for release, so the command never runs unconfined, and
    //    unshares its cgroup namespace after that: it sees itself at the
    //    root, and mounts that view once its new root is in place.
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
        after_rootfs: &mount_view,
        ..Hooks::default()
    };
    let code = run_container_with(config, &hooks)?;

    // 5. How it ended, from the cgroup: the OOM killer, and the usage.
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
    // 6. Kill whatever is left in it and remove it.
    cgroup.remove()?;
    Ok(code)
}
// ANCHOR_END: run

/// The container's cgroup `berth/NAME` with `resources` and, as root,
/// docker's device rules; `None` with `--no-cgroups` (which takes no limit).
// ANCHOR: create_cgroup
fn create_cgroup(
    name: &str,
    mut resources: LinuxResources,
    no_cgroups: bool,
) -> anyhow::Result<Option<Cgroup>> {
    if no_cgroups {
        if !resources.is_empty() {
            bail!(
                "--no-cgroups with a limit: a limit needs a cgroup; drop the limit or --no-cgroups"
            );
        }
        return Ok(None);
    }
    let proc_root = Path::new("/proc");
    let layout = detect(proc_root)?;
    let placement = Placement::for_current_user();
    // Docker's device rules, as root: no device node but the standard ones
    // can be opened, whatever nodes the container makes. (Without root, its
    // user namespace already keeps it from making any.)
    if placement == Placement::Root {
        resources.devices = default_rules(&resources.devices);
    }
    let cgroup = Cgroup::create_with(&layout, proc_root, name, &resources, placement)?;
    Ok(Some(cgroup))
}
// ANCHOR_END: create_cgroup

/// The mounts of the container's /sys/fs/cgroup, if it gets one: only in a
/// mount namespace of its own (else a mount would land in the host's tree),
/// and only where the host has cgroups (with `--no-cgroups` it may not).
fn plan_view(config: &ContainerConfig, has_cgroup: bool) -> anyhow::Result<Option<CgroupfsView>> {
    if !config.namespaces.contains(&Namespace::Mount) {
        return Ok(None);
    }
    let proc_root = Path::new("/proc");
    let layout = match detect(proc_root) {
        Ok(layout) => layout,
        Err(_) if !has_cgroup => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    Ok(Some(CgroupfsView::plan(&layout, proc_root)?))
}

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

/// How `devices` shows the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DevicesView {
    /// The rule list, in order, as the OCI runtime spec has it.
    Rules,
    /// What cgroup v1 is given: the writes to devices.deny and devices.allow.
    V1,
    /// What cgroup v2 is given: the BPF program, one instruction a line.
    Bpf,
}

/// `devices`: the device rules a container gets (docker's, with `extra`
/// docker-format rules), shown as `view`.
pub fn devices_text(extra: &[String], view: DevicesView) -> anyhow::Result<String> {
    let extra = extra
        .iter()
        .map(|rule| LinuxDeviceCgroup::parse_docker(rule))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = default_rules(&extra);
    let state = DeviceCgroupState::from_rules(&rules)?;
    Ok(match view {
        DevicesView::Rules => rules.iter().map(|r| format!("{r}\n")).collect(),
        DevicesView::V1 => state
            .v1_writes()
            .iter()
            .map(|(file, line)| format!("{file} {line}\n"))
            .collect(),
        DevicesView::Bpf => device_filter(&state).to_string(),
    })
}
