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
//!   fork, and the child execs the command.
//!
//! Man pages: setns(2), nsenter(1), pid_namespaces(7).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use ch01_chroot::launch::{
    SignalForwarding, exec_or_report, exit_code, explain, spawn_child, wait_for_exit,
};
use ch01_chroot::process::ExecPlan;
use ch01_chroot::start_pipe::StartPipe;
use ch01_chroot::{Process, StartError};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::unistd::{Pid, chdir};

use crate::container::ContainerError;
use crate::namespaces::Namespace;

/// The order in which namespaces are joined: user first, for the
/// capabilities the others need; mount last, because it changes our root.
const JOIN_ORDER: [Namespace; 7] = [
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
    #[error("setns {ns}: {errno}")]
    Setns { ns: &'static str, errno: Errno },
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Join the namespaces of `pid` (under `proc_root`) that differ from ours,
/// start `process` there, wait for it and return its exit code.
// ANCHOR: exec_in
pub fn exec_in(pid: Pid, process: &Process, proc_root: &Path) -> Result<i32, ExecError> {
    let target = proc_root.join(pid.to_string());
    if !target.exists() {
        return Err(ExecError::NoSuchProcess(pid));
    }
    // 1. Open every namespace we will join while the host's /proc is ours.
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
    let plan = ExecPlan::new(process).map_err(ContainerError::from)?;

    // 2. Join them, user namespace first (the list is in that order).
    for (ns, file) in &joins {
        setns(file.as_fd(), ns.clone_flag()).map_err(|errno| ExecError::Setns {
            ns: ns.proc_name(),
            errno,
        })?;
    }
    // 3. In a container's user namespace we are whoever our host IDs map to
    //    (nobody, for host root): become its root, as `run` does.
    if joins.iter().any(|(ns, _)| *ns == Namespace::User) {
        crate::container::become_root()
            .map_err(|(step, errno)| ExecError::Setns { ns: step, errno })?;
    }
    // 4. The PID namespace takes effect for children: start one to exec.
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
        exec_or_report(&plan, &pipe)
    })
    .map_err(ContainerError::from)?;
    if let Err(failure) = start.into_parent().wait_for_exec() {
        let _ = wait_for_exit(child);
        return Err(
            ContainerError::from(explain(failure, Path::new("the container"), process)).into(),
        );
    }
    let status = wait_for_exit(child).map_err(|errno| {
        ContainerError::from(StartError::Syscall {
            call: "waitpid",
            errno,
        })
    })?;
    Ok(exit_code(status))
}
// ANCHOR_END: exec_in
