//! A container's filesystem seen from the host: `diff` (what it changed)
//! and `export` (all of it, as one tar).
//!
//! `diff` is chapter 4's: the overlay's upper directory against the
//! image's layers, less what the runtime made only to mount over (the
//! commit's rule). `export` is the merged view, the whole root filesystem
//! as the container sees it, less its volumes and binds (they live in the
//! container's mount namespace, not in the overlay): mounted for the time
//! of the export if the container is stopped, and walked without following
//! a symlink, so a container's links are archived as links.
//!
//! Man pages: overlay(5) in the kernel's docs ("upper and lower"),
//! tar(5).

use std::io::Write;

use ch04_overlay::commit::{Change, diff};
use ch04_overlay::state::StorageDriver;

use super::commit::engine_made;
use super::record::Status;
use super::{Engine, EngineError, Result, rootfs};

impl Engine {
    /// `diff`: the container's changes, docker's `A`/`C`/`D` lines.
    pub fn changes(&self, text: &str) -> Result<Vec<Change>> {
        let c = self.container(text)?;
        if rootfs::driver() != StorageDriver::Overlay {
            return Err(EngineError::msg(
                "diff needs the overlay storage driver, which keeps a container's changes \
                 apart; a normal user's engine copies the layers instead (vfs)",
            ));
        }
        let dir = self.dir(&c.id);
        let upper = dir.0.join("upper");
        let lowers = &c.berth.layers;
        let mounts: Vec<String> = c
            .mounts
            .iter()
            .filter_map(|m| m["Destination"].as_str().map(str::to_string))
            .collect();
        let excluded = engine_made(&upper, lowers, &mounts);
        let changes = diff(&upper, lowers).map_err(|e| EngineError::msg(format!("diff: {e}")))?;
        Ok(changes
            .into_iter()
            .filter(|change| {
                let rel = change.path.to_string_lossy();
                let rel = rel.trim_start_matches('/');
                !excluded.iter().any(|x| x == rel)
            })
            .collect())
    }

    /// `export`: the container's root filesystem as a tar on `out`.
    pub fn export(&self, text: &str, out: &mut dyn Write) -> Result<()> {
        let c = self.container(text)?;
        let dir = self.dir(&c.id);
        // The container's lock: no start or rm mounts or unmounts meanwhile.
        let _lock = dir.lock()?;
        let c = dir.load()?;
        let was_mounted = rootfs::is_mounted(&dir.rootfs(), &self.proc_root);
        let merged = rootfs::mount(&dir, &c.berth.layers, &self.proc_root)?;
        let written = (|| -> std::io::Result<()> {
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            tar.mode(tar::HeaderMode::Complete);
            tar.append_dir_all(".", &merged)?;
            tar.finish()
        })();
        let running = matches!(c.state.status, Status::Running | Status::Paused);
        if !was_mounted && !running {
            rootfs::unmount(&dir, &self.proc_root)?;
        }
        written.map_err(|e| EngineError::msg(format!("export {}: {e}", c.name())))
    }

    /// A stopped container's root filesystem, mounted for a copy (see
    /// `cp`); whether this call mounted it, and the container's lock,
    /// held until the copy is done so no start or rm runs meanwhile.
    pub fn mount_rootfs(
        &self,
        id: &str,
    ) -> Result<(std::path::PathBuf, bool, super::record::ContainerLock)> {
        let dir = self.dir(id);
        let lock = dir.lock()?;
        let c = dir.load()?;
        let was_mounted = rootfs::is_mounted(&dir.rootfs(), &self.proc_root);
        let merged = rootfs::mount(&dir, &c.berth.layers, &self.proc_root)?;
        Ok((merged, !was_mounted, lock))
    }

    /// Undo [`Engine::mount_rootfs`].
    pub fn unmount_rootfs(&self, id: &str) -> Result<()> {
        rootfs::unmount(&self.dir(id), &self.proc_root)
    }
}
