//! `stop`, `kill`, `pause`, `unpause`, `restart`, `wait`, `rename`.
//!
//! Signals go through the monitor: it is the container's parent, so the
//! pid it signals cannot have been reused by another process (a parent's
//! dead child stays a zombie until the parent reaps it, and the monitor
//! reaps in the same loop that answers). Without a monitor (it was
//! killed), the runtime's `kill` does it.
//!
//! `stop` is docker's: the stop signal (`--stop-signal`, the image's
//! StopSignal, else SIGTERM), then up to `-t` seconds (`--stop-timeout`,
//! else 10) for the container to exit, then SIGKILL. A container stopped
//! by the user (`stop`, `kill`) is marked so, and its restart policy leaves
//! it stopped.
//!
//! Man pages: kill(2), signal(7); runc-kill(8), runc-pause(8).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::monitor_client::request;
use super::reconcile::reconcile;
use super::record::{Container, Status};
use super::runtime_client::RuntimeCli;
use super::{Engine, EngineError, Result};
use crate::monitor::config::live_monitor;
use crate::monitor::protocol::Request;

/// docker's default for `stop -t`.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// Parse a signal as docker's flags take it: `KILL`, `SIGKILL`, `9`.
pub fn parse_signal(text: &str) -> Result<i32> {
    crate::runtime::signals::parse_signal(text)
        .map_err(|_| EngineError::msg(format!("Invalid signal: {text}")))
}

impl Engine {
    /// The runtime client of container `c`.
    pub fn runtime_of(&self, c: &Container) -> RuntimeCli {
        let path = std::path::PathBuf::from(&c.berth.runtime_path);
        let name = super::runtime_client::runtime_name(&path);
        RuntimeCli {
            path,
            root: self.roots.runtime_root(&name),
        }
    }

    /// Send `signal` to container `c`'s first process.
    fn signal(&self, c: &Container, signal: i32) -> Result<()> {
        let run_dir = self.roots.run_dir(&c.id);
        if live_monitor(&run_dir, &self.proc_root).is_some() {
            match request(&run_dir, &self.proc_root, &Request::Kill(signal)) {
                Some(answer) if answer == "ok" => return Ok(()),
                Some(answer) if answer.contains("is not running") => return Ok(()),
                Some(answer) => {
                    return Err(EngineError::msg(
                        answer.strip_prefix("error ").unwrap_or(&answer).to_string(),
                    ));
                }
                // The monitor went meanwhile: the runtime's turn.
                None => {}
            }
        }
        self.runtime_of(c).kill(&c.id, signal)?;
        Ok(())
    }

    /// Mark container `id` stopped by the user; its record, reconciled.
    fn mark_stopped(&self, id: &str) -> Result<Container> {
        let dir = self.dir(id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile(self, &mut c)?;
        if c.state.status.may_have_process() && c.state.status != Status::Created {
            c.berth.manually_stopped = true;
            dir.save(&c)?;
        }
        Ok(c)
    }

    /// `kill -s SIGNAL`.
    pub fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let c = self.dir(id).load()?;
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::msg(format!(
                "Cannot kill container: {}: container {} is not running",
                c.name(),
                c.id
            )));
        }
        let c = self.mark_stopped(id)?;
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::msg(format!(
                "Cannot kill container: {}: container {} is not running",
                c.name(),
                c.id
            )));
        }
        self.signal(&c, signal)?;
        self.event("kill", &c, &[("signal", signal.to_string())]);
        // A frozen container takes its SIGKILL once thawed.
        if c.state.status == Status::Paused && signal == Signal::SIGKILL as i32 {
            let _ = self.runtime_of(&c).resume(&c.id);
        }
        Ok(())
    }

    /// `stop -t TIMEOUT [-s SIGNAL]`.
    pub fn stop(&self, id: &str, timeout: Option<i64>, signal: Option<i32>) -> Result<()> {
        let c = self.mark_stopped(id)?;
        let run_dir = self.roots.run_dir(id);
        match c.state.status {
            Status::Running | Status::Paused => {}
            Status::Restarting => {
                let _ = request(&run_dir, &self.proc_root, &Request::CancelRestart);
                self.wait_monitor_gone(id, Duration::from_secs(30));
                self.event("stop", &c, &[]);
                return Ok(());
            }
            // Not running: nothing to do (docker says nothing either).
            _ => return Ok(()),
        }
        let timeout = timeout
            .or(c.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let stop_signal = match (signal, &c.config.stop_signal) {
            (Some(signal), _) => signal,
            (None, Some(text)) => parse_signal(text)?,
            (None, None) => Signal::SIGTERM as i32,
        };
        let mut stopped = false;
        if timeout != 0 {
            self.signal(&c, stop_signal)?;
            self.event("kill", &c, &[("signal", stop_signal.to_string())]);
            if c.state.status == Status::Paused {
                let _ = self.runtime_of(&c).resume(&c.id);
            }
            let limit = if timeout < 0 {
                Duration::from_secs(u64::MAX / 4)
            } else {
                Duration::from_secs(timeout as u64)
            };
            stopped = self.wait_stopped(id, limit)?;
        }
        if !stopped {
            // The event first: the container dies at once, and its monitor
            // writes "die" as soon as it has (kill, then die, as docker's).
            self.event("kill", &c, &[("signal", "9".into())]);
            self.signal(&c, Signal::SIGKILL as i32)?;
            if c.state.status == Status::Paused {
                let _ = self.runtime_of(&c).resume(&c.id);
            }
            if !self.wait_stopped(id, Duration::from_secs(30))? {
                return Err(EngineError::msg(format!(
                    "container {id} did not stop after SIGKILL"
                )));
            }
        }
        self.event("stop", &c, &[]);
        Ok(())
    }

    /// Wait until container `id` is no longer running (and its monitor
    /// has finished with it), at most `limit`. True if it stopped.
    pub fn wait_stopped(&self, id: &str, limit: Duration) -> Result<bool> {
        let deadline = Instant::now() + limit;
        let run_dir = self.roots.run_dir(id);
        if let Some(monitor) = live_monitor(&run_dir, &self.proc_root) {
            // The monitor exits once the container is done and cleaned up.
            if super::monitor_client::wait_for_process_exit(monitor, &self.proc_root, limit) {
                return Ok(true);
            }
            // Still there: perhaps restarting, or still cleaning.
            let c = self.load_checked(id)?;
            return Ok(!matches!(c.state.status, Status::Running | Status::Paused));
        }
        // No monitor: watch the process until it is gone.
        loop {
            let c = self.load_checked(id)?;
            if !matches!(c.state.status, Status::Running | Status::Paused) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_monitor_gone(&self, id: &str, limit: Duration) {
        if let Some(monitor) = live_monitor(&self.roots.run_dir(id), &self.proc_root) {
            super::monitor_client::wait_for_process_exit(monitor, &self.proc_root, limit);
        }
    }

    /// `pause`: freeze every process of the container (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile(self, &mut c)?;
        match c.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::msg(format!(
                    "container {id} is already paused"
                )));
            }
            _ => return Err(EngineError::msg(format!("container {id} is not running"))),
        }
        self.runtime_of(&c).pause(id)?;
        c.state.set_status(Status::Paused);
        dir.save(&c)?;
        self.event("pause", &c, &[]);
        Ok(())
    }

    /// `unpause`: thaw it.
    pub fn unpause(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile(self, &mut c)?;
        if c.state.status != Status::Paused {
            return Err(EngineError::msg(format!("container {id} is not paused")));
        }
        self.runtime_of(&c).resume(id)?;
        c.state.set_status(Status::Running);
        dir.save(&c)?;
        self.event("unpause", &c, &[]);
        Ok(())
    }

    /// `wait`: block until container `id` stops; its exit code.
    pub fn wait(&self, id: &str) -> Result<i32> {
        let c = self.load_checked(id)?;
        if !c.state.status.may_have_process() || c.state.status == Status::Created {
            return Ok(c.state.exit_code);
        }
        let run_dir = self.roots.run_dir(id);
        if let Some(answer) = request(&run_dir, &self.proc_root, &Request::Wait)
            && let Some(code) = answer.strip_prefix("exit ")
            && let Ok(code) = code.parse()
        {
            return Ok(code);
        }
        // No monitor to ask: watch.
        while self.wait_stopped(id, Duration::from_secs(3600))? {
            let c = self.load_checked(id)?;
            if !c.state.status.may_have_process() {
                return Ok(c.state.exit_code);
            }
        }
        Ok(self.load_checked(id)?.state.exit_code)
    }

    /// `restart`: stop, then start.
    pub fn restart(&self, id: &str, timeout: Option<i64>, signal: Option<i32>) -> Result<()> {
        self.stop(id, timeout, signal)?;
        self.wait_monitor_gone(id, Duration::from_secs(30));
        self.start(id, super::start::StartMode::Detached)?;
        let c = self.dir(id).load()?;
        self.event("restart", &c, &[]);
        Ok(())
    }

    /// `rename OLD NEW`.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let new_name = super::ids::check_name(new_name).map_err(EngineError::Message)?;
        let names = super::names::Names::new(&self.roots);
        let names_lock = names.lock()?;
        let dir = self.dir(id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        let old = c.name().to_string();
        if old == new_name {
            return Err(EngineError::msg(
                "Renaming a container with the same name as its current name",
            ));
        }
        names.reserve(&names_lock, new_name, id)?;
        c.name = format!("/{new_name}");
        if let Err(err) = dir.save(&c) {
            names.release(new_name, id);
            return Err(err.into());
        }
        names.release(&old, id);
        self.event("rename", &c, &[("oldName", format!("/{old}"))]);
        Ok(())
    }
}
