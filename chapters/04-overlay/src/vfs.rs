//! The copy driver ("vfs", as docker calls it): each container gets a full
//! copy of its layers.
//!
//! No kernel feature at all, which is its use: it works on any filesystem
//! and in any user namespace. Its cost is the point of comparison for
//! overlay: ten containers of a 500 MB image cost 5 GB here, and each start
//! copies every file. Layers are copied bottom first; a layer's overlay
//! whiteout (a character device 0/0) deletes what lies below it, and an
//! opaque directory replaces the one below instead of merging with it.
//!
//! Man pages: cp(1) (what `cp -a` preserves), mknod(2).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, mkdirat};
use nix::unistd::symlinkat;

use crate::commit::is_opaque;
use crate::walk::{DirCursor, WalkError, kind, list_names, remove_tree_at, stat_at};

#[derive(Debug, thiserror::Error)]
#[error("copy {} to {}: {cause}", crate::escape::shown(.from), crate::escape::shown(.to))]
pub struct CopyError {
    pub from: PathBuf,
    pub to: PathBuf,
    pub cause: io::Error,
}

/// Copy `layers` (bottom first) into `dest`, the later ones over the earlier.
// ANCHOR: copy_layers
pub fn copy_layers(layers: &[PathBuf], dest: &Path) -> Result<u64, CopyError> {
    std::fs::create_dir_all(dest).map_err(|cause| CopyError {
        from: PathBuf::new(),
        to: dest.to_path_buf(),
        cause,
    })?;
    let mut bytes = 0;
    for layer in layers {
        bytes += copy_tree(layer, dest)?;
    }
    Ok(bytes)
}
// ANCHOR_END: copy_layers

fn walk_err(from: &Path, to: &Path) -> impl Fn(WalkError) -> CopyError {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    move |e| CopyError {
        from: from.clone(),
        to: to.clone(),
        cause: io::Error::other(e.to_string()),
    }
}

/// Copy the tree `from` over `to`, depth first with a cursor in each (a
/// few descriptors, however deep). A directory's mode is set when it is
/// left, so a read-only one can still be filled.
fn copy_tree(from: &Path, to: &Path) -> Result<u64, CopyError> {
    let mut src = DirCursor::open(from).map_err(walk_err(from, to))?;
    let mut dst = DirCursor::open(to).map_err(walk_err(from, to))?;
    // A layer whose root is opaque hides everything below it.
    if is_opaque(from).unwrap_or(false) {
        for name in list_names(dst.fd()).map_err(|e| CopyError {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            cause: e.into(),
        })? {
            remove_tree_at(dst.fd(), &name).map_err(walk_err(from, to))?;
        }
    }
    let mut bytes = 0;
    let sorted = |c: &DirCursor| -> Result<Vec<OsString>, CopyError> {
        let mut names = list_names(c.fd()).map_err(|e| CopyError {
            from: from.join(c.path()),
            to: to.join(c.path()),
            cause: e.into(),
        })?;
        names.sort_by(|a, b| b.cmp(a)); // popped from the end: in order
        Ok(names)
    };
    // (names still to copy, the mode to give the directory when done)
    let mut stack: Vec<(Vec<OsString>, Option<u32>)> = vec![(sorted(&src)?, None)];
    while let Some((pending, _)) = stack.last_mut() {
        let Some(name) = pending.pop() else {
            let (_, mode) = stack.pop().unwrap_or_default();
            if let (Some(mode), Some(done)) = (mode, dst.names().last().cloned()) {
                src.up().map_err(walk_err(from, to))?;
                dst.up().map_err(walk_err(from, to))?;
                fchmodat(
                    dst.fd(),
                    done.as_os_str(),
                    Mode::from_bits_truncate(mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| CopyError {
                    from: from.join(src.path_of(&done)),
                    to: to.join(dst.path_of(&done)),
                    cause: e.into(),
                })?;
            }
            continue;
        };
        let err = |src: &DirCursor, dst: &DirCursor| {
            let (f, t) = (from.join(src.path_of(&name)), to.join(dst.path_of(&name)));
            move |cause: io::Error| CopyError {
                from: f,
                to: t,
                cause,
            }
        };
        let nix_err = |src: &DirCursor, dst: &DirCursor| {
            let e = err(src, dst);
            move |errno: Errno| e(errno.into())
        };
        let Some(st) = stat_at(src.fd(), &name).map_err(nix_err(&src, &dst))? else {
            continue;
        };
        let existing = stat_at(dst.fd(), &name).map_err(nix_err(&src, &dst))?;
        let file_type = kind(&st);
        // A whiteout: what the lower layers had here is gone.
        if file_type == SFlag::S_IFCHR && st.st_rdev == 0 {
            remove_tree_at(dst.fd(), &name).map_err(walk_err(from, to))?;
            continue;
        }
        if file_type == SFlag::S_IFDIR {
            // An opaque directory hides what the layers below had in it.
            let opaque = is_opaque(&from.join(src.path_of(&name))).unwrap_or(false);
            let is_dir = existing.is_some_and(|m| kind(&m) == SFlag::S_IFDIR);
            if existing.is_some() && (!is_dir || opaque) {
                remove_tree_at(dst.fd(), &name).map_err(walk_err(from, to))?;
            }
            if !is_dir || opaque {
                mkdirat(dst.fd(), name.as_os_str(), Mode::from_bits_truncate(0o700))
                    .map_err(nix_err(&src, &dst))?;
            }
            src.down(&name).map_err(nix_err(&src, &dst))?;
            dst.down(&name).map_err(nix_err(&src, &dst))?;
            stack.push((sorted(&src)?, Some(st.st_mode & 0o7777)));
            continue;
        }
        if existing.is_some() {
            remove_tree_at(dst.fd(), &name).map_err(walk_err(from, to))?;
        }
        if file_type == SFlag::S_IFLNK {
            let target = readlinkat(src.fd(), name.as_os_str()).map_err(nix_err(&src, &dst))?;
            symlinkat(target.as_os_str(), dst.fd(), name.as_os_str())
                .map_err(nix_err(&src, &dst))?;
            continue;
        }
        if file_type != SFlag::S_IFREG {
            return Err(err(&src, &dst)(io::Error::new(
                io::ErrorKind::Unsupported,
                "a device, fifo or socket: the vfs driver copies files, directories and links",
            )));
        }
        let open = |dir: &DirCursor, flags: OFlag, mode: u32| {
            openat(
                dir.fd().as_fd(),
                name.as_os_str(),
                flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )
            .map(File::from)
        };
        let mut input = open(&src, OFlag::O_RDONLY, 0).map_err(nix_err(&src, &dst))?;
        let mut output = open(
            &dst,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            st.st_mode & 0o7777,
        )
        .map_err(nix_err(&src, &dst))?;
        bytes += io::copy(&mut input, &mut output).map_err(err(&src, &dst))?;
        output
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
                st.st_mode & 0o7777,
            ))
            .map_err(err(&src, &dst))?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn later_layers_win_and_whiteouts_delete() {
        let root = tempfile::tempdir().unwrap();
        let (base, top, dest) = (
            root.path().join("base"),
            root.path().join("top"),
            root.path().join("dest"),
        );
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/motd"), "base\n").unwrap();
        fs::write(base.join("keep"), "kept\n").unwrap();
        symlink("keep", base.join("link")).unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::write(top.join("etc/motd"), "top\n").unwrap();
        let copied = copy_layers(&[base, top], &dest).unwrap();
        assert!(copied > 0);
        assert_eq!(fs::read_to_string(dest.join("etc/motd")).unwrap(), "top\n");
        assert_eq!(fs::read_to_string(dest.join("link")).unwrap(), "kept\n");
        assert_eq!(fs::read_link(dest.join("link")).unwrap(), Path::new("keep"));
    }

    #[test]
    fn a_layer_with_an_opaque_root_replaces_everything_below() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: trusted.* xattrs need root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let (base, top, dest) = (
            root.path().join("base"),
            root.path().join("top"),
            root.path().join("dest"),
        );
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/motd"), "base\n").unwrap();
        fs::create_dir_all(&top).unwrap();
        fs::write(top.join("only"), "top\n").unwrap();
        xattr::set(&top, crate::commit::OPAQUE_XATTRS[0], b"y").unwrap();
        copy_layers(&[base, top], &dest).unwrap();
        let names: Vec<_> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["only"]);
    }

    #[test]
    fn deep_layers_are_copied() {
        let root = tempfile::tempdir().unwrap();
        let (layer, dest) = (root.path().join("layer"), root.path().join("dest"));
        fs::create_dir(&layer).unwrap();
        let mut cursor = DirCursor::open(&layer).unwrap();
        for _ in 0..3000 {
            mkdirat(cursor.fd(), "d", Mode::from_bits_truncate(0o755)).unwrap();
            cursor.down(std::ffi::OsStr::new("d")).unwrap();
        }
        symlinkat("/etc", cursor.fd(), "link").unwrap();
        copy_layers(&[layer], &dest).unwrap();
        let mut cursor = DirCursor::open(&dest).unwrap();
        for _ in 0..3000 {
            cursor.down(std::ffi::OsStr::new("d")).unwrap();
        }
        let target = readlinkat(cursor.fd(), "link").unwrap();
        assert_eq!(target, std::ffi::OsStr::new("/etc"));
        // Removed with two descriptors, not by TempDir's drop (std's
        // remove_dir_all holds one per level: EMFILE for a normal user,
        // and for the other tests of this process meanwhile).
        for tree in [root.path().join("layer"), dest] {
            crate::walk::remove_tree(&tree.join("d")).unwrap();
        }
    }
}
