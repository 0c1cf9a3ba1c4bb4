//! Deep directory trees, walked with a fixed number of descriptors.
//!
//! Kernel feature: `openat(2)` from a directory descriptor, and `..`.
//! Nothing stops a layer from nesting directories thousands deep (a 42 KiB
//! tar holds 20,000 levels), and a container may `mkdir -p` as deep as it
//! likes in its writable layer. Two ordinary ways of walking a tree break
//! on such a tree:
//!
//! - by full path: a path longer than `PATH_MAX` (4096 bytes) fails with
//!   `ENAMETOOLONG`, and keeping the full path of every entry costs memory
//!   in the square of the depth;
//! - recursively, with a descriptor open on every level (what
//!   `std::fs::remove_dir_all` does): the process runs out of descriptors
//!   (`RLIMIT_NOFILE`, often 1024) and fails with `EMFILE`, half-way.
//!
//! A [`DirCursor`] holds two descriptors whatever the depth: the tree's
//! root and the directory it stands in, plus the names that lead there. It
//! goes down with `openat(fd, name, O_NOFOLLOW | O_DIRECTORY)`, never
//! through a symlink, and back up with `openat(fd, "..")`, checking that it
//! arrived where it came from (device and inode), so a directory moved
//! while we walk is an error, never a wrong turn. [`remove_tree_at`]
//! removes a tree that way, deepest entries first.
//!
//! Man pages: openat(2), fstatat(2), unlinkat(2), getdents(2),
//! path_resolution(7), getrlimit(2) (`RLIMIT_NOFILE`).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmod, fchmodat, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::escape::shown;

/// A walk that failed: the system call, and the path (below the walk's
/// root) it was about.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{call} {}: {errno}", shown(.path))]
    Syscall {
        call: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error(
        "{}: the directory was moved while being walked (its `..` is not where we came from): refusing to go on",
        shown(.path)
    )]
    Moved { path: PathBuf },
}

/// The file type bits of a stat: `S_IFDIR`, `S_IFREG`, `S_IFLNK`...
pub fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// `fstatat(parent, name)` without following a symlink; `None` if missing.
pub fn stat_at<Fd: AsFd>(parent: Fd, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Open the directory `name` in `parent`, refusing a symlink (`ELOOP` or
/// `ENOTDIR`) and anything that is not a directory.
pub fn open_dir_at<Fd: AsFd>(parent: Fd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The names in the open directory `dir`, without `.` and `..`. Reads
/// through a descriptor of its own, closed before returning.
pub fn list_names<Fd: AsFd>(dir: Fd) -> nix::Result<Vec<OsString>> {
    let fd = open_dir_at(dir, OsStr::new("."))?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

fn dev_ino(fd: &OwnedFd) -> nix::Result<(u64, u64)> {
    let st = fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

// ANCHOR: cursor
/// A position in a directory tree: two descriptors and one name per level.
pub struct DirCursor {
    root: OwnedFd,
    /// The directory the cursor stands in; `None` at the root.
    here: Option<OwnedFd>,
    /// The names from the root to here.
    names: Vec<OsString>,
    /// (device, inode) of the root and of each directory on the way.
    ids: Vec<(u64, u64)>,
}
// ANCHOR_END: cursor

impl DirCursor {
    /// A cursor at `root`, an open directory.
    pub fn new(root: OwnedFd) -> nix::Result<DirCursor> {
        let id = dev_ino(&root)?;
        Ok(DirCursor {
            root,
            here: None,
            names: Vec::new(),
            ids: vec![id],
        })
    }

    /// A cursor at the directory `path` (a path the caller trusts).
    pub fn open(path: &Path) -> Result<DirCursor, WalkError> {
        let err = |errno| WalkError::Syscall {
            call: "open",
            path: path.to_path_buf(),
            errno,
        };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty()).map_err(err)?;
        DirCursor::new(fd).map_err(err)
    }

    /// The directory the cursor stands in.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.here.as_ref().unwrap_or(&self.root).as_fd()
    }

    /// How many levels below the root it stands.
    pub fn depth(&self) -> usize {
        self.names.len()
    }

    /// The names from the root to here.
    pub fn names(&self) -> &[OsString] {
        &self.names
    }

    /// The path from the root to here (for messages: it costs the depth).
    pub fn path(&self) -> PathBuf {
        self.names.iter().collect()
    }

    /// The path of `name` here (for messages).
    pub fn path_of(&self, name: &OsStr) -> PathBuf {
        let mut path = self.path();
        path.push(name);
        path
    }

    // ANCHOR: cursor_moves
    /// Step into the directory `name`, never through a symlink. The bare
    /// errno lets the caller tell a missing entry (`ENOENT`) from a symlink
    /// or a file (`ELOOP`, `ENOTDIR`).
    pub fn down(&mut self, name: &OsStr) -> nix::Result<()> {
        let fd = open_dir_at(self.fd(), name)?;
        self.ids.push(dev_ino(&fd)?);
        self.names.push(name.to_os_string());
        self.here = Some(fd);
        Ok(())
    }

    /// Step back to the parent directory (a no-op at the root).
    pub fn up(&mut self) -> Result<(), WalkError> {
        if self.names.len() <= 1 {
            self.reset();
            return Ok(());
        }
        let parent = openat(
            self.fd(),
            OsStr::new(".."),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| WalkError::Syscall {
            call: "openat ..",
            path: self.path(),
            errno,
        })?;
        let id = dev_ino(&parent).map_err(|errno| WalkError::Syscall {
            call: "fstat ..",
            path: self.path(),
            errno,
        })?;
        self.names.pop();
        self.ids.pop();
        if self.ids.last() != Some(&id) {
            return Err(WalkError::Moved { path: self.path() });
        }
        self.here = Some(parent);
        Ok(())
    }
    // ANCHOR_END: cursor_moves

    /// Back to the root.
    pub fn reset(&mut self) {
        self.here = None;
        self.names.clear();
        self.ids.truncate(1);
    }
}

/// Give the directory `name` in `parent` its owner's permissions back, so
/// that it can be read and emptied (overlay leaves `work/work` with mode
/// 000); the owner may always do that.
fn make_accessible<Fd: AsFd>(parent: Fd, name: &OsStr) -> nix::Result<()> {
    let mode = stat_at(&parent, name)?.map_or(0, |st| st.st_mode & 0o7777);
    // It is a directory (not a symlink): following is harmless.
    fchmodat(
        parent,
        name,
        Mode::from_bits_truncate(mode | 0o700),
        FchmodatFlags::FollowSymlink,
    )
}

/// [`DirCursor::down`], making a directory we may not read accessible.
fn down_accessible(cursor: &mut DirCursor, name: &OsStr) -> nix::Result<()> {
    match cursor.down(name) {
        Err(Errno::EACCES) => {
            make_accessible(cursor.fd(), name)?;
            cursor.down(name)
        }
        other => other,
    }
}

/// `unlinkat` in the cursor's directory; a read-only directory (a layer
/// may hold `dr-xr-xr-x` ones, which only root can empty as they are) is
/// made writable by its owner first.
fn unlink_here(cursor: &DirCursor, name: &OsStr, flag: UnlinkatFlags) -> nix::Result<()> {
    match unlinkat(cursor.fd(), name, flag) {
        Err(Errno::EACCES) => {
            let mode = fstat(cursor.fd())?.st_mode & 0o7777;
            fchmod(cursor.fd(), Mode::from_bits_truncate(mode | 0o700))?;
            unlinkat(cursor.fd(), name, flag)
        }
        other => other,
    }
}

// ANCHOR: remove_tree
/// Remove `name` in the directory `parent` and, if it is a directory,
/// everything below it, deepest first. A symlink is removed, never
/// followed; a missing `name` is fine. Uses three descriptors and one name
/// per level, whatever the depth.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), WalkError> {
    let top = PathBuf::from(name);
    let err = |call, path: PathBuf| move |errno| WalkError::Syscall { call, path, errno };
    match stat_at(parent, name).map_err(err("fstatat", top.clone()))? {
        None => return Ok(()),
        Some(st) if kind(&st) != SFlag::S_IFDIR => {
            return unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(err("unlink", top.clone()));
        }
        Some(_) => {}
    }
    let fd = match open_dir_at(parent, name) {
        Err(Errno::EACCES) => {
            make_accessible(parent, name).map_err(err("chmod", top.clone()))?;
            open_dir_at(parent, name)
        }
        other => other,
    }
    .map_err(err("open", top.clone()))?;
    let mut cursor = DirCursor::new(fd).map_err(err("fstat", top.clone()))?;
    // The names still to remove on each level, the deepest last.
    let list = |c: &DirCursor| list_names(c.fd()).map_err(err("readdir", top.join(c.path())));
    let mut pending = vec![list(&cursor)?];
    while let Some(level) = pending.last_mut() {
        let Some(child) = level.pop() else {
            // This directory is empty now: leave it and remove it.
            pending.pop();
            let Some(done) = cursor.names().last().cloned() else {
                break;
            };
            cursor.up()?;
            unlink_here(&cursor, &done, UnlinkatFlags::RemoveDir)
                .map_err(err("rmdir", top.join(cursor.path_of(&done))))?;
            continue;
        };
        let path = |c: &DirCursor| top.join(c.path_of(&child));
        match stat_at(cursor.fd(), &child).map_err(|e| err("fstatat", path(&cursor))(e))? {
            None => {}
            Some(st) if kind(&st) == SFlag::S_IFDIR => {
                down_accessible(&mut cursor, &child).map_err(|e| err("open", path(&cursor))(e))?;
                pending.push(list(&cursor)?);
            }
            Some(_) => unlink_here(&cursor, &child, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| err("unlink", path(&cursor))(e))?,
        }
    }
    drop(cursor);
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(err("rmdir", top))
}
// ANCHOR_END: remove_tree

/// [`remove_tree_at`] for a path: the last component is never followed
/// (a symlink is removed itself); a missing path is fine.
pub fn remove_tree(path: &Path) -> Result<(), WalkError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(WalkError::Syscall {
            call: "remove",
            path: path.to_path_buf(),
            errno: Errno::EINVAL,
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = match nix::fcntl::open(parent, flags, Mode::empty()) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(()),
        Err(errno) => {
            return Err(WalkError::Syscall {
                call: "open",
                path: parent.to_path_buf(),
                errno,
            });
        }
    };
    remove_tree_at(dir.as_fd(), name).map_err(|e| match e {
        WalkError::Syscall {
            call,
            path: rel,
            errno,
        } => WalkError::Syscall {
            call,
            path: parent.join(rel),
            errno,
        },
        WalkError::Moved { path: rel } => WalkError::Moved {
            path: parent.join(rel),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// `depth` nested directories `d/d/d...` below `dir`, made with the
    /// cursor (a full path would be too long), a file at the bottom.
    fn nest(dir: &Path, depth: usize) {
        let mut cursor = DirCursor::open(dir).unwrap();
        for _ in 0..depth {
            nix::sys::stat::mkdirat(cursor.fd(), "d", Mode::from_bits_truncate(0o755)).unwrap();
            cursor.down(OsStr::new("d")).unwrap();
        }
        let f = openat(
            cursor.fd(),
            "bottom",
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        drop(f);
    }

    #[test]
    fn the_cursor_goes_down_and_back_up_with_two_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        nest(tmp.path(), 3000);
        let mut cursor = DirCursor::open(tmp.path()).unwrap();
        for _ in 0..3000 {
            cursor.down(OsStr::new("d")).unwrap();
        }
        assert!(
            stat_at(cursor.fd(), OsStr::new("bottom"))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            cursor.down(OsStr::new("bottom")),
            Err(Errno::ENOTDIR),
            "a file is not a directory"
        );
        for _ in 0..3000 {
            cursor.up().unwrap();
        }
        assert_eq!(cursor.depth(), 0);
        assert!(stat_at(cursor.fd(), OsStr::new("d")).unwrap().is_some());
    }

    #[test]
    fn the_cursor_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
        let mut cursor = DirCursor::open(tmp.path()).unwrap();
        let err = cursor.down(OsStr::new("link")).unwrap_err();
        assert!(matches!(err, Errno::ELOOP | Errno::ENOTDIR), "{err}");
    }

    #[test]
    fn a_directory_moved_away_is_noticed_on_the_way_up() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        let mut cursor = DirCursor::open(tmp.path()).unwrap();
        cursor.down(OsStr::new("a")).unwrap();
        cursor.down(OsStr::new("b")).unwrap();
        fs::rename(tmp.path().join("a/b"), tmp.path().join("elsewhere/b")).unwrap();
        assert!(matches!(cursor.up(), Err(WalkError::Moved { .. })));
    }

    #[test]
    fn remove_tree_removes_deep_read_only_trees_and_leaves_symlink_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir(&tree).unwrap();
        nest(&tree, 5000);
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "keep").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        fs::create_dir(tree.join("ro")).unwrap();
        fs::write(tree.join("ro/f"), "x").unwrap();
        fs::set_permissions(tree.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::create_dir(tree.join("none")).unwrap();
        fs::set_permissions(tree.join("none"), fs::Permissions::from_mode(0o000)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "keep");
        remove_tree(&tree).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("l")).unwrap();
        remove_tree(&tmp.path().join("l")).unwrap();
        assert!(
            outside.join("keep").exists(),
            "a symlink is removed, not followed"
        );
    }
}
