//! `exec`: a process started in a running container joins its cgroups.
//!
//! Kernel feature: a new process starts in its parent's cgroup, and
//! `setns(2)` moves a process into namespaces, never into a cgroup. So
//! chapter 2's `exec` leaves the new process in the engine's cgroup:
//! outside the container's memory and pids limits and its device rules,
//! missing from its stats, and running on while the container is paused.
//! `docker exec` puts it where the container's first process is, and so
//! do we:
//!
//! 1. find that cgroup from the first process's `/proc/PID/cgroup`
//!    ([`Cgroup::of_process`]);
//! 2. refuse a paused container, as runc does: a process moved into a
//!    frozen cgroup freezes at once, before it even starts its command;
//! 3. open the cgroup's `cgroup.procs` files, while the host's
//!    /sys/fs/cgroup is still reachable (joining the container's mount
//!    namespace hides it);
//! 4. join the namespaces (chapter 2), and in the new process, just before
//!    its exec, write `0` ("the writer") into each file.
//!
//! The kernel checks such a write against whoever *opened* the file (its
//! credentials, and since Linux 5.16 its cgroup namespace), not the
//! process that writes: the engine opened them, as root, in the host's
//! namespaces. Only a process can move itself with `0`: the new process
//! is in the container's PID namespace, where its host PID means nothing.
//!
//! Man pages: cgroups(7) ("Creating cgroups and moving processes"),
//! setns(2); the kernel's Documentation/admin-guide/cgroup-v2.rst
//! ("Migration and Ownership").

use std::os::fd::OwnedFd;
use std::path::Path;

use ch02_namespaces::exec::ExecError;
use ch02_namespaces::mounts::StepResult;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::{Pid, write};

use crate::error::CgroupError;
use crate::{Cgroup, detect};

/// The `cgroup.procs` files of a cgroup, open for writing.
pub struct CgroupJoin {
    procs: Vec<OwnedFd>,
}

impl CgroupJoin {
    /// Open `cgroup.procs` in each of `cgroup`'s directories.
    pub fn open(cgroup: &Cgroup) -> Result<CgroupJoin, CgroupError> {
        let mut procs = Vec::new();
        for dir in cgroup.paths() {
            let path = dir.join("cgroup.procs");
            let fd = open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(
                |errno| CgroupError::Syscall {
                    call: "open",
                    path,
                    errno,
                },
            )?;
            procs.push(fd);
        }
        Ok(CgroupJoin { procs })
    }

    /// Move the calling process into the cgroup (in the new process:
    /// system calls only).
    pub fn join(&self) -> StepResult {
        for fd in &self.procs {
            write(fd, b"0").map_err(|e| ("join the container's cgroup (cgroup.procs)", e))?;
        }
        Ok(())
    }
}

/// `exec PID CMD...` (the binary `engine`): chapter 2's exec, with the new
/// process in the cgroups of the container whose first process is PID.
// ANCHOR: exec_command
pub fn exec_command(engine: &str, pid: i32, cmd: Vec<String>) -> anyhow::Result<i32> {
    let proc_root = Path::new("/proc");
    let target = Pid::from_raw(pid);
    if !proc_root.join(pid.to_string()).exists() {
        return Err(ExecError::NoSuchProcess(target).into());
    }
    // 1. The container's cgroup: where its first process is.
    let cgroup = Cgroup::of_process(&detect(proc_root)?, proc_root, target)?;
    // 2. Not into a paused container: the new process would freeze there.
    if cgroup.is_frozen()? {
        anyhow::bail!(
            "container {id} is paused: unpause it first (`{engine} unpause {id}`); a process started in it now would be frozen before it ran",
            id = cgroup.id()
        );
    }
    // 3. Its cgroup.procs files, opened while the host's cgroupfs is ours.
    let join = CgroupJoin::open(&cgroup)?;
    // 4. Chapter 2's exec; the new process moves itself in before it execs.
    ch02_namespaces::cli::exec_command_with(pid, cmd, &|| join.join())
}
// ANCHOR_END: exec_command
