//! Applying an OCI layer tarball to a directory, safely.
//!
//! Kernel feature: the `*at()` family of system calls. An image layer is a
//! tar archive written by someone else, and each of its entries names a
//! path to create. Opening `target/usr/bin/ls` by path would follow any
//! symlink on the way, including one the same archive planted a moment
//! earlier (`usr -> /`). So nothing here is opened by a full path: every
//! parent directory is walked one component at a time with
//! `openat(dirfd, name, O_NOFOLLOW | O_DIRECTORY)` from a descriptor of the
//! target, and every entry is made relative to its parent's descriptor
//! (`openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, `mkdirat`, `symlinkat`,
//! `linkat`, `mknodat`, `unlinkat`). A symlink in the archive is created as
//! a link and never followed while applying.
//!
//! The layer format (OCI image-spec, `layer.md`): a file `.wh.NAME` is a
//! *whiteout*, deleting `NAME` from the layers below; the file
//! `.wh..wh..opq` in a directory makes it *opaque*, hiding everything the
//! layers below put in it. Applied onto a plain directory (a flattened
//! rootfs) these delete; applied into an overlayfs lower directory they
//! become overlayfs's own markers, a 0/0 character device and the
//! `trusted.overlay.opaque=y` xattr ([`WhiteoutMode`]).
//!
//! Man pages: openat(2), mkdirat(2), symlinkat(2), linkat(2), mknodat(2),
//! unlinkat(2), fchownat(2), utimensat(2), setxattr(2), tar(5); the OCI
//! image-spec's layer.md; the kernel's
//! Documentation/filesystems/overlayfs.rst ("whiteouts and opaque
//! directories").

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, makedev, mkdirat,
    mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat, linkat, mkfifoat, symlinkat};
use tar::EntryType;

use crate::escape::shown;
use crate::walk::{self, DirCursor, kind, list_names, open_dir_at, remove_tree_at, stat_at};

/// The prefix of a whiteout file's name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What to do with whiteouts and opaque markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The target is a plain directory holding the layers below (a
    /// flattened rootfs, the vfs driver): delete what they name.
    Delete,
    /// The target is an overlayfs lower directory of its own: write
    /// overlayfs's markers, a 0/0 character device for a whiteout (needs
    /// CAP_MKNOD) and `trusted.overlay.opaque=y` on an opaque directory
    /// (needs CAP_SYS_ADMIN).
    Overlay,
}

/// How to apply a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Give entries the archive's uid and gid (root only). When false,
    /// entries belong to the caller and lose their setuid/setgid bits.
    pub preserve_owners: bool,
    /// Create character and block devices (root only). When false, an
    /// archive holding one is refused.
    pub allow_devices: bool,
}

impl ApplyOptions {
    /// Delete-mode whiteouts, and owners and devices only for root.
    pub fn for_current_user(whiteouts: WhiteoutMode) -> ApplyOptions {
        let root = Uid::effective().is_root();
        ApplyOptions {
            whiteouts,
            preserve_owners: root,
            allow_devices: root,
        }
    }
}

/// What applying a layer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Archive entries processed, whiteouts included.
    pub entries: u64,
    /// Whiteouts and opaque markers among them.
    pub whiteouts: u64,
    /// Bytes of regular-file contents written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("open target directory {path}: {errno}")]
    Target { path: PathBuf, errno: Errno },

    /// The archive itself could not be read (a header, or past the end).
    #[error("read layer archive {position}: {cause}")]
    ReadArchive { position: String, cause: io::Error },

    /// An entry's header fields or data could not be read.
    #[error("read layer entry {}: {cause}", shown(.path))]
    ReadEntry { path: PathBuf, cause: io::Error },

    #[error("unsafe path \"{}\" in layer: {why}", shown(.path))]
    UnsafePath { path: PathBuf, why: &'static str },

    #[error("unsafe hard link \"{}\" -> \"{}\" in layer: {why}", shown(.path), shown(.link))]
    UnsafeLink {
        path: PathBuf,
        link: PathBuf,
        why: &'static str,
    },

    #[error(
        "{}: device nodes are not allowed here (allow_devices is off; only root may create them)",
        shown(.path)
    )]
    DeviceRefused { path: PathBuf },

    #[error("{}: unsupported entry type {kind}", shown(.path))]
    Unsupported { path: PathBuf, kind: String },

    #[error("{}: {what} entry has no link name", shown(.path))]
    MissingLinkName { path: PathBuf, what: &'static str },

    #[error("{call} {}: {errno}", shown(.path))]
    Syscall {
        call: &'static str,
        path: PathBuf,
        errno: Errno,
    },

    #[error("write {}: {cause}", shown(.path))]
    Write { path: PathBuf, cause: io::Error },

    #[error(
        "{}: cannot create the overlay whiteout (a 0/0 character device): {errno} (needs CAP_MKNOD; apply with WhiteoutMode::Delete instead)",
        shown(.path)
    )]
    WhiteoutRefused { path: PathBuf, errno: Errno },

    #[error(
        "{}: cannot set trusted.overlay.opaque: {errno} (needs CAP_SYS_ADMIN and a filesystem with trusted xattrs)",
        shown(.path)
    )]
    OpaqueRefused { path: PathBuf, errno: Errno },
}

fn sys(call: &'static str, path: &Path) -> impl FnOnce(Errno) -> ApplyError {
    let path = path.to_path_buf();
    move |errno| ApplyError::Syscall { call, path, errno }
}

/// A directory's metadata, applied once the whole layer is written, so that
/// a read-only directory can still be filled and its mtime is the one in
/// the archive.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
}

// ANCHOR: apply_layer
/// Apply the layer archive `tar` onto the directory `target`.
///
/// Every entry is created relative to a descriptor of its parent, walked
/// from `target` without following symlinks (see the module docs), and
/// paths leaving `target` (absolute, or with `..`) are refused, as are
/// hard links to such paths and, unless `opts.allow_devices`, device nodes.
///
/// Not atomic: on an error (a refused entry, a truncated archive) what was
/// written before it stays. Apply into a fresh temporary directory and
/// rename it into place only when this returns `Ok`.
pub fn apply_layer<R: Read>(
    tar: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|cause| ApplyError::ReadArchive {
        position: "at the start".into(),
        cause,
    })?;

    let mut report = ApplyReport::default();
    let mut layer = Layer::open(target, opts)?;
    let mut last: Option<PathBuf> = None;
    for entry in entries {
        let mut entry = entry.map_err(|cause| ApplyError::ReadArchive {
            position: match &last {
                Some(p) => format!("after entry {}", shown(p)),
                None => "at the first entry".into(),
            },
            cause,
        })?;
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        last = Some(raw.clone());
        report.entries += 1;
        layer.apply_entry(&mut entry, &raw, &mut report)?;
    }
    layer.finish_dirs()?;
    Ok(report)
}
// ANCHOR_END: apply_layer

/// Clean an archive path into plain components: `./` is stripped, while an
/// absolute path or any `..` is refused.
fn clean_path(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths are not allowed in a layer");
            }
            Component::ParentDir => return Err("`..` is not allowed in a layer path"),
        }
    }
    Ok(out)
}

/// Why opening a path component as a directory failed.
enum WalkError {
    /// It (or a component before it) does not exist, and we were not to
    /// create it.
    Missing,
    /// It is a symlink.
    Symlink,
    Other(&'static str, Errno),
}

// ANCHOR: safe_parent
/// Open the directory `dirs` (plain components) below `root`, one component
/// at a time with `O_NOFOLLOW | O_DIRECTORY`, so no symlink is ever
/// followed, wherever it points. With `create`, missing directories are
/// made (mode 0755) with `mkdirat`. Each step closes the descriptor of the
/// step before: one descriptor, whatever the depth.
fn walk_dirs(root: &OwnedFd, dirs: &Path, create: bool) -> Result<OwnedFd, WalkError> {
    let mut cur = root
        .try_clone()
        .map_err(|e| WalkError::Other("dup", Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    for comp in dirs.iter() {
        let next = match open_dir_at(&cur, comp) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => {
                match mkdirat(&cur, comp, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(WalkError::Other("mkdirat", e)),
                }
                open_dir_at(&cur, comp).map_err(|e| classify(&cur, comp, e))?
            }
            Err(e) => return Err(classify(&cur, comp, e)),
        };
        cur = next;
    }
    Ok(cur)
}
// ANCHOR_END: safe_parent

/// Turn a failed `openat(O_NOFOLLOW | O_DIRECTORY)` into a [`WalkError`]:
/// a symlink fails with ELOOP or ENOTDIR, so look at what is there.
fn classify<Fd: AsFd>(parent: Fd, name: &OsStr, errno: Errno) -> WalkError {
    match errno {
        Errno::ENOENT => WalkError::Missing,
        Errno::ELOOP | Errno::ENOTDIR => match stat_at(parent, name) {
            Ok(Some(st)) if kind(&st) == SFlag::S_IFLNK => WalkError::Symlink,
            _ => WalkError::Other("openat", errno),
        },
        e => WalkError::Other("openat", e),
    }
}

fn kind_at(parent: &OwnedFd, name: &OsStr) -> nix::Result<Option<SFlag>> {
    Ok(stat_at(parent, name)?.map(|st| kind(&st)))
}

/// A walk's error as an apply error about the path `shown` (below which
/// the walk went).
fn walk_err(shown: &Path) -> impl FnOnce(walk::WalkError) -> ApplyError + '_ {
    move |e| match e {
        walk::WalkError::Syscall { call, path, errno } => ApplyError::Syscall {
            call,
            path: shown.parent().unwrap_or(Path::new("")).join(path),
            errno,
        },
        walk::WalkError::Moved { path } => ApplyError::Syscall {
            call: "openat ..",
            path: shown.parent().unwrap_or(Path::new("")).join(path),
            errno: Errno::ESTALE,
        },
    }
}

/// Remove `name` in `parent`, a directory with everything in it, never
/// following a symlink: a link is unlinked, not what it points to. Missing
/// is fine. `shown` is its path in the layer, for errors.
fn remove_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<(), ApplyError> {
    remove_tree_at(parent.as_fd(), name).map_err(walk_err(shown))
}

/// The paths a layer wrote, as a tree of names: one node per path, holding
/// only its last name, so memory grows with the number of entries and not
/// with their depth (a set of full paths costs the square of the depth).
#[derive(Default)]
struct Tree {
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    children: HashMap<OsString, usize>,
    /// A directory entry's metadata, applied once the layer is written.
    meta: Option<Meta>,
}

impl Tree {
    const ROOT: usize = 0;

    /// The node of `rel` (plain components), made with its parents if
    /// missing.
    fn insert(&mut self, rel: &Path) -> usize {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = Tree::ROOT;
        for name in rel.iter() {
            at = match self.nodes[at].children.get(name) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(name.to_os_string(), child);
                    child
                }
            };
        }
        at
    }

    /// The node of `name` below `node`, if one was written.
    fn child(&self, node: usize, name: &OsStr) -> Option<usize> {
        self.nodes.get(node)?.children.get(name).copied()
    }

    /// Take the children of `node` out of the tree, to visit them once.
    fn take_children(&mut self, node: usize) -> Vec<(OsString, usize)> {
        std::mem::take(&mut self.nodes[node].children)
            .into_iter()
            .collect()
    }

    /// The node of `rel`, if it was written.
    fn get(&self, rel: &Path) -> Option<usize> {
        let mut at = Tree::ROOT;
        if self.nodes.is_empty() {
            return None;
        }
        for name in rel.iter() {
            at = self.child(at, name)?;
        }
        Some(at)
    }
}

/// The state of one layer being applied.
struct Layer {
    root: OwnedFd,
    /// Where the last entry went: the next one is usually beside it, so
    /// each entry walks only from there, not from the root.
    cursor: DirCursor,
    opts: ApplyOptions,
    /// Every path this layer wrote, and their parents (an opaque marker
    /// keeps these and removes the rest), with the directories' metadata.
    written: Tree,
}

impl Layer {
    // ANCHOR: open_layer
    /// Open `target` once: every entry is then created relative to this
    /// descriptor (the root) or to the cursor walked down from it.
    fn open(target: &Path, opts: &ApplyOptions) -> Result<Layer, ApplyError> {
        let refused = |errno| ApplyError::Target {
            path: target.to_path_buf(),
            errno,
        };
        let root = nix::fcntl::open(
            target,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(refused)?;
        let at_root = root
            .try_clone()
            .map_err(|e| refused(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        Ok(Layer {
            cursor: DirCursor::new(at_root).map_err(refused)?,
            root,
            opts: *opts,
            written: Tree::default(),
        })
    }
    // ANCHOR_END: open_layer

    fn touch(&mut self, rel: &Path) {
        self.written.insert(rel);
    }

    /// Move the cursor to `dir` (plain components below the target): up
    /// to the part it shares with where the cursor stands, then down one
    /// component at a time with `O_NOFOLLOW | O_DIRECTORY`, making missing
    /// directories (0755) with `create`.
    fn go_to(&mut self, dir: &Path, create: bool) -> Result<(), WalkError> {
        let common = self
            .cursor
            .names()
            .iter()
            .zip(dir.iter())
            .take_while(|(here, there)| here.as_os_str() == *there)
            .count();
        while self.cursor.depth() > common {
            self.cursor
                .up()
                .map_err(|_| WalkError::Other("openat ..", Errno::ESTALE))?;
        }
        for comp in dir.iter().skip(common) {
            match self.cursor.down(comp) {
                Ok(()) => {}
                Err(Errno::ENOENT) if create => {
                    match mkdirat(self.cursor.fd(), comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(WalkError::Other("mkdirat", e)),
                    }
                    let at = self.cursor.fd().try_clone_to_owned().map_err(|e| {
                        WalkError::Other("dup", Errno::from_raw(e.raw_os_error().unwrap_or(0)))
                    })?;
                    self.cursor.down(comp).map_err(|e| classify(&at, comp, e))?;
                }
                Err(e) => return Err(classify(self.cursor.fd(), comp, e)),
            }
        }
        Ok(())
    }

    /// Open the parent of the entry `rel` (`raw` as in the archive).
    fn parent(
        &mut self,
        raw: &Path,
        dir: &Path,
        create: bool,
    ) -> Result<Option<OwnedFd>, ApplyError> {
        let here = match self.go_to(dir, create) {
            Ok(()) => self.cursor.fd().try_clone_to_owned().map_err(|e| {
                WalkError::Other("dup", Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            }),
            Err(e) => Err(e),
        };
        match here {
            Ok(fd) => Ok(Some(fd)),
            Err(WalkError::Missing) => Ok(None),
            Err(WalkError::Symlink) => Err(ApplyError::UnsafePath {
                path: raw.to_path_buf(),
                why: "a parent directory is a symlink; entries are never created through symlinks",
            }),
            Err(WalkError::Other(call, errno)) => Err(ApplyError::Syscall {
                call,
                path: raw.to_path_buf(),
                errno,
            }),
        }
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &Path,
        report: &mut ApplyReport,
    ) -> Result<(), ApplyError> {
        let rel = clean_path(raw).map_err(|why| ApplyError::UnsafePath {
            path: raw.to_path_buf(),
            why,
        })?;
        let kind = entry.header().entry_type();
        let meta = entry_meta(entry.header(), raw)?;

        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        if rel.as_os_str().is_empty() {
            // `./`: the target itself.
            return self.apply_root(kind, meta, raw);
        }
        let dir = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            report.whiteouts += 1;
            return self.whiteout(raw, dir, name, OsStr::from_bytes(hidden));
        }
        if matches!(kind, EntryType::Char | EntryType::Block) && !self.opts.allow_devices {
            return Err(ApplyError::DeviceRefused {
                path: raw.to_path_buf(),
            });
        }
        let (parent, existing) = self.make_room(raw, &rel, kind)?;

        match kind {
            EntryType::Directory => {
                if existing != Some(SFlag::S_IFDIR) {
                    mkdirat(&parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(sys("mkdirat", raw))?;
                }
                let node = self.written.insert(&rel);
                self.written.nodes[node].meta = Some(meta);
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                report.bytes += self.write_file(entry, &parent, name, meta, raw)?;
                Ok(())
            }
            EntryType::Link => {
                let link = entry.link_name_bytes().ok_or(ApplyError::MissingLinkName {
                    path: raw.to_path_buf(),
                    what: "hard link",
                })?;
                let link = PathBuf::from(OsStr::from_bytes(&link));
                self.hard_link(raw, &link, &parent, name)
            }
            _ => {
                make_special(entry, kind, &parent, name, raw)?;
                self.set_meta_at(&parent, name, kind, meta, raw)
            }
        }
    }

    /// The entry `./`: only a directory may name the layer's root, and only
    /// its metadata is kept (applied at the end, as every directory's is).
    fn apply_root(&mut self, kind: EntryType, meta: Meta, raw: &Path) -> Result<(), ApplyError> {
        if kind != EntryType::Directory {
            return Err(ApplyError::UnsafePath {
                path: raw.to_path_buf(),
                why: "only a directory may name the layer's root",
            });
        }
        let node = self.written.insert(Path::new(""));
        self.written.nodes[node].meta = Some(meta);
        Ok(())
    }

    /// Opens the parent of `rel` (creating missing directories, never
    /// through a symlink) and clears the way: anything already at `rel`
    /// goes, but a directory kept for a directory entry (a symlink is
    /// unlinked, never followed). Returns the parent and what was kept.
    fn make_room(
        &mut self,
        raw: &Path,
        rel: &Path,
        kind: EntryType,
    ) -> Result<(OwnedFd, Option<SFlag>), ApplyError> {
        let dir = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        let Some(parent) = self.parent(raw, dir, true)? else {
            return Err(ApplyError::Syscall {
                call: "openat",
                path: raw.to_path_buf(),
                errno: Errno::ENOENT,
            });
        };
        self.touch(rel);
        let existing = kind_at(&parent, name).map_err(sys("fstatat", raw))?;
        match existing {
            Some(SFlag::S_IFDIR) if kind == EntryType::Directory => Ok((parent, existing)),
            Some(_) => {
                remove_at(&parent, name, raw)?;
                Ok((parent, None))
            }
            None => Ok((parent, None)),
        }
    }

    /// A regular file's content, owner, mode and mtime, written through
    /// the descriptor `O_EXCL|O_NOFOLLOW` created. Returns the bytes written.
    fn write_file<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        name: &OsStr,
        meta: Meta,
        raw: &Path,
    ) -> Result<u64, ApplyError> {
        let fd = openat(
            parent,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(sys("openat", raw))?;
        let mut file = File::from(fd);
        let bytes = copy_data(entry, &mut file, raw)?;
        if self.opts.preserve_owners {
            fchown(
                &file,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
            )
            .map_err(sys("fchown", raw))?;
        }
        fchmod(&file, self.mode(meta.mode)).map_err(sys("fchmod", raw))?;
        let t = mtime(meta.mtime);
        futimens(&file, &t, &t).map_err(sys("futimens", raw))?;
        Ok(bytes)
    }

    /// Symlinks, fifos and devices: owner, mode, mtime by name, never
    /// following a link.
    fn set_meta_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        kind: EntryType,
        meta: Meta,
        raw: &Path,
    ) -> Result<(), ApplyError> {
        if self.opts.preserve_owners {
            fchownat(
                parent,
                name,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(sys("fchownat", raw))?;
        }
        if kind != EntryType::Symlink {
            // Not a symlink (just created), so following is harmless.
            fchmodat(
                parent,
                name,
                self.mode(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(sys("fchmodat", raw))?;
        }
        let t = mtime(meta.mtime);
        utimensat(parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(sys("utimensat", raw))?;
        Ok(())
    }

    /// The permission bits to give an entry.
    fn mode(&self, mode: u32) -> Mode {
        let keep = if self.opts.preserve_owners {
            0o7777
        } else {
            0o1777
        };
        Mode::from_bits_truncate(mode & keep)
    }

    /// A hard link: its target is cleaned like any path and resolved from
    /// `root` without following symlinks; `linkat` without
    /// `AT_SYMLINK_FOLLOW` links a symlink itself, not what it points to.
    fn hard_link(
        &mut self,
        raw: &Path,
        link: &Path,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> Result<(), ApplyError> {
        let unsafe_link = |why| ApplyError::UnsafeLink {
            path: raw.to_path_buf(),
            link: link.to_path_buf(),
            why,
        };
        let rel = clean_path(link).map_err(unsafe_link)?;
        let (Some(dir), Some(old)) = (rel.parent(), rel.file_name()) else {
            return Err(unsafe_link("a hard link must name a file in the layer"));
        };
        let old_parent = match walk_dirs(&self.root, dir, false) {
            Ok(fd) => fd,
            Err(WalkError::Symlink) => {
                return Err(unsafe_link(
                    "a parent directory of the link target is a symlink",
                ));
            }
            Err(WalkError::Missing) => {
                return Err(ApplyError::Syscall {
                    call: "linkat",
                    path: raw.to_path_buf(),
                    errno: Errno::ENOENT,
                });
            }
            Err(WalkError::Other(call, errno)) => {
                return Err(ApplyError::Syscall {
                    call,
                    path: raw.to_path_buf(),
                    errno,
                });
            }
        };
        linkat(&old_parent, old, parent, name, AtFlags::empty()).map_err(sys("linkat", raw))
    }

    /// `.wh.NAME` (`hidden` is NAME) or the opaque marker, in `dir`.
    fn whiteout(
        &mut self,
        raw: &Path,
        dir: &Path,
        marker: &OsStr,
        hidden: &OsStr,
    ) -> Result<(), ApplyError> {
        let overlay = self.opts.whiteouts == WhiteoutMode::Overlay;
        if marker == OPAQUE_MARKER {
            let Some(fd) = self.parent(raw, dir, overlay)? else {
                return Ok(()); // nothing below to hide
            };
            self.touch(dir);
            return if overlay {
                set_opaque(&fd, raw)
            } else {
                self.clear_lower(&fd, dir)
            };
        }
        if hidden.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are aufs bookkeeping (`.wh..wh.plnk`),
            // not part of the OCI format: skipped, as Docker does.
            return Ok(());
        }
        if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.as_bytes().contains(&b'/')
        {
            return Err(ApplyError::UnsafePath {
                path: raw.to_path_buf(),
                why: "a whiteout must name a file in its directory",
            });
        }
        let Some(parent) = self.parent(raw, dir, overlay)? else {
            return Ok(()); // already absent
        };
        self.touch(dir);
        remove_at(&parent, hidden, &dir.join(hidden))?;
        if overlay {
            mknodat(
                &parent,
                hidden,
                SFlag::S_IFCHR,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(|errno| ApplyError::WhiteoutRefused {
                path: raw.to_path_buf(),
                errno,
            })?;
        }
        Ok(())
    }

    /// An opaque directory in Delete mode: remove what the layers below put
    /// in `dir` (an open descriptor of it), keeping what this layer wrote.
    /// Walks down only into directories this layer wrote in.
    fn clear_lower(&self, fd: &OwnedFd, dir: &Path) -> Result<(), ApplyError> {
        let Some(top) = self.written.get(dir) else {
            return Ok(());
        };
        let dup = fd.try_clone().map_err(|e| ApplyError::Syscall {
            call: "dup",
            path: dir.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        let mut cursor = DirCursor::new(dup).map_err(sys("fstat", dir))?;
        let list = |c: &DirCursor| list_names(c.fd()).map_err(sys("readdir", &dir.join(c.path())));
        // (the written node of a directory, its names still to look at)
        let mut stack = vec![(top, list(&cursor)?)];
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            let Some(child) = pending.pop() else {
                stack.pop();
                if !stack.is_empty() {
                    cursor.up().map_err(walk_err(&dir.join(cursor.path())))?;
                }
                continue;
            };
            let path = dir.join(cursor.path_of(&child));
            match self.written.child(node, &child) {
                None => remove_tree_at(cursor.fd(), &child).map_err(walk_err(&path))?,
                Some(sub) => {
                    let st = stat_at(cursor.fd(), &child).map_err(sys("fstatat", &path))?;
                    if st.is_some_and(|st| kind(&st) == SFlag::S_IFDIR) {
                        cursor.down(&child).map_err(sys("openat", &path))?;
                        stack.push((sub, list(&cursor)?));
                    }
                }
            }
        }
        Ok(())
    }

    /// Give each directory its entry's metadata, deepest first (a parent
    /// made read-only first could not be filled, and writing into a
    /// directory changes its mtime).
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        if self.written.nodes.is_empty() {
            return Ok(());
        }
        let root = self.root.try_clone().map_err(|e| ApplyError::Syscall {
            call: "dup",
            path: PathBuf::new(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        let mut cursor = DirCursor::new(root).map_err(sys("fstat", Path::new("")))?;
        // (a directory's node, its children still to finish)
        let mut stack = vec![(Tree::ROOT, self.written.take_children(Tree::ROOT))];
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            if let Some((name, child)) = pending.pop() {
                // Replaced or whited out by a later entry: nothing to finish.
                if cursor.down(&name).is_ok() {
                    stack.push((child, self.written.take_children(child)));
                }
                continue;
            }
            stack.pop();
            let meta = self.written.nodes[node].meta;
            match cursor.names().last().cloned() {
                // The target itself (a `./` entry).
                None => {
                    if let Some(meta) = meta {
                        self.set_dir_meta(cursor.fd(), &meta, Path::new(""))?;
                    }
                }
                Some(name) => {
                    let path = cursor.path();
                    cursor.up().map_err(walk_err(&path))?;
                    if let Some(meta) = meta {
                        match open_dir_at(cursor.fd(), &name) {
                            Ok(fd) => self.set_dir_meta(fd.as_fd(), &meta, &path)?,
                            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => {}
                            Err(errno) => {
                                return Err(ApplyError::Syscall {
                                    call: "openat",
                                    path,
                                    errno,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A directory's owner, mode and mtime, on an open descriptor of it.
    fn set_dir_meta(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        meta: &Meta,
        rel: &Path,
    ) -> Result<(), ApplyError> {
        if self.opts.preserve_owners {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
            )
            .map_err(sys("fchown", rel))?;
        }
        fchmod(fd, self.mode(meta.mode)).map_err(sys("fchmod", rel))?;
        let t = mtime(meta.mtime);
        futimens(fd, &t, &t).map_err(sys("futimens", rel))?;
        Ok(())
    }
}

fn mtime(secs: u64) -> TimeSpec {
    TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0)
}

/// The owner, mode and mtime a tar header gives an entry.
fn entry_meta(header: &tar::Header, raw: &Path) -> Result<Meta, ApplyError> {
    let read_err = |cause| ApplyError::ReadEntry {
        path: raw.to_path_buf(),
        cause,
    };
    Ok(Meta {
        mode: header.mode().map_err(read_err)?,
        mtime: header.mtime().map_err(read_err)?,
        uid: header.uid().map_err(read_err)?,
        gid: header.gid().map_err(read_err)?,
    })
}

/// A symlink, a fifo or a device node named `name` in `parent`; any other
/// kind of entry is refused.
fn make_special<R: Read>(
    entry: &tar::Entry<'_, R>,
    kind: EntryType,
    parent: &OwnedFd,
    name: &OsStr,
    raw: &Path,
) -> Result<(), ApplyError> {
    match kind {
        EntryType::Symlink => {
            let link = entry.link_name_bytes().ok_or(ApplyError::MissingLinkName {
                path: raw.to_path_buf(),
                what: "symlink",
            })?;
            symlinkat(OsStr::from_bytes(&link), parent, name).map_err(sys("symlinkat", raw))
        }
        EntryType::Fifo => {
            mkfifoat(parent, name, Mode::from_bits_truncate(0o600)).map_err(sys("mkfifoat", raw))
        }
        EntryType::Char | EntryType::Block => {
            let sflag = if kind == EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            let major = header_dev(entry.header().device_major(), raw)?;
            let minor = header_dev(entry.header().device_minor(), raw)?;
            let dev = makedev(major, minor);
            mknodat(parent, name, sflag, Mode::from_bits_truncate(0o600), dev)
                .map_err(sys("mknodat", raw))
        }
        other => Err(ApplyError::Unsupported {
            path: raw.to_path_buf(),
            kind: format!("{other:?}"),
        }),
    }
}

fn header_dev(field: io::Result<Option<u32>>, raw: &Path) -> Result<u64, ApplyError> {
    field
        .map(|v| u64::from(v.unwrap_or(0)))
        .map_err(|cause| ApplyError::ReadEntry {
            path: raw.to_path_buf(),
            cause,
        })
}

/// Copy an entry's data into `file`, telling read errors (a truncated
/// archive) from write errors (a full disk).
fn copy_data(src: &mut impl Read, file: &mut File, raw: &Path) -> Result<u64, ApplyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(cause) => {
                return Err(ApplyError::ReadEntry {
                    path: raw.to_path_buf(),
                    cause,
                });
            }
        };
        file.write_all(&buf[..n])
            .map_err(|cause| ApplyError::Write {
                path: raw.to_path_buf(),
                cause,
            })?;
        total += n as u64;
    }
}

/// Set `trusted.overlay.opaque=y` on an open directory.
fn set_opaque(dir: &OwnedFd, raw: &Path) -> Result<(), ApplyError> {
    const NAME: &[u8] = b"trusted.overlay.opaque\0";
    // SAFETY: `dir` is an open descriptor; NAME is NUL-terminated and the
    // value pointer and length describe a live one-byte slice.
    let rc = unsafe {
        nix::libc::fsetxattr(
            dir.as_raw_fd(),
            NAME.as_ptr().cast(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    Errno::result(rc)
        .map(drop)
        .map_err(|errno| ApplyError::OpaqueRefused {
            path: raw.to_path_buf(),
            errno,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::ffi::OsStringExt as _;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
    use tar::{Builder, Header};

    const MTIME: u64 = 1_600_000_000;

    /// An archive built entry by entry from raw headers, so that paths the
    /// `tar` crate would refuse to write (`..`, absolute) can be crafted.
    struct Layer(Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(Builder::new(Vec::new()))
        }

        fn raw(mut self, kind: EntryType, path: &str, link: &str, mode: u32, data: &[u8]) -> Layer {
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_mtime(MTIME);
            h.set_uid(0);
            h.set_gid(0);
            {
                let old = h.as_old_mut();
                old.name[..path.len()].copy_from_slice(path.as_bytes());
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            self.0.append(&h, data).expect("append");
            self
        }
        fn dir(self, path: &str, mode: u32) -> Layer {
            self.raw(EntryType::Directory, path, "", mode, b"")
        }
        fn file(self, path: &str, mode: u32, data: &[u8]) -> Layer {
            self.raw(EntryType::Regular, path, "", mode, data)
        }
        fn symlink(self, path: &str, to: &str) -> Layer {
            self.raw(EntryType::Symlink, path, to, 0o777, b"")
        }
        fn hardlink(self, path: &str, to: &str) -> Layer {
            self.raw(EntryType::Link, path, to, 0o644, b"")
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().expect("finish")
        }
    }

    fn opts(whiteouts: WhiteoutMode) -> ApplyOptions {
        ApplyOptions {
            whiteouts,
            preserve_owners: false,
            allow_devices: false,
        }
    }

    /// A scratch directory holding `target/`, a sentinel file and an
    /// `outside/` directory beside it.
    struct Scratch {
        tmp: tempfile::TempDir,
    }

    impl Scratch {
        fn new() -> Scratch {
            let tmp = tempfile::tempdir().expect("tempdir");
            fs::create_dir(tmp.path().join("target")).expect("mkdir");
            fs::create_dir(tmp.path().join("outside")).expect("mkdir");
            fs::write(tmp.path().join("sentinel"), b"untouched").expect("write");
            fs::write(tmp.path().join("outside/keep"), b"keep").expect("write");
            Scratch { tmp }
        }
        fn target(&self) -> PathBuf {
            self.tmp.path().join("target")
        }
        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }
        fn apply(&self, layer: Vec<u8>) -> Result<ApplyReport, ApplyError> {
            apply_layer(&layer[..], &self.target(), &opts(WhiteoutMode::Delete))
        }
        /// Everything outside `target/`, with file contents.
        fn outside_snapshot(&self) -> BTreeSet<(PathBuf, Vec<u8>)> {
            let mut out = BTreeSet::new();
            let mut stack = vec![self.tmp.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).expect("read_dir") {
                    let p = e.expect("entry").path();
                    if p == self.target() {
                        continue;
                    }
                    let ft = fs::symlink_metadata(&p).expect("lstat").file_type();
                    let data = if ft.is_file() {
                        fs::read(&p).expect("read")
                    } else {
                        Vec::new()
                    };
                    if ft.is_dir() {
                        stack.push(p.clone());
                    }
                    out.insert((p, data));
                }
            }
            out
        }
        /// Apply a malicious layer: it must fail, and nothing outside
        /// `target/` may change.
        fn refuse(&self, layer: Vec<u8>) -> ApplyError {
            let before = self.outside_snapshot();
            let err = self.apply(layer).expect_err("malicious layer was applied");
            assert_eq!(
                self.outside_snapshot(),
                before,
                "something outside target changed"
            );
            assert_eq!(
                fs::read(self.tmp.path().join("sentinel")).expect("sentinel"),
                b"untouched"
            );
            assert!(!Path::new("/tmp/pwned").exists());
            err
        }
    }

    fn meta(p: &Path) -> fs::Metadata {
        fs::symlink_metadata(p).expect("lstat")
    }

    #[test]
    fn normal_layer_tree_matches() {
        let s = Scratch::new();
        let layer = Layer::new()
            .dir("./", 0o755)
            .dir("./usr/", 0o755)
            .dir("usr/bin", 0o555)
            .file("usr/bin/busybox", 0o4755, b"#!elf")
            .symlink("usr/bin/sh", "busybox")
            .symlink("bin", "/usr/bin")
            .hardlink("usr/bin/ls", "usr/bin/busybox")
            .raw(EntryType::Fifo, "run/initctl", "", 0o600, b"")
            .file("etc/motd", 0o640, b"hello\n")
            .bytes();
        let report = s.apply(layer).expect("apply");
        assert_eq!(
            report,
            ApplyReport {
                entries: 9,
                whiteouts: 0,
                bytes: 11
            }
        );
        let t = s.target();
        let bb = meta(&t.join("usr/bin/busybox"));
        // setuid dropped: owners are not preserved.
        assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
        assert_eq!(bb.mtime(), MTIME as i64);
        assert_eq!(bb.nlink(), 2);
        assert_eq!(fs::read(t.join("usr/bin/ls")).expect("read"), b"#!elf");
        assert_eq!(meta(&t.join("usr/bin/ls")).ino(), bb.ino());
        assert_eq!(
            fs::read_link(t.join("usr/bin/sh")).expect("readlink"),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read_link(t.join("bin")).expect("readlink"),
            Path::new("/usr/bin")
        );
        assert_eq!(meta(&t.join("bin")).mtime(), MTIME as i64);
        assert!(meta(&t.join("run/initctl")).file_type().is_fifo());
        let motd = meta(&t.join("etc/motd"));
        assert_eq!(motd.permissions().mode() & 0o7777, 0o640);
        // Directories: their entry's mode and mtime, applied after filling;
        // implicit ones 0755.
        let bin = meta(&t.join("usr/bin"));
        assert_eq!(bin.permissions().mode() & 0o7777, 0o555);
        assert_eq!(bin.mtime(), MTIME as i64);
        assert_eq!(meta(&t.join("etc")).permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_in_delete_mode() {
        let s = Scratch::new();
        let lower = Layer::new()
            .file("a/gone", 0o644, b"x")
            .file("a/stays", 0o644, b"x")
            .file("b/deep/file", 0o644, b"x")
            .file("c/old", 0o644, b"x")
            .file("c/sub/old", 0o644, b"x")
            .symlink("d", "/")
            .bytes();
        s.apply(lower).expect("lower");
        let upper = Layer::new()
            .file("a/.wh.gone", 0o644, b"")
            .file(".wh.b", 0o644, b"")
            .file(".wh.d", 0o644, b"")
            .file("c/new", 0o644, b"y")
            .file("c/sub/new", 0o644, b"y")
            .file("c/.wh..wh..opq", 0o644, b"")
            .file("c/later", 0o644, b"z")
            .bytes();
        let report = s.apply(upper).expect("upper");
        assert_eq!(report.whiteouts, 4);
        let t = s.target();
        assert!(!t.join("a/gone").exists());
        assert!(t.join("a/stays").exists());
        assert!(!t.join("b").exists());
        assert!(fs::symlink_metadata(t.join("d")).is_err());
        assert!(Path::new("/").exists());
        assert!(!t.join("c/old").exists());
        assert!(!t.join("c/sub/old").exists());
        assert_eq!(fs::read(t.join("c/new")).expect("new"), b"y");
        assert_eq!(fs::read(t.join("c/sub/new")).expect("new"), b"y");
        assert_eq!(fs::read(t.join("c/later")).expect("later"), b"z");
        assert!(!t.join(".wh.b").exists() && !t.join("c/.wh..wh..opq").exists());
    }

    #[test]
    fn overlay_mode_markers_or_a_clear_error() {
        let s = Scratch::new();
        let layer = Layer::new().file("etc/.wh.passwd", 0o644, b"").bytes();
        match apply_layer(&layer[..], &s.target(), &opts(WhiteoutMode::Overlay)) {
            Ok(_) => {
                let m = meta(&s.target().join("etc/passwd"));
                assert!(m.file_type().is_char_device());
                assert_eq!(m.rdev(), 0);
            }
            Err(ApplyError::WhiteoutRefused { path, .. }) => {
                assert!(!Uid::effective().is_root() || in_user_namespace());
                assert_eq!(path, Path::new("etc/.wh.passwd"));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        let layer = Layer::new()
            .dir("var", 0o755)
            .file("var/.wh..wh..opq", 0o644, b"")
            .bytes();
        match apply_layer(&layer[..], &s.target(), &opts(WhiteoutMode::Overlay)) {
            Ok(_) => {
                let mut buf = [0u8; 4];
                let path = c"trusted.overlay.opaque";
                let dir =
                    std::ffi::CString::new(s.target().join("var").into_os_string().into_vec())
                        .expect("cstring");
                // SAFETY: both names are NUL-terminated; buf is live and its
                // length is passed.
                let n = unsafe {
                    nix::libc::lgetxattr(
                        dir.as_ptr(),
                        path.as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                assert_eq!(n, 1);
                assert_eq!(buf[0], b'y');
            }
            // Not root, or /tmp without trusted xattrs.
            Err(ApplyError::OpaqueRefused { path, .. }) => {
                assert_eq!(path, Path::new("var/.wh..wh..opq"));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn in_user_namespace() -> bool {
        fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    }

    fn assert_unsafe_path(err: ApplyError, want: &str) {
        match err {
            ApplyError::UnsafePath { path, .. } => assert_eq!(path, Path::new(want)),
            e => panic!("expected UnsafePath for {want}, got {e}"),
        }
    }

    #[test]
    fn absolute_path_is_refused() {
        let s = Scratch::new();
        let abs = s.tmp.path().join("pwned");
        let layer = Layer::new()
            .file(abs.to_str().expect("utf-8"), 0o644, b"x")
            .bytes();
        assert_unsafe_path(s.refuse(layer), abs.to_str().expect("utf-8"));
    }

    #[test]
    fn dotdot_paths_are_refused() {
        for p in ["../pwned", "a/../../pwned", "a/b/../../../sentinel"] {
            let s = Scratch::new();
            let layer = Layer::new().file(p, 0o644, b"x").bytes();
            assert_unsafe_path(s.refuse(layer), p);
        }
    }

    #[test]
    fn writing_through_a_planted_symlink_is_refused() {
        let s = Scratch::new();
        let out = s.outside();
        let layer = Layer::new()
            .symlink("evil", out.to_str().expect("utf-8"))
            .file("evil/pwned", 0o644, b"x")
            .bytes();
        assert_unsafe_path(s.refuse(layer), "evil/pwned");
        // Also a relative symlink climbing out, and a directory entry.
        let s = Scratch::new();
        let layer = Layer::new()
            .symlink("evil", "../outside")
            .dir("evil/sub", 0o755)
            .bytes();
        assert_unsafe_path(s.refuse(layer), "evil/sub");
    }

    #[test]
    fn whiteout_through_a_symlink_is_refused() {
        let s = Scratch::new();
        let out = s.outside();
        let layer = Layer::new()
            .symlink("evil", out.to_str().expect("utf-8"))
            .file("evil/.wh.keep", 0o644, b"")
            .bytes();
        assert_unsafe_path(s.refuse(layer), "evil/.wh.keep");
        let s = Scratch::new();
        let layer = Layer::new()
            .symlink("evil", out.to_str().expect("utf-8"))
            .file("evil/.wh..wh..opq", 0o644, b"")
            .bytes();
        assert_unsafe_path(s.refuse(layer), "evil/.wh..wh..opq");
        let s = Scratch::new();
        let layer = Layer::new().file("a/.wh...", 0o644, b"").bytes();
        assert_unsafe_path(s.refuse(layer), "a/.wh...");
    }

    #[test]
    fn hard_links_out_of_the_layer_are_refused() {
        let s = Scratch::new();
        let sentinel = s.tmp.path().join("sentinel");
        for to in [
            sentinel.to_str().expect("utf-8"),
            "/etc/passwd",
            "../sentinel",
            "a/../../sentinel",
        ] {
            let layer = Layer::new().hardlink("hl", to).bytes();
            match s.refuse(layer) {
                ApplyError::UnsafeLink { path, link, .. } => {
                    assert_eq!(path, Path::new("hl"));
                    assert_eq!(link, Path::new(to));
                }
                e => panic!("expected UnsafeLink for {to}, got {e}"),
            }
            assert!(fs::symlink_metadata(s.target().join("hl")).is_err());
        }
        // Through a symlinked directory.
        let out = s.outside();
        let layer = Layer::new()
            .symlink("evil", out.to_str().expect("utf-8"))
            .hardlink("hl", "evil/keep")
            .bytes();
        assert!(matches!(s.refuse(layer), ApplyError::UnsafeLink { .. }));
        assert_eq!(meta(&out.join("keep")).nlink(), 1);
    }

    #[test]
    fn device_nodes_need_allow_devices() {
        let s = Scratch::new();
        let layer = Layer::new()
            .raw(EntryType::Char, "dev/null", "", 0o666, b"")
            .bytes();
        match s.refuse(layer) {
            ApplyError::DeviceRefused { path } => assert_eq!(path, Path::new("dev/null")),
            e => panic!("expected DeviceRefused, got {e}"),
        }
        assert!(!s.target().join("dev/null").exists());
    }

    #[test]
    fn replacing_a_symlink_with_a_directory_does_not_follow_it() {
        let s = Scratch::new();
        let out = s.outside();
        let layer = Layer::new()
            .symlink("d", out.to_str().expect("utf-8"))
            .dir("d", 0o700)
            .file("d/f", 0o644, b"inside")
            .file("link", 0o644, b"replaced")
            .bytes();
        let before = s.outside_snapshot();
        s.apply(layer).expect("apply");
        assert_eq!(s.outside_snapshot(), before);
        assert!(meta(&s.target().join("d")).is_dir());
        assert_eq!(fs::read(s.target().join("d/f")).expect("read"), b"inside");
    }

    #[test]
    fn truncated_archive_names_the_entry() {
        let s = Scratch::new();
        let mut layer = Layer::new()
            .file("first", 0o644, b"ok")
            .file("big", 0o644, &vec![7u8; 10_000])
            .bytes();
        layer.truncate(512 * 3 + 4000);
        match s.apply(layer) {
            Err(ApplyError::ReadEntry { path, .. }) => assert_eq!(path, Path::new("big")),
            Err(ApplyError::ReadArchive { position, .. }) => {
                assert!(position.contains("big"), "{position}")
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        assert_eq!(fs::read(s.target().join("first")).expect("first"), b"ok");
    }

    #[test]
    fn unknown_entry_types_are_refused_by_name() {
        let s = Scratch::new();
        let layer = Layer::new()
            .raw(EntryType::new(b'Z'), "odd", "", 0o644, b"")
            .bytes();
        match s.refuse(layer) {
            ApplyError::Unsupported { path, .. } => assert_eq!(path, Path::new("odd")),
            e => panic!("expected Unsupported, got {e}"),
        }
    }
}
