//! Images as files: `save` writes images out of the store, `load` reads them
//! back in, and `import` makes an image of a root filesystem tarball.
//!
//! A registry is one way to move an image; a file is the other. Two formats
//! carry images as files, and both are just the registry's blobs laid out on
//! disk with an index of what they are:
//!
//! - The **OCI image layout** (image-spec `image-layout.md`): a directory
//!   holding `oci-layout` (`{"imageLayoutVersion": "1.0.0"}`), `index.json`
//!   (an image index: one descriptor per image manifest, its name in the
//!   annotations `org.opencontainers.image.ref.name`, the tag, as skopeo and
//!   umoci read it, and `io.containerd.image.name`, the full name, as
//!   containerd and docker read it) and `blobs/sha256/<hex>`, each blob under
//!   its digest, exactly the bytes a registry serves.
//! - The **docker archive** (`docker save`): a tar whose `manifest.json`
//!   lists each image as `{"Config": PATH, "RepoTags": [NAME:TAG...],
//!   "Layers": [PATH...]}`. Docker before 25 wrote each layer uncompressed as
//!   `<id>/layer.tar` and the config as `<id>.json`; Docker 25 puts an OCI
//!   image layout inside the tar and points `manifest.json` at its blobs, so
//!   that one file serves docker and OCI tools alike. [`save_docker_archive`]
//!   writes that form (layers stay compressed as stored: docker load and
//!   skopeo detect the compression), [`load_path`] reads all of them.
//!
//! Both directions verify every blob against its digest: `save` re-hashes
//! what it copies out of the store, and `load` puts everything through
//! [`Store::put_blob`]. An archive is someone else's file, so `load` also
//! refuses paths that leave it (absolute, `..`, symlinks pointing out),
//! JSON files over [`oci::MAX_MANIFEST_BYTES`], and anything missing, and it
//! names images only once every blob of every image is in the store: a
//! failed load leaves no name behind (verified blobs may stay, unnamed, for
//! garbage collection). Archives are read in place, one entry at a time,
//! never whole into memory; a compressed archive or one on stdin is first
//! decompressed into an unnamed temporary file.
//!
//! A multi-platform image is an `index.json` entry that is itself an image
//! index: `load` keeps it whole (every platform's image, checked like any
//! other, then the index, which the name points to), and `save` writes it
//! whole. An archive that carries only some of the platforms its index
//! lists (docker save from containerd's store) gives only this host's
//! image, as `skopeo copy` without `--all` would.
//!
//! `save` output is deterministic — entries sorted, mtime 0, owners 0/0, JSON
//! with sorted keys — so saving the same images twice gives the same bytes.
//!
//! Specs: OCI image-spec `image-layout.md`, `image-index.md` (annotations),
//! `annotations.md`; Docker's `docker save` format (moby
//! `image/tarexport`), tar(5).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use ch04_overlay::apply::{ApplyError, ApplyOptions, WhiteoutMode, apply_layer};
use serde::{Deserialize, Serialize};

use ch04_overlay::escape::shown;

use crate::digest::{Algorithm, Digest, Hashing};
use crate::gc::{self, GcError};
use crate::image::{Image, ImageError, import_rootfs, load_image};
use crate::oci::{
    self, Descriptor, ImageConfig, ImageIndex, ImageManifest, Manifest, OciError, Platform,
};
use crate::reference::{Reference, ReferenceError};
use crate::store::{Compression, Store, StoreError};

/// The file that marks a directory as an OCI image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The only layout version there is.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";
/// The tag an `index.json` entry is known by (skopeo's and umoci's `DIR:TAG`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full image name (containerd, and docker since 25).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// How many symlinks inside an archive one path may go through.
const MAX_LINKS: usize = 8;
/// How deep image indexes may nest in a layout (an index of indexes is
/// legal; an endless chain is an attack).
const MAX_NESTING: usize = 4;

/// The two archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    /// A tar file for `docker load` and `skopeo copy docker-archive:`,
    /// holding an OCI image layout as well.
    Docker,
    /// An OCI image layout directory, for skopeo's, umoci's and podman's `oci:`.
    Oci,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {cause}", shown(.what))]
    Io { what: String, cause: io::Error },
    #[error("{}: path {path:?} {why}: refusing it", shown(.file))]
    UnsafePath {
        file: String,
        path: String,
        why: &'static str,
    },
    #[error("the archive has no {} ({}): it is incomplete", shown(.path), shown(.what))]
    Missing { path: String, what: String },
    #[error("{} ({}) is not a regular file", shown(.path), shown(.what))]
    NotAFile { path: String, what: String },
    #[error("{} is {size} bytes, over the {limit}-byte limit for a JSON document: refusing to read it", shown(.path))]
    TooLarge {
        path: String,
        size: u64,
        limit: usize,
    },
    #[error("{}: not valid JSON: {cause}", shown(.path))]
    Json {
        path: String,
        cause: serde_json::Error,
    },
    #[error("{}: {cause}", shown(.path))]
    Manifest { path: String, cause: OciError },
    #[error(
        "{0}: neither an OCI image layout (oci-layout and index.json) nor a docker archive (manifest.json)"
    )]
    Unrecognized(String),
    #[error("oci-layout says imageLayoutVersion {0:?}: only 1.0.0 is known")]
    LayoutVersion(String),
    #[error("{} is compressed with {kind}: only gzip and zstd are read; decompress it first", shown(.what))]
    Compressed { what: String, kind: &'static str },
    #[error("{}: {cause}", shown(.path))]
    Blob {
        path: String,
        cause: Box<StoreError>,
    },
    #[error("{} hashes to {actual}, but its name says {expected}: the archive is corrupt", shown(.path))]
    Mismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("layer {}: its uncompressed content has digest {actual}, but the config's diff_id is {expected}: the archive is corrupt", shown(.path))]
    DiffId {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("uncompressed layer {}: its name says {named}, but the config's diff_id for it is {diff_id}: the archive is corrupt", shown(.path))]
    NameNotDiffId {
        path: String,
        named: String,
        diff_id: String,
    },
    #[error("{image}: the config has {diff_ids} diff_ids for {layers} layers")]
    LayerCount {
        image: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("{0}: image indexes nest more than {MAX_NESTING} deep: refusing it")]
    TooDeep(String),
    #[error("{0}: the archive lists no images")]
    Empty(String),
    #[error("image name {name:?} in {}: {cause}", shown(.file))]
    Name {
        file: String,
        name: String,
        cause: Box<ReferenceError>,
    },
    #[error(
        "blob {digest} in the store is damaged (its content hashes to {actual}, {size} bytes): remove the image and pull or load it again"
    )]
    Damaged {
        digest: String,
        actual: String,
        size: u64,
    },
    #[error("{0} exists and is not an empty directory: choose a new one")]
    OutputExists(PathBuf),
    #[error("unpack the root filesystem tarball: {0}")]
    Apply(ApplyError),
    #[error("{}: {cause}", shown(.what))]
    Layer {
        what: String,
        cause: Box<StoreError>,
    },
    #[error("{error} (undoing the load failed too: {undo}; `prune` removes what it left)")]
    NotUndone {
        error: Box<ArchiveError>,
        undo: Box<GcError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Gc(#[from] GcError),
}

type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |cause| ArchiveError::Io { what, cause }
}

fn to_json<T: Serialize>(value: &T, path: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|cause| ArchiveError::Json {
        path: path.to_string(),
        cause,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|cause| ArchiveError::Json {
        path: path.to_string(),
        cause,
    })
}

fn sha256(bytes: &[u8]) -> String {
    Digest::of_bytes(Algorithm::Sha256, bytes).to_string()
}

/// The digest of `bytes` by the algorithm of `expected` (sha256 if that is
/// no digest), to compare with it.
fn digest_like(expected: &str, bytes: &[u8]) -> String {
    let algorithm = Digest::parse(expected).map_or(Algorithm::Sha256, |d| d.algorithm());
    Digest::of_bytes(algorithm, bytes).to_string()
}

/// `blobs/<algorithm>/<hex>`: where a layout keeps the blob `digest`.
fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// One entry of a docker archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifest {
    /// The path of the image config in the archive.
    pub config: String,
    /// `name:tag` in docker's familiar form; docker writes `null` for none.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The paths of the layers, bottom first.
    pub layers: Vec<String>,
}

/// The `oci-layout` file.
#[derive(Debug, Serialize, Deserialize)]
struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

// ----- reading a stream: compression -----

/// What the first bytes of a stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    Plain(Compression),
    /// A compression we do not read, by name.
    Other(&'static str),
}

/// A stream whose first bytes were looked at, and given back.
type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Look at the first bytes of `reader` (magic numbers: gzip 1f 8b, zstd
/// 28 b5 2f fd, bzip2 `BZh`, xz fd `7zXZ` 00) and give them back in front of
/// the rest.
fn sniff<R: Read>(mut reader: R) -> io::Result<(Packing, Sniffed<R>)> {
    let mut head = Vec::with_capacity(6);
    (&mut reader).take(6).read_to_end(&mut head)?;
    let packing = match head.as_slice() {
        [0x1f, 0x8b, ..] => Packing::Plain(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Packing::Plain(Compression::Zstd),
        [b'B', b'Z', b'h', ..] => Packing::Other("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Packing::Other("xz"),
        _ => Packing::Plain(Compression::None),
    };
    Ok((packing, io::Cursor::new(head).chain(reader)))
}

/// `reader` decompressed as `compression` says.
fn decompress<'a, R: Read + 'a>(
    compression: Compression,
    reader: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(io(format!("start decompressing {what}")))?,
        ),
    })
}

/// `reader`, sniffed and decompressed: a tar stream.
fn plain_tar<'a, R: Read + 'a>(reader: R, what: &str) -> Result<Box<dyn Read + 'a>> {
    let (packing, reader) = sniff(reader).map_err(io(format!("read {what}")))?;
    match packing {
        Packing::Plain(compression) => decompress(compression, reader, what),
        Packing::Other(kind) => Err(ArchiveError::Compressed {
            what: what.to_string(),
            kind,
        }),
    }
}

/// A reader hashing what passes through it by the algorithm of `like`
/// (a digest it is to be compared with; sha256 if that is none).
fn hashing<R: Read>(inner: R, like: &str) -> Hashing<R> {
    let algorithm = Digest::parse(like).map_or(Algorithm::Sha256, |d| d.algorithm());
    Hashing::new(inner, algorithm)
}

// ----- reading an archive: its files, safely -----

/// Clean a path an archive's JSON (or a tar entry) names: `./` dropped; an
/// absolute path, a `..` or an empty path refused.
fn clean_path(path: &str) -> Result<PathBuf, &'static str> {
    if path.starts_with('/') {
        return Err("is absolute");
    }
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("is empty");
    }
    Ok(out)
}

/// Where the symlink `link` (a clean path in the archive) pointing to
/// `target` leads, or why that leaves the archive.
fn follow_link(link: &Path, target: &Path) -> Result<PathBuf, &'static str> {
    if target.is_absolute() {
        return Err("is a symlink to an absolute path, outside the archive");
    }
    let mut out = link.parent().map(Path::to_path_buf).unwrap_or_default();
    for component in target.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("is a symlink pointing out of the archive");
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is a symlink to an absolute path, outside the archive");
            }
        }
    }
    Ok(out)
}

/// A tar entry we may read: a file's data, or a link to follow.
#[derive(Debug, Clone)]
enum TarEntry {
    File {
        offset: u64,
        size: u64,
    },
    Symlink(PathBuf),
    /// A hard link names its target from the archive's root.
    HardLink(PathBuf),
}

/// An archive's files: a directory, or a tar file read in place.
enum Source {
    Dir(PathBuf),
    Tar {
        file: File,
        entries: BTreeMap<PathBuf, TarEntry>,
    },
}

/// What one path in the archive is.
enum Stat {
    File(Found),
    Symlink(PathBuf),
    HardLink(PathBuf),
    Missing,
    Other,
}

/// A regular file found in the archive.
#[derive(Debug, Clone)]
struct Found {
    /// Its path in the archive, after following links.
    path: PathBuf,
    size: u64,
    /// Where its data starts in the tar (unused for a directory).
    offset: u64,
}

/// Part of a file, read with pread(2) so that readers need no seeking.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Source {
    /// Index the tar `file`: one pass over its headers, seeking past the data.
    fn index_tar(mut file: File, name: &str) -> Result<Source> {
        let mut entries = BTreeMap::new();
        file.seek(SeekFrom::Start(0))
            .map_err(io(format!("rewind {name}")))?;
        {
            let mut archive = tar::Archive::new(&file);
            let iter = archive
                .entries_with_seek()
                .map_err(io(format!("read {name} as a tar archive")))?;
            for entry in iter {
                let entry = entry.map_err(io(format!("read {name} as a tar archive")))?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                // Entries we could never be asked for (absolute, `..`) are
                // simply not indexed: nothing is extracted from here.
                let Ok(path) = clean_path(&raw) else { continue };
                let link = || {
                    entry
                        .link_name_bytes()
                        .map(|l| PathBuf::from(String::from_utf8_lossy(&l).into_owned()))
                };
                let kind = match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => TarEntry::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    tar::EntryType::Symlink => match link() {
                        Some(target) => TarEntry::Symlink(target),
                        None => continue,
                    },
                    tar::EntryType::Link => match link() {
                        Some(target) => TarEntry::HardLink(target),
                        None => continue,
                    },
                    _ => continue,
                };
                // A later entry replaces an earlier one, as when extracting.
                entries.insert(path, kind);
            }
        }
        Ok(Source::Tar { file, entries })
    }

    /// What `path` (clean) is, without following a final symlink.
    fn stat(&self, path: &Path) -> Result<Stat> {
        match self {
            Source::Tar { entries, .. } => Ok(match entries.get(path) {
                Some(TarEntry::File { offset, size }) => Stat::File(Found {
                    path: path.to_path_buf(),
                    size: *size,
                    offset: *offset,
                }),
                Some(TarEntry::Symlink(target)) => Stat::Symlink(target.clone()),
                Some(TarEntry::HardLink(target)) => Stat::HardLink(target.clone()),
                None => Stat::Missing,
            }),
            Source::Dir(root) => {
                // Walk down one component at a time: a symlinked directory on
                // the way could lead anywhere.
                let mut full = root.clone();
                let count = path.components().count();
                for (i, component) in path.components().enumerate() {
                    full.push(component);
                    let meta = match fs::symlink_metadata(&full) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Stat::Missing),
                        Err(cause) => {
                            return Err(ArchiveError::Io {
                                what: full.display().to_string(),
                                cause,
                            });
                        }
                    };
                    let last = i + 1 == count;
                    if meta.file_type().is_symlink() {
                        if !last {
                            return Ok(Stat::Other);
                        }
                        let target =
                            fs::read_link(&full).map_err(io(full.display().to_string()))?;
                        return Ok(Stat::Symlink(target));
                    }
                    if last {
                        return Ok(if meta.is_file() {
                            Stat::File(Found {
                                path: path.to_path_buf(),
                                size: meta.len(),
                                offset: 0,
                            })
                        } else {
                            Stat::Other
                        });
                    }
                }
                Ok(Stat::Missing)
            }
        }
    }

    /// The regular file `path` names, as `file` (the JSON document naming
    /// it, for errors) wrote it, following symlinks inside the archive.
    fn find(&self, file: &str, path: &str, what: &str) -> Result<Found> {
        let unsafe_path = |why| ArchiveError::UnsafePath {
            file: file.to_string(),
            path: path.to_string(),
            why,
        };
        let mut current = clean_path(path).map_err(unsafe_path)?;
        for _ in 0..=MAX_LINKS {
            current = match self.stat(&current)? {
                Stat::File(found) => return Ok(found),
                Stat::Symlink(target) => follow_link(&current, &target).map_err(unsafe_path)?,
                Stat::HardLink(target) => {
                    clean_path(&target.to_string_lossy()).map_err(unsafe_path)?
                }
                Stat::Missing => {
                    return Err(ArchiveError::Missing {
                        path: path.to_string(),
                        what: what.to_string(),
                    });
                }
                Stat::Other => {
                    return Err(ArchiveError::NotAFile {
                        path: path.to_string(),
                        what: what.to_string(),
                    });
                }
            };
        }
        Err(unsafe_path("goes through too many symlinks"))
    }

    /// Whether the archive has a file at `path`.
    fn has(&self, path: &str) -> Result<bool> {
        match self.find(path, path, path) {
            Ok(_) => Ok(true),
            Err(ArchiveError::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read the file `found`.
    fn open(&self, found: &Found) -> Result<Box<dyn Read + '_>> {
        match self {
            Source::Tar { file, .. } => Ok(Box::new(Section {
                file,
                pos: found.offset,
                end: found.offset + found.size,
            })),
            Source::Dir(root) => {
                let full = root.join(&found.path);
                let file = OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&full)
                    .map_err(io(format!("open {}", full.display())))?;
                Ok(Box::new(file))
            }
        }
    }

    /// Read a JSON document of at most [`oci::MAX_MANIFEST_BYTES`].
    fn read_json(&self, found: &Found) -> Result<Vec<u8>> {
        let too_large = |size| ArchiveError::TooLarge {
            path: found.path.display().to_string(),
            size,
            limit: oci::MAX_MANIFEST_BYTES,
        };
        if found.size > oci::MAX_MANIFEST_BYTES as u64 {
            return Err(too_large(found.size));
        }
        oci::read_document(self.open(found)?).map_err(|e| match e {
            oci::DocumentError::Read(cause) => ArchiveError::Io {
                what: format!("read {}", found.path.display()),
                cause,
            },
            oci::DocumentError::TooLarge => too_large(found.size),
        })
    }
}

// ----- load -----

/// One image `load` put in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The manifest's digest.
    pub digest: String,
    /// The config's digest: the image ID `images` shows.
    pub config: String,
    /// The names it was given (none if the archive gave none).
    pub names: Vec<Reference>,
    /// A tag the archive gave without a repository (a bare
    /// `org.opencontainers.image.ref.name`), which names nothing by itself.
    pub bare_tag: Option<String>,
}

/// Load the images in the archive at `path`: an OCI image layout directory,
/// or a tar file (an OCI layout or a docker archive, maybe gzip or zstd
/// compressed).
pub fn load_path(store: &Store, path: &Path) -> Result<Vec<Loaded>> {
    let name = path.display().to_string();
    let meta = fs::metadata(path).map_err(io(format!("open {name}")))?;
    if meta.is_dir() {
        return load_source(store, &Source::Dir(path.to_path_buf()), &name);
    }
    let mut file = File::open(path).map_err(io(format!("open {name}")))?;
    let mut head = [0u8; 6];
    let n = file
        .read_at(&mut head, 0)
        .map_err(io(format!("read {name}")))?;
    let (packing, _) = sniff(&head[..n]).map_err(io(format!("read {name}")))?;
    if packing != Packing::Plain(Compression::None) {
        return load_reader(store, &mut file, &name);
    }
    load_source(store, &Source::index_tar(file, &name)?, &name)
}

/// Load the images in the tar stream `reader` (maybe gzip or zstd
/// compressed), e.g. stdin. It is decompressed into an unnamed temporary
/// file first, since its entries must be read in another order than the
/// stream's.
pub fn load_reader<R: Read>(store: &Store, reader: R, name: &str) -> Result<Vec<Loaded>> {
    let mut tar = plain_tar(reader, name)?;
    // O_TMPFILE where the store lives: no name, so nothing is left behind
    // whatever happens.
    let mut spool = tempfile::tempfile_in(store.root()).map_err(io(format!(
        "create a temporary file in {}",
        store.root().display()
    )))?;
    spool_to(&mut tar, &mut spool, name, store)?;
    load_source(store, &Source::index_tar(spool, name)?, name)
}

/// Copy the stream `name` into the spool file, telling a read error (the
/// stream's) from a write error (the store's disk: full, most likely).
fn spool_to(from: &mut impl Read, spool: &mut File, name: &str, store: &Store) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(cause) => return Err(io(format!("read {name}"))(cause)),
        };
        let what = format!("a temporary copy of {name}");
        spool
            .write_all(&buf[..n])
            .map_err(|cause| store.write_error(Path::new(&what), cause))?;
    }
}

// ANCHOR: load_source
fn load_source(store: &Store, source: &Source, name: &str) -> Result<Vec<Loaded>> {
    // 1. The store lock, shared, until the names are set: garbage
    //    collection waits rather than take our unnamed blobs for garbage.
    //    And what the store holds now, to undo a load that fails.
    let lock = store.lock_shared()?;
    let before = gc::contents(store)?;
    // 2. Which format: an OCI layout (which docker 25 archives also are)
    //    keeps every manifest as it was, so it wins over manifest.json.
    //    Every layer is unpacked on the way, so a bad one is refused now.
    let loaded = (|| {
        let loaded = if source.has(OCI_LAYOUT_FILE)? && source.has("index.json")? {
            load_oci_layout(store, source)?
        } else if source.has("manifest.json")? {
            load_docker_archive(store, source)?
        } else {
            return Err(ArchiveError::Unrecognized(name.to_string()));
        };
        if loaded.is_empty() {
            return Err(ArchiveError::Empty(name.to_string()));
        }
        Ok(loaded)
    })();
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            // Bad input leaves the store as it was.
            drop(lock);
            return Err(undo(store, &before, error));
        }
    };
    // 3. Names last, once every blob of every image is verified and stored:
    //    a load that fails names nothing.
    for image in &loaded {
        for reference in &image.names {
            store.set_name(&reference.to_string(), &image.digest)?;
        }
    }
    Ok(loaded)
}
// ANCHOR_END: load_source

/// After `error`, remove what the failed writer added since `before`
/// (with the store lock exclusive); `error` is returned, with the undo's
/// own failure if it had one.
pub(crate) fn undo(store: &Store, before: &gc::Marks, error: ArchiveError) -> ArchiveError {
    match gc::undo_added(store, before) {
        Ok(_) => error,
        Err(undo) => ArchiveError::NotUndone {
            error: Box::new(error),
            undo: Box::new(undo),
        },
    }
}

fn parse_name(name: &str, file: &str) -> Result<Reference> {
    Reference::parse(name).map_err(|source| ArchiveError::Name {
        file: file.to_string(),
        name: name.to_string(),
        cause: Box::new(source),
    })
}

/// Put the blob `descriptor` names into the store from the layout, verified
/// by [`Store::put_blob`] (digest and size).
fn put_layout_blob(
    store: &Store,
    source: &Source,
    descriptor: &Descriptor,
    what: &str,
) -> Result<()> {
    let path = blob_path(&descriptor.digest);
    let found = source.find("index.json", &path, what)?;
    let reader = source.open(&found)?;
    store
        .put_blob(&descriptor.digest, Some(descriptor.size), reader)
        .map_err(|source| ArchiveError::Blob {
            path,
            cause: Box::new(source),
        })?;
    Ok(())
}

/// Read the JSON blob `descriptor` names from the layout and check it
/// against its digest and size before anyone parses it.
fn read_layout_json(source: &Source, descriptor: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let path = blob_path(&descriptor.digest);
    let found = source.find("index.json", &path, what)?;
    let bytes = source.read_json(&found)?;
    let actual = digest_like(&descriptor.digest, &bytes);
    if actual != descriptor.digest {
        return Err(ArchiveError::Mismatch {
            path,
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != descriptor.size {
        return Err(ArchiveError::Blob {
            path,
            cause: Box::new(StoreError::SizeMismatch {
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: bytes.len() as u64,
                more: false,
            }),
        });
    }
    Ok(bytes)
}

/// The names an `index.json` entry gives its image: the full name if there
/// is one, else `ref.name` if it is a whole name rather than a bare tag.
fn layout_names(descriptor: &Descriptor) -> Result<(Vec<Reference>, Option<String>)> {
    let annotations = descriptor.annotations.clone().unwrap_or_default();
    if let Some(full) = annotations.get(ANNOTATION_IMAGE_NAME) {
        return Ok((vec![parse_name(full, "index.json")?], None));
    }
    match annotations.get(ANNOTATION_REF_NAME) {
        Some(name) if name.contains('/') || name.contains(':') => {
            Ok((vec![parse_name(name, "index.json")?], None))
        }
        Some(tag) => Ok((vec![], Some(tag.clone()))),
        None => Ok((vec![], None)),
    }
}

fn load_oci_layout(store: &Store, source: &Source) -> Result<Vec<Loaded>> {
    let found = source.find(OCI_LAYOUT_FILE, OCI_LAYOUT_FILE, "the layout version")?;
    let layout: OciLayout = from_json(&source.read_json(&found)?, OCI_LAYOUT_FILE)?;
    if layout.image_layout_version != OCI_LAYOUT_VERSION {
        return Err(ArchiveError::LayoutVersion(layout.image_layout_version));
    }
    let found = source.find("index.json", "index.json", "the image index")?;
    let bytes = source.read_json(&found)?;
    let index = match oci::parse_manifest(oci::OCI_INDEX, &bytes) {
        Ok(Manifest::Index(index)) => index,
        Ok(Manifest::Image(_)) => {
            return Err(ArchiveError::Manifest {
                path: "index.json".into(),
                cause: OciError::MediaTypeMismatch {
                    declared: oci::OCI_INDEX.into(),
                    content: oci::OCI_MANIFEST.into(),
                },
            });
        }
        Err(cause) => {
            return Err(ArchiveError::Manifest {
                path: "index.json".into(),
                cause,
            });
        }
    };
    let mut loaded = Vec::new();
    for (i, descriptor) in index.manifests.iter().enumerate() {
        let (names, bare_tag) = layout_names(descriptor)?;
        let label = match (names.first(), &bare_tag) {
            (Some(name), _) => name.familiar(),
            (None, Some(tag)) => format!("image {tag:?}"),
            (None, None) => format!("image {i} of index.json"),
        };
        let (digest, config) = load_layout_image(store, source, descriptor, &label, 0, true)?;
        loaded.push(Loaded {
            digest,
            config,
            names,
            bare_tag,
        });
    }
    Ok(loaded)
}

/// Load the manifest `descriptor` names and everything below it; return
/// its digest and the config digest of the image this host would run (for
/// an index, its entry for this platform's). `host`: whether this host's
/// image must be found here (false below an index's other entries).
fn load_layout_image(
    store: &Store,
    source: &Source,
    descriptor: &Descriptor,
    label: &str,
    depth: usize,
    host: bool,
) -> Result<(String, String)> {
    if depth > MAX_NESTING {
        return Err(ArchiveError::TooDeep(label.to_string()));
    }
    let what = format!("the manifest of {label}");
    let path = blob_path(&descriptor.digest);
    let bytes = read_layout_json(source, descriptor, &what)?;
    let manifest = match oci::parse_manifest(&descriptor.media_type, &bytes) {
        Ok(Manifest::Image(manifest)) => manifest,
        Ok(Manifest::Index(index)) => {
            return load_layout_index(
                store,
                source,
                descriptor,
                (&index, &bytes),
                label,
                depth,
                host,
            );
        }
        Err(cause) => return Err(ArchiveError::Manifest { path, cause }),
    };
    // The config, checked before any layer is copied.
    let config_what = format!("the config of {label}");
    let config_bytes = read_layout_json(source, &manifest.config, &config_what)?;
    let config: ImageConfig = from_json(&config_bytes, &blob_path(&manifest.config.digest))?;
    check_layer_count(&config, manifest.layers.len(), label)?;
    for (i, (layer, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let what = format!("layer {i} of {label}");
        put_layout_blob(store, source, layer, &what)?;
        unpack_checked(store, &layer.digest, diff_id, &layer.media_type, &what)?;
    }
    // Config and manifest last: a manifest in the store has all its parts.
    store.put_blob(
        &manifest.config.digest,
        Some(manifest.config.size),
        config_bytes.as_slice(),
    )?;
    store.put_blob(&descriptor.digest, Some(descriptor.size), bytes.as_slice())?;
    Ok((descriptor.digest.clone(), manifest.config.digest))
}

/// Unpack a layer as `run` would, now: its content must hash to `diff_id`
/// and every path in it must stay inside it, or the load is refused here,
/// not at the first run.
fn unpack_checked(
    store: &Store,
    digest: &str,
    diff_id: &str,
    media_type: &str,
    what: &str,
) -> Result<()> {
    store
        .unpack_layer(digest, diff_id, Compression::of_media_type(media_type))
        .map_err(|cause| ArchiveError::Layer {
            what: what.to_string(),
            cause: Box::new(cause),
        })?;
    Ok(())
}

// ANCHOR: load_layout_index
/// Load the index `descriptor` names (`index`, parsed from `bytes`): every
/// platform's image, then the index, which the name will point to. Returns
/// as [`load_layout_image`] does.
fn load_layout_index(
    store: &Store,
    source: &Source,
    descriptor: &Descriptor,
    (index, bytes): (&ImageIndex, &[u8]),
    label: &str,
    depth: usize,
    host: bool,
) -> Result<(String, String)> {
    // 1. This platform's entry, before anything is copied: a name must give
    //    an image that runs here, so an index without one is refused.
    let chosen = match oci::choose_platform(index, &Platform::host()) {
        Ok(chosen) => Some(chosen),
        Err(cause) if host => {
            let path = blob_path(&descriptor.digest);
            return Err(ArchiveError::Manifest { path, cause });
        }
        Err(_) => None,
    };
    // 2. A layout may carry only some of the platforms its index lists
    //    (docker save from containerd's store skips those never pulled).
    //    Then only this platform's image is loaded and named, as skopeo
    //    copies one without --all: the index could not be pushed or saved
    //    whole.
    let mut all_there = true;
    for entry in &index.manifests {
        all_there &= source.has(&blob_path(&entry.digest))?;
    }
    if !all_there && let Some(chosen) = chosen {
        return load_layout_image(store, source, chosen, label, depth + 1, host);
    }
    // 3. Every entry, each checked as any image; Docker's attestations
    //    (platform unknown/unknown, layers that are not filesystems) are
    //    stored as they are, every blob checked against its digest.
    let mut config = String::new();
    for (i, entry) in index.manifests.iter().enumerate() {
        let platform = entry.platform.as_ref();
        let entry_label = match platform {
            Some(p) => format!("{label} for {p}"),
            None => format!("{label}, entry {i}"),
        };
        let mine = chosen.is_some_and(|c| std::ptr::eq(c, entry));
        if platform.is_some_and(|p| p.os == "unknown") {
            load_layout_artifact(store, source, entry, &entry_label)?;
            continue;
        }
        let (_, entry_config) =
            load_layout_image(store, source, entry, &entry_label, depth + 1, mine)?;
        if mine {
            config = entry_config;
        }
    }
    // 4. The index last: in the store, it has all its parts.
    store.put_blob(&descriptor.digest, Some(descriptor.size), bytes)?;
    Ok((descriptor.digest.clone(), config))
}
// ANCHOR_END: load_layout_index

/// Store the manifest `descriptor` names and the blobs it lists, without
/// reading them as an image: each checked against its digest only.
fn load_layout_artifact(
    store: &Store,
    source: &Source,
    descriptor: &Descriptor,
    label: &str,
) -> Result<()> {
    let what = format!("the manifest of {label}");
    let bytes = read_layout_json(source, descriptor, &what)?;
    let path = blob_path(&descriptor.digest);
    #[derive(Deserialize)]
    struct Parts {
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let parts: Parts = from_json(&bytes, &path)?;
    for (i, blob) in parts.config.iter().chain(&parts.layers).enumerate() {
        oci::check_digest(&format!("blob {i}"), &blob.digest).map_err(|cause| {
            ArchiveError::Manifest {
                path: path.clone(),
                cause,
            }
        })?;
        put_layout_blob(store, source, blob, &format!("blob {i} of {label}"))?;
    }
    store.put_blob(&descriptor.digest, Some(descriptor.size), bytes.as_slice())?;
    Ok(())
}

fn check_layer_count(config: &ImageConfig, layers: usize, label: &str) -> Result<()> {
    if config.rootfs.diff_ids.len() != layers {
        return Err(ArchiveError::LayerCount {
            image: label.to_string(),
            diff_ids: config.rootfs.diff_ids.len(),
            layers,
        });
    }
    Ok(())
}

/// The digest a path like `blobs/sha256/<hex>` claims for its content.
fn digest_in_path(path: &Path) -> Option<String> {
    let mut parts = path.components().map(|c| c.as_os_str().to_str());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Some("blobs")), Some(Some(algorithm)), Some(Some(hex)), None) => {
            let digest = format!("{algorithm}:{hex}");
            oci::check_digest("", &digest).ok().map(|()| digest)
        }
        _ => None,
    }
}

fn load_docker_archive(store: &Store, source: &Source) -> Result<Vec<Loaded>> {
    let found = source.find("manifest.json", "manifest.json", "the list of images")?;
    let entries: Vec<DockerManifest> = from_json(&source.read_json(&found)?, "manifest.json")?;
    let mut loaded = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|tag| parse_name(tag, "manifest.json"))
            .collect::<Result<Vec<_>>>()?;
        let label = match names.first() {
            Some(name) => name.familiar(),
            None => format!("image {i} of manifest.json"),
        };
        // 1. The config: its digest is the hash of its bytes.
        let found = source.find(
            "manifest.json",
            &entry.config,
            &format!("the config of {label}"),
        )?;
        let config_bytes = source.read_json(&found)?;
        let config_digest = sha256(&config_bytes);
        if let Some(named) = digest_in_path(&found.path).filter(|d| *d != config_digest) {
            return Err(ArchiveError::Mismatch {
                path: found.path.display().to_string(),
                expected: named,
                actual: config_digest,
            });
        }
        let config: ImageConfig = from_json(&config_bytes, &entry.config)?;
        check_layer_count(&config, entry.layers.len(), &label)?;
        // 2. The layers, each checked against its diff_id.
        let mut layers = Vec::new();
        for (i, (path, diff_id)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
            let layer = load_docker_layer(store, source, path, diff_id, &label)?;
            let what = format!("layer {i} of {label}");
            unpack_checked(store, &layer.digest, diff_id, &layer.media_type, &what)?;
            layers.push(layer);
        }
        // 3. Config and manifest: docker archives have no manifest, so we
        //    write the OCI one that describes what we stored.
        let config = put_json(store, oci::OCI_CONFIG, &config_bytes)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config: config.clone(),
            layers,
            subject: None,
            annotations: None,
        };
        let manifest = put_json(
            store,
            oci::OCI_MANIFEST,
            &to_json(&manifest, "the manifest")?,
        )?;
        loaded.push(Loaded {
            digest: manifest.digest,
            config: config.digest,
            names,
            bare_tag: None,
        });
    }
    Ok(loaded)
}

fn put_json(store: &Store, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
    let digest = sha256(bytes);
    store.put_blob(&digest, Some(bytes.len() as u64), bytes)?;
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

/// Store one layer of a docker archive and describe it. An uncompressed
/// layer (older docker's `<id>/layer.tar`) is its own diff_id, so one pass
/// through [`Store::put_blob`] checks it; a compressed one is read twice:
/// once to hash it and its uncompressed content, once into the store.
fn load_docker_layer(
    store: &Store,
    source: &Source,
    path: &str,
    diff_id: &str,
    label: &str,
) -> Result<Descriptor> {
    let what = format!("a layer of {label}");
    let found = source.find("manifest.json", path, &what)?;
    let shown = found.path.display().to_string();
    let named = digest_in_path(&found.path);
    let mut raw = hashing(source.open(&found)?, diff_id);
    let (packing, head) = sniff(&mut raw).map_err(io(format!("read {shown}")))?;
    let compression = match packing {
        Packing::Plain(c) => c,
        Packing::Other(kind) => return Err(ArchiveError::Compressed { what: shown, kind }),
    };
    let (media_type, digest) = if compression == Compression::None {
        drop(head);
        // Its digest is its diff_id; a blob path naming another one lies
        // about one of them.
        if let Some(named) = named.filter(|n| n.as_str() != diff_id) {
            return Err(ArchiveError::NameNotDiffId {
                path: shown,
                named,
                diff_id: diff_id.to_string(),
            });
        }
        let reader = source.open(&found)?;
        match store.put_blob(diff_id, Some(found.size), reader) {
            Ok(_) => {}
            Err(StoreError::DigestMismatch { expected, actual }) => {
                return Err(ArchiveError::DiffId {
                    path: shown,
                    expected,
                    actual,
                });
            }
            Err(source) => {
                return Err(ArchiveError::Blob {
                    path: shown,
                    cause: Box::new(source),
                });
            }
        }
        (oci::OCI_LAYER_TAR, diff_id.to_string())
    } else {
        let mut plain = hashing(decompress(compression, head, &shown)?, diff_id);
        io::copy(&mut plain, &mut io::sink()).map_err(io(format!("decompress {shown}")))?;
        let actual_diff_id = plain.finish().0.to_string();
        // What the decompressor left (a trailer, padding) is part of the blob.
        io::copy(&mut raw, &mut io::sink()).map_err(io(format!("read {shown}")))?;
        let digest = raw.finish().0.to_string();
        if actual_diff_id != diff_id {
            return Err(ArchiveError::DiffId {
                path: shown,
                expected: diff_id.to_string(),
                actual: actual_diff_id,
            });
        }
        if let Some(named) = named.filter(|n| *n != digest) {
            return Err(ArchiveError::Mismatch {
                path: shown,
                expected: named,
                actual: digest,
            });
        }
        let reader = source.open(&found)?;
        store
            .put_blob(&digest, Some(found.size), reader)
            .map_err(|source| ArchiveError::Blob {
                path: shown.clone(),
                cause: Box::new(source),
            })?;
        let media_type = match compression {
            Compression::Zstd => oci::OCI_LAYER_TAR_ZSTD,
            _ => oci::OCI_LAYER_TAR_GZIP,
        };
        (media_type, digest)
    };
    Ok(Descriptor::new(media_type, digest, found.size))
}

// ----- save -----

/// One image to save, under one of its names.
struct ToSave {
    name: Reference,
    image: Image,
    /// What the name points to (size read from the store): the image's
    /// manifest, or the index it is this platform's entry of.
    manifest: Descriptor,
}

/// Look up `refs` in the store (each once) and list the blobs they need,
/// by digest, with their sizes.
fn gather(store: &Store, refs: &[Reference]) -> Result<(Vec<ToSave>, BTreeMap<String, u64>)> {
    let mut images = Vec::new();
    let mut blobs = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for name in refs {
        if !seen.insert(name.to_string()) {
            continue;
        }
        let image = load_image(store, name)?;
        let path = store.blob_path(&image.digest)?;
        let size = fs::metadata(&path)
            .map_err(io(format!("read {}", path.display())))?
            .len();
        let media_type = image
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| oci::OCI_MANIFEST.to_string());
        blobs.insert(image.digest.clone(), size);
        blobs.insert(
            image.manifest.config.digest.clone(),
            image.manifest.config.size,
        );
        for layer in &image.manifest.layers {
            blobs.insert(layer.digest.clone(), layer.size);
        }
        let mut manifest = Descriptor::new(&media_type, image.digest.clone(), size);
        // A multi-platform name: the index goes out whole, every platform
        // with it, so that loading the archive gives the same name back.
        if let Some(index) = &image.index {
            manifest = add_tree(store, index, &mut blobs, 0)?;
        }
        images.push(ToSave {
            name: name.clone(),
            image,
            manifest,
        });
    }
    Ok((images, blobs))
}

/// Add the manifest or index `digest` and everything below it to `blobs`; return its
/// descriptor.
fn add_tree(
    store: &Store,
    digest: &str,
    blobs: &mut BTreeMap<String, u64>,
    depth: usize,
) -> Result<Descriptor> {
    if depth > MAX_NESTING {
        return Err(ArchiveError::TooDeep(digest.to_string()));
    }
    let bytes = store.read_blob(digest)?;
    // Any manifest's parts, read as plain JSON: an attestation's layers are
    // not filesystems, but go along all the same.
    #[derive(Deserialize)]
    struct Parts {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<Vec<Descriptor>>,
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let parts: Parts = from_json(&bytes, &blob_path(digest))?;
    let media_type = match (parts.media_type, &parts.manifests) {
        (Some(media_type), _) => media_type,
        (None, Some(_)) => oci::OCI_INDEX.to_string(),
        (None, None) => oci::OCI_MANIFEST.to_string(),
    };
    blobs.insert(digest.to_string(), bytes.len() as u64);
    for blob in parts.config.iter().chain(&parts.layers) {
        blobs.insert(blob.digest.clone(), blob.size);
    }
    for child in parts.manifests.iter().flatten() {
        add_tree(store, &child.digest, blobs, depth + 1)?;
    }
    Ok(Descriptor::new(
        &media_type,
        digest.to_string(),
        bytes.len() as u64,
    ))
}

/// `index.json`: one entry per name, with both name annotations.
fn layout_index(images: &[ToSave]) -> ImageIndex {
    let manifests = images
        .iter()
        .map(|s| {
            let mut annotations = BTreeMap::new();
            annotations.insert(ANNOTATION_IMAGE_NAME.to_string(), s.name.to_string());
            if let Some(tag) = &s.name.tag {
                annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
            }
            Descriptor {
                annotations: Some(annotations),
                ..s.manifest.clone()
            }
        })
        .collect();
    ImageIndex {
        schema_version: 2,
        media_type: Some(oci::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: None,
    }
}

fn layout_file() -> OciLayout {
    OciLayout {
        image_layout_version: OCI_LAYOUT_VERSION.to_string(),
    }
}

/// Check that what was read of the blob `digest` is the blob: the store
/// could have been damaged since the blob was verified going in.
fn check_blob(digest: &str, size: u64, read: Hashing<impl Read>) -> Result<()> {
    let (actual, len) = read.finish();
    let actual = actual.to_string();
    if actual != digest || len != size {
        return Err(ArchiveError::Damaged {
            digest: digest.to_string(),
            actual,
            size: len,
        });
    }
    Ok(())
}

/// Put the store's blob `digest` at `dest`: a hard link when the store is
/// on the same filesystem (and we may link it), else a copy; either way
/// hashed again.
fn export_blob(store: &Store, digest: &str, size: u64, dest: &Path) -> Result<()> {
    let src = store.blob_path(digest)?;
    if fs::hard_link(&src, dest).is_ok() {
        let mut read = hashing(store.open_blob(digest)?, digest);
        io::copy(&mut read, &mut io::sink()).map_err(io(format!("read blob {digest}")))?;
        return check_blob(digest, size, read);
    }
    let mut read = hashing(store.open_blob(digest)?, digest);
    let mut out = File::create(dest).map_err(io(format!("create {}", dest.display())))?;
    io::copy(&mut read, &mut out).map_err(io(format!("copy blob {digest}")))?;
    check_blob(digest, size, read)
}

// ANCHOR: save_oci_layout
/// Write the images `refs` as an OCI image layout in the directory `dir`,
/// which must not exist or be empty. The layout is built in a temporary
/// directory beside it and renamed into place, so `dir` appears complete or
/// not at all.
pub fn save_oci_layout(store: &Store, refs: &[Reference], dir: &Path) -> Result<()> {
    // 1. The images and their blobs, before anything is written (under
    //    the store lock, so that garbage collection waits for us).
    let _lock = store.lock_shared()?;
    let (images, blobs) = gather(store, refs)?;
    if let Ok(mut entries) = fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(ArchiveError::OutputExists(dir.to_path_buf()));
        }
    } else if fs::symlink_metadata(dir).is_ok() {
        return Err(ArchiveError::OutputExists(dir.to_path_buf()));
    }
    // 2. A temporary directory beside `dir` (same filesystem, so the final
    //    rename is atomic), removed if anything fails.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".berth-save-")
        .tempdir_in(parent)
        .map_err(io(format!(
            "create a temporary directory in {}",
            parent.display()
        )))?;
    let blob_dir = temp.path().join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(io(format!("create {}", blob_dir.display())))?;
    // 3. The blobs, each verified on the way out.
    for (digest, size) in &blobs {
        let dest = temp.path().join(blob_path(digest));
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        export_blob(store, digest, *size, &dest)?;
    }
    // 4. oci-layout and index.json, which make it a layout.
    let write = |name: &str, bytes: Vec<u8>| {
        let path = temp.path().join(name);
        fs::write(&path, bytes).map_err(io(format!("write {}", path.display())))
    };
    write(OCI_LAYOUT_FILE, to_json(&layout_file(), OCI_LAYOUT_FILE)?)?;
    write("index.json", to_json(&layout_index(&images), "index.json")?)?;
    // 5. Into place, readable by all like any directory we make.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", temp.path().display())))?;
    fs::rename(temp.path(), dir).map_err(io(format!("rename to {}", dir.display())))?;
    let _ = temp.keep();
    Ok(())
}
// ANCHOR_END: save_oci_layout

/// A tar header for a file of `size` bytes (or a directory), the same
/// every time: owner 0/0, mtime 0.
fn tar_header(size: u64, dir: bool) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_mode(if dir { 0o755 } else { 0o644 });
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

// ANCHOR: save_docker_archive
/// Write the images `refs` to `out` as a docker archive that is also an
/// OCI image layout (Docker 25's form). Returns `out`.
pub fn save_docker_archive<W: Write>(store: &Store, refs: &[Reference], out: W) -> Result<W> {
    // 1. The images, and the documents describing them, before any output
    //    (under the store lock, so that garbage collection waits for us).
    let _lock = store.lock_shared()?;
    let (images, blobs) = gather(store, refs)?;
    let manifest_json = docker_manifest_entries(&images);
    let repositories = docker_repositories(&images);
    let documents = [
        ("index.json", to_json(&layout_index(&images), "index.json")?),
        ("manifest.json", to_json(&manifest_json, "manifest.json")?),
        (OCI_LAYOUT_FILE, to_json(&layout_file(), OCI_LAYOUT_FILE)?),
        ("repositories", to_json(&repositories, "repositories")?),
    ];
    // 2. The tar, in sorted order: the blob directories, the blobs (by
    //    digest), then the documents (whose names sort after "blobs/").
    write_archive_tar(store, &blobs, documents, out)
}
// ANCHOR_END: save_docker_archive

// ANCHOR: docker_manifest_entries
/// The entries of Docker's `manifest.json`: one per image (by config),
/// holding every name it is saved under and its layers' paths, in order.
fn docker_manifest_entries(images: &[ToSave]) -> Vec<DockerManifest> {
    let mut manifest_json: Vec<DockerManifest> = Vec::new();
    for s in images {
        let tag = s
            .name
            .tag
            .as_ref()
            .map(|t| format!("{}:{t}", s.name.familiar_name()));
        match manifest_json
            .iter_mut()
            .find(|e| e.config == blob_path(&s.image.manifest.config.digest))
        {
            Some(entry) => entry.repo_tags.get_or_insert_default().extend(tag),
            None => manifest_json.push(DockerManifest {
                config: blob_path(&s.image.manifest.config.digest),
                repo_tags: Some(tag.into_iter().collect()),
                layers: s
                    .image
                    .manifest
                    .layers
                    .iter()
                    .map(|l| blob_path(&l.digest))
                    .collect(),
            }),
        }
    }
    manifest_json
}
// ANCHOR_END: docker_manifest_entries

// ANCHOR: docker_repositories
/// The legacy `repositories` file, as `docker save` still writes it: for
/// each tagged name, the tag's top layer as bare hex.
fn docker_repositories(images: &[ToSave]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in images {
        if let (Some(tag), Some(top)) = (&s.name.tag, s.image.manifest.layers.last()) {
            let hex = top.digest.trim_start_matches("sha256:").to_string();
            repositories
                .entry(s.name.familiar_name())
                .or_default()
                .insert(tag.clone(), hex);
        }
    }
    repositories
}
// ANCHOR_END: docker_repositories

// ANCHOR: write_archive_tar
/// Write the tar to `out` in sorted order: the blob directories, each
/// blob (checked against its digest and size as it is copied), then the
/// documents. Returns `out`.
fn write_archive_tar<W: Write>(
    store: &Store,
    blobs: &BTreeMap<String, u64>,
    documents: [(&str, Vec<u8>); 4],
    out: W,
) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    let fail = |cause| ArchiveError::Io {
        what: "write the archive".into(),
        cause,
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut tar_header(0, true), dir, io::empty())
            .map_err(fail)?;
    }
    for (digest, size) in blobs {
        let mut read = hashing(store.open_blob(digest)?.take(*size), digest);
        tar.append_data(&mut tar_header(*size, false), blob_path(digest), &mut read)
            .map_err(fail)?;
        check_blob(digest, *size, read)?;
    }
    for (name, bytes) in documents {
        tar.append_data(
            &mut tar_header(bytes.len() as u64, false),
            name,
            bytes.as_slice(),
        )
        .map_err(fail)?;
    }
    tar.into_inner().map_err(fail)
}
// ANCHOR_END: write_archive_tar

/// [`save_docker_archive`] into the file `path`, written beside it under a
/// temporary name and renamed over it once complete.
pub fn save_docker_archive_file(store: &Store, refs: &[Reference], path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".berth-save-")
        .tempfile_in(parent)
        .map_err(io(format!(
            "create a temporary file in {}",
            parent.display()
        )))?;
    let out = save_docker_archive(store, refs, io::BufWriter::new(temp.as_file()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .map_err(io(format!("write {}", path.display())))?;
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
        .map_err(io(format!("chmod {}", temp.path().display())))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .map_err(io(format!("rename to {}", path.display())))?;
    Ok(())
}

// ----- import a root filesystem tarball -----

/// A scratch directory, removed on drop however deep it nests and even
/// when it holds read-only directories (chapter 4's `remove_tree`).
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = ch04_overlay::walk::remove_tree(self.0.path());
    }
}

// ANCHOR: import_tarball
/// Make a single-layer image of the root filesystem in the tar stream
/// `tarball` (maybe gzip or zstd compressed), as `docker import` does, and
/// name it `name`. Returns the manifest's digest.
///
/// The tarball is unpacked with chapter 4's [`apply_layer`] (which refuses
/// `..`, absolute paths and symlink escapes) and the tree imported with
/// [`import_rootfs`], so the image is the same as importing the directory:
/// deterministic, whatever the tarball's order and timestamps. Unprivileged,
/// files become the caller's, as when unpacking any tarball.
pub fn import_tarball<R: Read>(
    store: &Store,
    tarball: R,
    name: &Reference,
    config: impl Into<crate::oci::ContainerConfig>,
) -> Result<String> {
    // 1. A plain tar stream, whatever the compression; the store lock held
    //    until the image is named.
    let tar = plain_tar(tarball, "the tarball")?;
    let _lock = store.lock_shared()?;
    // 2. A scratch directory where the store unpacks layers (so a crash
    //    leaves it where `clean_temp` looks), removed in every case.
    let tmp = store.root().join("layers/tmp");
    let scratch = Scratch(
        tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(&tmp)
            .map_err(io(format!(
                "create a temporary directory in {}",
                tmp.display()
            )))?,
    );
    // 3. Unpacked safely, whiteouts applied as deletions (a flat tree).
    let opts = ApplyOptions::for_current_user(WhiteoutMode::Delete);
    apply_layer(tar, scratch.path(), &opts).map_err(ArchiveError::Apply)?;
    // 4. The tree becomes an image like any imported directory.
    Ok(import_rootfs(store, scratch.path(), name, config)?)
}
// ANCHOR_END: import_tarball

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_cleaned_or_refused() {
        assert_eq!(
            clean_path("./blobs/sha256/x").unwrap(),
            Path::new("blobs/sha256/x")
        );
        assert_eq!(clean_path("/etc/passwd"), Err("is absolute"));
        assert_eq!(clean_path("../../etc/passwd"), Err("contains '..'"));
        assert_eq!(clean_path("a/../../b"), Err("contains '..'"));
        assert_eq!(clean_path("."), Err("is empty"));
        let link = Path::new("abc/layer.tar");
        assert_eq!(
            follow_link(link, Path::new("../def/layer.tar")).unwrap(),
            Path::new("def/layer.tar")
        );
        assert!(follow_link(link, Path::new("../../etc/passwd")).is_err());
        assert!(follow_link(link, Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn compression_is_sniffed_and_undone() {
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"hello").unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&b"hello"[..], 1).unwrap();
        for bytes in [&gz[..], &zst[..], b"hello"] {
            let mut back = Vec::new();
            plain_tar(bytes, "x")
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, b"hello");
        }
        assert_eq!(
            sniff(&b""[..]).unwrap().0,
            Packing::Plain(Compression::None)
        );
        let err = plain_tar(&b"BZh91AY&SY"[..], "the tarball").err().unwrap();
        assert_eq!(
            err.to_string(),
            "the tarball is compressed with bzip2: only gzip and zstd are read; decompress it first"
        );
    }

    #[test]
    fn blob_paths_name_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(blob_path(&d), format!("blobs/sha256/{}", "a".repeat(64)));
        assert_eq!(digest_in_path(Path::new(&blob_path(&d))), Some(d));
        assert_eq!(digest_in_path(Path::new("abc/layer.tar")), None);
        assert_eq!(digest_in_path(Path::new("blobs/sha256/xyz")), None);
    }
}
