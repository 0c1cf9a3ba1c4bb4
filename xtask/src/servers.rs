//! A server measured by a benchmark: started on a loopback port, waited for,
//! its peak memory read while it still runs, stopped with SIGTERM.
//!
//! The peak is `VmHWM` ("high water mark") in `/proc/PID/status` (proc(5)):
//! the largest resident set the process has had since it started, over
//! everything the benchmark made it do. It has to be read before the process
//! exits, when `/proc/PID` goes away.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a server may take to listen, and to exit after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(30);

/// A server process, killed if dropped while still running.
pub struct ServerProcess {
    /// A short name for tables, e.g. `docker-registry`.
    pub label: String,
    /// `127.0.0.1:PORT`, where it listens.
    pub addr: String,
    child: Child,
    /// Its stdout and stderr (access logs included).
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its output to `log` and waits until `addr`
    /// accepts connections.
    pub fn start(label: &str, mut command: Command, addr: &str, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {label} ({:?})", command.get_program()))?;
        let mut server = ServerProcess {
            label: label.to_string(),
            addr: addr.to_string(),
            child,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{label} exited ({status}) before listening on {addr}; its log:\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{label} did not listen on {addr} within {} s; its log:\n{}",
                    PATIENCE.as_secs(),
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server wrote, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `VmHWM` of the running process, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path)
            .with_context(|| format!("read {path}: has {} exited?", self.label))?;
        parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
    }

    /// SIGTERM, then wait for the exit (SIGKILL after [`PATIENCE`]).
    pub fn stop(mut self) -> Result<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                let status = self.child.wait()?;
                bail!(
                    "{} ignored SIGTERM for {} s and was killed ({status})",
                    self.label,
                    PATIENCE.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `VmHWM:   1234 kB` line of a `/proc/PID/status`, in KiB.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tcat\nVmPeak:\t    8000 kB\nVmHWM:\t    1536 kB\nVmRSS:\t    1500 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1536));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn a_server_is_waited_for_measured_and_stopped() {
        // Any small HTTP server will do: Python's.
        let test = "servers::a_server_is_waited_for_measured_and_stopped";
        if !berth_test_support::registry::require_tool(test, "python3") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = berth_test_support::registry::free_port();
        let mut command = Command::new("python3");
        command
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path());
        let server = ServerProcess::start(
            "http.server",
            command,
            &format!("127.0.0.1:{port}"),
            &dir.path().join("log"),
        )
        .unwrap();
        assert!(
            server.peak_rss_kib().unwrap() > 1000,
            "python's peak RSS is over 1 MiB"
        );
        assert!(server.stop().is_ok());
    }
}
