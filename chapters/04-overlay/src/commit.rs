//! Committing a container: an overlayfs upper directory written as an OCI
//! layer tarball, byte for byte the same every time.
//!
//! overlayfs keeps every change a container makes in its *upper* directory:
//! new and copied-up files as they are, a deleted lower entry as a character
//! device 0/0 under the deleted name (a *whiteout*), and a directory whose
//! lower contents are replaced as a directory carrying the xattr
//! `trusted.overlay.opaque` = `y` (`user.overlay.opaque` when mounted with
//! `userxattr`, as rootless overlay is). The OCI image spec writes the same
//! changes differently: a whiteout is an empty regular file `.wh.<name>`, an
//! opaque directory is the directory entry followed by an empty file
//! `.wh..wh..opq` inside it. [`commit_layer`] translates one into the other.
//!
//! The layer is deterministic, so committing the same changes twice gives the
//! same digest: entries sorted by path (byte order, each directory before
//! its children, the one exception being an opaque marker, which comes right
//! after its directory's entry), numeric owners only, every mtime set
//! to `SOURCE_DATE_EPOCH` or 0 (unless [`CommitOptions::keep_times`]), no
//! atime, ctime or pax records, and for gzip a fixed level and a header
//! with neither name nor time. The tar is hashed while it is written and
//! never held in memory; regular files are streamed.
//!
//! Commit a stopped (or frozen) container: a file that changes size while it
//! is read gives an error, not a layer.
//!
//! Not translated, and so not in the layer: sockets (tar has no way to write
//! them), other xattrs, overlay's `redirect_dir` renames
//! (`trusted.overlay.redirect`) and the newer xattr-marked whiteouts
//! (`trusted.overlay.whiteout`). Overlay's `work` directory is a sibling of
//! the upper directory, not inside it, so there is nothing of overlay's own
//! to skip.
//!
//! Specs and man pages: OCI image spec `layer.md` (changesets, whiteouts),
//! the kernel's `Documentation/filesystems/overlayfs.rst`, tar(5),
//! getxattr(2), mknod(2), and <https://reproducible-builds.org/specs/source-date-epoch/>.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::libc;
use nix::sys::stat::{FileStat, SFlag};
use tar::{Builder, EntryType, Header};
use xattr::FileExt as _;

use crate::digest::{Algorithm, Hashing};
use crate::escape::shown;
use crate::walk::{DirCursor, WalkError, kind, list_names, open_dir_at, stat_at};

/// The OCI prefix of a whiteout file: `.wh.<name>` deletes `<name>`.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// The OCI opaque marker: this directory hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The xattrs overlayfs marks an opaque directory with: the kernel's own
/// (`trusted.*`, root only), and the one used with the `userxattr` mount
/// option (rootless overlay).
pub const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The gzip level used for compressed layers. Fixed, so the compressed digest
/// is too (for the same flate2 backend).
const GZIP_LEVEL: u32 = 6;

/// How to write a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// Keep each file's mtime. Off by default: every mtime is then
    /// `SOURCE_DATE_EPOCH` if set, else 0, so the digest depends on contents
    /// only.
    pub keep_times: bool,
    /// Compress the layer with gzip (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub gzip: bool,
}

/// The digests of a written layer, as an image config and manifest need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the uncompressed tar: the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// `sha256:<hex>` of the gzip blob when compressed: the manifest's layer
    /// digest. For an uncompressed layer that digest is `diff_id`.
    pub digest: Option<String>,
    /// Bytes written to `out` (the blob's size).
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// lstat, readdir, readlink, getxattr or open in the upper directory.
    #[error("{}: {cause}", shown(.path))]
    Read { path: PathBuf, cause: io::Error },

    /// Walking the tree failed (a directory moved meanwhile).
    #[error(transparent)]
    Walk(#[from] WalkError),

    /// A name a layer reserves for whiteouts.
    #[error(
        "{}: a name starting with .wh. means a deletion in a layer, so it cannot be stored as a file: rename it",
        shown(.path)
    )]
    ReservedName { path: PathBuf },

    /// Writing the entry for `path` to the layer failed.
    #[error("write layer entry for {}: {cause}", shown(.path))]
    Write { path: PathBuf, cause: io::Error },

    /// Finishing the archive or the gzip stream failed.
    #[error("finish layer: {cause}")]
    Finish { cause: io::Error },
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> CommitError + '_ {
    move |cause| CommitError::Read {
        path: path.to_path_buf(),
        cause,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> CommitError + '_ {
    move |cause| CommitError::Write {
        path: path.to_path_buf(),
        cause,
    }
}

/// `SOURCE_DATE_EPOCH` if set and a number (the reproducible-builds
/// convention), else 0.
fn fixed_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// What one entry of the upper directory stands for.
enum Kind {
    /// A character device 0/0: the lower entry of this name is deleted.
    Whiteout,
    /// A directory; `opaque` when it hides the lower directory's contents.
    Dir { opaque: bool },
    /// Anything else: written as it is.
    Other,
}

/// One entry of a directory, with the name it sorts by.
struct Child {
    name: OsString,
    st: FileStat,
    kind: Kind,
    /// The last component of its tar path: `.wh.<name>` for a whiteout,
    /// `<name>/` for a directory, else `<name>`. Sorting siblings by this
    /// makes the whole archive sorted by path, byte for byte, each directory
    /// before its children.
    key: Vec<u8>,
}

/// Whether `st` is an overlay whiteout: a character device 0/0.
fn is_whiteout(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFCHR && st.st_rdev == 0
}

/// Whether the open directory `dir` carries an overlay opaque xattr set
/// to `y`.
///
/// Only `y` counts: newer kernels write `x` to mean "holds xattr-marked
/// whiteouts", which is not opaque. A missing xattr, a filesystem without
/// xattrs, and `trusted.*` unreadable to a normal user (the kernel then says
/// ENODATA) all mean "not opaque".
pub fn is_opaque_dir(dir: &File) -> io::Result<bool> {
    for name in OPAQUE_XATTRS {
        match dir.get_xattr(name) {
            Ok(Some(value)) if value == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// [`is_opaque_dir`] for a path: a symlink or anything but a directory is
/// not opaque.
pub fn is_opaque(path: &Path) -> Result<bool, CommitError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = match nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOTDIR | Errno::ELOOP | Errno::ENOENT) => return Ok(false),
        Err(errno) => return Err(read_err(path)(errno.into())),
    };
    is_opaque_dir(&dir).map_err(read_err(path))
}

/// Whether the directory `name` in `parent` is opaque.
fn is_opaque_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    is_opaque_dir(&File::from(open_dir_at(parent, name)?))
}

/// The entries of the open directory `dir` (`rel` in the tree, for
/// errors), classified and sorted by their tar name. A name that starts
/// with `.wh.` is refused: in a layer it would mean a deletion.
fn children(dir: BorrowedFd<'_>, rel: &Path) -> Result<Vec<Child>, CommitError> {
    let mut out = Vec::new();
    for name in list_names(dir).map_err(|e| read_err(rel)(e.into()))? {
        let path = || rel.join(&name);
        if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Err(CommitError::ReservedName { path: path() });
        }
        let Some(st) = stat_at(dir, &name).map_err(|e| read_err(&path())(e.into()))? else {
            continue; // removed meanwhile
        };
        let (kind, key) = if is_whiteout(&st) {
            let mut key = WHITEOUT_PREFIX.as_bytes().to_vec();
            key.extend_from_slice(name.as_bytes());
            (Kind::Whiteout, key)
        } else if kind(&st) == SFlag::S_IFDIR {
            let mut key = name.as_bytes().to_vec();
            key.push(b'/');
            let opaque = is_opaque_at(dir, &name).map_err(read_err(&path()))?;
            (Kind::Dir { opaque }, key)
        } else {
            (Kind::Other, name.as_bytes().to_vec())
        };
        out.push(Child {
            name,
            st,
            kind,
            key,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The state of one commit: the archive and what it has written so far.
struct Committer<W: Write> {
    builder: Builder<W>,
    mtime: Option<u64>,
    /// (device, inode) of every multiply-linked file written, and its tar path.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Committer<W> {
    /// A GNU header (no pax records, no atime/ctime) with the numeric owner,
    /// permission bits and (fixed or kept) mtime of `st`.
    fn header(&self, st: &FileStat, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(
            self.mtime
                .unwrap_or_else(|| u64::try_from(st.st_mtime).unwrap_or(0)),
        );
        header.set_size(0);
        header
    }

    /// An empty regular file, mode 0, owner 0, fixed mtime: the OCI form of
    /// whiteouts and opaque markers.
    fn marker(&mut self, tar_path: &Path) -> Result<(), CommitError> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime.unwrap_or(0));
        header.set_size(0);
        self.builder
            .append_data(&mut header, tar_path, io::empty())
            .map_err(write_err(tar_path))
    }

    /// Write every entry below `upper`, depth first, with a cursor that
    /// holds two descriptors and the tar path of where it stands, however
    /// deep the tree.
    fn write_tree(&mut self, upper: &Path) -> Result<(), CommitError> {
        let mut cursor = DirCursor::open(upper)?;
        let mut rel = PathBuf::new();
        let mut stack = vec![children(cursor.fd(), &rel)?.into_iter()];
        while let Some(level) = stack.last_mut() {
            let Some(child) = level.next() else {
                stack.pop();
                if !stack.is_empty() {
                    cursor.up()?;
                    rel.pop();
                }
                continue;
            };
            let tar_rel = rel.join(&child.name);
            self.write_child(&child, cursor.fd(), &tar_rel)?;
            if let Kind::Dir { .. } = child.kind {
                cursor
                    .down(&child.name)
                    .map_err(|e| read_err(&tar_rel)(e.into()))?;
                rel = tar_rel;
                stack.push(children(cursor.fd(), &rel)?.into_iter());
            }
        }
        Ok(())
    }

    // ANCHOR: whiteout_to_oci
    /// Write one entry (`tar_rel`, found in the open directory `dir`): a
    /// whiteout becomes `.wh.<name>`, an opaque directory its entry
    /// followed by `<dir>/.wh..wh..opq`, anything else itself.
    fn write_child(
        &mut self,
        child: &Child,
        dir: BorrowedFd<'_>,
        tar_rel: &Path,
    ) -> Result<(), CommitError> {
        match child.kind {
            Kind::Whiteout => {
                let mut name = OsString::from(WHITEOUT_PREFIX);
                name.push(&child.name);
                self.marker(&tar_rel.with_file_name(name))
            }
            Kind::Dir { opaque } => {
                let mut header = self.header(&child.st, EntryType::Directory);
                let mut dir_path = tar_rel.as_os_str().to_os_string();
                dir_path.push("/");
                self.builder
                    .append_data(&mut header, Path::new(&dir_path), io::empty())
                    .map_err(write_err(tar_rel))?;
                if opaque {
                    self.marker(&tar_rel.join(OPAQUE_MARKER))?;
                }
                Ok(())
            }
            Kind::Other => self.write_other(child, dir, tar_rel),
        }
    }
    // ANCHOR_END: whiteout_to_oci

    /// A file, symlink, hard link, fifo or device node.
    fn write_other(
        &mut self,
        child: &Child,
        dir: BorrowedFd<'_>,
        tar_rel: &Path,
    ) -> Result<(), CommitError> {
        let st = &child.st;
        let file_type = kind(st);
        if file_type == SFlag::S_IFSOCK {
            // tar cannot hold a socket; a program makes a new one anyway.
            return Ok(());
        }
        if st.st_nlink > 1 && file_type != SFlag::S_IFDIR {
            let id = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&id) {
                let mut header = self.header(st, EntryType::Link);
                return self
                    .builder
                    .append_link(&mut header, tar_rel, first)
                    .map_err(write_err(tar_rel));
            }
            self.links.insert(id, tar_rel.to_path_buf());
        }
        if file_type == SFlag::S_IFLNK {
            let target =
                readlinkat(dir, child.name.as_os_str()).map_err(|e| read_err(tar_rel)(e.into()))?;
            let mut header = self.header(st, EntryType::Symlink);
            return self
                .builder
                .append_link(&mut header, tar_rel, target)
                .map_err(write_err(tar_rel));
        }
        if file_type == SFlag::S_IFREG {
            let fd = openat(
                dir,
                child.name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| read_err(tar_rel)(e.into()))?;
            let size = u64::try_from(st.st_size).unwrap_or(0);
            let mut header = self.header(st, EntryType::Regular);
            header.set_size(size);
            let mut reader = SizedReader {
                inner: File::from(fd),
                left: size,
            };
            return self
                .builder
                .append_data(&mut header, tar_rel, &mut reader)
                .map_err(write_err(tar_rel));
        }
        let kind = match file_type {
            SFlag::S_IFIFO => EntryType::Fifo,
            SFlag::S_IFCHR => EntryType::Char,
            _ => EntryType::Block,
        };
        let mut header = self.header(st, kind);
        if kind != EntryType::Fifo {
            let rdev = st.st_rdev;
            let major = u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX);
            let minor = u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX);
            header.set_device_major(major).map_err(write_err(tar_rel))?;
            header.set_device_minor(minor).map_err(write_err(tar_rel))?;
        }
        self.builder
            .append_data(&mut header, tar_rel, io::empty())
            .map_err(write_err(tar_rel))
    }
}

/// Reads exactly `left` bytes of a file whose size was taken from lstat: a
/// file that grew is cut at that size, one that shrank is an error (the
/// header already promised the size).
struct SizedReader {
    inner: File,
    left: u64,
}

impl Read for SizedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read: commit a stopped container",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Write every entry of `upper` to `out` as a tar stream.
fn write_tar<W: Write>(upper: &Path, out: W, opts: &CommitOptions) -> Result<W, CommitError> {
    let mut committer = Committer {
        builder: Builder::new(out),
        mtime: (!opts.keep_times).then(fixed_time),
        links: HashMap::new(),
    };
    committer.write_tree(upper)?;
    committer
        .builder
        .into_inner()
        .map_err(|cause| CommitError::Finish { cause })
}

// ANCHOR: commit_layer
/// Write the changes recorded in the overlay upper directory `upper` as an
/// OCI layer to `out`, and return its digests.
///
/// The tar is hashed on its way out (and, with gzip, hashed again after
/// compression), so neither is held in memory.
pub fn commit_layer<W: Write>(
    upper: &Path,
    out: W,
    opts: &CommitOptions,
) -> Result<LayerDigests, CommitError> {
    let finish = |cause| CommitError::Finish { cause };
    if opts.gzip {
        // out <- hash(gzip) <- gzip <- hash(tar) <- tar
        let blob = Hashing::new(out, Algorithm::Sha256);
        let gz = GzBuilder::new()
            .mtime(0)
            .write(blob, Compression::new(GZIP_LEVEL));
        let tar = write_tar(upper, Hashing::new(gz, Algorithm::Sha256), opts)?;
        let (diff_id, _, gz) = tar.into_parts();
        let blob = gz.finish().map_err(finish)?;
        let (digest, size, mut out) = blob.into_parts();
        out.flush().map_err(finish)?;
        Ok(LayerDigests {
            diff_id: diff_id.to_string(),
            digest: Some(digest.to_string()),
            size,
        })
    } else {
        let tar = write_tar(upper, Hashing::new(out, Algorithm::Sha256), opts)?;
        let (diff_id, size, mut out) = tar.into_parts();
        out.flush().map_err(finish)?;
        Ok(LayerDigests {
            diff_id: diff_id.to_string(),
            digest: None,
            size,
        })
    }
}
// ANCHOR_END: commit_layer

/// What happened to a path, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `A`: not in any lower layer.
    Added,
    /// `C`: in a lower layer, and changed (or, for a directory, something
    /// inside it changed).
    Changed,
    /// `D`: in a lower layer, and deleted.
    Deleted,
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute inside the container: `/etc/hosts`. Printed escaped: a
    /// container names its files as it likes.
    pub path: PathBuf,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        };
        write!(f, "{letter} {}", shown(&self.path))
    }
}

/// The lower layers (top first) that show through below the top ones:
/// all of them down to the first whose root directory is opaque, which
/// hides every layer below it. overlayfs ignores an opaque mark on a
/// layer's root (it looks the mark up only on directories it finds in a
/// lookup), so the engine must leave those layers out itself.
pub fn visible_lowers(lowers: &[PathBuf]) -> Result<Vec<PathBuf>, CommitError> {
    let mut visible = Vec::new();
    for lower in lowers {
        visible.push(lower.clone());
        if is_opaque(lower)? {
            break;
        }
    }
    Ok(visible)
}

/// One directory of the upper tree being compared: its entries still to
/// look at, and the lower layers (indexes, top first) whose cursors stand
/// in the same directory, the ones a lookup there would see.
struct DiffLevel {
    children: std::vec::IntoIter<Child>,
    lowers: Vec<usize>,
    /// Everything below is new (a new or opaque directory above).
    all_added: bool,
}

/// List the changes recorded in the overlay upper directory `upper` as
/// `docker diff` does, calling `each` with every one: each directory
/// before what is in it, names in byte order. `lowers` (top first) tell an
/// added path (in no lower) from a changed one. An opaque directory that
/// replaced a lower one is `C`, its contents `A`; a whiteout is `D`.
///
/// The upper tree and every lower layer are walked side by side, a cursor
/// each, as overlayfs looks names up: the first lower with the name
/// decides, a whiteout or a file hides the lowers below it, an opaque
/// directory too. Depth costs neither descriptors nor memory.
pub fn diff_each(
    upper: &Path,
    lowers: &[PathBuf],
    mut each: impl FnMut(Change),
) -> Result<(), CommitError> {
    let lowers = visible_lowers(lowers)?;
    let mut cursors = lowers
        .iter()
        .map(|l| DirCursor::open(l))
        .collect::<Result<Vec<_>, _>>()?;
    let mut upper_cursor = DirCursor::open(upper)?;
    let mut rel = PathBuf::from("/");
    let mut stack = vec![DiffLevel {
        children: children(upper_cursor.fd(), Path::new(""))?.into_iter(),
        lowers: (0..cursors.len()).collect(),
        all_added: false,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(child) = level.children.next() else {
            let done = stack.pop().map(|l| l.lowers).unwrap_or_default();
            if !stack.is_empty() {
                for i in done {
                    cursors[i].up()?;
                }
                upper_cursor.up()?;
                rel.pop();
            }
            continue;
        };
        let path = rel.join(&child.name);
        let err = |e: nix::Error| read_err(&path)(e.into());
        // ANCHOR: diff
        // 1. Was it there before? The first lower that has the name says.
        let existed =
            !level.all_added && existed_before(&cursors, &level.lowers, &child.name, &path)?;
        let kind = if existed {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        match child.kind {
            // A whiteout of something no lower has deletes nothing.
            Kind::Whiteout if existed => each(Change {
                kind: ChangeKind::Deleted,
                path,
            }),
            Kind::Whiteout => {}
            Kind::Other => each(Change { kind, path }),
            Kind::Dir { opaque } => {
                // 2. A directory: the lowers a lookup below it would see,
                //    their cursors moved down beside the upper's.
                let all_added = level.all_added || opaque || !existed;
                let below = if all_added {
                    Vec::new()
                } else {
                    lowers_below(&mut cursors, &level.lowers, &child.name, &path)?
                };
                upper_cursor.down(&child.name).map_err(err)?;
                let children = children(upper_cursor.fd(), &path)?.into_iter();
                each(Change {
                    kind,
                    path: path.clone(),
                });
                rel = path;
                stack.push(DiffLevel {
                    children,
                    lowers: below,
                    all_added,
                });
            }
        }
        // ANCHOR_END: diff
    }
    Ok(())
}

// ANCHOR: diff_lookup
/// Whether `name` existed before the container: the first of `lowers`
/// (top first) that has the name decides, and a whiteout there means it
/// had been deleted already.
fn existed_before(
    cursors: &[DirCursor],
    lowers: &[usize],
    name: &OsStr,
    path: &Path,
) -> Result<bool, CommitError> {
    for &i in lowers {
        let found = stat_at(cursors[i].fd(), name).map_err(|e| read_err(path)(e.into()))?;
        if let Some(st) = found {
            return Ok(!is_whiteout(&st));
        }
    }
    Ok(false)
}

/// The lowers a lookup below the directory `name` sees, their cursors
/// moved down into it: those that have `name` as a directory, down to the
/// first where it is opaque; a whiteout or a file hides the rest.
fn lowers_below(
    cursors: &mut [DirCursor],
    lowers: &[usize],
    name: &OsStr,
    path: &Path,
) -> Result<Vec<usize>, CommitError> {
    let err = |e: nix::Error| read_err(path)(e.into());
    let mut below = Vec::new();
    for &i in lowers {
        let Some(st) = stat_at(cursors[i].fd(), name).map_err(err)? else {
            continue;
        };
        if !kind_of_dir(&st) {
            break;
        }
        cursors[i].down(name).map_err(err)?;
        below.push(i);
        let dir = cursors[i]
            .fd()
            .try_clone_to_owned()
            .map_err(read_err(path))?;
        if is_opaque_dir(&File::from(dir)).map_err(read_err(path))? {
            break;
        }
    }
    Ok(below)
}
// ANCHOR_END: diff_lookup

fn kind_of_dir(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFDIR
}

/// [`diff_each`], collected.
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, CommitError> {
    let mut out = Vec::new();
    diff_each(upper, lowers, |change| out.push(change))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use nix::sys::stat::{Mode, mknod};
    use nix::unistd::{Uid, mkfifo};
    use tempfile::TempDir;

    fn is_root() -> bool {
        Uid::effective().is_root()
    }

    fn commit(upper: &Path, opts: CommitOptions) -> (Vec<u8>, LayerDigests) {
        let mut out = Vec::new();
        let digests = commit_layer(upper, &mut out, &opts).unwrap();
        assert_eq!(digests.size, out.len() as u64);
        (out, digests)
    }

    /// (path, type, mode, uid, gid, mtime, size, link target) of each entry.
    type Row = (String, EntryType, u32, u64, u64, u64, u64, Option<String>);

    fn entries(tar: &[u8]) -> Vec<Row> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.size().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|p| p.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        entries(tar).into_iter().map(|r| r.0).collect()
    }

    fn sample_upper() -> TempDir {
        let dir = TempDir::new().unwrap();
        let u = dir.path();
        fs::create_dir_all(u.join("etc")).unwrap();
        fs::write(u.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        fs::write(u.join("etc-release"), "x").unwrap();
        fs::create_dir(u.join("a")).unwrap();
        fs::write(u.join("a/b"), "b").unwrap();
        fs::write(u.join("a-c"), "c").unwrap();
        symlink("hosts", u.join("etc/link")).unwrap();
        fs::set_permissions(u.join("etc/hosts"), fs::Permissions::from_mode(0o640)).unwrap();
        dir
    }

    fn set_mtime(path: &Path, secs: i64) {
        use nix::sys::stat::{UtimensatFlags, utimensat};
        use nix::sys::time::TimeSpec;
        let t = TimeSpec::new(secs, 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }

    #[test]
    fn same_upper_same_bytes_whatever_the_mtime() {
        let upper = sample_upper();
        let plain = CommitOptions::default();
        let keep = CommitOptions {
            keep_times: true,
            gzip: false,
        };
        let (a, da) = commit(upper.path(), plain);
        let (b, db) = commit(upper.path(), plain);
        assert_eq!(a, b);
        assert_eq!(da, db);
        assert!(da.diff_id.starts_with("sha256:") && da.diff_id.len() == 71);
        assert_eq!(da.digest, None);

        let (k1, dk1) = commit(upper.path(), keep);
        set_mtime(&upper.path().join("etc/hosts"), 1_000_000);
        let (c, dc) = commit(upper.path(), plain);
        assert_eq!(a, c, "mtime must not matter without keep_times");
        assert_eq!(da, dc);
        let (k2, dk2) = commit(upper.path(), keep);
        assert_ne!(k1, k2, "mtime must matter with keep_times");
        assert_ne!(dk1.diff_id, dk2.diff_id);
    }

    #[test]
    fn entries_sorted_with_numeric_owners_and_fixed_times() {
        let upper = sample_upper();
        let (tar, _) = commit(upper.path(), CommitOptions::default());
        assert_eq!(
            names(&tar),
            [
                "a-c",
                "a/",
                "a/b",
                "etc-release",
                "etc/",
                "etc/hosts",
                "etc/link"
            ]
        );
        let meta = fs::metadata(upper.path().join("etc/hosts")).unwrap();
        let expected_time = fixed_time();
        for row in entries(&tar) {
            assert_eq!(row.3, u64::from(meta.uid()), "{}", row.0);
            assert_eq!(row.4, u64::from(meta.gid()), "{}", row.0);
            assert_eq!(row.5, expected_time, "{}", row.0);
        }
        let rows = entries(&tar);
        let hosts = rows.iter().find(|r| r.0 == "etc/hosts").unwrap();
        assert_eq!((hosts.1, hosts.2, hosts.6), (EntryType::Regular, 0o640, 20));
        let link = rows.iter().find(|r| r.0 == "etc/link").unwrap();
        assert_eq!(link.1, EntryType::Symlink);
        assert_eq!(link.7.as_deref(), Some("hosts"));
        let dir = rows.iter().find(|r| r.0 == "etc/").unwrap();
        assert_eq!(dir.1, EntryType::Directory);

        // No user or group names, no pax records.
        let mut archive = tar::Archive::new(&tar[..]);
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
            assert!(e.pax_extensions().unwrap().is_none());
        }
    }

    #[test]
    fn hardlinks_become_one_file_and_one_link() {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("first"), "data").unwrap();
        fs::hard_link(dir.path().join("first"), dir.path().join("second")).unwrap();
        let (tar, _) = commit(dir.path(), CommitOptions::default());
        let rows = entries(&tar);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].0.as_str(), rows[0].1, rows[0].6),
            ("first", EntryType::Regular, 4)
        );
        assert_eq!((rows[1].0.as_str(), rows[1].1), ("second", EntryType::Link));
        assert_eq!(rows[1].7.as_deref(), Some("first"));
    }

    #[test]
    fn fifos_are_written() {
        let dir = TempDir::new().unwrap();
        mkfifo(&dir.path().join("pipe"), Mode::from_bits_truncate(0o600)).unwrap();
        let (tar, _) = commit(dir.path(), CommitOptions::default());
        let rows = entries(&tar);
        assert_eq!(
            (rows[0].0.as_str(), rows[0].1, rows[0].2),
            ("pipe", EntryType::Fifo, 0o600)
        );
    }

    #[test]
    fn gzip_digest_is_deterministic() {
        let upper = sample_upper();
        let gz = CommitOptions {
            keep_times: false,
            gzip: true,
        };
        let (a, da) = commit(upper.path(), gz);
        let (b, db) = commit(upper.path(), gz);
        assert_eq!(a, b);
        assert_eq!(da, db);
        let (plain, dp) = commit(upper.path(), CommitOptions::default());
        assert_eq!(da.diff_id, dp.diff_id, "diff_id is of the uncompressed tar");
        assert_ne!(da.digest.as_deref(), Some(dp.diff_id.as_str()));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
    }

    fn whiteout(path: &Path) {
        mknod(path, SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    }

    fn set_opaque(path: &Path) {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let name = CString::new(OPAQUE_XATTRS[0]).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value that all
        // outlive the call.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0, "lsetxattr: {}", Errno::last());
    }

    #[test]
    fn whiteouts_and_opaque_dirs_in_oci_form() {
        if !is_root() {
            eprintln!("skipped: mknod and trusted.* xattrs need root");
            return;
        }
        let dir = TempDir::new().unwrap();
        let u = dir.path();
        fs::create_dir(u.join("etc")).unwrap();
        whiteout(&u.join("etc/gone"));
        fs::create_dir(u.join("opt")).unwrap();
        fs::write(u.join("opt/-new"), "n").unwrap();
        set_opaque(&u.join("opt"));
        let (tar, _) = commit(u, CommitOptions::default());
        assert_eq!(
            names(&tar),
            [
                "etc/",
                "etc/.wh.gone",
                "opt/",
                "opt/.wh..wh..opq",
                "opt/-new"
            ]
        );
        let rows = entries(&tar);
        for marker in [&rows[1], &rows[3]] {
            assert_eq!((marker.1, marker.2, marker.6), (EntryType::Regular, 0, 0));
            assert_eq!((marker.3, marker.4), (0, 0));
        }
        assert!(is_opaque(&u.join("opt")).unwrap());
        assert!(!is_opaque(&u.join("etc")).unwrap());
    }

    #[test]
    fn rootless_opaque_xattr_and_x_value() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let p = CString::new(d.as_os_str().as_bytes()).unwrap();
        let name = CString::new(OPAQUE_XATTRS[1]).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value that all
        // outlive the call.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
        if rc != 0 {
            eprintln!("skipped: no user.* xattrs here: {}", Errno::last());
            return;
        }
        assert!(!is_opaque(d).unwrap(), "\"x\" is not opaque");
        // SAFETY: as above.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0);
        assert!(is_opaque(d).unwrap());
    }

    #[test]
    fn diff_classifies_against_lowers() {
        let lower = TempDir::new().unwrap();
        let l = lower.path();
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::write(l.join("etc/hosts"), "old").unwrap();
        fs::write(l.join("etc/gone"), "old").unwrap();
        fs::create_dir_all(l.join("opt/old")).unwrap();

        let upper = TempDir::new().unwrap();
        let u = upper.path();
        fs::create_dir_all(u.join("etc")).unwrap();
        fs::write(u.join("etc/hosts"), "new").unwrap();
        fs::write(u.join("etc/motd"), "hi").unwrap();
        fs::create_dir_all(u.join("srv/www")).unwrap();
        fs::write(u.join("srv/www/index.html"), "hi").unwrap();

        let mut expected = vec![
            "C /etc",
            "C /etc/hosts",
            "A /etc/motd",
            "A /srv",
            "A /srv/www",
            "A /srv/www/index.html",
        ];
        if is_root() {
            whiteout(&u.join("etc/gone"));
            whiteout(&u.join("etc/never-was"));
            fs::create_dir(u.join("opt")).unwrap();
            fs::create_dir(u.join("opt/old")).unwrap();
            set_opaque(&u.join("opt"));
            expected = vec![
                "C /etc",
                "D /etc/gone",
                "C /etc/hosts",
                "A /etc/motd",
                "C /opt",
                "A /opt/old",
                "A /srv",
                "A /srv/www",
                "A /srv/www/index.html",
            ];
        }
        let got: Vec<String> = diff(u, &[l.to_path_buf()])
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn diff_respects_whiteouts_in_higher_lowers() {
        if !is_root() {
            eprintln!("skipped: mknod needs root");
            return;
        }
        let bottom = TempDir::new().unwrap();
        fs::write(bottom.path().join("f"), "x").unwrap();
        let top = TempDir::new().unwrap();
        whiteout(&top.path().join("f"));
        let upper = TempDir::new().unwrap();
        fs::write(upper.path().join("f"), "y").unwrap();
        let lowers = [top.path().to_path_buf(), bottom.path().to_path_buf()];
        let got = diff(upper.path(), &lowers).unwrap();
        assert_eq!(got[0].to_string(), "A /f");
    }

    #[test]
    fn names_a_layer_reserves_are_refused() {
        for name in [".wh..", ".wh.passwd", ".wh..wh..opq"] {
            let dir = TempDir::new().unwrap();
            fs::create_dir(dir.path().join("etc")).unwrap();
            fs::write(dir.path().join("etc").join(name), "x").unwrap();
            let err = commit_layer(dir.path(), io::sink(), &CommitOptions::default()).unwrap_err();
            assert!(
                matches!(&err, CommitError::ReservedName { path } if path == &Path::new("etc").join(name)),
                "{err}"
            );
            assert!(err.to_string().contains("rename it"), "{err}");
        }
    }

    /// `depth` nested directories `d/d/...` in `dir`, with `leaf` (a file)
    /// at the bottom, made with a cursor: the full path is too long for
    /// the path-based calls.
    fn nest(dir: &Path, depth: usize, leaf: &str) {
        use nix::sys::stat::mkdirat;
        let mut cursor = DirCursor::open(dir).unwrap();
        for _ in 0..depth {
            match mkdirat(cursor.fd(), "d", Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => panic!("mkdirat: {e}"),
            }
            cursor.down(OsStr::new("d")).unwrap();
        }
        let fd = openat(
            cursor.fd(),
            leaf,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        drop(fd);
    }

    #[test]
    fn deep_trees_are_committed_and_diffed() {
        // 3,000 levels: a path of 6,000 bytes, over PATH_MAX.
        let lower = TempDir::new().unwrap();
        nest(lower.path(), 3000, "old");
        let upper = TempDir::new().unwrap();
        nest(upper.path(), 3000, "new");
        let (tar, _) = commit(upper.path(), CommitOptions::default());
        let names = names(&tar);
        assert_eq!(names.len(), 3001);
        assert_eq!(names[2999], format!("{}/", vec!["d"; 3000].join("/")));
        assert_eq!(names[3000], format!("{}/new", vec!["d"; 3000].join("/")));
        let changes = diff(upper.path(), &[lower.path().to_path_buf()]).unwrap();
        assert_eq!(changes.len(), 3001);
        assert!(
            changes[..3000]
                .iter()
                .all(|c| c.kind == ChangeKind::Changed)
        );
        assert_eq!(changes[3000].kind, ChangeKind::Added);
        assert_eq!(
            changes[3000].path,
            Path::new(&format!("/{}/new", vec!["d"; 3000].join("/")))
        );
        // Removed with two descriptors: TempDir's drop (std's
        // remove_dir_all) holds one per level, 3,000 here, over a normal
        // user's limit of 1,024, and other tests of this process would
        // meanwhile fail with EMFILE.
        for dir in [&lower, &upper] {
            crate::walk::remove_tree(&dir.path().join("d")).unwrap();
        }
    }

    #[test]
    fn diff_prints_names_escaped() {
        let upper = TempDir::new().unwrap();
        fs::write(upper.path().join("x\n\u{1b}]0;pwned\u{7}"), "").unwrap();
        let got = diff(upper.path(), &[]).unwrap();
        assert_eq!(got[0].to_string(), "A /x\\n\\x1b]0;pwned\\x07");
    }

    #[test]
    fn a_lower_with_an_opaque_root_hides_the_lowers_below_it() {
        if !is_root() {
            eprintln!("skipped: trusted.* xattrs need root");
            return;
        }
        let bottom = TempDir::new().unwrap();
        fs::write(bottom.path().join("base-file"), "x").unwrap();
        let top = TempDir::new().unwrap();
        set_opaque(top.path());
        let upper = TempDir::new().unwrap();
        fs::write(upper.path().join("base-file"), "y").unwrap();
        let lowers = [top.path().to_path_buf(), bottom.path().to_path_buf()];
        assert_eq!(visible_lowers(&lowers).unwrap(), [top.path().to_path_buf()]);
        let got = diff(upper.path(), &lowers).unwrap();
        assert_eq!(got[0].to_string(), "A /base-file");
    }
}
