//! overlayfs: read-only layers below, one writable layer on top, one
//! merged view.
//!
//! Kernel feature: `mount -t overlay overlay -o lowerdir=L2:L1,upperdir=U,
//! workdir=W MERGED`. Reads come from the topmost layer that has the file.
//! The first write to a file from a lower layer *copies it up* — the whole
//! file — into the upper directory, and the write goes there. Deleting a
//! lower file leaves a *whiteout* in the upper directory (a character device
//! 0/0 with the same name); replacing a lower directory marks the new one
//! *opaque* (the xattr `trusted.overlay.opaque=y`). The lower directories
//! are never modified, so any number of containers can share them. The work
//! directory, on the same filesystem as the upper one, is where overlay
//! prepares copy-ups before moving them into place atomically.
//!
//! In `lowerdir=` the *first* directory is the top one. The whole option
//! string must fit in one page (4096 bytes): that limits how many layers a
//! mount can have, which is why engines give layers short paths (docker's
//! `l/` directory of short symlinks) or mount relative to a directory they
//! chdir into.
//!
//! Man pages and docs: mount(8) ("overlay"), Documentation/filesystems/overlayfs.rst.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// The most option bytes a mount(2) call can carry: one page.
pub const MAX_OPTIONS: usize = 4096;

/// The directories of one overlay mount (the names overlayfs uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDirs {
    /// Read-only layers, **bottom first** (the order images list them).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("layer {0}: no such directory: give an existing directory as --layer")]
    MissingLayer(PathBuf),
    #[error("no layers: an overlay needs at least one lower directory (--layer DIR)")]
    NoLayers,
    #[error(
        "{layers} layers make {bytes} bytes of mount options, more than the {MAX_OPTIONS} one mount(2) call can carry: use fewer layers or shorter layer paths (engines link layers under short names for this)"
    )]
    TooManyLayers { layers: usize, bytes: usize },
    #[error("mount overlay on {merged}: {errno}: {hint}")]
    Mount {
        merged: PathBuf,
        errno: Errno,
        hint: &'static str,
    },
    #[error("unmount {path}: {errno}")]
    Unmount { path: PathBuf, errno: Errno },
}

impl OverlayDirs {
    /// The option string for mount(2): `lowerdir=TOP:...:BOTTOM,upperdir=..,workdir=..`.
    pub fn options(&self) -> Result<String, OverlayError> {
        if self.lower.is_empty() {
            return Err(OverlayError::NoLayers);
        }
        for layer in &self.lower {
            if !layer.is_dir() {
                return Err(OverlayError::MissingLayer(layer.clone()));
            }
        }
        let lower: Vec<String> = self
            .lower
            .iter()
            .rev()
            .map(|p| escape(&p.to_string_lossy()))
            .collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            escape(&self.upper.to_string_lossy()),
            escape(&self.work.to_string_lossy())
        );
        if options.len() >= MAX_OPTIONS {
            return Err(OverlayError::TooManyLayers {
                layers: self.lower.len(),
                bytes: options.len(),
            });
        }
        Ok(options)
    }
}

/// overlayfs splits options on ',' and lower directories on ':': escape them.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// A mounted overlay; unmounted when dropped.
#[derive(Debug)]
pub struct OverlayMount {
    merged: PathBuf,
    mounted: bool,
}

/// Mount `dirs` (creating upper, work and merged if missing).
// ANCHOR: mount_overlay
pub fn mount_overlay(dirs: &OverlayDirs) -> Result<OverlayMount, OverlayError> {
    let options = dirs.options()?;
    for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
        std::fs::create_dir_all(dir).map_err(|e| OverlayError::Mount {
            merged: dir.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            hint: "could not create the directory",
        })?;
    }
    mount(
        Some("overlay"),
        &dirs.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|errno| OverlayError::Mount {
        merged: dirs.merged.clone(),
        errno,
        hint: mount_hint(errno),
    })?;
    Ok(OverlayMount {
        merged: dirs.merged.clone(),
        mounted: true,
    })
}
// ANCHOR_END: mount_overlay

/// Prepare a mount for a rootless container: the returned step runs in the
/// container's child, inside its user and mount namespaces, where overlay
/// may be mounted without root (Linux 5.11+) with `userxattr` — overlay then
/// keeps its opaque markers in `user.overlay.*` xattrs, which an
/// unprivileged user may write, instead of `trusted.overlay.*`.
// ANCHOR: rootless_overlay
pub fn rootless_overlay_step(
    dirs: &OverlayDirs,
) -> Result<impl Fn() -> Result<(), (&'static str, Errno)> + use<>, OverlayError> {
    let options = format!("{},userxattr", dirs.options()?);
    for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
        std::fs::create_dir_all(dir).map_err(|e| OverlayError::Mount {
            merged: dir.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            hint: "could not create the directory",
        })?;
    }
    let merged = dirs.merged.clone();
    Ok(move || {
        // Our mounts must not propagate anywhere before we add one.
        ch02_namespaces::mounts::make_mounts_private()?;
        let flags = MsFlags::empty();
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            flags,
            Some(options.as_str()),
        )
        .map_err(|e| ("mount overlay in the user namespace (needs Linux 5.11+)", e))
    })
}
// ANCHOR_END: rootless_overlay

/// True if this kernel lets a user namespace mount overlay (5.11 and later).
pub fn rootless_overlay_supported(proc_root: &Path) -> bool {
    let release =
        std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(major), Some(minor)) if (major, minor) >= (5, 11))
}

/// The storage driver to use when none was asked for: overlay when the
/// kernel has it (`proc/filesystems` under `proc_root`) and lets this user
/// mount it, else the copy driver — with the notice to print.
pub fn choose_driver(
    proc_root: &Path,
    rootless: bool,
) -> (crate::state::StorageDriver, Option<&'static str>) {
    use crate::state::StorageDriver;
    let has_overlay = std::fs::read_to_string(proc_root.join("filesystems")).is_ok_and(|f| {
        f.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    if !has_overlay {
        return (
            StorageDriver::Vfs,
            Some(
                "this kernel has no overlay filesystem: using the vfs driver (a full copy per container)",
            ),
        );
    }
    if rootless && !rootless_overlay_supported(proc_root) {
        return (
            StorageDriver::Vfs,
            Some(
                "this kernel lets only root mount overlay (user namespaces may from Linux 5.11): using the vfs driver",
            ),
        );
    }
    (StorageDriver::Overlay, None)
}

/// What an overlay mount error usually means.
fn mount_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENODEV => {
            "this kernel has no overlay filesystem (modprobe overlay), use --storage-driver vfs"
        }
        Errno::EPERM => "mounting overlay needs root, or a user namespace on Linux 5.11+",
        Errno::EINVAL => {
            "the upper and work directories must be on the same filesystem, one that overlay can use as upper (not overlay itself, not most network filesystems)"
        }
        _ => "see dmesg for overlayfs's own message",
    }
}

impl OverlayMount {
    pub fn merged(&self) -> &Path {
        &self.merged
    }

    /// Keep the mount after this value goes, and return where it is: for
    /// an engine whose containers outlive the command that mounted their
    /// filesystem (chapter 7). Whoever keeps it unmounts it later.
    pub fn persist(mut self) -> PathBuf {
        self.mounted = false;
        self.merged.clone()
    }

    /// Unmount now, reporting errors (Drop does it silently otherwise).
    pub fn unmount(mut self) -> Result<(), OverlayError> {
        self.mounted = false;
        umount2(&self.merged, MntFlags::MNT_DETACH).map_err(|errno| OverlayError::Unmount {
            path: self.merged.clone(),
            errno,
        })
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.merged, MntFlags::MNT_DETACH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn dirs(root: &Path, lowers: &[&str]) -> OverlayDirs {
        OverlayDirs {
            lower: lowers.iter().map(|l| root.join(l)).collect(),
            upper: root.join("upper"),
            work: root.join("work"),
            merged: root.join("merged"),
        }
    }

    #[test]
    fn the_driver_falls_back_to_vfs_where_overlay_cannot_be_had() {
        use crate::state::StorageDriver;
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("sys/kernel")).unwrap();
        std::fs::write(proc.path().join("filesystems"), "nodev\tsysfs\n\text4\n").unwrap();
        std::fs::write(proc.path().join("sys/kernel/osrelease"), "6.1.0-13-amd64\n").unwrap();
        let (driver, notice) = choose_driver(proc.path(), false);
        assert_eq!(driver, StorageDriver::Vfs);
        assert!(notice.unwrap().contains("no overlay filesystem"));
        std::fs::write(
            proc.path().join("filesystems"),
            "nodev\tsysfs\nnodev\toverlay\n",
        )
        .unwrap();
        assert_eq!(
            choose_driver(proc.path(), false),
            (StorageDriver::Overlay, None)
        );
        assert_eq!(
            choose_driver(proc.path(), true),
            (StorageDriver::Overlay, None)
        );
        std::fs::write(
            proc.path().join("sys/kernel/osrelease"),
            "5.10.0-28-amd64\n",
        )
        .unwrap();
        let (driver, notice) = choose_driver(proc.path(), true);
        assert_eq!(driver, StorageDriver::Vfs);
        assert!(notice.unwrap().contains("5.11"));
    }

    #[test]
    fn an_upper_directory_overlay_cannot_use_is_named_as_such() {
        if !berth_test_support::require_root(
            "an_upper_directory_overlay_cannot_use_is_named_as_such",
        ) {
            return;
        }
        // overlayfs itself cannot be an upper layer: put one inside another.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("base")).unwrap();
        let outer = mount_overlay(&dirs(root.path(), &["base"])).unwrap();
        let inner_root = outer.merged().to_path_buf();
        std::fs::create_dir(root.path().join("base2")).unwrap();
        let inner = OverlayDirs {
            lower: vec![root.path().join("base2")],
            upper: inner_root.join("upper"),
            work: inner_root.join("work"),
            merged: root.path().join("merged2"),
        };
        let err = mount_overlay(&inner).unwrap_err();
        assert!(
            matches!(
                err,
                OverlayError::Mount {
                    errno: Errno::EINVAL,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("upper and work directories"),
            "{err}"
        );
        outer.unmount().unwrap();
    }

    #[test]
    fn options_list_the_top_layer_first_and_escape_separators() {
        let root = tempfile::tempdir().unwrap();
        for l in ["base", "mid:dle"] {
            std::fs::create_dir(root.path().join(l)).unwrap();
        }
        let opts = dirs(root.path(), &["base", "mid:dle"]).options().unwrap();
        let r = root.path().display();
        assert_eq!(
            opts,
            format!("lowerdir={r}/mid\\:dle:{r}/base,upperdir={r}/upper,workdir={r}/work")
        );
    }

    #[test]
    fn bad_layer_lists_are_refused_before_mounting() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            dirs(root.path(), &[]).options(),
            Err(OverlayError::NoLayers)
        ));
        let err = dirs(root.path(), &["nope"]).options().unwrap_err();
        assert!(err.to_string().contains("nope: no such directory"), "{err}");
        // 200 layers of long paths overflow one page of options.
        let long: Vec<String> = (0..200)
            .map(|i| format!("layer-with-a-long-name-{i:03}"))
            .collect();
        for l in &long {
            std::fs::create_dir(root.path().join(l)).unwrap();
        }
        let refs: Vec<&str> = long.iter().map(String::as_str).collect();
        let err = dirs(root.path(), &refs).options().unwrap_err();
        assert!(
            matches!(err, OverlayError::TooManyLayers { layers: 200, .. }),
            "{err}"
        );
    }

    #[test]
    fn copy_up_whiteout_and_opaque_directories_on_the_real_kernel() {
        if !berth_test_support::require_root(
            "copy_up_whiteout_and_opaque_directories_on_the_real_kernel",
        ) {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("base");
        std::fs::create_dir_all(base.join("dir")).unwrap();
        std::fs::write(base.join("file"), "lower\n").unwrap();
        std::fs::write(base.join("gone"), "lower\n").unwrap();
        std::fs::write(base.join("dir/old"), "lower\n").unwrap();
        let d = dirs(root.path(), &["base"]);
        let m = mount_overlay(&d).unwrap();
        let merged = m.merged().to_path_buf();
        // Write: copy-up into upper; the layer keeps its bytes.
        std::fs::write(merged.join("file"), "changed\n").unwrap();
        // Delete: a whiteout in upper.
        std::fs::remove_file(merged.join("gone")).unwrap();
        // Replace a directory: an opaque one in upper.
        std::fs::remove_dir_all(merged.join("dir")).unwrap();
        std::fs::create_dir(merged.join("dir")).unwrap();
        std::fs::write(merged.join("dir/new"), "upper\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(merged.join("file")).unwrap(),
            "changed\n"
        );
        assert!(!merged.join("gone").exists());
        assert!(!merged.join("dir/old").exists());
        m.unmount().unwrap();

        assert_eq!(
            std::fs::read_to_string(base.join("file")).unwrap(),
            "lower\n",
            "layers are never modified"
        );
        assert!(base.join("gone").exists() && base.join("dir/old").exists());
        assert_eq!(
            std::fs::read_to_string(d.upper.join("file")).unwrap(),
            "changed\n"
        );
        let whiteout = std::fs::symlink_metadata(d.upper.join("gone")).unwrap();
        assert!(
            whiteout.file_type().is_char_device(),
            "a whiteout is a char device"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(whiteout.rdev(), 0, "0/0");
        assert!(d.upper.join("dir/new").exists());
        let findmnt = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !findmnt.contains(&merged.display().to_string()),
            "unmounted"
        );
    }
}
