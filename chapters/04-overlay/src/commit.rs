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
use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use nix::errno::Errno;
use nix::libc;
use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

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
    /// lstat, readdir, readlink or open in the upper directory.
    #[error("{path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },

    #[error("getxattr {name} {path}: {errno}")]
    Xattr {
        path: PathBuf,
        name: &'static str,
        errno: Errno,
    },

    /// Writing the entry for `path` to the layer failed.
    #[error("write layer entry for {path}: {cause}")]
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

/// A writer that hashes and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>`, the byte count, and the inner writer.
    fn finish(self) -> (String, u64, W) {
        let hex: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (format!("sha256:{hex}"), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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
    meta: Metadata,
    kind: Kind,
    /// The last component of its tar path: `.wh.<name>` for a whiteout,
    /// `<name>/` for a directory, else `<name>`. Sorting siblings by this
    /// makes the whole archive sorted by path, byte for byte, each directory
    /// before its children.
    key: Vec<u8>,
}

/// Whether `meta` is an overlay whiteout: a character device 0/0.
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory `path` carries an overlay opaque xattr set to `y`.
///
/// Only `y` counts: newer kernels write `x` to mean "holds xattr-marked
/// whiteouts", which is not opaque. A missing xattr, a filesystem without
/// xattrs, and `trusted.*` unreadable to a normal user (the kernel then says
/// ENODATA) all mean "not opaque".
pub fn is_opaque(path: &Path) -> Result<bool, CommitError> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| CommitError::Read {
        path: path.to_path_buf(),
        cause: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    for name in OPAQUE_XATTRS {
        let c_name = CString::new(name).map_err(|_| CommitError::Xattr {
            path: path.to_path_buf(),
            name,
            errno: Errno::EINVAL,
        })?;
        let mut value = [0u8; 8];
        // SAFETY: both names are NUL-terminated CStrings that outlive the
        // call, and `value` is a writable buffer of exactly the length
        // passed; lgetxattr writes at most that many bytes into it.
        let n = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n >= 0 {
            let len = usize::try_from(n).unwrap_or(0).min(value.len());
            if &value[..len] == b"y" {
                return Ok(true);
            }
            continue;
        }
        match Errno::last() {
            // Not set, longer than "y", or no xattrs on this filesystem.
            Errno::ENODATA | Errno::ERANGE | Errno::EOPNOTSUPP => continue,
            errno => {
                return Err(CommitError::Xattr {
                    path: path.to_path_buf(),
                    name,
                    errno,
                });
            }
        }
    }
    Ok(false)
}

/// The entries of `dir`, classified and sorted by their tar name.
fn children(dir: &Path) -> Result<Vec<Child>, CommitError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let name = entry.file_name();
        let (kind, key) = if is_whiteout(&meta) {
            let mut key = WHITEOUT_PREFIX.as_bytes().to_vec();
            key.extend_from_slice(name.as_bytes());
            (Kind::Whiteout, key)
        } else if meta.is_dir() {
            let mut key = name.as_bytes().to_vec();
            key.push(b'/');
            let opaque = is_opaque(&path)?;
            (Kind::Dir { opaque }, key)
        } else {
            (Kind::Other, name.as_bytes().to_vec())
        };
        out.push(Child {
            name,
            meta,
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
    /// permission bits and (fixed or kept) mtime of `meta`.
    fn header(&self, meta: &Metadata, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(
            self.mtime
                .unwrap_or_else(|| u64::try_from(meta.mtime()).unwrap_or(0)),
        );
        header.set_size(0);
        header
    }

    /// An empty regular file, mode 0, owner 0, fixed mtime: the OCI form of
    /// whiteouts and opaque markers.
    fn marker(&mut self, tar_path: &Path, source: &Path) -> Result<(), CommitError> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime.unwrap_or(0));
        header.set_size(0);
        self.builder
            .append_data(&mut header, tar_path, io::empty())
            .map_err(write_err(source))
    }

    /// Write every entry below `dir` (the upper directory's `rel`).
    fn write_dir(&mut self, dir: &Path, rel: &Path) -> Result<(), CommitError> {
        for child in children(dir)? {
            let path = dir.join(&child.name);
            let tar_rel = rel.join(&child.name);
            self.write_child(&child, &path, &tar_rel)?;
            if let Kind::Dir { .. } = child.kind {
                self.write_dir(&path, &tar_rel)?;
            }
        }
        Ok(())
    }

    // ANCHOR: whiteout_to_oci
    /// Write one entry: a whiteout becomes `.wh.<name>`, an opaque directory
    /// its entry followed by `<dir>/.wh..wh..opq`, anything else itself.
    fn write_child(
        &mut self,
        child: &Child,
        path: &Path,
        tar_rel: &Path,
    ) -> Result<(), CommitError> {
        match child.kind {
            Kind::Whiteout => {
                let mut name = OsString::from(WHITEOUT_PREFIX);
                name.push(&child.name);
                let tar_path = tar_rel.with_file_name(name);
                self.marker(&tar_path, path)
            }
            Kind::Dir { opaque } => {
                let mut header = self.header(&child.meta, EntryType::Directory);
                let mut dir_path = tar_rel.as_os_str().to_os_string();
                dir_path.push("/");
                self.builder
                    .append_data(&mut header, Path::new(&dir_path), io::empty())
                    .map_err(write_err(path))?;
                if opaque {
                    self.marker(&tar_rel.join(OPAQUE_MARKER), path)?;
                }
                Ok(())
            }
            Kind::Other => self.write_other(&child.meta, path, tar_rel),
        }
    }
    // ANCHOR_END: whiteout_to_oci

    /// A file, symlink, hard link, fifo or device node.
    fn write_other(
        &mut self,
        meta: &Metadata,
        path: &Path,
        tar_rel: &Path,
    ) -> Result<(), CommitError> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            // tar cannot hold a socket; a program makes a new one anyway.
            return Ok(());
        }
        if meta.nlink() > 1 {
            let id = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&id) {
                let mut header = self.header(meta, EntryType::Link);
                return self
                    .builder
                    .append_link(&mut header, tar_rel, first)
                    .map_err(write_err(path));
            }
            self.links.insert(id, tar_rel.to_path_buf());
        }
        if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(read_err(path))?;
            let mut header = self.header(meta, EntryType::Symlink);
            return self
                .builder
                .append_link(&mut header, tar_rel, target)
                .map_err(write_err(path));
        }
        if file_type.is_file() {
            let file = File::open(path).map_err(read_err(path))?;
            let mut header = self.header(meta, EntryType::Regular);
            header.set_size(meta.len());
            let mut reader = SizedReader {
                inner: file,
                left: meta.len(),
            };
            return self
                .builder
                .append_data(&mut header, tar_rel, &mut reader)
                .map_err(write_err(path));
        }
        let kind = if file_type.is_fifo() {
            EntryType::Fifo
        } else if file_type.is_char_device() {
            EntryType::Char
        } else {
            EntryType::Block
        };
        let mut header = self.header(meta, kind);
        if kind != EntryType::Fifo {
            let rdev = meta.rdev();
            let major = u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX);
            let minor = u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX);
            header.set_device_major(major).map_err(write_err(path))?;
            header.set_device_minor(minor).map_err(write_err(path))?;
        }
        self.builder
            .append_data(&mut header, tar_rel, io::empty())
            .map_err(write_err(path))
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
    committer.write_dir(upper, Path::new(""))?;
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
        let blob = HashingWriter::new(out);
        let gz = GzBuilder::new()
            .mtime(0)
            .write(blob, Compression::new(GZIP_LEVEL));
        let tar = write_tar(upper, HashingWriter::new(gz), opts)?;
        let (diff_id, _, gz) = tar.finish();
        let blob = gz.finish().map_err(finish)?;
        let (digest, size, mut out) = blob.finish();
        out.flush().map_err(finish)?;
        Ok(LayerDigests {
            diff_id,
            digest: Some(digest),
            size,
        })
    } else {
        let tar = write_tar(upper, HashingWriter::new(out), opts)?;
        let (diff_id, size, mut out) = tar.finish();
        out.flush().map_err(finish)?;
        Ok(LayerDigests {
            diff_id,
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
    /// Absolute inside the container: `/etc/hosts`. Names that are not
    /// UTF-8 are shown lossily.
    pub path: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        };
        write!(f, "{letter} {}", self.path)
    }
}

/// Whether `rel` is visible through the read-only `lowers` (top first): the
/// first lower that has it, a whiteout for it, or an opaque or deleted
/// directory above it, decides.
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> Result<bool, CommitError> {
    for lower in lowers {
        let path = lower.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) => return Ok(!is_whiteout(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(e) => return Err(read_err(&path)(e)),
        }
        // Not here: is it hidden from the lowers below by an ancestor?
        for ancestor in rel.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() {
                break;
            }
            let dir = lower.join(ancestor);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if is_whiteout(&meta) || !meta.is_dir() => return Ok(false),
                Ok(_) if is_opaque(&dir)? => return Ok(false),
                _ => {}
            }
        }
    }
    Ok(false)
}

fn diff_dir(
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    all_added: bool,
    out: &mut Vec<Change>,
) -> Result<(), CommitError> {
    for child in children(dir)? {
        let path = dir.join(&child.name);
        let child_rel = rel.join(&child.name);
        let shown = format!("/{}", child_rel.to_string_lossy());
        let existed = !all_added && in_lowers(lowers, &child_rel)?;
        match child.kind {
            Kind::Whiteout => {
                // A whiteout of something no lower has deletes nothing.
                if existed {
                    out.push(Change {
                        kind: ChangeKind::Deleted,
                        path: shown,
                    });
                }
            }
            Kind::Dir { opaque } => {
                let kind = if existed {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                };
                out.push(Change { kind, path: shown });
                // Below an opaque or new directory, everything is new.
                diff_dir(
                    &path,
                    &child_rel,
                    lowers,
                    all_added || opaque || !existed,
                    out,
                )?;
            }
            Kind::Other => {
                let kind = if existed {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                };
                out.push(Change { kind, path: shown });
            }
        }
    }
    Ok(())
}

/// List the changes recorded in the overlay upper directory `upper` as
/// `docker diff` does, sorted by path. `lowers` (top first) tell an added
/// path (in no lower) from a changed one. An opaque directory that replaced
/// a lower one is `C`, its contents `A`; a whiteout is `D`.
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, CommitError> {
    let mut out = Vec::new();
    diff_dir(upper, Path::new(""), lowers, false, &mut out)?;
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use nix::sys::stat::{Mode, SFlag, mknod};
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
}
