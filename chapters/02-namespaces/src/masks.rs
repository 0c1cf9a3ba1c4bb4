//! Masked and read-only paths: the parts of `/proc` and `/sys` a container
//! may not see or may not change.
//!
//! Kernel feature: `/proc` and `/sys` are not namespaced as a whole. A PID
//! namespace's `/proc` shows only its processes, but `/proc/kcore` is still
//! the host's memory, `/proc/sys/kernel/core_pattern` is still the host's
//! crash handler, and `/sys/firmware` is still the host's firmware. So, as
//! runc does for every docker container, the engine covers them with mounts
//! before the container starts:
//!
//! - a **masked** file gets `/dev/null` bind-mounted over it (reads are
//!   empty, writes vanish); a masked directory gets an empty, read-only
//!   tmpfs;
//! - a **read-only** path is bind-mounted onto itself and the bind remounted
//!   read-only (`EROFS` on every write, whatever the permissions say).
//!
//! Covering mounts can be undone by `umount` or `mount -o remount,rw`, so
//! they hold only together with the capability drop (no `CAP_SYS_ADMIN`).
//!
//! The `/dev/null` used for masking is checked first: it must be a
//! character device 1:3 reached without a symlink. runc once bind-mounted
//! whatever the container's `/dev/null` was, and an image that made it a
//! symlink to `/proc/sys/kernel/core_pattern` got a *writable* host
//! `core_pattern` in place of a mask (CVE-2025-31133).
//!
//! Man pages: mount(2) ("MS_BIND", "MS_REMOUNT"), proc(5), sysfs(5),
//! tmpfs(5), statvfs(3), makedev(3).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{SFlag, fstat, makedev};
use nix::sys::statvfs::{FsFlags, fstatvfs};

use crate::in_root::{ProcFdPath, Symlinks, open_in_root};
use crate::security::Security;

/// A failed step: its name and errno.
pub type StepResult = Result<(), (&'static str, Errno)>;

const NONE: Option<&str> = None;

/// The masked and read-only paths, prepared in the parent as relative C
/// strings, so the child only makes system calls.
#[derive(Debug, Clone, Default)]
pub struct Masks {
    masked: Vec<CString>,
    readonly: Vec<CString>,
}

/// A path in `maskedPaths` or `readonlyPaths` that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: not a path to mask: give an absolute path inside the container, e.g. /proc/kcore")]
pub struct BadMaskPath(pub String);

impl Masks {
    /// From a container's [`Security`].
    pub fn new(security: &Security) -> Result<Self, BadMaskPath> {
        let relative = |paths: &[String]| -> Result<Vec<CString>, BadMaskPath> {
            paths
                .iter()
                .map(|p| {
                    let rel = p.strip_prefix('/').filter(|r| !r.is_empty());
                    rel.and_then(|r| CString::new(r).ok())
                        .ok_or_else(|| BadMaskPath(p.clone()))
                })
                .collect()
        };
        Ok(Masks {
            masked: relative(&security.masked_paths)?,
            readonly: relative(&security.readonly_paths)?,
        })
    }
}

/// Cover every masked path and make every read-only path read-only, under
/// `root` (the rootfs, with /proc, /dev and /sys mounted). A path this
/// kernel does not have is skipped, as runc does.
// ANCHOR: apply_masks
pub fn apply_masks(root: BorrowedFd, masks: &Masks) -> StepResult {
    if !masks.masked.is_empty() {
        let null = verified_dev_null(root)?;
        for path in &masks.masked {
            mask_path(root, path, null.as_fd())?;
        }
    }
    for path in &masks.readonly {
        make_read_only(root, path)?;
    }
    Ok(())
}
// ANCHOR_END: apply_masks

/// The rootfs's `/dev/null`, opened without following any symlink and
/// checked to be the null device (character device 1:3).
// ANCHOR: verified_dev_null
pub fn verified_dev_null(root: BorrowedFd) -> Result<OwnedFd, (&'static str, Errno)> {
    let null = open_in_root(root, c"dev/null", Symlinks::Refuse)
        .map_err(|e| ("open /dev/null for masking", e))?;
    is_null_device(null.as_fd())?;
    Ok(null)
}

/// Refuse anything but the null device: a file, a symlink, another device.
pub fn is_null_device(fd: BorrowedFd) -> StepResult {
    let st = fstat(fd).map_err(|e| ("stat /dev/null", e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFCHR || st.st_rdev != makedev(1, 3) {
        return Err((
            "mask: /dev/null is not the null device (char 1:3)",
            Errno::EINVAL,
        ));
    }
    Ok(())
}
// ANCHOR_END: verified_dev_null

/// Cover `path`: `/dev/null` over a file, an empty read-only tmpfs over a
/// directory.
// ANCHOR: mask_path
fn mask_path(root: BorrowedFd, path: &CStr, null: BorrowedFd) -> StepResult {
    let target = match open_in_root(root, path, Symlinks::InRoot) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()), // not on this kernel
        Err(e) => return Err(("open a masked path", e)),
    };
    let on = ProcFdPath::of(&target);
    let st = fstat(target.as_fd()).map_err(|e| ("stat a masked path", e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some("tmpfs"),
            on.as_cstr(),
            Some("tmpfs"),
            flags,
            Some("size=0"),
        )
        .map_err(|e| ("mask a directory (mount an empty tmpfs)", e))
    } else {
        let from = ProcFdPath::of(&null);
        mount(
            Some(from.as_cstr()),
            on.as_cstr(),
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )
        .map_err(|e| ("mask a file (bind-mount /dev/null)", e))
    }
}
// ANCHOR_END: mask_path

/// Bind `path` onto itself, then remount that bind read-only, keeping the
/// flags it had (in a user namespace, dropping nosuid, nodev or noexec from
/// a mount is refused).
// ANCHOR: make_read_only
fn make_read_only(root: BorrowedFd, path: &CStr) -> StepResult {
    let target = match open_in_root(root, path, Symlinks::InRoot) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(("open a read-only path", e)),
    };
    let on = ProcFdPath::of(&target);
    mount(
        Some(on.as_cstr()),
        on.as_cstr(),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| ("bind a read-only path onto itself", e))?;
    // Look the path up again: now it leads onto the new bind mount.
    let bound =
        open_in_root(root, path, Symlinks::InRoot).map_err(|e| ("open a read-only path", e))?;
    let flags = kept_flags(bound.as_fd())?;
    let on = ProcFdPath::of(&bound);
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags;
    mount(NONE, on.as_cstr(), NONE, remount, NONE)
        .map_err(|e| ("remount a read-only path read-only", e))
}
// ANCHOR_END: make_read_only

/// The per-mount flags of the mount `fd` is on, as mount(2) flags.
fn kept_flags(fd: BorrowedFd) -> Result<MsFlags, (&'static str, Errno)> {
    let st = fstatvfs(fd).map_err(|e| ("statvfs a read-only path", e))?;
    let have = st.flags();
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs) {
            flags |= ms;
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;

    use super::*;

    #[test]
    fn only_the_real_null_device_may_mask() {
        let null = open("/dev/null", OFlag::O_PATH, Mode::empty()).unwrap();
        assert_eq!(is_null_device(null.as_fd()), Ok(()));
        let zero = open("/dev/zero", OFlag::O_PATH, Mode::empty()).unwrap();
        assert!(is_null_device(zero.as_fd()).is_err());
        let file = tempfile::NamedTempFile::new().unwrap();
        let file = open(file.path(), OFlag::O_PATH, Mode::empty()).unwrap();
        assert!(is_null_device(file.as_fd()).is_err());
    }

    #[test]
    fn a_dev_null_that_is_a_symlink_is_refused() {
        // An image whose /dev/null points at the host's core_pattern: the
        // lookup refuses the symlink before anything is mounted.
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("dev")).unwrap();
        symlink(
            "/proc/sys/kernel/core_pattern",
            rootfs.path().join("dev/null"),
        )
        .unwrap();
        let root = open(
            rootfs.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let err = verified_dev_null(root.as_fd()).unwrap_err();
        assert_eq!(err.1, Errno::ELOOP);
        // A regular file named null is refused too.
        std::fs::remove_file(rootfs.path().join("dev/null")).unwrap();
        std::fs::write(rootfs.path().join("dev/null"), "").unwrap();
        assert_eq!(
            verified_dev_null(root.as_fd()).unwrap_err().1,
            Errno::EINVAL
        );
    }

    #[test]
    fn paths_must_be_absolute() {
        let mut s = Security {
            masked_paths: vec!["proc/kcore".into()],
            ..Default::default()
        };
        assert!(
            Masks::new(&s)
                .unwrap_err()
                .to_string()
                .contains("\"proc/kcore\"")
        );
        s.masked_paths = vec!["/".into()];
        assert!(Masks::new(&s).is_err());
        let masks = Masks::new(&Security::default()).unwrap();
        assert!(masks.masked.iter().any(|p| p.as_c_str() == c"proc/kcore"));
    }
}
