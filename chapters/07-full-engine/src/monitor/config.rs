//! What the engine tells a monitor, and where a monitor's files are.
//!
//! The engine writes `RUN/ID/monitor.json` and starts `berth-monitor` with
//! its path; everything the monitor will ever need is in it, so the monitor
//! never parses a command line or reads the engine's configuration. In the
//! same directory the monitor keeps its pid file (`monitor.pid`: pid and
//! start time, so a recycled pid is never taken for it), its socket
//! (`monitor.sock`), the runtime's console socket while `create` runs, the
//! runtime's error log and the container's pid file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::record::RestartPolicy;
use crate::runtime::state::proc_stat;

/// The monitor's instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    /// The container's name, for events.
    pub name: String,
    /// The image as the user named it, for events.
    pub image: String,
    pub bundle: PathBuf,
    /// The runtime's program and `--root`.
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// `RUN/ID`: this monitor's own files.
    pub run_dir: PathBuf,
    /// `ROOT/containers/ID`: the record, whose `State` the monitor writes.
    pub container_dir: PathBuf,
    /// `ROOT/events.log`.
    pub events: PathBuf,
    /// The json-file log and its rotation (`--log-opt max-size, max-file`).
    pub log_path: PathBuf,
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
    /// `-t`: a pty through the runtime's console socket.
    pub tty: bool,
    /// The pty's first size (rows, columns), if the client had a terminal.
    pub console_size: Option<(u16, u16)>,
    /// `-i`: keep the container's stdin open for attach clients.
    pub open_stdin: bool,
    /// Close the container's stdin when the first client that gave it
    /// input goes (docker's StdinOnce, set by `run -i`).
    pub stdin_once: bool,
    pub restart: RestartPolicy,
    /// The files where the kernel counts OOM kills in the container's
    /// cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    pub oom_files: Vec<PathBuf>,
    /// The engine's cleanup command, run once the container is done.
    pub cleanup: Vec<String>,
    /// Start the container right after creating it (`run -d`).
    pub start: bool,
}

impl MonitorConfig {
    pub fn file(run_dir: &Path) -> PathBuf {
        run_dir.join("monitor.json")
    }
}

pub fn pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("monitor.pid")
}
pub fn socket(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}
pub fn console_socket(run_dir: &Path) -> PathBuf {
    run_dir.join(CONSOLE_SOCKET)
}
pub fn runtime_log(run_dir: &Path) -> PathBuf {
    run_dir.join("runtime.log")
}
pub fn container_pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("container.pid")
}

/// A socket's address may be at most 107 bytes (`sun_path`), and a run
/// root deep in a temporary directory plus a 64-digit id is longer. So
/// sockets are named through their directory's descriptor:
/// `/proc/self/fd/N/NAME` is short whatever the directory's path.
fn through_dir<T>(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    f(&PathBuf::from(format!(
        "/proc/self/fd/{}/{name}",
        fd.as_raw_fd()
    )))
}

/// Bind a listening socket `name` in `dir` (a stale one is replaced).
pub fn bind_in(dir: &Path, name: &str) -> std::io::Result<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(dir.join(name));
    through_dir(dir, name, |p| std::os::unix::net::UnixListener::bind(p))
}

/// Connect to socket `name` in `dir`.
pub fn connect_in(dir: &Path, name: &str) -> std::io::Result<std::os::unix::net::UnixStream> {
    through_dir(dir, name, |p| std::os::unix::net::UnixStream::connect(p))
}

/// The monitor socket's and the console socket's names in the run dir.
pub const SOCKET: &str = "monitor.sock";
pub const CONSOLE_SOCKET: &str = "console.sock";

/// A process, identified for good: pid and start time (clock ticks since
/// boot, field 22 of /proc/PID/stat). After a reboot or a pid's reuse the
/// pair no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    /// This process.
    pub fn this(proc_root: &Path) -> Option<ProcessId> {
        let pid = std::process::id() as i32;
        proc_stat(proc_root, pid).map(|stat| ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    /// `PID START` in a pid file.
    pub fn read(path: &Path) -> Option<ProcessId> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut words = text.split_whitespace();
        Some(ProcessId {
            pid: words.next()?.parse().ok()?,
            start_time: words.next()?.parse().ok()?,
        })
    }

    pub fn to_line(self) -> String {
        format!("{} {}\n", self.pid, self.start_time)
    }

    /// Still this process, alive (a zombie is dead)?
    pub fn alive(self, proc_root: &Path) -> bool {
        proc_stat(proc_root, self.pid).is_some_and(|stat| {
            stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X' | 'x')
        })
    }
}

/// The monitor of the container whose run directory is `run_dir`, if it
/// is alive.
pub fn live_monitor(run_dir: &Path, proc_root: &Path) -> Option<ProcessId> {
    ProcessId::read(&pid_file(run_dir)).filter(|p| p.alive(proc_root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_bind_in_directories_of_any_length() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("d".repeat(100)).join("e".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        let listener = bind_in(&deep, SOCKET).unwrap();
        let _client = connect_in(&deep, SOCKET).unwrap();
        assert!(listener.accept().is_ok());
        assert!(socket(&deep).exists());
    }

    #[test]
    fn pid_files_name_a_process_for_good() {
        let tmp = tempfile::tempdir().unwrap();
        let me = ProcessId::this(Path::new("/proc")).unwrap();
        std::fs::write(pid_file(tmp.path()), me.to_line()).unwrap();
        assert_eq!(live_monitor(tmp.path(), Path::new("/proc")), Some(me));
        // Same pid, another start time: a recycled pid, not our process.
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        std::fs::write(pid_file(tmp.path()), other.to_line()).unwrap();
        assert_eq!(live_monitor(tmp.path(), Path::new("/proc")), None);
        std::fs::remove_file(pid_file(tmp.path())).unwrap();
        assert_eq!(live_monitor(tmp.path(), Path::new("/proc")), None);
    }
}
