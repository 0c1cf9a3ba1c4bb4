//! The container's PID 1: a tiny init, like `tini` or `docker run --init`.
//!
//! Kernel feature: the first process in a new PID namespace is its *init*,
//! and the kernel gives init two jobs no other process has. When any process
//! in the namespace dies, its children are re-parented to init, which must
//! `waitpid(2)` for them when they exit, or they stay zombies for ever. And
//! init is protected from signals: one it has no handler for is dropped, so a
//! program that never expected to be PID 1 ignores Ctrl-C and `docker stop`.
//!
//! So the container's first process is not the command but this init. It
//! starts the command as its child, reaps every zombie, passes the signals
//! sent to it on to the command, and exits with the command's status. As in
//! tini, no signal handlers run: init blocks the signals it cares about and
//! takes them one at a time with `sigwaitinfo(2)`. A signal that is blocked is
//! never dropped, not even for PID 1: it waits, pending, until init takes it.
//!
//! Man pages: pid_namespaces(7) ("The namespace init process"), wait(2),
//! sigwaitinfo(2), sigprocmask(2), signal(7), fork(2), prctl(2)
//! ("PR_SET_CHILD_SUBREAPER").

use std::mem::MaybeUninit;

use ch01_chroot::error::EXIT_ENGINE;
use ch01_chroot::exit_code;
use ch01_chroot::fds::FIRST_INHERITED;
use ch01_chroot::launch::{IdentityStep, exec_as_or_report};
use ch01_chroot::process::ExecPlan;
use ch01_chroot::start_pipe::ChildReporter;
use nix::errno::Errno;
use nix::libc;
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signal::{kill, sigaction, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, close, fork};

/// The signals init passes on to the command: every signal someone may send
/// a container on purpose (`docker kill --signal`), tini's set. Left out:
/// SIGKILL and SIGSTOP, which cannot be blocked or caught; SIGCHLD, which is
/// init's own; the faults the kernel raises for the faulting process itself
/// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT: blocked, they
/// would hide a crash of init); and SIGTTIN/SIGTTOU, which the terminal
/// sends only to a process that touches it, and init never does.
const FORWARDED: [Signal; 17] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGALRM,
    Signal::SIGPIPE,
    Signal::SIGURG,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
];

/// Become the container's init: start the command as our child, pass
/// signals on to it, reap every zombie, and exit with the command's status
/// (128+N if signal N killed it).
///
/// Call it in the container's first process, where the start sequence would
/// otherwise exec: setup failures before the command starts are reported
/// over `pipe`, like any other step's, and the command's own exec reports
/// through it too. `identity` is what the command's process does just
/// before its exec (its user and capabilities).
// ANCHOR: run_as_init
pub fn run_as_init(plan: &ExecPlan, pipe: &ChildReporter<'_>, identity: IdentityStep) -> ! {
    // Step 1: have our children's deaths reported. An "ignore SIGCHLD"
    // inherited from whoever started us would make the kernel reap them
    // itself (wait(2), "NOTES"), and the command's exit status would be lost.
    let report_children = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installs the default action; no handler code is involved.
    if let Err(errno) = unsafe { sigaction(Signal::SIGCHLD, &report_children) } {
        pipe.fail("sigaction", b"SIGCHLD", errno);
    }

    // Step 2: block SIGCHLD and the forwarded signals *before* the command
    // exists, so that none sent from now on is lost: each stays pending until
    // step 5 takes it. Blocking is also what gets signals to PID 1 at all: the
    // kernel drops a signal PID 1 has no handler for, but never a blocked one.
    // (The engine already cloned us with these blocked; doing it again here
    // costs nothing and keeps init correct on its own.)
    let handled = init_signals();
    if let Err(errno) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None) {
        pipe.fail("sigprocmask", b"", errno);
    }

    // Step 3: start the command as our child. It stays in our process group
    // (no setsid): a Ctrl-C at the terminal reaches it directly.
    // SAFETY: init is a process of its own with a single thread (cloned
    // without CLONE_VM or CLONE_THREAD), and the child only makes system
    // calls on data prepared before the fork, then execs or _exits.
    let command = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            restore_signals_for_exec(pipe);
            exec_as_or_report(plan, pipe, identity)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(errno) => pipe.fail("fork", b"", errno),
    };

    // Step 4: close our copy of the start pipe. Init never execs, so its
    // close-on-exec never fires; the engine sees end-of-file only when the
    // command's exec has closed the last other copy. And since it never
    // execs, close every other descriptor above 2 it inherited, too.
    let _ = close(pipe.raw_fd());
    close_inherited();
    // Step 5: init is a copy of the engine, running inside the container
    // for the container's whole life: keep nothing but CAP_KILL, to pass
    // signals on to a command that may run as another user.
    if let Err((step, errno)) = keep_only_kill() {
        // The command runs already: stop it with us rather than leave a
        // privileged init behind it.
        let _ = kill(command, Signal::SIGKILL);
        pipe.fail(step, b"", errno);
    }

    forward_signals(command, &handled)
}
// ANCHOR_END: run_as_init

// ANCHOR: forward_signals
/// Steps 6 and 7 of [`run_as_init`]: pass signals on to the command and
/// reap zombies until the command is gone, then exit with its status.
fn forward_signals(command: Pid, handled: &SigSet) -> ! {
    // Step 6: take signals one at a time, for as long as the command lives.
    loop {
        let (signal, sent_by_kernel) = wait_for_signal(handled);
        match signal {
            Signal::SIGCHLD => {
                if let Some(code) = reap_zombies(command) {
                    // Step 7: the command is gone, and so is every zombie
                    // that was waiting: exit with its status. Processes
                    // still running die with us: when a namespace's init
                    // exits, the kernel SIGKILLs the rest of it.
                    exit_now(code);
                }
            }
            // A signal from the terminal (SI_KERNEL) went to its whole
            // foreground process group, the command included: passing it on
            // would deliver it twice. Everything sent with kill(2) is passed.
            _ if sent_by_kernel => {}
            // ESRCH: the command has just died; its SIGCHLD is on its way.
            _ => {
                let _ = kill(command, signal);
            }
        }
    }
}
// ANCHOR_END: forward_signals

/// Reap every child that has exited — the command and any orphan the kernel
/// gave us — and return the command's exit code if it was among them.
///
/// One SIGCHLD may stand for many deaths (a pending signal is a bit, not a
/// count), so this loops until no zombie is left. A child that dies after
/// the loop raises SIGCHLD anew, so none is missed.
// ANCHOR: reap
fn reap_zombies(command: Pid) -> Option<i32> {
    let mut command_code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) => {
                // Anyone else was an orphan: reaping it is all it needed.
                if pid == command {
                    command_code = Some(exit_code(status));
                }
            }
            Err(Errno::EINTR) => {}
            // No children at all: if the command's status never came to us,
            // the command is gone all the same.
            Err(Errno::ECHILD) => return Some(command_code.unwrap_or(EXIT_ENGINE)),
            // StillAlive: children remain, but none has exited.
            _ => return command_code,
        }
    }
}
// ANCHOR_END: reap

/// Block until one of `handled` is pending and take it; say whether the
/// kernel sent it (`si_code == SI_KERNEL`: the terminal's Ctrl-C, Ctrl-\ or
/// window change) rather than a process, with kill(2).
fn wait_for_signal(handled: &SigSet) -> (Signal, bool) {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::uninit();
        // SAFETY: `handled` is a valid sigset_t and `info` has room for a
        // siginfo_t, which the kernel fills in when the call succeeds. nix
        // has no sigwaitinfo; `SigSet::wait` drops the siginfo we need.
        let signo = unsafe { libc::sigwaitinfo(handled.as_ref(), info.as_mut_ptr()) };
        if signo < 0 {
            // EINTR (a stop and continue can cause it) is the only error a
            // valid set can get: try again.
            continue;
        }
        // SAFETY: sigwaitinfo succeeded, so it initialised `info`.
        let sent_by_kernel = unsafe { info.assume_init_ref() }.si_code == libc::SI_KERNEL;
        // Every signal in `handled` is one nix knows.
        if let Ok(signal) = Signal::try_from(signo) {
            return (signal, sent_by_kernel);
        }
    }
}

/// In the command's child, before exec: give back the signal mask init
/// started with, and set every signal to its default action. Init installs
/// no handlers, but it may have inherited "ignore" for some signal (Rust's
/// runtime ignores SIGPIPE in the engine; `nohup` ignores SIGHUP), and
/// execve(2) keeps an ignored signal ignored. A container starts clean.
fn restore_signals_for_exec(pipe: &ChildReporter<'_>) {
    // Real-time signals too, which nix's `Signal` does not cover. The C
    // library refuses the ones it keeps for itself (32 and 33 with glibc) and
    // SIGKILL/SIGSTOP; those calls fail harmlessly.
    for signo in 1..=libc::SIGRTMAX() {
        // SAFETY: installs the default action; no handler code is involved.
        unsafe { libc::signal(signo, libc::SIG_DFL) };
    }
    // And nothing blocked: the mask we inherited is init's, not the command's.
    if let Err(errno) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        pipe.fail("sigprocmask", b"", errno);
    }
}

/// Close every descriptor from 3 up (init never execs, so close-on-exec
/// marks would never take effect).
fn close_inherited() {
    // SAFETY: close_range(2) closes only this process's own descriptors;
    // init holds none it still needs (its start pipe copy is closed).
    let closed =
        unsafe { libc::syscall(libc::SYS_close_range, FIRST_INHERITED, libc::c_uint::MAX, 0) };
    if closed != 0 {
        // Before Linux 5.9: one by one, up to the descriptor limit.
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 1024));
        let last = hard.min(libc::c_int::MAX as u64) as libc::c_int;
        for fd in FIRST_INHERITED as libc::c_int..last {
            let _ = close(fd);
        }
    }
}

/// Init's own capabilities: CAP_KILL in the effective and permitted sets,
/// nothing else (the bounding set is the container's already, and init
/// keeps uid 0).
fn keep_only_kill() -> Result<(), (&'static str, Errno)> {
    use crate::capabilities::{Capability, CapabilitySet, LinuxCapabilities};
    // Only lower: an engine started without CAP_KILL (rootless tests of
    // init itself) keeps nothing.
    let held = crate::capabilities::permitted_now().map_err(|e| ("capget", e))?;
    let kill_only = CapabilitySet::EMPTY.with(Capability::CAP_KILL);
    let keep = CapabilitySet::from_bits(kill_only.bits() & held.bits());
    LinuxCapabilities::root_with(keep).set_process_sets()
}

/// SIGCHLD and the signals init passes on. The engine blocks them before it
/// clones the child that becomes init (see `container::run_container_with`).
pub fn init_signals() -> SigSet {
    let mut set = SigSet::from(Signal::SIGCHLD);
    FORWARDED.iter().for_each(|&signal| set.add(signal));
    set
}

/// End init with `code`.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process at once. Init is a copy of the
    // engine: exit(3) would run the engine's atexit handlers and flush its
    // stdio buffers a second time.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::Mutex;

    use ch01_chroot::Process;
    use ch01_chroot::start_pipe::{ChildFailure, StartPipe};
    use nix::fcntl::OFlag;
    use nix::sys::prctl::set_child_subreaper;
    use nix::unistd::{dup2_stdout, pipe2, read};

    use super::*;

    /// One test at a time: init never execs, so an init forked by one test
    /// would hold the start pipe of another test running alongside (pipes
    /// are close-on-exec, not close-on-fork) and hide its end-of-file.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn plan(script: &str) -> ExecPlan {
        let args = ["/bin/sh", "-c", script].map(String::from).to_vec();
        ExecPlan::new(&Process::new(args, "h", None)).unwrap()
    }

    /// What happened to a forked process running [`run_as_init`].
    struct Init {
        pid: Pid,
        started: Result<(), ChildFailure>,
    }

    impl Init {
        /// Fork a child that runs `script` under init; return once the start
        /// pipe says the command started (or failed to). If `subreaper`, the
        /// child first becomes a child subreaper, so orphans come to it as
        /// they would to PID 1. If `stdout` is given, it becomes init's (and
        /// so the command's) standard output.
        fn start(script: &str, subreaper: bool, stdout: Option<&OwnedFd>) -> Init {
            let plan = plan(script);
            let pipe = StartPipe::new().unwrap();
            // SAFETY: the child makes system calls on data prepared before
            // the fork and then runs `run_as_init`, which allocates nothing,
            // so the test harness's other threads cannot leave it a locked
            // allocator; it never returns into the harness.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => {
                    if subreaper && set_child_subreaper(true).is_err() {
                        exit_now(99);
                    }
                    if let Some(fd) = stdout
                        && dup2_stdout(fd.as_fd()).is_err()
                    {
                        exit_now(98);
                    }
                    run_as_init(&plan, &pipe.child_end(), &ExecPlan::set_user)
                }
                ForkResult::Parent { child } => Init {
                    pid: child,
                    started: pipe.into_parent().wait_for_exec(),
                },
            }
        }

        fn status(&self) -> WaitStatus {
            ch01_chroot::launch::wait_for_exit(self.pid).unwrap()
        }
    }

    #[test]
    fn exits_with_the_commands_status() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let init = Init::start("exit 3", false, None);
        assert_eq!(init.started, Ok(()));
        assert_eq!(init.status(), WaitStatus::Exited(init.pid, 3));
    }

    #[test]
    fn a_killed_command_gives_128_plus_the_signal() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let init = Init::start("kill -KILL $$", false, None);
        assert_eq!(init.status(), WaitStatus::Exited(init.pid, 137));
    }

    #[test]
    fn a_command_that_cannot_start_is_reported() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Process::new(vec!["/nonexistent/berth-test".into()], "h", None);
        p.env.clear();
        let plan = ExecPlan::new(&p).unwrap();
        let pipe = StartPipe::new().unwrap();
        // SAFETY: as in `Init::start`.
        let pid = match unsafe { fork() }.unwrap() {
            ForkResult::Child => run_as_init(&plan, &pipe.child_end(), &ExecPlan::set_user),
            ForkResult::Parent { child } => child,
        };
        let failure = pipe.into_parent().wait_for_exec().unwrap_err();
        assert_eq!(failure.step, "exec-not-found /nonexistent/berth-test");
        let status = ch01_chroot::launch::wait_for_exit(pid).unwrap();
        assert_eq!(status, WaitStatus::Exited(pid, EXIT_ENGINE));
    }

    #[test]
    fn the_command_starts_with_default_signals_and_an_empty_mask() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // The test harness ignores SIGPIPE (Rust does, in every program),
        // and `cargo test` may hand it more: the command must inherit none of
        // that (but 32 and 33, which glibc keeps for itself), nor init's
        // blocked signals.
        let init = Init::start(
            r#"ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)
               blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status)
               [ $((0x$ign & ~0x180000000)) -eq 0 ] || exit 1
               [ $((0x$blk)) -eq 0 ] || exit 2"#,
            false,
            None,
        );
        assert_eq!(init.status(), WaitStatus::Exited(init.pid, 0));
    }

    #[test]
    fn orphans_are_reaped() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // The inner sh starts a sleep and exits at once: the sleep is
        // orphaned and re-parented to init, the subreaper. The command checks
        // that, then waits (at most 5 s) for the orphan to vanish from /proc
        // — a zombie stays there until its parent reaps it.
        let init = Init::start(
            r#"orphan=$(sh -c 'sleep 0.2 >/dev/null 2>&1 & echo $!')
               read -r _ _ _ ppid _ < /proc/$orphan/stat || exit 1
               [ "$ppid" = "$PPID" ] || exit 2
               i=0
               while [ -e /proc/$orphan ]; do
                   i=$((i + 1)); [ $i -lt 100 ] || exit 3
                   sleep 0.05
               done
               exit 5"#,
            true,
            None,
        );
        assert_eq!(init.status(), WaitStatus::Exited(init.pid, 5));
    }

    #[test]
    fn signals_sent_to_init_reach_the_command() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        // The loop is bounded, so a broken init fails the test (status 0)
        // instead of hanging it.
        let init = Init::start(
            r#"trap 'exit 7' TERM
               echo ready
               i=0
               while [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done"#,
            false,
            Some(&ready_w),
        );
        drop(ready_w);
        // The engine's end-of-file came while the command still runs: init
        // closed its copy of the start pipe.
        assert_eq!(init.started, Ok(()));
        // Send SIGTERM only once the trap is set, or sh would die of it.
        let mut line = [0u8; 6];
        let mut len = 0;
        while len < line.len() {
            match read(&ready_r, &mut line[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::EINTR) => {}
                Err(errno) => panic!("read ready pipe: {errno}"),
            }
        }
        assert_eq!(&line[..len], b"ready\n");
        kill(init.pid, Signal::SIGTERM).unwrap();
        assert_eq!(init.status(), WaitStatus::Exited(init.pid, 7));
    }
}
