//! Start a command in a root filesystem and wait for it: the life of every
//! container, in four system calls.
//!
//! Kernel features: the engine creates a child process (`fork(2)` — here its
//! lighter form, `clone(2)` with `CLONE_VM | CLONE_VFORK`, as `posix_spawn(3)`
//! does); the child confines itself and calls `execve(2)` to become the
//! command; the parent `waitpid(2)`s for it and reports how it ended. While it
//! waits, the parent passes on the signals someone sends *it* (`kill PID`), so
//! stopping the engine stops the container, as `docker run` does.
//!
//! Man pages: fork(2), clone(2), execve(2), waitpid(2), wait(2)
//! ("WIFSIGNALED"), sigaction(2), sigprocmask(2), signal(7).

use std::ffi::{CString, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sched::{CloneFlags, clone};
use nix::sys::signal::{
    SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, kill, sigaction, sigprocmask,
};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::chroot::chroot_into;
use crate::error::StartError;
use crate::fds::close_inherited_fds;
use crate::process::{ExecFailure, ExecPlan, Process};
use crate::start_pipe::{ChildFailure, ChildReporter, StartPipe};

/// A step the child runs after `chroot` and before `exec`. The child shares
/// the engine's memory until it execs: keep it to system calls (no
/// allocation, no locks, no writes to shared data).
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
    // Check what we can before the child exists, so errors are plain and early.
    check_rootfs(rootfs)?;
    let plan = ExecPlan::new(process)?;
    let rootfs_c = CString::new(rootfs.as_os_str().as_bytes())
        .map_err(|_| StartError::NulByte(rootfs.display().to_string()))?;
    let pipe = StartPipe::new().map_err(|errno| StartError::Syscall {
        call: "pipe2",
        errno,
    })?;

    // Catch signals sent to the engine before the child exists, so none
    // is lost while it starts; `spawn_child` tells the handler its pid.
    let _forwarding = SignalForwarding::start();
    // Start the child. It borrows our memory until it execs (see
    // `spawn_child`); the start pipe tells us how its steps went.
    let child = spawn_child(CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK, &mut || {
        child_main(&rootfs_c, &plan, after_chroot, &pipe.child_end())
    })?;
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
// ANCHOR_END: run_with

/// The child's steps, in order. Never returns: it execs or reports and exits.
// ANCHOR: child_main
fn child_main(
    rootfs: &CString,
    plan: &ExecPlan,
    after_chroot: ChildStep,
    pipe: &ChildReporter<'_>,
) -> ! {
    // Step 1: confine — the only isolation this chapter has.
    if let Err((step, errno)) = chroot_into(rootfs) {
        pipe.fail(step, rootfs.as_bytes(), errno);
    }
    // Step 2: whatever a caller adds (the escape demo breaks out here).
    if let Err((step, errno)) = after_chroot() {
        pipe.fail(step, b"", errno);
    }
    // Step 3: become the command, with no descriptor but 0, 1 and 2.
    exec_or_report(plan, pipe)
}
// ANCHOR_END: child_main

/// How the child takes on the command's identity just before the exec. In
/// this chapter that is [`ExecPlan::set_user`]; chapter 2 wraps it in the
/// capability steps that must come before and after the user switch.
pub type IdentityStep<'a> = &'a dyn Fn(&ExecPlan) -> Result<(), (&'static str, Errno)>;

/// Exec `plan`; if every candidate fails, report why over the start pipe
/// (the parent's [`explain`] turns the record into a message) and exit.
pub fn exec_or_report(plan: &ExecPlan, pipe: &ChildReporter<'_>) -> ! {
    exec_as_or_report(plan, pipe, &ExecPlan::set_user)
}

/// The child's last steps, with `identity` as the step that makes it the
/// command's user. Allocation-free.
// ANCHOR: exec_as_or_report
pub fn exec_as_or_report(plan: &ExecPlan, pipe: &ChildReporter<'_>, identity: IdentityStep) -> ! {
    // 1. Nothing of the engine's but stdin, stdout and stderr may reach the
    //    command: first, so that no later step can use a leaked descriptor
    //    either (a working directory of /proc/self/fd/7 would be outside).
    if let Err((step, errno)) = close_inherited_fds() {
        pipe.fail(step, b"", errno);
    }
    // 2. The working directory, then the identity.
    if let Err((step, errno)) = plan.enter_cwd() {
        pipe.fail(step, plan.cwd().to_bytes(), errno);
    }
    if let Err((step, errno)) = identity(plan) {
        pipe.fail(step, b"", errno);
    }
    // 3. Become the command.
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
// ANCHOR_END: exec_as_or_report

/// Size of the stack the child runs on until it execs. The child's steps
/// use a few kilobytes (nix copies each path into a PATH_MAX buffer).
const CHILD_STACK: usize = 256 * 1024;

/// Create a child process that runs `child`, which must exec or `_exit`.
///
/// This is `fork(2)` done the way `posix_spawn(3)` does it: `clone(2)` with
/// `CLONE_VM | CLONE_VFORK`. The child runs in *our* memory, on its own
/// stack, and we are suspended until it execs or exits — so nothing is
/// copied (a plain fork copies the page tables and then takes a page fault
/// for every page either side writes). `flags` is the extension point for
/// later chapters: chapter 2 passes the namespace flags here, and leaves out
/// `CLONE_VFORK`, because its parent has work to do while the child waits.
///
/// Signals are blocked around the clone: a handler of ours must never run in
/// the child while it shares our memory. The child resets every signal to
/// its default action before unblocking, as `posix_spawn` can.
// ANCHOR: spawn_child
pub fn spawn_child(flags: CloneFlags, child: &mut dyn FnMut() -> isize) -> Result<Pid, StartError> {
    let mut stack = vec![0u8; CHILD_STACK];
    // A child that shares our memory must keep us suspended until it execs,
    // or we would free the stack it runs on.
    let flags = if flags.contains(CloneFlags::CLONE_VM) {
        flags | CloneFlags::CLONE_VFORK
    } else {
        flags
    };
    let mut unblocked = SigSet::empty();
    let _ = sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut unblocked),
    );
    let in_child = Box::new(|| {
        reset_signal_handlers();
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&unblocked), None);
        // A panic must not unwind out of the child into the parent's frames:
        // stop here, with the engine's exit code.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut *child)) {
            Ok(code) => code,
            // SAFETY: ends the child at once; nothing of the parent's runs.
            Err(_) => unsafe { libc::_exit(crate::error::EXIT_ENGINE) },
        }
    });
    // SAFETY: the child only runs `in_child`, which makes system calls on
    // data prepared before this call and then execs or calls _exit(2); it
    // neither allocates nor returns into our frames, and no handler of ours
    // can run in it. Its stack is `stack`, which outlives it: with CLONE_VM
    // there is always CLONE_VFORK, so we resume only once it has exec'd or
    // exited; without CLONE_VM it runs on its own copy. SIGCHLD makes it an
    // ordinary child for waitpid(2).
    let pid = unsafe { clone(in_child, &mut stack, flags, Some(libc::SIGCHLD)) };
    if let Ok(pid) = pid {
        // Before signals are unblocked, so a pending one is forwarded.
        CHILD.store(pid.as_raw(), Ordering::SeqCst);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&unblocked), None);
    pid.map_err(|errno| StartError::Syscall {
        call: "clone",
        errno,
    })
}
// ANCHOR_END: spawn_child

/// Refuse a rootfs that is missing or not a directory, before starting a child.
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

/// In the child: give every signal its default action. The container must
/// not inherit the engine's choices — Rust's runtime ignores SIGPIPE, and a
/// shell pipeline inside would break without it.
fn reset_signal_handlers() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installs the default action; no handler code is involved.
        let _ = unsafe { sigaction(signal, &default) };
    }
}

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

// ANCHOR: forward
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
// ANCHOR_END: forward

impl SignalForwarding {
    /// Install the handlers. Signals are passed on once [`spawn_child`] has
    /// recorded the child's pid; until then they are dropped.
    pub fn start() -> Self {
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
