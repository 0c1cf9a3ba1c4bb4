//! `rm`, `container prune`, and the cleanup a monitor runs at the end.
//!
//! Cleaning up after a container, in order:
//!
//! 1. the runtime's `delete --force`: its state, its cgroup, any process
//!    left (a container's processes die with its first one, since it has
//!    its own PID namespace; `--force` covers the rest);
//! 2. the cgroup, if the runtime no longer knows the container (its state
//!    was in /run, and /run was emptied by a reboot): chapter 3 kills what
//!    is left in `berth/ID` and removes the directories, in every
//!    hierarchy;
//! 3. the network: off every network, the namespace file gone
//!    ([`super::network`]);
//! 4. the overlay, unmounted;
//! 5. the run directory (the monitor's socket and pid file).
//!
//! `rm` then removes the directory (writable layer, logs, record) and the
//! name; the name goes last, so a name never points to nothing a user
//! could see. Each step is safe to repeat: after a crash, `rm` and the
//! next start finish what was begun.

use std::path::Path;
use std::time::Duration;

use super::reconcile::reconcile;
use super::record::{Container, ContainerDir, Status};
use super::{Engine, EngineError, Result, rootfs};
use crate::monitor::config::live_monitor;
use crate::monitor::protocol::Request;

/// Remove what is left of cgroup `berth/ID` in every hierarchy.
pub fn remove_cgroup(id: &str, proc_root: &Path) {
    if let Ok(layout) = ch03_cgroups::detect(proc_root)
        && let Ok(cgroup) = ch03_cgroups::Cgroup::open(&layout, proc_root, id)
    {
        let _ = cgroup.remove();
    }
    // Hierarchies chapter 3 does not manage (name=systemd, ...): the
    // runtime may have made the directory there too.
    let Ok(mountinfo) = std::fs::read_to_string(proc_root.join("self/mountinfo")) else {
        return;
    };
    for mount in ch03_cgroups::detect::parse_mountinfo(&mountinfo) {
        if mount.fs_type == "cgroup" || mount.fs_type == "cgroup2" {
            let dir = mount
                .mount_point
                .join(ch03_cgroups::cgroup::PARENT)
                .join(id);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Engine {
    /// Everything of a stopped container that lives outside its
    /// directory: the runtime's state, the cgroup, the mount, the run
    /// directory.
    pub fn release_resources(&self, c: &mut Container) -> Result<()> {
        let runtime = self.runtime_of(c);
        if let Err(err) = runtime.delete(&c.id) {
            // The runtime binary may be gone; the rest must still go.
            eprintln!("berth: warning: {err}");
        }
        remove_cgroup(&c.id, &self.proc_root);
        let network_was = (c.berth.network.clone(), c.network_settings.clone());
        if let Err(err) = self.unplumb_network(c) {
            eprintln!("berth: warning: release the network of {}: {err}", c.id);
        }
        let network_changed = network_was != (c.berth.network.clone(), c.network_settings.clone());
        rootfs::unmount(&self.dir(&c.id), &self.proc_root)?;
        let run_dir = self.roots.run_dir(&c.id);
        match std::fs::remove_dir_all(&run_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let path = run_dir.display();
                return Err(EngineError::msg(format!("remove {path}: {e}")));
            }
        }
        if c.berth.needs_cleanup || network_changed {
            c.berth.needs_cleanup = false;
            let dir = self.dir(&c.id);
            if dir.record().exists() {
                dir.save(c)?;
            }
        }
        Ok(())
    }

    /// Remove container `c`'s directory and name (its resources released).
    fn remove_files(&self, dir: &ContainerDir, c: &Container) -> Result<()> {
        ch04_overlay::cli::remove_container_dir(&dir.0)
            .map_err(|e| EngineError::msg(format!("{e:#}")))?;
        super::names::Names::new(&self.roots).release(c.name(), &c.id);
        // --rm takes the anonymous volumes along (rm -v asks for it).
        if c.host_config.auto_remove {
            self.remove_anonymous_volumes(&c.mounts);
        }
        self.event("destroy", c, &[]);
        Ok(())
    }

    /// `container cleanup ID`, run by the monitor when the container is
    /// done: resources released, and with `--rm` the container removed.
    pub fn cleanup(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        if !dir.record().exists() {
            return Ok(());
        }
        let _lock = dir.lock()?;
        let Ok(mut c) = dir.load() else {
            return Ok(());
        };
        if matches!(c.state.status, Status::Running | Status::Paused) {
            // Started again meanwhile: not ours to clean.
            return Ok(());
        }
        self.release_resources(&mut c)?;
        if c.host_config.auto_remove {
            self.remove_files(&dir, &c)?;
        }
        Ok(())
    }

    /// `rm [-f]`.
    pub fn remove(&self, id: &str, force: bool) -> Result<()> {
        let dir = self.dir(id);
        let lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile(self, &mut c)?;
        let live = matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        );
        if live && !force {
            let what = match c.state.status {
                Status::Paused => "container is paused",
                Status::Restarting => "container is restarting",
                _ => "container is running",
            };
            return Err(EngineError::msg(format!(
                "cannot remove container \"/{}\": {what}: stop the container before removing or force remove",
                c.name()
            )));
        }
        let run_dir = self.roots.run_dir(id);
        if live || live_monitor(&run_dir, &self.proc_root).is_some() {
            // Stop it for good, then let the monitor finish its cleanup.
            c.berth.manually_stopped = true;
            let was = c.state.status;
            c.state.set_status(Status::Removing);
            dir.save(&c)?;
            drop(lock);
            let _ =
                super::monitor_client::request(&run_dir, &self.proc_root, &Request::CancelRestart);
            let _ = super::monitor_client::request(&run_dir, &self.proc_root, &Request::Kill(9));
            if was == Status::Paused {
                let _ = self.runtime_of(&c).resume(id);
            }
            match live_monitor(&run_dir, &self.proc_root) {
                Some(monitor) => {
                    super::monitor_client::wait_for_process_exit(
                        monitor,
                        &self.proc_root,
                        Duration::from_secs(30),
                    );
                }
                // No monitor: the runtime kills, delete reaps nothing.
                None => {
                    let _ = self.runtime_of(&c).kill(id, 9);
                }
            }
            // The monitor's cleanup may have removed it (--rm).
            if !dir.record().exists() {
                return Ok(());
            }
            let _relock = dir.lock()?;
            let Ok(mut c) = dir.load() else {
                return Ok(());
            };
            self.release_resources(&mut c)?;
            return self.remove_files(&dir, &c);
        }
        self.release_resources(&mut c)?;
        self.remove_files(&dir, &c)
    }

    /// `container prune`: remove every container that is not running;
    /// their ids.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for c in self.containers()? {
            if matches!(
                c.state.status,
                Status::Created | Status::Exited | Status::Dead
            ) && self.remove(&c.id, false).is_ok()
            {
                removed.push(c.id);
            }
        }
        Ok(removed)
    }
}
