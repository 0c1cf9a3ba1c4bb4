//! Start a command in a root filesystem and wait for it: the life of every
//! container, in four system calls.
//!
//! Kernel features: `fork(2)` makes a copy of the engine; the copy (the
//! child) confines itself and calls `execve(2)` to become the command; the
//! parent `waitpid(2)`s for it and reports how it ended. While it waits, the
//! parent passes on the signals someone sends *it* (`kill PID`), so stopping
//! the engine stops the container, as `docker run` does.
//!
//! Man pages: fork(2), execve(2), waitpid(2), wait(2) ("WIFSIGNALED"),
//! sigaction(2), signal(7).

use std::ffi::{CString, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::chroot::chroot_into;
use crate::error::StartError;
use crate::process::{ExecFailure, ExecPlan, Process};
use crate::start_pipe::{ChildFailure, ChildReporter, StartPipe};

/// A step the child runs after `chroot` and before `exec`. It runs in the
/// forked child: keep it to system calls (no allocation, no locks).
pub type ChildStep<'a> = &'a dyn Fn() -> Result<(), (&'static str, Errno)>;

/// Run `process` with `rootfs` as its root directory; return its exit code.
pub fn run(rootfs: &Path, process: &Process) -> Result<i32, StartError> {
    run_with(rootfs, process, &|| Ok(()))
}

/// Like [`run`], with `after_chroot` run in the child between the chroot and
/// the exec — the extension point the escape demo uses.
// ANCHOR: run_with
pub fn run_with(
    rootfs: &Path,
    process: &Process,
    after_chroot: ChildStep,
) -> Result<i32, StartError> {
    // Check what we can before forking, so errors are plain and early.
    check_rootfs(rootfs)?;
    let plan = ExecPlan::new(process)?;
    let rootfs_c = CString::new(rootfs.as_os_str().as_bytes())
        .map_err(|_| StartError::NulByte(rootfs.display().to_string()))?;
    let pipe = StartPipe::new().map_err(|errno| StartError::Syscall {
        call: "pipe2",
        errno,
    })?;

    // SAFETY: the child runs only `child_main`, which makes system calls on
    // data prepared above and never returns; it allocates nothing, so the
    // fork is sound even if the calling program has other threads.
    match unsafe { fork() }.map_err(|errno| StartError::Syscall {
        call: "fork",
        errno,
    })? {
        ForkResult::Child => child_main(&rootfs_c, &plan, after_chroot, &pipe.into_child()),
        ForkResult::Parent { child } => {
            let _forwarding = SignalForwarding::start(child);
            if let Err(failure) = pipe.into_parent().wait_for_exec() {
                // The child exits right after reporting: reap it, then explain.
                let _ = wait_for_exit(child);
                return Err(explain(failure, rootfs, process));
            }
            let status = wait_for_exit(child).map_err(|errno| StartError::Syscall {
                call: "waitpid",
                errno,
            })?;
            Ok(exit_code(status))
        }
    }
}
// ANCHOR_END: run_with

/// The child's steps, in order. Never returns: it execs or reports and exits.
// ANCHOR: child_main
fn child_main(
    rootfs: &CString,
    plan: &ExecPlan,
    after_chroot: ChildStep,
    pipe: &ChildReporter,
) -> ! {
    // Step 1: confine — the only isolation this chapter has.
    if let Err((step, errno)) = chroot_into(rootfs) {
        pipe.fail(step, rootfs.as_bytes(), errno);
    }
    // Step 2: whatever a caller adds (the escape demo breaks out here).
    if let Err((step, errno)) = after_chroot() {
        pipe.fail(step, b"", errno);
    }
    // Step 3: become the command. Only returns if every candidate failed.
    match plan.exec() {
        ExecFailure::NotFound => {
            pipe.fail("exec-not-found", plan.command().to_bytes(), Errno::ENOENT)
        }
        ExecFailure::InterpreterMissing(path) => {
            pipe.fail("exec-interpreter", path.to_bytes(), Errno::ENOENT)
        }
        ExecFailure::NotExecutable(path, errno) => pipe.fail("exec-denied", path.to_bytes(), errno),
        ExecFailure::Other(path, errno) => pipe.fail("exec", path.to_bytes(), errno),
    }
}
// ANCHOR_END: child_main

/// Refuse a rootfs that is missing or not a directory, before forking.
pub fn check_rootfs(rootfs: &Path) -> Result<(), StartError> {
    match std::fs::metadata(rootfs) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StartError::RootfsNotDirectory(rootfs.to_path_buf())),
        Err(_) => Err(StartError::RootfsMissing(rootfs.to_path_buf())),
    }
}

/// Turn the child's failure record into the error the user reads.
pub fn explain(failure: ChildFailure, rootfs: &Path, process: &Process) -> StartError {
    let (step, detail) = failure.step.split_once(' ').unwrap_or((&failure.step, ""));
    let rootfs = rootfs.to_path_buf();
    match (step, failure.errno) {
        ("chroot", Errno::EPERM) => StartError::NotPermitted(rootfs),
        ("exec-not-found", _) => StartError::CommandNotFound {
            command: detail.to_string(),
            rootfs,
            path: process.path_var().to_string(),
        },
        ("exec-interpreter", _) => StartError::InterpreterMissing {
            path: detail.to_string(),
            rootfs,
        },
        ("exec-denied", errno) => StartError::NotExecutable {
            path: detail.to_string(),
            errno,
            rootfs,
        },
        _ => StartError::Child {
            step: failure.step,
            errno: failure.errno,
        },
    }
}

/// Wait until `child` has exited or been killed, retrying when a signal
/// interrupts the wait.
pub fn wait_for_exit(child: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(child, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(status),
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(errno) => return Err(errno),
        }
    }
}

/// The shell's rule: the exit status if the command exited, 128+N if signal
/// N killed it.
// ANCHOR: exit_code
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _core_dumped) => 128 + signal as i32,
        // Stopped/continued are only reported when asked for (WUNTRACED).
        _ => crate::error::EXIT_ENGINE,
    }
}
// ANCHOR_END: exit_code

/// The child the engine is waiting for; read by the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// The signals `docker run` passes on to the container.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// While alive, signals sent to the engine are passed on to the child.
///
/// A Ctrl-C typed at the terminal already reaches the child (it is in the
/// terminal's foreground process group with us), so signals the kernel sent
/// (`si_code == SI_KERNEL`) are not passed on again; signals another process
/// sent with kill(2) (`SI_USER`) are.
pub struct SignalForwarding {
    previous: Vec<(Signal, SigAction)>,
}

extern "C" fn forward(signal: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let from_terminal = unsafe { (*info).si_code } == libc::SI_KERNEL;
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0
        && !from_terminal
        && let Ok(signal) = Signal::try_from(signal)
    {
        // kill(2) is async-signal-safe.
        let _ = kill(Pid::from_raw(child), signal);
    }
}

impl SignalForwarding {
    pub fn start(child: Pid) -> Self {
        CHILD.store(child.as_raw(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::SigAction(forward),
            SaFlags::SA_SIGINFO | SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let previous = FORWARDED
            .iter()
            // SAFETY: `forward` only reads an atomic and calls kill(2), both
            // async-signal-safe.
            .filter_map(|&s| unsafe { sigaction(s, &action) }.ok().map(|old| (s, old)))
            .collect();
        SignalForwarding { previous }
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restores the disposition that was in place before.
            let _ = unsafe { sigaction(*signal, old) };
        }
        CHILD.store(0, Ordering::SeqCst);
    }
}
