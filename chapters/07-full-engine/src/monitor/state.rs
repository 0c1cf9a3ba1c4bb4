//! The monitor's writes to the record: the container started, exited, or
//! waits to restart.
//!
//! The monitor is the only process that sees these moments happen (it is
//! the container's parent), so it writes them itself, under the
//! container's lock, as every writer of the record does. The engine
//! decides nothing about them afterwards: it reads.

use std::path::Path;
use std::time::Duration;

use super::config::MonitorConfig;
use super::restart::should_restart;
use crate::engine::events::{Event, append};
use crate::engine::record::{ContainerDir, Status, now_rfc3339};

fn dir(config: &MonitorConfig) -> ContainerDir {
    ContainerDir(config.container_dir.clone())
}

fn event(config: &MonitorConfig, action: &str, extra: &[(&str, String)]) {
    append(
        &config.events,
        &Event::container(action, &config.id, &config.name, &config.image, extra),
    );
}

/// The container runs, as process `pid`.
pub fn record_running(config: &MonitorConfig, pid: i32) -> Result<(), String> {
    let dir = dir(config);
    let _lock = dir.lock().map_err(|e| e.to_string())?;
    let mut c = dir.load().map_err(|e| e.to_string())?;
    c.state.set_status(Status::Running);
    c.state.pid = pid;
    c.state.exit_code = 0;
    c.state.error.clear();
    c.state.oom_killed = false;
    c.state.started_at = now_rfc3339();
    dir.save(&c).map_err(|e| e.to_string())?;
    event(config, "start", &[]);
    Ok(())
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub oom_killed: bool,
}

/// Record the exit and decide on a restart: `true` if the container now
/// waits to restart.
pub fn record_exit(config: &MonitorConfig, exit: Exit) -> Result<bool, String> {
    let dir = dir(config);
    let _lock = dir.lock().map_err(|e| e.to_string())?;
    let mut c = dir.load().map_err(|e| e.to_string())?;
    // The record's policy, not the one the monitor started with: `update
    // --restart` changes it while the container runs, as docker's does.
    let restart = should_restart(
        &c.host_config.restart_policy,
        exit.code,
        c.restart_count,
        c.berth.manually_stopped,
    );
    c.state.set_status(if restart {
        Status::Restarting
    } else {
        Status::Exited
    });
    c.state.exit_code = exit.code;
    c.state.oom_killed = exit.oom_killed;
    c.state.finished_at = now_rfc3339();
    if restart {
        c.restart_count += 1;
    }
    dir.save(&c).map_err(|e| e.to_string())?;
    if exit.oom_killed {
        event(config, "oom", &[]);
    }
    event(config, "die", &[("exitCode", exit.code.to_string())]);
    Ok(restart)
}

/// A restart that will not happen after all (the user stopped it, or the
/// runtime failed): the container is exited, with `error` if any.
pub fn record_given_up(config: &MonitorConfig, error: Option<&str>) -> Result<(), String> {
    let dir = dir(config);
    let _lock = dir.lock().map_err(|e| e.to_string())?;
    let mut c = dir.load().map_err(|e| e.to_string())?;
    c.state.set_status(Status::Exited);
    if let Some(error) = error {
        c.state.error = error.to_string();
        c.state.exit_code = 128;
    }
    dir.save(&c).map_err(|e| e.to_string())
}

/// A container that could not be created or started: docker leaves it
/// `created`, with the error and an exit code (127, 126 or 128).
pub fn record_start_failure(config: &MonitorConfig, message: &str) {
    let dir = dir(config);
    let Ok(_lock) = dir.lock() else { return };
    if let Ok(mut c) = dir.load() {
        c.state.error = message.to_string();
        c.state.exit_code = super::serve::exit_code_for_error(message);
        let _ = dir.save(&c);
    }
}

/// Whether the user stopped the container meanwhile.
pub fn manually_stopped(config: &MonitorConfig) -> bool {
    dir(config)
        .load()
        .map(|c| c.berth.manually_stopped)
        .unwrap_or(true)
}

/// The OOM killer struck in the container's cgroup: its `oom_kill`
/// counter (v1 `memory.oom_control`, v2 `memory.events`) is above zero.
pub fn oom_killed(files: &[impl AsRef<Path>]) -> bool {
    files.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some("oom_kill")
                    && words.next().and_then(|n| n.parse::<u64>().ok()) > Some(0)
            })
        })
    })
}

/// How long a run lasted, for the back-off.
pub fn ran_for(started: std::time::Instant) -> Duration {
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_v1_and_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = tmp.path().join("memory.oom_control");
        let v2 = tmp.path().join("memory.events");
        std::fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n").unwrap();
        std::fs::write(&v2, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
        assert!(!oom_killed(&[&v1]));
        assert!(oom_killed(&[&v2]));
        assert!(oom_killed(&[&v1, &v2]));
        assert!(!oom_killed(&[tmp.path().join("gone")]));
    }
}
