//! The engine's side of a monitor: starting one, and talking to it.
//!
//! The engine starts `berth-monitor` (found beside its own binary, where
//! cargo and packages put it) with its instructions in `RUN/ID/monitor.json`
//! and a pipe as fd 3, and reads one line from the pipe: `ok PID` once the
//! container is created (and started, for `run -d`), or `error CODE
//! MESSAGE`. End-of-file without a line means the monitor died: its own
//! stderr is in `RUN/ID/monitor.log`.
//!
//! Afterwards the engine speaks to the monitor on its socket
//! (`crate::monitor::protocol`): `start`, `kill`, `wait`, `attach`.
//!
//! Man pages: pipe(2), dup2(2), unix(7), pidfd_open(2).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::monitor::REPORT_FD;
use crate::monitor::config::{MonitorConfig, ProcessId, live_monitor};
use crate::monitor::protocol::{AttachRequest, Request};

use super::{EngineError, Result};

/// The monitor's program: `BERTH_MONITOR`, else `berth-monitor` beside
/// the running binary.
pub fn monitor_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BERTH_MONITOR") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::msg(format!("find our own binary: {e}")))?;
    let path = exe.with_file_name("berth-monitor");
    if path.is_file() {
        Ok(path)
    } else {
        Err(EngineError::msg(format!(
            "{}: no such file: berth-monitor must be installed beside berth (cargo build builds both)",
            path.display()
        )))
    }
}

/// What the monitor reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Created (and started, if asked): the container's pid.
    Ok(i32),
    /// Could not: docker's exit code for it, and why.
    Error(i32, String),
}

/// Start a monitor for `config` and wait for its report.
pub fn spawn(config: &MonitorConfig) -> Result<Report> {
    let binary = monitor_binary()?;
    let run_dir = &config.run_dir;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| EngineError::msg(format!("{}: {e}", path.display()))
    };
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(run_dir))?;
    let file = MonitorConfig::file(run_dir);
    let json = serde_json::to_vec(config).expect("a monitor config serializes");
    super::record::write_atomic(&file, &json)?;

    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::msg(format!("pipe2: {e}")))?;
    let write_fd = write.as_raw_fd();
    let mut cmd = Command::new(&binary);
    cmd.arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls dup2(2), which is async-signal-safe; `write_fd` stays open in
    // the parent until after spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::dup2(write_fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::msg(format!("{}: {e}", binary.display())))?;
    drop(write);
    // The monitor forks at once and its first process exits: reap it.
    let _ = child.wait();
    let mut line = String::new();
    let _ = BufReader::new(std::fs::File::from(read)).read_line(&mut line);
    parse_report(&line).ok_or_else(|| {
        EngineError::msg(format!(
            "the container's monitor exited without a report: see {}",
            run_dir.join("monitor.log").display()
        ))
    })
}

fn parse_report(line: &str) -> Option<Report> {
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ok ") {
        return pid.parse().ok().map(Report::Ok);
    }
    let rest = line.strip_prefix("error ")?;
    let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Report::Error(code.parse().ok()?, message.to_string()))
}

/// Connect to the monitor of the container whose run directory is
/// `run_dir`, if one is alive.
pub fn connect(run_dir: &Path, proc_root: &Path) -> Option<UnixStream> {
    live_monitor(run_dir, proc_root)?;
    crate::monitor::config::connect_in(run_dir, crate::monitor::config::SOCKET).ok()
}

/// Send `request` and read the one-line answer (`None`: no monitor, or it
/// went away without answering).
pub fn request(run_dir: &Path, proc_root: &Path, request: &Request) -> Option<String> {
    let mut stream = connect(run_dir, proc_root)?;
    stream.write_all(request.to_line().as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(&mut stream).read_line(&mut answer).ok()?;
    (!answer.is_empty()).then(|| answer.trim_end().to_string())
}

/// Open an attach stream.
pub fn attach(run_dir: &Path, proc_root: &Path, request: AttachRequest) -> Option<UnixStream> {
    let mut stream = connect(run_dir, proc_root)?;
    stream
        .write_all(Request::Attach(request).to_line().as_bytes())
        .ok()?;
    Some(stream)
}

/// Wait until process `who` has exited (it is not our child: a pidfd
/// becomes readable when it exits), at most `timeout`. True if it did.
pub fn wait_for_process_exit(who: ProcessId, proc_root: &Path, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, who.pid, 0) };
    if fd >= 0 && who.alive(proc_root) {
        // SAFETY: the syscall just returned this new fd; we own it.
        let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) if left.is_zero() => return !who.alive(proc_root),
                Ok(0) => continue,
                Ok(_) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
    // No pidfd (or it went before we opened one): poll /proc.
    while who.alive(proc_root) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse() {
        assert_eq!(parse_report("ok 123\n"), Some(Report::Ok(123)));
        assert_eq!(
            parse_report("error 127 exec: \"nosuch\": not found\n"),
            Some(Report::Error(127, "exec: \"nosuch\": not found".into()))
        );
        assert_eq!(parse_report(""), None);
        assert_eq!(parse_report("garbage"), None);
    }
}
