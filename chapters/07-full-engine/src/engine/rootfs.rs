//! A container's root filesystem: chapter 4's overlay of chapter 5's
//! unpacked layers, mounted while the container runs.
//!
//! The container's directory is also chapter 4's (`config.json` with the
//! layers, `upper/`, `work/`, `merged/`) and carries chapter 5's `image`
//! file, so chapter 5's `rmi` and garbage collection see the container and
//! keep its image and layers.
//!
//! Docker mounts a container's filesystem when it starts and unmounts it
//! when it stops; so do we: a stopped container holds no mount. Whether
//! `merged/` is mounted is read from /proc/self/mountinfo, never assumed
//! (after a crash, a mount may be left, or be gone).
//!
//! A rootless engine (run by a normal user) cannot mount in the host's
//! mount namespace, so it uses chapter 4's other driver, vfs: the layers
//! copied into `merged/` at the first start, kept for the next, as docker's
//! rootless mode does where overlay is not possible. Such a container has
//! no upper directory, so `commit` and `diff` say they need overlay.
//!
//! Man pages: mount(2), umount(2), proc(5) ("/proc/PID/mountinfo").

use std::path::{Path, PathBuf};

use ch04_overlay::overlay::{OverlayDirs, mount_overlay};
use ch04_overlay::state::{ContainerState, StorageDriver};
use nix::mount::{MntFlags, umount2};

use super::record::ContainerDir;
use super::{EngineError, Result};

/// Write chapter 4's state (and so make the directory) for container `id`
/// under `root`.
pub fn create_dir(root: &Path, id: &str, layers: &[PathBuf]) -> Result<ContainerDir> {
    let state = ContainerState {
        name: id.to_string(),
        layers: layers.to_vec(),
        driver: driver(),
    };
    let dir = ch04_overlay::state::create(root, &state)
        .map_err(|e| EngineError::msg(format!("create the container's directory: {e}")))?;
    Ok(ContainerDir(dir.0))
}

/// The storage driver this engine's containers use: overlay as root,
/// vfs for a normal user, who cannot mount in the host's namespace.
pub fn driver() -> StorageDriver {
    if nix::unistd::geteuid().is_root() {
        StorageDriver::Overlay
    } else {
        StorageDriver::Vfs
    }
}

/// The overlay's directories for a container.
pub fn overlay_dirs(dir: &ContainerDir, layers: &[PathBuf]) -> OverlayDirs {
    OverlayDirs {
        lower: layers.to_vec(),
        upper: dir.0.join("upper"),
        work: dir.0.join("work"),
        merged: dir.rootfs(),
    }
}

/// Whether `path` is a mount point now (mountinfo's fifth field).
pub fn is_mounted(path: &Path, proc_root: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(proc_root.join("self/mountinfo")) else {
        return false;
    };
    let wanted = path.to_string_lossy();
    text.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|point| unescape(point) == wanted)
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code as char);
            i += 4;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// Mount the container's overlay unless it is mounted already. The mount
/// outlives this process: it is unmounted by [`unmount`] when the
/// container stops.
pub fn mount(dir: &ContainerDir, layers: &[PathBuf], proc_root: &Path) -> Result<PathBuf> {
    let merged = dir.rootfs();
    if driver() == StorageDriver::Vfs {
        return copy_once(dir, layers);
    }
    if is_mounted(&merged, proc_root) {
        return Ok(merged);
    }
    let mount = mount_overlay(&overlay_dirs(dir, layers))
        .map_err(|e| EngineError::msg(format!("mount the container's filesystem: {e}")))?;
    // The mount stays when this process goes.
    Ok(mount.persist())
}

/// vfs: copy the layers into `merged/` unless an earlier start did
/// (`copied` is written last, so a copy cut short is made again).
fn copy_once(dir: &ContainerDir, layers: &[PathBuf]) -> Result<PathBuf> {
    let merged = dir.rootfs();
    let done = dir.0.join("copied");
    if done.exists() {
        return Ok(merged);
    }
    let failed = |e: &dyn std::fmt::Display| {
        EngineError::msg(format!(
            "copy the image's layers into {}: {e}",
            merged.display()
        ))
    };
    if merged.exists() {
        ch04_overlay::walk::remove_tree(&merged).map_err(|e| failed(&e))?;
    }
    ch04_overlay::vfs::copy_layers(layers, &merged).map_err(|e| failed(&e))?;
    std::fs::write(&done, b"").map_err(|e| failed(&e))?;
    Ok(merged)
}

/// Unmount the container's overlay if it is mounted (lazily: a process
/// still inside keeps it alive until it goes, and nothing waits).
pub fn unmount(dir: &ContainerDir, proc_root: &Path) -> Result<()> {
    let merged = dir.rootfs();
    while is_mounted(&merged, proc_root) {
        umount2(&merged, MntFlags::MNT_DETACH)
            .map_err(|e| EngineError::msg(format!("unmount {}: {e}", merged.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(is_mounted(Path::new("/proc"), Path::new("/proc")));
        assert!(!is_mounted(Path::new("/nonexistent"), Path::new("/proc")));
    }
}
