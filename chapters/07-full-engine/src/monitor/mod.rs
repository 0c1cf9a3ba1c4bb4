//! The monitor: one small process per container, conmon's job.
//!
//! `berth run -d` returns at once, yet someone must stay with the
//! container: be the parent of its first process (only a parent learns an
//! exit status), hold its stdout and stderr and write them to the log,
//! keep its terminal, serve `attach`, apply the restart policy, and clean
//! up at the end. Docker's daemon (through containerd's shim) and podman
//! (through conmon) give each container such a process; so does Berth:
//! `berth-monitor`, a binary of its own so that it stays small (it runs as
//! long as the container, one per container).
//!
//! The start sequence (the engine waits on a pipe, fd 3, for step 6):
//!
//! 1. **Detach**: fork, the parent exits (the engine reaps it), the child
//!    makes a session of its own (setsid(2)): no terminal, no process
//!    group of the engine's, so a Ctrl-C at the engine's terminal does not
//!    reach it.
//! 2. **Become a child subreaper** (prctl(2) PR_SET_CHILD_SUBREAPER): the
//!    container's first process, orphaned when the runtime's `create`
//!    exits, is given to us instead of to PID 1.
//! 3. **Block SIGCHLD** and take it through a signalfd, in the one loop.
//! 4. **Write the pid file** (pid and start time) and **bind the socket**.
//! 5. **Create the container** ([`create`]): its streams, then the runtime.
//! 6. **Report** to the engine: `ok PID` (after `start` too, for `run -d`)
//!    or `error CODE MESSAGE`.
//! 7. **Serve** ([`serve`]) until the container is done for good; the
//!    engine's cleanup runs before the last exit code goes out.
//!
//! Read the modules in this order: [`config`], [`protocol`], [`create`],
//! [`jsonlog`], [`restart`], [`state`], [`serve`].
//!
//! Man pages: fork(2), setsid(2), prctl(2), signalfd(2), unix(7).

pub mod config;
pub mod create;
pub mod jsonlog;
pub mod protocol;
pub mod restart;
pub mod serve;
pub mod state;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use config::{MonitorConfig, ProcessId, pid_file, socket};
use serve::{Monitor, child_signals, exit_code_for_error, run_cleanup};

/// The fd on which the engine waits for the monitor's report.
pub const REPORT_FD: i32 = 3;

/// `berth-monitor CONFIG`: the whole life of a monitor; its exit code.
pub fn main(config_path: &Path) -> i32 {
    let config: MonitorConfig = match std::fs::read(config_path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(config) => config,
        Err(err) => {
            eprintln!("berth-monitor: {}: {err}", config_path.display());
            return 1;
        }
    };
    // SAFETY: fd 3 is the report pipe the engine gave us; nothing else in
    // this process owns it. Marked close-on-exec at once: no child of ours
    // (runtime, container, cleanup) may hold the engine's pipe open.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    let _ = nix::fcntl::fcntl(
        &report,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut report = std::fs::File::from(report);
    // Nothing else of the engine's (or of whoever started the engine) may
    // stay open here for the container's whole life: a pipe someone reads
    // to its end would never end.
    close_inherited_fds(REPORT_FD + 1);

    // 1. Detach from the engine: a child of our own, in its own session.
    // SAFETY: single-threaded here (nothing spawned a thread yet); the
    // parent only exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            // SAFETY: _exit ends this copy at once, running nothing.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(errno) => {
            let _ = writeln!(report, "error 125 fork: {errno}");
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    // Our own stderr: a log in the run directory, for diagnostics.
    redirect_stdio(&config.run_dir);

    // 2. Subreaper; 3. SIGCHLD through a signalfd.
    if let Err(errno) = nix::sys::prctl::set_child_subreaper(true) {
        let _ = writeln!(report, "error 125 prctl(PR_SET_CHILD_SUBREAPER): {errno}");
        return 1;
    }
    let signals = match child_signals() {
        Ok(fd) => fd,
        Err(errno) => {
            let _ = writeln!(report, "error 125 signalfd: {errno}");
            return 1;
        }
    };

    // 4. The pid file and the socket.
    let me = ProcessId::this(Path::new("/proc"));
    let pid_path = pid_file(&config.run_dir);
    if let Some(me) = me {
        let _ = crate::engine::record::write_atomic(&pid_path, me.to_line().as_bytes());
    }
    let socket_path = socket(&config.run_dir);
    let listener = match config::bind_in(&config.run_dir, config::SOCKET) {
        Ok(listener) => listener,
        Err(err) => {
            let _ = writeln!(report, "error 125 bind {}: {err}", socket_path.display());
            return 1;
        }
    };

    // 5. The container, if it is still wanted: a `run -d` killed before it
    //    had our report frees the container's lock, and an `rm` may have
    //    removed the container since; creating it now would leave a
    //    container no record names, and a cgroup no cleanup removes.
    //    The report goes first: the engine holds the container's lock
    //    until it has it, and recording needs that lock.
    let record = crate::engine::record::ContainerDir(config.container_dir.clone()).record();
    if !record.exists() {
        report_error(
            report,
            "the container was removed before its monitor started it",
        );
        drop(listener);
        let _ = std::fs::remove_dir_all(&config.run_dir);
        return 1;
    }
    let created = match create::create(&config) {
        Ok(created) => created,
        Err(message) => {
            report_error(report, &message);
            drop(listener);
            state::record_start_failure(&config, &message);
            run_cleanup(&config);
            return 1;
        }
    };
    let pid = created.pid;
    let mut monitor = Monitor::new(config.clone(), listener, signals, pid, created.io);

    // 6. Report (after starting it, for run -d: the engine records that).
    if config.start
        && let Err(message) = monitor.start(false)
    {
        report_error(report, &message);
        monitor.give_up(&message);
        return 1;
    }
    let _ = writeln!(report, "ok {pid}");
    drop(report);

    // 7. Serve.
    monitor.run();
    0
}

/// Close every descriptor from `first` up (close_range(2)).
fn close_inherited_fds(first: i32) {
    // SAFETY: close_range takes numbers and flags; closing descriptors no
    // Rust object owns yet (this runs before we open any) is sound.
    unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
}

/// Tell the engine why the container could not be made.
fn report_error(mut report: std::fs::File, message: &str) {
    let _ = writeln!(
        report,
        "error {} {}",
        exit_code_for_error(message),
        message.replace('\n', " ")
    );
}

/// stdin and stdout to /dev/null, stderr appended to `monitor.log`.
fn redirect_stdio(run_dir: &Path) {
    use std::os::fd::AsFd;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null.as_fd());
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
    if let Ok(log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("monitor.log"))
    {
        let _ = nix::unistd::dup2_stderr(log.as_fd());
    }
}
