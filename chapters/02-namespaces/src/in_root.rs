//! Paths inside the rootfs, resolved so that they stay inside it.
//!
//! Kernel feature: `openat2(2)` resolves a path relative to a directory
//! descriptor under rules the caller picks. `RESOLVE_IN_ROOT` treats that
//! directory as `/`: `..` stops there and an absolute symlink starts there,
//! as it will for the container after `pivot_root`. `RESOLVE_NO_SYMLINKS`
//! refuses any symlink on the way (`ELOOP`). With `O_PATH` the result is a
//! descriptor that names the file found, without opening it for reading.
//!
//! Why it matters: the engine mounts `/proc`, `/dev`, `/sys` and the masks
//! *before* the container runs, while the host's tree is still there. A
//! plain `mount("proc", "ROOTFS/proc")` follows a symlink the image put at
//! `/proc` wherever it points, host paths included, and a second container
//! sharing the rootfs could swap a directory for a symlink between our
//! check and our mount. So each target is looked up once, inside the
//! rootfs, into a descriptor, and the mount goes onto the descriptor
//! (`/proc/self/fd/N`, a "magic link" to exactly that file), not onto a
//! path that could change under us. runc learned this the hard way
//! (CVE-2019-19921, CVE-2025-31133, CVE-2025-52565, CVE-2025-52881).
//!
//! Everything here runs in the child and allocates nothing.
//!
//! Man pages: openat2(2) ("RESOLVE_IN_ROOT", "RESOLVE_NO_SYMLINKS"),
//! open(2) ("O_PATH"), proc_pid_fd(5), path_resolution(7), mkdirat(2).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

/// `/proc/self/fd/N`, NUL-terminated, built on the stack: the path that
/// names what descriptor N names, for calls that take a path (mount(2)).
pub struct ProcFdPath {
    buf: [u8; 32],
}

impl ProcFdPath {
    /// The path for `fd`.
    pub fn of(fd: &impl AsRawFd) -> Self {
        const PREFIX: &[u8] = b"/proc/self/fd/";
        let mut buf = [0u8; 32];
        buf[..PREFIX.len()].copy_from_slice(PREFIX);
        // The decimal digits of a non-negative int, most significant first.
        let mut digits = [0u8; 10];
        let mut n = fd.as_raw_fd().max(0) as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            buf[PREFIX.len() + i] = *d;
        }
        ProcFdPath { buf }
    }

    pub fn as_cstr(&self) -> &CStr {
        // The buffer always holds a NUL after the digits (at most 24 bytes).
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"/proc/self/fd/")
    }
}

/// How a path may be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Refuse every symlink (`ELOOP`): for the places the kernel's own
    /// filesystems go, which must be real directories.
    Refuse,
    /// Follow them, inside the root (`/` and `..` mean the rootfs's).
    InRoot,
}

/// Open `path` (relative, no leading `/`) under `root` as an `O_PATH`
/// descriptor, never leaving `root`, and never through `/proc`'s magic links.
// ANCHOR: open_in_root
pub fn open_in_root(root: BorrowedFd, path: &CStr, symlinks: Symlinks) -> Result<OwnedFd, Errno> {
    let resolve = match symlinks {
        Symlinks::Refuse => ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS,
        Symlinks::InRoot => ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(resolve);
    openat2(root, path, how)
}
// ANCHOR_END: open_in_root

/// The directory `name` (one component) at the top of `root`, made if it is
/// missing (a scratch image has no `/proc`), as a descriptor to mount onto.
/// A symlink is refused: `/proc`, `/dev` and `/sys` are where the container
/// will look for them, and nowhere else.
// ANCHOR: mount_point
pub fn mount_point(root: BorrowedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    match open_dir(root, name) {
        Err(Errno::ENOENT) => {
            // Another process may make it at the same moment: fine.
            match mkdirat(root, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            open_dir(root, name)
        }
        other => other,
    }
}
// ANCHOR_END: mount_point

/// `name` under `root` as a directory descriptor; symlinks refused.
fn open_dir(root: BorrowedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(root, name, how)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use nix::fcntl::{OFlag, open};

    use super::*;

    fn dir_fd(path: &std::path::Path) -> OwnedFd {
        open(path, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn proc_fd_paths_are_spelled_out() {
        let fd = dir_fd(std::path::Path::new("/"));
        let path = ProcFdPath::of(&fd);
        assert_eq!(
            path.as_cstr().to_str().unwrap(),
            format!("/proc/self/fd/{}", fd.as_raw_fd())
        );
        // And they name the same file.
        let via = std::fs::metadata(path.as_cstr().to_str().unwrap()).unwrap();
        let root = std::fs::metadata("/").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((via.dev(), via.ino()), (root.dev(), root.ino()));
    }

    #[test]
    fn absolute_and_dot_dot_symlinks_stay_inside_or_are_refused() {
        let host = tempfile::tempdir().unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        let outside = host.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        // The image points /proc at a host directory, and /etc up and out.
        symlink(&outside, rootfs.path().join("proc")).unwrap();
        symlink("../../../../../../..", rootfs.path().join("etc")).unwrap();
        let root = dir_fd(rootfs.path());
        assert_eq!(
            mount_point(root.as_fd(), c"proc").unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            open_in_root(root.as_fd(), c"proc/secret", Symlinks::Refuse).unwrap_err(),
            Errno::ELOOP
        );
        // Followed inside the root, the absolute link finds no host file.
        assert_eq!(
            open_in_root(root.as_fd(), c"proc/secret", Symlinks::InRoot).unwrap_err(),
            Errno::ENOENT
        );
        // "../.." from the rootfs's top is the rootfs's top.
        let top = open_in_root(root.as_fd(), c"etc", Symlinks::InRoot).unwrap();
        use std::os::unix::fs::MetadataExt;
        let top = std::fs::metadata(ProcFdPath::of(&top).as_cstr().to_str().unwrap()).unwrap();
        let rootfs_meta = std::fs::metadata(rootfs.path()).unwrap();
        assert_eq!(
            (top.dev(), top.ino()),
            (rootfs_meta.dev(), rootfs_meta.ino())
        );
        // Nothing was made on the host side.
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_mount_point_is_made() {
        let rootfs = tempfile::tempdir().unwrap();
        let root = dir_fd(rootfs.path());
        mount_point(root.as_fd(), c"sys").unwrap();
        assert!(rootfs.path().join("sys").is_dir());
        // A file where a directory should be is refused, not replaced.
        std::fs::write(rootfs.path().join("dev"), "").unwrap();
        assert_eq!(
            mount_point(root.as_fd(), c"dev").unwrap_err(),
            Errno::ENOTDIR
        );
    }
}
