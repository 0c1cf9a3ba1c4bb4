//! `exec`: run another command inside a running container.
//!
//! Kernel feature: `setns(2)` moves the calling process into an existing
//! namespace, named by a file descriptor of `/proc/PID/ns/KIND`. This is
//! `docker exec` and `nsenter(1)`. The order matters:
//!
//! - open every namespace file first: once we are in the container's mount
//!   namespace, the host's `/proc/PID` is out of reach;
//! - the user namespace first, so we hold the capabilities the others need;
//! - the mount namespace sets our root and current directory to the
//!   container's root;
//! - a PID namespace applies to *children* only, so after the last setns we
//!   fork, and the child execs the command;
//! - the command gets the container's restrictions, read from its first
//!   process: its capability bounding set (root of the container gets it as
//!   its effective and permitted sets too, as in `run`) and no_new_privs.
//!   While we are inside the container's namespaces we are not dumpable, so
//!   its processes cannot read our memory or open our `/proc/PID/exe`.
//!
//! Man pages: setns(2), nsenter(1), pid_namespaces(7), capabilities(7),
//! prctl(2) ("PR_SET_DUMPABLE").

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use ch01_chroot::launch::{
    ChildStep, SignalForwarding, exec_as_or_report, exit_code, explain, spawn_child, wait_for_exit,
};
use ch01_chroot::process::ExecPlan;
use ch01_chroot::start_pipe::StartPipe;
use ch01_chroot::{Process, StartError};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::prctl::set_dumpable;
use nix::unistd::{Pid, chdir};

use crate::capabilities::LinuxCapabilities;
use crate::container::ContainerError;
use crate::namespaces::Namespace;
use crate::security::{no_new_privs_of, set_no_new_privs};

/// The order in which namespaces are joined: user first, for the
/// capabilities the others need; mount last, because it changes our root.
pub(crate) const JOIN_ORDER: [Namespace; 7] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Network,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Mount,
];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "no process {0}: give the host PID of a running container's first process (ch02-namespaces run prints it)"
    )]
    NoSuchProcess(Pid),
    #[error("open {path}: {cause}")]
    Open { path: String, cause: std::io::Error },
    #[error("read the restrictions of process {pid} (/proc/{pid}/status): {cause}")]
    Restrictions { pid: Pid, cause: std::io::Error },
    #[error("setns {ns}: {errno}")]
    Setns { ns: &'static str, errno: Errno },
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Join the namespaces of `pid` (under `proc_root`) that differ from ours,
/// start `process` there, wait for it and return its exit code.
pub fn exec_in(pid: Pid, process: &Process, proc_root: &Path) -> Result<i32, ExecError> {
    exec_in_with(pid, process, proc_root, &|| Ok(()))
}

/// [`exec_in`] with a step the new process runs just before its exec, in
/// the container's namespaces (chapter 3 moves it into the container's
/// cgroups there, through files it opened beforehand).
// ANCHOR: exec_in
pub fn exec_in_with(
    pid: Pid,
    process: &Process,
    proc_root: &Path,
    before_exec: ChildStep,
) -> Result<i32, ExecError> {
    let child = exec_spawn(pid, process, proc_root, before_exec)?;
    let status = wait_for_exit(child).map_err(|errno| {
        ContainerError::from(StartError::Syscall {
            call: "waitpid",
            errno,
        })
    })?;
    Ok(exit_code(status))
}
// ANCHOR_END: exec_in

/// [`exec_in_with`]'s first half: start the command in the container and
/// return its host PID once it has exec'd, without waiting for it (an OCI
/// runtime's `exec -d`). The calling process is left in the container's
/// namespaces.
// ANCHOR: exec_spawn
pub fn exec_spawn(
    pid: Pid,
    process: &Process,
    proc_root: &Path,
    before_exec: ChildStep,
) -> Result<Pid, ExecError> {
    let target = proc_root.join(pid.to_string());
    if !target.exists() {
        return Err(ExecError::NoSuchProcess(pid));
    }
    // 1. Open every namespace we will join while the host's /proc is ours,
    //    and read the restrictions the command must keep.
    let joins = open_namespaces(&namespace_holder(&target), proc_root)?;
    let (caps, no_new_privs) = restrictions_of(pid, proc_root)?;
    let plan = ExecPlan::new(process).map_err(ContainerError::from)?;
    // 2. Join them, user namespace first (the list is in that order).
    join_in_order(&joins)?;
    // 3. In a container's user namespace we are whoever our host IDs map to
    //    (nobody, for host root): become its root, as `run` does.
    if joins.iter().any(|(ns, _)| *ns == Namespace::User) {
        crate::container::become_root()
            .map_err(|(step, errno)| ExecError::Setns { ns: step, errno })?;
    }
    // 4. Not dumpable from now on: the child we start shares our memory
    //    until it execs, inside the container's PID namespace.
    set_dumpable(false).map_err(|errno| ExecError::Setns {
        ns: "prctl PR_SET_DUMPABLE",
        errno,
    })?;
    // 5. The PID namespace takes effect for children: start one to exec,
    //    with the container's restrictions.
    spawn_in_pid_namespace(process, &plan, &caps, no_new_privs, before_exec)
}
// ANCHOR_END: exec_spawn

/// setns(2) into each opened namespace, in the list's order.
// ANCHOR: join_in_order
fn join_in_order(joins: &[(Namespace, File)]) -> Result<(), ExecError> {
    for (ns, file) in joins {
        setns(file.as_fd(), ns.clone_flag()).map_err(|errno| ExecError::Setns {
            ns: ns.proc_name(),
            errno,
        })?;
    }
    Ok(())
}
// ANCHOR_END: join_in_order

/// Start the child that execs the command, once we have joined the
/// container's PID namespace (it takes effect for children only); return
/// its host PID once it has exec'd. The child applies the container's
/// capabilities and no_new_privs just before its exec, as `run` does.
// ANCHOR: spawn_in_pid_namespace
fn spawn_in_pid_namespace(
    process: &Process,
    plan: &ExecPlan,
    caps: &LinuxCapabilities,
    no_new_privs: bool,
    before_exec: ChildStep,
) -> Result<Pid, ExecError> {
    let start = StartPipe::new()
        .map_err(|errno| StartError::Syscall {
            call: "pipe2",
            errno,
        })
        .map_err(ContainerError::from)?;
    let _forwarding = SignalForwarding::start();
    let child = spawn_child(CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK, &mut || {
        let pipe = start.child_end();
        // setns(CLONE_NEWNS) already moved our root and cwd to the
        // container's root; say so explicitly, as every engine does.
        if let Err(errno) = chdir("/") {
            pipe.fail("chdir /", b"", errno);
        }
        // The caller's step (chapter 3: into the container's cgroups).
        if let Err((step, errno)) = before_exec() {
            pipe.fail(step, b"", errno);
        }
        // The container's restrictions, as `run` applies them.
        if no_new_privs && let Err((step, errno)) = set_no_new_privs() {
            pipe.fail(step, b"", errno);
        }
        exec_as_or_report(plan, &pipe, &|plan| caps.apply(&|| plan.set_user()))
    })
    .map_err(ContainerError::from)?;
    if let Err(failure) = start.into_parent().wait_for_exec() {
        let _ = wait_for_exit(child);
        return Err(
            ContainerError::from(explain(failure, Path::new("the container"), process)).into(),
        );
    }
    Ok(child)
}
// ANCHOR_END: spawn_in_pid_namespace

/// The `/proc` directory whose `ns/` files we may open for the container
/// whose first process is at `target`. Our init is not dumpable (its memory
/// is a copy of the engine's), so only a process with CAP_SYS_PTRACE may
/// open its `ns/` files: root can, a rootless engine cannot. Then any child
/// of it will do, the command first: it is in the same namespaces.
fn namespace_holder(target: &Path) -> PathBuf {
    if std::fs::read_link(target.join("ns/mnt")).is_ok() {
        return target.to_path_buf();
    }
    let pid = target
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let children = std::fs::read_to_string(target.join("task").join(&pid).join("children"));
    let proc_root = target.parent().unwrap_or(Path::new("/proc"));
    children
        .unwrap_or_default()
        .split_whitespace()
        .map(|child| proc_root.join(child))
        .find(|child| std::fs::read_link(child.join("ns/mnt")).is_ok())
        .unwrap_or_else(|| target.to_path_buf())
}

/// The namespace files of the process at `target` (`/proc/PID`) that differ
/// from ours, opened, in [`JOIN_ORDER`].
// ANCHOR: open_namespaces
fn open_namespaces(target: &Path, proc_root: &Path) -> Result<Vec<(Namespace, File)>, ExecError> {
    let mut joins = Vec::new();
    for ns in JOIN_ORDER {
        let theirs = target.join("ns").join(ns.proc_name());
        let ours = proc_root.join("self/ns").join(ns.proc_name());
        let same = std::fs::read_link(&theirs).ok() == std::fs::read_link(&ours).ok();
        if same {
            continue; // joining our own user namespace is EINVAL
        }
        let file = File::open(&theirs).map_err(|cause| ExecError::Open {
            path: theirs.display().to_string(),
            cause,
        })?;
        joins.push((ns, file));
    }
    Ok(joins)
}
// ANCHOR_END: open_namespaces

/// What the container's first process keeps: its bounding set (which root
/// of the container gets as its effective and permitted sets too, as `run`
/// gives them) and whether no_new_privs is set.
// ANCHOR: restrictions_of
pub fn restrictions_of(pid: Pid, proc_root: &Path) -> Result<(LinuxCapabilities, bool), ExecError> {
    let pid_dir = pid.to_string();
    let cause = |cause| ExecError::Restrictions { pid, cause };
    let bounding = LinuxCapabilities::of_process(proc_root, &pid_dir)
        .map_err(cause)?
        .bounding;
    let no_new_privs = no_new_privs_of(proc_root, &pid_dir).map_err(cause)?;
    Ok((LinuxCapabilities::root_with(bounding), no_new_privs))
}
// ANCHOR_END: restrictions_of
