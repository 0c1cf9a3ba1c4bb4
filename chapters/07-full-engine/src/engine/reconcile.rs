//! The truth about a container whose record claims a process.
//!
//! A record says what was true when it was written. Since then the
//! monitor may have been killed (`kill -9`), or the machine rebooted (every
//! process gone, /run emptied, the runtime's state with it). So before a
//! command trusts `running`, it checks, cheaply, whether the container's
//! monitor is alive (its pid *and* start time, [`ProcessId::alive`]). Only
//! when it is not does the engine ask the runtime, and then:
//!
//! - the container still runs (only its monitor died): it is running,
//!   unmonitored; `stop`, `kill` and `rm` reach it through the runtime, and
//!   its exit code will be unknown;
//! - it does not: it is `exited`. The monitor, had it seen the exit, would
//!   have recorded the code; nobody did, so the code is 255 (docker's
//!   choice when a container vanished with its shim). Then the cleanup the
//!   monitor would have run: runtime state, cgroup, mount, run directory;
//!   and with `--rm`, the container.
//!
//! A `created` container with a live monitor may in fact run: the
//! command that started it was killed before it recorded so.
//!
//! [`ProcessId::alive`]: crate::monitor::config::ProcessId::alive

use super::record::{Container, Status, now_rfc3339};
use super::{Engine, EngineError, Result};
use crate::monitor::config::{live_monitor, pid_file};

/// The exit code of a container that ended unseen.
pub const UNKNOWN_EXIT: i32 = 255;

/// Without locks: whether the record can be believed as it is.
pub fn looks_alive(engine: &Engine, c: &Container) -> bool {
    let run_dir = engine.roots().run_dir(&c.id);
    if c.berth.needs_cleanup && !c.state.status.may_have_process() {
        // Ended, not cleaned up: fine while its monitor is at it.
        return live_monitor(&run_dir, engine.proc_root()).is_some();
    }
    match c.state.status {
        // A created container has no process, unless a monitor made one.
        Status::Created => !pid_file(&run_dir).exists(),
        status if status.may_have_process() => live_monitor(&run_dir, engine.proc_root()).is_some(),
        _ => true,
    }
}

/// Bring `c` (whose lock the caller holds) in line with the truth, saving
/// what changed. A container with `--rm` that ended unseen is removed:
/// then the error is "No such container".
pub fn reconcile(engine: &Engine, c: &mut Container) -> Result<()> {
    let run_dir = engine.roots().run_dir(&c.id);
    let monitored = live_monitor(&run_dir, engine.proc_root()).is_some();
    if !c.state.status.may_have_process() {
        // Its monitor recorded the end, then died before the cleanup.
        if c.berth.needs_cleanup && !monitored {
            engine.release_resources(c)?;
            if c.host_config.auto_remove {
                return remove_unseen(engine, c);
            }
        }
        return Ok(());
    }
    if monitored && c.state.status != Status::Created {
        return Ok(());
    }
    // A created container that no monitor ever ran has nothing to check.
    if c.state.status == Status::Created && !monitored && !run_dir.exists() {
        return Ok(());
    }
    let dir = engine.dir(&c.id);
    let runtime = engine.runtime_of(c);
    let state = runtime.state(&c.id).ok().flatten();
    if monitored {
        // Created, with a monitor: the engine that started it may have
        // died before it recorded the start.
        if let Some(state) = state.filter(|s| s.status == "running" && s.pid > 0) {
            c.state.set_status(Status::Running);
            c.state.pid = state.pid;
            c.state.started_at = now_rfc3339();
            dir.save(c)?;
        }
        return Ok(());
    }
    if c.state.status == Status::Created {
        // A monitor died between create and start: undo its create.
        if state.is_some() || run_dir.exists() {
            engine.release_resources(c)?;
        }
        return Ok(());
    }
    let alive = state
        .as_ref()
        .filter(|s| s.pid > 0 && matches!(s.status.as_str(), "running" | "paused"));
    if let Some(state) = alive {
        let status = if state.status == "paused" {
            Status::Paused
        } else {
            Status::Running
        };
        if c.state.status != status || c.state.pid != state.pid {
            c.state.set_status(status);
            c.state.pid = state.pid;
            dir.save(c)?;
        }
        return Ok(());
    }
    // Gone, unseen.
    c.state.set_status(Status::Exited);
    c.state.exit_code = UNKNOWN_EXIT;
    c.state.finished_at = now_rfc3339();
    dir.save(c)?;
    engine.event("die", c, &[("exitCode", UNKNOWN_EXIT.to_string())]);
    engine.release_resources(c)?;
    if c.host_config.auto_remove {
        return remove_unseen(engine, c);
    }
    Ok(())
}

/// `--rm` of a container that ended unseen: removed now; the caller hears
/// "No such container".
fn remove_unseen(engine: &Engine, c: &Container) -> Result<()> {
    ch04_overlay::cli::remove_container_dir(&engine.dir(&c.id).0)
        .map_err(|e| EngineError::msg(format!("{e:#}")))?;
    super::names::Names::new(engine.roots()).release(c.name(), &c.id);
    engine.event("destroy", c, &[]);
    Err(EngineError::Name(super::names::NameError::NotFound(
        c.id.clone(),
    )))
}
