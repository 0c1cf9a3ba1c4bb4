//! The local content store: blobs, unpacked layers and image names.
//!
//! Everything lives under one root (the engine's `--root`):
//!
//! ```text
//! ROOT/blobs/sha256/<hex>         content-addressed blobs (manifests, configs, layer tarballs;
//!                                 sha512 digests under blobs/sha512/)
//! ROOT/blobs/tmp/                 blobs being written
//! ROOT/layers/sha256/<hex>/       each layer unpacked once, keyed by its diff_id
//! ROOT/layers/tmp/                layers being unpacked
//! ROOT/index.json                 image names -> manifest digests
//! ROOT/index.lock                 flock(2)ed while index.json is rewritten
//! ROOT/store.lock                 flock(2)ed shared by writers, exclusive by garbage collection
//! ```
//!
//! Nothing appears under its final name before it is complete and verified:
//! a blob is streamed into a temporary file, hashed and counted on the way,
//! fsynced and only then renamed to its digest; a layer is unpacked into a
//! temporary directory while its uncompressed bytes are hashed, and renamed
//! to its diff_id once the hash matches. rename(2) within one filesystem is
//! atomic, so a crash leaves at worst a temporary file behind (see
//! [`Store::clean_temp`]), never a truncated blob that a later pull would
//! trust. Two pulls of the same content race harmlessly: both write their
//! own temporary copy and the last rename wins with identical bytes.
//!
//! **Only the engine's user looks inside.** An unpacked layer holds the
//! image's files as the image says: setuid-root programs, device nodes,
//! world-writable directories. Open to the host's users, a setuid shell
//! from an image is root for anyone, and a 1777 directory lets anyone plant
//! files every later container sees. So `blobs/` and `layers/` are mode
//! 0700, `index.json` and the lock files 0600, and ROOT itself is closed as
//! chapter 4 closes it (0711 as root: a user namespace's root must cross it
//! to its container's directory; 0700 rootless): the content is reachable
//! only through a container. [`Store::open`] makes an existing store that
//! was open private, or says why it cannot.
//!
//! Blobs are written before the name that makes them reachable, so garbage
//! collection (`gc.rs`) could take a pull's fresh blobs for garbage.
//! The store lock prevents that: everything that writes blobs or layers and
//! then names them holds [`Store::lock_shared`] meanwhile (any number at
//! once), and the collector holds [`Store::lock_exclusive`] (alone).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ch04_overlay::apply::{ApplyError, ApplyOptions, WhiteoutMode, apply_layer};
use ch04_overlay::files::{self, TempPath};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest, Hashing};

/// How old a temporary file or directory must be before
/// [`Store::clean_temp`] treats it as left over by a crashed pull. A pull in
/// progress keeps touching its temporary blob, so an hour of silence means
/// nobody owns it any more.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "invalid digest {0:?}: expected \"sha256:\" followed by 64 lowercase hex digits, or \"sha512:\" followed by 128"
    )]
    BadDigest(String),

    #[error(
        "content does not match its digest: expected {expected}, got {actual} (the source is corrupt or was changed; pull again)"
    )]
    DigestMismatch { expected: String, actual: String },

    #[error(
        "blob {digest}: expected {expected} bytes, got {actual}{} (the source is truncated or corrupt; pull again)",
        if *.more { " or more" } else { "" }
    )]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
        /// Reading stopped as soon as the blob grew past `expected`.
        more: bool,
    },

    #[error(
        "layer {blob}: its uncompressed content has digest {actual}, but the image says diff_id {expected} (the image is corrupt; remove it and pull again)"
    )]
    DiffIdMismatch {
        blob: String,
        expected: String,
        actual: String,
    },

    #[error("no blob {digest} in the store ({path}): pull the image first")]
    BlobNotFound { digest: String, path: PathBuf },

    #[error("read content for {digest}: {cause}")]
    Read { digest: String, cause: io::Error },

    #[error(
        "blob {digest} is over {} bytes, the limit for a manifest or config: refusing to read it (remove the image that names it with rmi)",
        crate::oci::MAX_MANIFEST_BYTES
    )]
    TooLarge { digest: String },

    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },

    #[error("unpack layer {blob} into {path}: {cause}")]
    Apply {
        blob: String,
        path: PathBuf,
        cause: ApplyError,
    },

    #[error("lock {path}: {errno}")]
    Lock { path: PathBuf, errno: Errno },

    #[error("{path}: not an image index: {cause} (move it away to start an empty index)")]
    Index {
        path: PathBuf,
        cause: serde_json::Error,
    },

    #[error(
        "invalid image name {0:?}: a name must be non-empty and hold no whitespace or control characters"
    )]
    BadName(String),

    #[error(
        "no space left on the disk that holds the store {root} (writing {path}): free space there (`prune` removes what no image uses), or give --root a store on another disk"
    )]
    NoSpace { root: PathBuf, path: PathBuf },

    #[error("no image store at {0}: check --root (pull, load and import make one)")]
    NoStore(PathBuf),

    #[error(transparent)]
    State(#[from] ch04_overlay::state::StateError),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |cause| StoreError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// `digest` parsed ([`Digest::parse`]), or [`StoreError::BadDigest`]: only
/// a valid digest ever becomes a file name in the store.
fn parse_digest(digest: &str) -> Result<Digest> {
    Digest::parse(digest).map_err(|_| StoreError::BadDigest(digest.to_string()))
}

/// fsync a directory, so that a rename in it survives a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    files::sync_dir(dir).map_err(io_err(dir))
}

/// Remove a file or a whole tree, however deep, making read-only
/// directories writable first if that is what stops us (a layer may hold
/// `dr-xr-xr-x` dirs, which only root can empty as they are): chapter 4's
/// [`remove_tree`](ch04_overlay::walk::remove_tree).
fn remove_tree(path: &Path) -> io::Result<()> {
    ch04_overlay::walk::remove_tree(path).map_err(|e| {
        let kind = match &e {
            ch04_overlay::walk::WalkError::Syscall { errno, .. } => io::Error::from(*errno).kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e.to_string())
    })
}

/// `index.json`: image names and the manifests they point to.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    names: BTreeMap<String, String>,
}

/// How a layer blob is compressed, from its media type's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `...tar`: the blob is the tar stream itself.
    None,
    /// `...tar+gzip` (OCI) or `...tar.gzip` (Docker).
    Gzip,
    /// `...tar+zstd` (OCI, since image-spec 1.1).
    Zstd,
}

impl Compression {
    /// The compression a layer media type names. [`crate::oci::parse_manifest`]
    /// has already refused media types that are not layers.
    pub fn of_media_type(media_type: &str) -> Compression {
        if media_type.ends_with("gzip") {
            Compression::Gzip
        } else if media_type.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What [`Store::clean_temp`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// The temporary files and directories removed.
    pub removed: Vec<PathBuf>,
}

/// The store lock, held until dropped (see [`Store::lock_shared`]).
#[derive(Debug)]
pub struct StoreLock {
    _flock: Flock<File>,
    exclusive: bool,
}

impl StoreLock {
    /// Whether this is the exclusive lock garbage collection needs.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

/// The content store under one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating it if needed (`pull`, `load`,
    /// `import`), private to its user.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store { root: root.into() };
        ch04_overlay::state::prepare_root(&store.root)?;
        for dir in [store.root.join("blobs"), store.root.join("layers")] {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(cause) => return Err(StoreError::Io { path: dir, cause }),
            }
        }
        for dir in [
            store.blob_dir(),
            store.blob_tmp_dir(),
            store.layer_dir(),
            store.layer_tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        store.make_private()?;
        Ok(store)
    }

    /// Open the store at `root`, which must exist: for commands that only
    /// read (or remove), so that a mistyped `--root` is an error, not a new
    /// empty store.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        if !root.join("blobs").is_dir() {
            return Err(StoreError::NoStore(root));
        }
        Store::open(root)
    }

    /// Close what a store made before stores were private left open:
    /// `blobs/` and `layers/` to 0700, the files in ROOT to 0600.
    fn make_private(&self) -> Result<()> {
        use ch04_overlay::state::make_private;
        for dir in [self.root.join("blobs"), self.root.join("layers")] {
            make_private(&dir, 0o700)?;
        }
        for file in ["index.json", "index.lock", "store.lock"] {
            let path = self.root.join(file);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                        .map_err(io_err(&path))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A failed write to `path` in the store: a full disk (or quota) is
    /// named as the store's, the rest as they are.
    pub fn write_error(&self, path: &Path, cause: io::Error) -> StoreError {
        match cause.raw_os_error() {
            Some(nix::libc::ENOSPC | nix::libc::EDQUOT) => StoreError::NoSpace {
                root: self.root.clone(),
                path: path.to_path_buf(),
            },
            _ => StoreError::Io {
                path: path.to_path_buf(),
                cause,
            },
        }
    }

    fn blob_dir(&self) -> PathBuf {
        self.blob_dir_for(Algorithm::Sha256)
    }

    /// `blobs/<algorithm>`: where blobs named by `algorithm` digests live.
    fn blob_dir_for(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join("blobs").join(algorithm.name())
    }

    fn blob_tmp_dir(&self) -> PathBuf {
        self.root.join("blobs/tmp")
    }

    fn layer_dir(&self) -> PathBuf {
        self.layer_dir_for(Algorithm::Sha256)
    }

    /// `layers/<algorithm>`: where layers with `algorithm` diff_ids live.
    fn layer_dir_for(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join("layers").join(algorithm.name())
    }

    fn layer_tmp_dir(&self) -> PathBuf {
        self.root.join("layers/tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    // ----- blobs -----

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("blobs")
            .join(parse_digest(digest)?.blob_path()))
    }

    /// Whether the blob `digest` is in the store.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        let path = self.blob_path(digest)?;
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(cause) => Err(StoreError::Io { path, cause }),
        }
    }

    /// Open the blob `digest` for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|cause| {
            if cause.kind() == io::ErrorKind::NotFound {
                StoreError::BlobNotFound {
                    digest: digest.to_string(),
                    path,
                }
            } else {
                StoreError::Io { path, cause }
            }
        })
    }

    /// The whole of the blob `digest`, a manifest, index or config, read
    /// through [`crate::oci::read_document`]: one over the limit is refused
    /// after reading one byte more than it (a store filled by an older pull
    /// may hold a 300 MiB "config").
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        crate::oci::read_document(self.open_blob(digest)?).map_err(|e| match e {
            crate::oci::DocumentError::Read(cause) => StoreError::Read {
                digest: digest.to_string(),
                cause,
            },
            crate::oci::DocumentError::TooLarge => StoreError::TooLarge {
                digest: digest.to_string(),
            },
        })
    }

    /// Delete the blob `digest`; `Ok(false)` if it was not there.
    pub fn delete_blob(&self, digest: &str) -> Result<bool> {
        let path = self.blob_path(digest)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(cause) => Err(StoreError::Io { path, cause }),
        }
    }

    /// The digests of every blob in the store, sorted. Names that are not
    /// a digest's hex (nothing the store wrote) are left out.
    pub fn blob_digests(&self) -> Result<Vec<String>> {
        list_digests(|algorithm| self.blob_dir_for(algorithm))
    }

    // ANCHOR: put_blob
    /// Store what `reader` yields as the blob `expected_digest`, and return
    /// its path.
    ///
    /// The bytes go to a temporary file in `blobs/tmp/`, hashed and counted
    /// on the way; reading stops as soon as they exceed `expected_size`. If
    /// size and digest match, the file is fsynced and renamed to its final
    /// name, then the directory is fsynced; otherwise it is deleted and the
    /// mismatch returned. A blob under its final name is thus always
    /// complete and verified.
    ///
    /// If the blob is already in the store, `reader` is not read at all:
    /// a caller streaming from the network should check [`Store::has_blob`]
    /// first, or simply drop the response.
    pub fn put_blob<R: Read>(
        &self,
        expected_digest: &str,
        expected_size: Option<u64>,
        mut reader: R,
    ) -> Result<PathBuf> {
        let final_path = self.blob_path(expected_digest)?;
        if self.has_blob(expected_digest)? {
            return Ok(final_path);
        }

        // Stream into a temporary file, hashed and counted on the way,
        // check size and digest, then move it under its final name.
        let (file, temp) = self.create_temp_file()?;
        let mut file = Hashing::new(file, parse_digest(expected_digest)?.algorithm());
        let count = self.stream_blob(
            &mut reader,
            &mut file,
            temp.path(),
            expected_digest,
            expected_size,
        )?;
        let file = verify_blob(file, count, expected_digest, expected_size)?;
        self.publish_blob(file, temp, &final_path)?;
        Ok(final_path)
    }
    // ANCHOR_END: put_blob

    // ANCHOR: stream_blob
    /// Copy `reader` into the temporary file `file` (at `temp`), hashing on
    /// the way, and return how many bytes it yielded; stop with
    /// [`StoreError::SizeMismatch`] as soon as they exceed `expected_size`.
    fn stream_blob(
        &self,
        reader: &mut impl Read,
        file: &mut Hashing<File>,
        temp: &Path,
        expected_digest: &str,
        expected_size: Option<u64>,
    ) -> Result<u64> {
        let mut count: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(cause) => {
                    return Err(StoreError::Read {
                        digest: expected_digest.to_string(),
                        cause,
                    });
                }
            };
            count += n as u64;
            if let Some(expected) = expected_size.filter(|&e| count > e) {
                return Err(StoreError::SizeMismatch {
                    digest: expected_digest.to_string(),
                    expected,
                    actual: count,
                    more: true,
                });
            }
            file.write_all(&buf[..n])
                .map_err(|cause| self.write_error(temp, cause))?;
        }
        Ok(count)
    }
    // ANCHOR_END: stream_blob

    // ANCHOR: publish_blob
    /// Make a verified temporary file the blob `final_path`: fsync it,
    /// rename it into place (creating the algorithm's directory if needed)
    /// and fsync the directory, so a crash leaves either no blob or all
    /// of it.
    fn publish_blob(&self, file: File, temp: TempPath, final_path: &Path) -> Result<()> {
        file.sync_all()
            .map_err(|cause| self.write_error(temp.path(), cause))?;
        drop(file);
        let dir = final_path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::rename(temp.path(), final_path).map_err(io_err(final_path))?;
        temp.keep();
        sync_dir(dir)
    }
    // ANCHOR_END: publish_blob

    fn create_temp_file(&self) -> Result<(File, TempPath)> {
        let dir = self.blob_tmp_dir();
        files::create_temp_file(&dir, 0o644).map_err(io_err(&dir))
    }

    fn create_temp_dir(&self) -> Result<TempPath> {
        let dir = self.layer_tmp_dir();
        files::create_temp_dir(&dir).map_err(io_err(&dir))
    }

    // ----- layers -----

    /// Where the layer with `diff_id` is unpacked (whether or not it is).
    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("layers")
            .join(parse_digest(diff_id)?.blob_path()))
    }

    /// Whether the layer with `diff_id` is unpacked.
    pub fn has_layer(&self, diff_id: &str) -> Result<bool> {
        let path = self.layer_path(diff_id)?;
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(cause) => Err(StoreError::Io { path, cause }),
        }
    }

    // ANCHOR: unpack_layer
    /// Unpack the layer blob `blob_digest` (compressed with `compression`)
    /// into `layers/sha256/<diff_id hex>/`, ready to be
    /// an overlay lowerdir, and return that directory.
    ///
    /// A layer already unpacked is returned as it is, without reading the
    /// blob. Otherwise the layer is applied into a temporary directory while
    /// its uncompressed bytes are hashed; if they do not hash to `diff_id`
    /// the directory is removed and [`StoreError::DiffIdMismatch`] returned.
    /// The finished directory is synced to disk and renamed into place; if
    /// another process got there first, ours is removed and theirs used.
    ///
    /// Whiteouts are written as overlayfs markers (0/0 character devices),
    /// which needs root: unprivileged, a layer holding whiteouts fails with
    /// [`ApplyError::WhiteoutRefused`] inside [`StoreError::Apply`].
    pub fn unpack_layer(
        &self,
        blob_digest: &str,
        diff_id: &str,
        compression: Compression,
    ) -> Result<PathBuf> {
        parse_digest(blob_digest)?;
        let algorithm = parse_digest(diff_id)?.algorithm();
        let final_path = self.layer_path(diff_id)?;
        if self.has_layer(diff_id)? {
            return Ok(final_path);
        }

        // 1. The blob's uncompressed bytes, hashed as they are read.
        let reader = Hashing::new(self.open_layer_stream(blob_digest, compression)?, algorithm);
        // 2. Applied into a temporary directory, and checked against diff_id.
        let temp = self.create_temp_dir()?;
        self.apply_verified(reader, temp.path(), blob_digest, diff_id, &final_path)?;
        // 3. Synced and renamed into place.
        self.publish_layer(temp, diff_id, algorithm, &final_path)?;
        Ok(final_path)
    }
    // ANCHOR_END: unpack_layer

    // ANCHOR: open_layer_stream
    /// The uncompressed bytes of the blob `blob_digest`, through the
    /// decoder `compression` names.
    fn open_layer_stream(
        &self,
        blob_digest: &str,
        compression: Compression,
    ) -> Result<Box<dyn Read>> {
        let blob = io::BufReader::new(self.open_blob(blob_digest)?);
        Ok(match compression {
            Compression::None => Box::new(blob),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(blob)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(blob).map_err(
                |cause| StoreError::Read {
                    digest: blob_digest.to_string(),
                    cause,
                },
            )?),
        })
    }
    // ANCHOR_END: open_layer_stream

    // ANCHOR: apply_verified
    /// Apply the layer `reader` yields into the directory `temp` with
    /// chapter 4's safe `apply_layer` (whiteouts as overlayfs markers),
    /// read it to its end, and check that it hashed to `diff_id`.
    fn apply_verified(
        &self,
        mut reader: Hashing<Box<dyn Read>>,
        temp: &Path,
        blob_digest: &str,
        diff_id: &str,
        final_path: &Path,
    ) -> Result<()> {
        let opts = ApplyOptions::for_current_user(WhiteoutMode::Overlay);
        apply_layer(&mut reader, temp, &opts).map_err(|cause| match cause {
            ApplyError::Write { path, cause } => self.write_error(&temp.join(path), cause),
            cause => StoreError::Apply {
                blob: blob_digest.to_string(),
                path: final_path.to_path_buf(),
                cause,
            },
        })?;
        // The tar reader stops at the end-of-archive marker; the padding
        // after it (and the gzip trailer, checked by the decoder) is part of
        // the diff_id too.
        io::copy(&mut reader, &mut io::sink()).map_err(|cause| StoreError::Read {
            digest: blob_digest.to_string(),
            cause,
        })?;
        let actual = reader.finish().0.to_string();
        if actual != diff_id {
            return Err(StoreError::DiffIdMismatch {
                blob: blob_digest.to_string(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        Ok(())
    }
    // ANCHOR_END: apply_verified

    // ANCHOR: publish_layer
    /// Make the verified directory `temp` the layer `final_path`: syncfs
    /// it, rename it into place and sync the parent. If another process
    /// finished the same layer first, ours is dropped and theirs used.
    fn publish_layer(
        &self,
        temp: TempPath,
        diff_id: &str,
        algorithm: Algorithm,
        final_path: &Path,
    ) -> Result<()> {
        let dir = File::open(temp.path()).map_err(io_err(temp.path()))?;
        nix::unistd::syncfs(&dir).map_err(|errno| StoreError::Io {
            path: temp.path().to_path_buf(),
            cause: errno.into(),
        })?;
        drop(dir);
        let layers = self.layer_dir_for(algorithm);
        fs::create_dir_all(&layers).map_err(io_err(&layers))?;
        match fs::rename(temp.path(), final_path) {
            Ok(()) => temp.keep(),
            // Someone else finished the same layer first (a non-empty
            // directory cannot be renamed over): ours is dropped, theirs used.
            Err(_) if self.has_layer(diff_id)? => drop(temp),
            Err(cause) => {
                return Err(StoreError::Io {
                    path: final_path.to_path_buf(),
                    cause,
                });
            }
        }
        sync_dir(&layers)
    }
    // ANCHOR_END: publish_layer

    /// The diff_ids of every unpacked layer, sorted.
    pub fn layer_diff_ids(&self) -> Result<Vec<String>> {
        list_digests(|algorithm| self.layer_dir_for(algorithm))
    }

    /// Delete the unpacked layer `diff_id`; `Ok(false)` if it was not there.
    ///
    /// Crash-safe: the directory is first renamed into `layers/tmp/` (one
    /// atomic step), and only then emptied. A crash in between leaves a
    /// leftover for [`Store::clean_temp`], never a half-deleted directory
    /// under the layer's name that [`Store::unpack_layer`] would take for
    /// the whole layer.
    pub fn delete_layer(&self, diff_id: &str) -> Result<bool> {
        let path = self.layer_path(diff_id)?;
        let doomed = self.layer_tmp_dir().join(files::unique_name());
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(cause) => return Err(StoreError::Io { path, cause }),
        }
        sync_dir(path.parent().unwrap_or(&self.root))?;
        remove_tree(&doomed).map_err(io_err(&doomed))?;
        Ok(true)
    }

    // ----- the store lock -----

    // ANCHOR: store_lock
    /// Take the store lock shared, waiting while garbage collection runs.
    ///
    /// Hold the returned guard from before writing the first blob or layer
    /// until after the name that makes them reachable is set
    /// ([`Store::set_name`]): a pull, a load or an import does
    /// `let _lock = store.lock_shared()?;` first. Garbage collection takes
    /// the lock exclusive, so it never runs while content is written but
    /// not yet named, and never deletes it. Any number of shared holders
    /// run at once. Released when the guard is dropped (or the process
    /// dies: flock(2) locks belong to the open file).
    ///
    /// Taking it, a writer that finds itself alone (the lock free) knows no
    /// other writer is running: whatever is in `blobs/tmp/` and
    /// `layers/tmp/` was left by one that was killed, and is swept now.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        if let Some(lock) = self.try_lock_exclusive()? {
            self.clean_temp_older_than(Duration::ZERO)?;
            let path = self.root.join("store.lock");
            lock._flock
                .relock(FlockArg::LockShared)
                .map_err(|errno| StoreError::Lock { path, errno })?;
            return Ok(StoreLock {
                _flock: lock._flock,
                exclusive: false,
            });
        }
        self.lock(FlockArg::LockShared)
    }

    /// Take the store lock exclusive, waiting for every shared holder to
    /// finish: what garbage collection holds while it marks and sweeps.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock(FlockArg::LockExclusive)
    }

    // ANCHOR_END: store_lock

    // ANCHOR: flock
    /// [`Store::lock_exclusive`] without waiting: `None` while a pull, load
    /// or import holds the lock shared (the caller may say so, then wait).
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>> {
        match self.lock(FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err(StoreError::Lock {
                errno: Errno::EWOULDBLOCK,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lock(&self, how: FlockArg) -> Result<StoreLock> {
        let path = self.root.join("store.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let exclusive = !matches!(how, FlockArg::LockShared | FlockArg::LockSharedNonblock);
        let flock =
            Flock::lock(file, how).map_err(|(_, errno)| StoreError::Lock { path, errno })?;
        Ok(StoreLock {
            _flock: flock,
            exclusive,
        })
    }
    // ANCHOR_END: flock

    // ----- temporary leftovers -----

    /// Remove temporary files and directories left by crashed pulls: those
    /// not modified for [`TEMP_MAX_AGE`].
    pub fn clean_temp(&self) -> Result<CleanReport> {
        self.clean_temp_older_than(TEMP_MAX_AGE)
    }

    /// Remove temporary files and directories not modified for `age`.
    /// `Duration::ZERO` removes them all: only safe when no other pull is
    /// running on this root.
    pub fn clean_temp_older_than(&self, age: Duration) -> Result<CleanReport> {
        let now = SystemTime::now();
        let mut report = CleanReport::default();
        for dir in [self.blob_tmp_dir(), self.layer_tmp_dir()] {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(cause) => return Err(StoreError::Io { path: dir, cause }),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                let path = entry.path();
                let modified = match entry.metadata().and_then(|m| m.modified()) {
                    Ok(t) => t,
                    // Removed meanwhile by its owner.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(cause) => return Err(StoreError::Io { path, cause }),
                };
                let idle = now.duration_since(modified).unwrap_or(Duration::ZERO);
                if idle >= age {
                    remove_tree(&path).map_err(io_err(&path))?;
                    report.removed.push(path);
                }
            }
        }
        Ok(report)
    }

    // ----- the name index -----

    /// All image names and their manifest digests.
    pub fn names(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.read_index()?.names)
    }

    /// The manifest digest the image `name` points to, if any.
    pub fn resolve(&self, name: &str) -> Result<Option<String>> {
        Ok(self.read_index()?.names.remove(name))
    }

    /// Point the image `name` at the manifest `digest`; return the digest it
    /// pointed to before, if any.
    pub fn set_name(&self, name: &str, digest: &str) -> Result<Option<String>> {
        check_name(name)?;
        parse_digest(digest)?;
        self.update_index(|index| index.names.insert(name.to_string(), digest.to_string()))
    }

    /// Forget the image `name`; return the digest it pointed to, if any.
    pub fn remove_name(&self, name: &str) -> Result<Option<String>> {
        self.update_index(|index| index.names.remove(name))
    }

    /// Readers need no lock: the index is only ever replaced by rename.
    fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(cause) => return Err(StoreError::Io { path, cause }),
        };
        serde_json::from_str(&text).map_err(|cause| StoreError::Index { path, cause })
    }

    /// Read, change and atomically replace the index, holding an exclusive
    /// lock on `index.lock` so that concurrent writers do not lose each
    /// other's changes. The lock is released when the guard drops.
    fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> T) -> Result<T> {
        let lock_path = self.root.join("index.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        let _lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| StoreError::Lock {
                path: lock_path.clone(),
                errno,
            })?;

        let mut index = self.read_index()?;
        let result = change(&mut index);

        let path = self.index_path();
        let mut json = serde_json::to_string_pretty(&index).map_err(|cause| StoreError::Index {
            path: path.clone(),
            cause,
        })?;
        json.push('\n');
        files::write_atomic(&path, json.as_bytes(), 0o600)
            .map_err(|(path, cause)| StoreError::Io { path, cause })?;
        Ok(result)
    }
}

/// `<algorithm>:<name>` for every entry of `dir(algorithm)` whose name is
/// a valid hex part, for each algorithm, sorted. A missing `sha512`
/// directory (no such blob was ever stored) is an empty one.
fn list_digests(dir: impl Fn(Algorithm) -> PathBuf) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let dir = dir(algorithm);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && algorithm != Algorithm::Sha256 => {
                continue;
            }
            Err(cause) => return Err(StoreError::Io { path: dir, cause }),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            if let Some(name) = entry.file_name().to_str() {
                let digest = format!("{algorithm}:{name}");
                if Digest::parse(&digest).is_ok() {
                    out.push(digest);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::BadName(name.to_string()));
    }
    Ok(())
}

// ANCHOR: verify_blob
/// Check a streamed blob: `count` bytes must be `expected_size` (when
/// known) and their hash `expected_digest`. Returns the temporary file.
fn verify_blob(
    file: Hashing<File>,
    count: u64,
    expected_digest: &str,
    expected_size: Option<u64>,
) -> Result<File> {
    if let Some(expected) = expected_size.filter(|&e| count != e) {
        return Err(StoreError::SizeMismatch {
            digest: expected_digest.to_string(),
            expected,
            actual: count,
            more: false,
        });
    }
    let (actual, _, file) = file.into_parts();
    let actual = actual.to_string();
    if actual != expected_digest {
        return Err(StoreError::DigestMismatch {
            expected: expected_digest.to_string(),
            actual,
        });
    }
    Ok(file)
}
// ANCHOR_END: verify_blob

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::atomic::Ordering;

    fn digest_of(data: &[u8]) -> String {
        Digest::of_bytes(Algorithm::Sha256, data).to_string()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root")).unwrap();
        (dir, store)
    }

    fn temp_entries(store: &Store) -> Vec<PathBuf> {
        let mut out = vec![];
        for dir in [store.blob_tmp_dir(), store.layer_tmp_dir()] {
            out.extend(fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()));
        }
        out
    }

    struct PanicReader;
    impl Read for PanicReader {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the reader of an existing blob must not be read");
        }
    }

    #[test]
    fn digests_are_validated() {
        let (_dir, store) = store();
        for bad in [
            "",
            "sha256:",
            "sha512:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:000000000000000000000000000000000000000000000000000000000000000",
            "sha256:000000000000000000000000000000000000000000000000000000000000000A",
            "sha256:../../../../../../../../../../../../../../../../../../etc/passwd",
        ] {
            assert!(
                matches!(store.blob_path(bad), Err(StoreError::BadDigest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn put_blob_verifies_and_stores() {
        let (_dir, store) = store();
        let data = b"hello, berth\n";
        let digest = digest_of(data);
        let path = store
            .put_blob(&digest, Some(data.len() as u64), &data[..])
            .unwrap();
        assert_eq!(path, store.blob_path(&digest).unwrap());
        assert_eq!(fs::read(&path).unwrap(), data);
        assert!(store.has_blob(&digest).unwrap());
        let mut back = vec![];
        store
            .open_blob(&digest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(temp_entries(&store).is_empty());

        // Already there: the reader is not touched.
        assert_eq!(store.put_blob(&digest, None, PanicReader).unwrap(), path);

        assert!(store.delete_blob(&digest).unwrap());
        assert!(!store.delete_blob(&digest).unwrap());
        assert!(matches!(
            store.open_blob(&digest),
            Err(StoreError::BlobNotFound { .. })
        ));
    }

    #[test]
    fn put_blob_rejects_wrong_digest() {
        let (_dir, store) = store();
        let wrong = digest_of(b"something else");
        let err = store.put_blob(&wrong, None, &b"hello"[..]).unwrap_err();
        match &err {
            StoreError::DigestMismatch { expected, actual } => {
                assert_eq!(expected, &wrong);
                assert_eq!(actual, &digest_of(b"hello"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!store.has_blob(&wrong).unwrap());
        assert!(temp_entries(&store).is_empty());
    }

    #[test]
    fn put_blob_rejects_wrong_size() {
        let (_dir, store) = store();
        let digest = digest_of(b"hello");
        for (size, more) in [(4, true), (6, false)] {
            let err = store
                .put_blob(&digest, Some(size), &b"hello"[..])
                .unwrap_err();
            assert!(
                matches!(err, StoreError::SizeMismatch { expected, more: m, .. } if expected == size && m == more),
                "{err:?}"
            );
            assert!(!store.has_blob(&digest).unwrap());
            assert!(temp_entries(&store).is_empty());
        }
    }

    #[test]
    fn concurrent_put_of_the_same_blob() {
        let (_dir, store) = store();
        let data = vec![7u8; 1 << 20];
        let digest = digest_of(&data);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| store.put_blob(&digest, Some(data.len() as u64), &data[..])))
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(fs::read_dir(store.blob_dir()).unwrap().count(), 1);
        assert_eq!(fs::read(store.blob_path(&digest).unwrap()).unwrap(), data);
        assert!(temp_entries(&store).is_empty());
    }

    #[test]
    fn clean_temp_removes_crash_leftovers() {
        let (_dir, store) = store();
        let leftover = store.blob_tmp_dir().join("12345-0-deadbeef");
        fs::write(&leftover, b"half a blo").unwrap();
        let leftover_dir = store.layer_tmp_dir().join("12345-1-deadbeef");
        fs::create_dir_all(leftover_dir.join("ro/sub")).unwrap();
        fs::set_permissions(leftover_dir.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();

        // Fresh leftovers might belong to a running pull: kept.
        assert!(store.clean_temp().unwrap().removed.is_empty());
        assert!(leftover.exists());

        let report = store.clean_temp_older_than(Duration::ZERO).unwrap();
        assert_eq!(report.removed.len(), 2);
        assert!(temp_entries(&store).is_empty());

        let digest = digest_of(b"a whole blob");
        store
            .put_blob(&digest, Some(12), &b"a whole blob"[..])
            .unwrap();
        assert!(store.has_blob(&digest).unwrap());
    }

    /// A gzip layer holding `files` (and `whiteout`, if given), its blob
    /// digest and its diff_id.
    fn layer(files: &[(&str, &[u8])], whiteout: Option<&str>) -> (Vec<u8>, String, String) {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        };
        for (name, data) in files {
            add(name, data);
        }
        if let Some(w) = whiteout {
            add(w, b"");
        }
        let tar = builder.into_inner().unwrap();
        let diff_id = digest_of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let blob = gz.finish().unwrap();
        let digest = digest_of(&blob);
        (blob, digest, diff_id)
    }

    #[test]
    fn unpack_layer_once() {
        let (_dir, store) = store();
        let (blob, digest, diff_id) =
            layer(&[("etc/motd", b"welcome\n"), ("hello.txt", b"hi")], None);
        store
            .put_blob(&digest, Some(blob.len() as u64), Cursor::new(&blob))
            .unwrap();

        let dir = store
            .unpack_layer(&digest, &diff_id, Compression::Gzip)
            .unwrap();
        assert_eq!(dir, store.layer_path(&diff_id).unwrap());
        assert_eq!(fs::read(dir.join("etc/motd")).unwrap(), b"welcome\n");
        assert_eq!(fs::read(dir.join("hello.txt")).unwrap(), b"hi");
        assert!(temp_entries(&store).is_empty());

        // Unpacked once: the blob is not needed again.
        store.delete_blob(&digest).unwrap();
        assert_eq!(
            store
                .unpack_layer(&digest, &diff_id, Compression::Gzip)
                .unwrap(),
            dir
        );
    }

    #[test]
    fn unpack_uncompressed_layer() {
        let (_dir, store) = store();
        let (blob, _, diff_id) = layer(&[("a", b"a")], None);
        let mut tar = vec![];
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        store.put_blob(&diff_id, None, &tar[..]).unwrap();
        let dir = store
            .unpack_layer(&diff_id, &diff_id, Compression::None)
            .unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"a");
    }

    #[test]
    fn unpack_zstd_layer() {
        let (_dir, store) = store();
        let (blob, _, diff_id) = layer(&[("z/stood", b"zstd")], None);
        let mut tar = vec![];
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let digest = digest_of(&zst);
        store.put_blob(&digest, None, &zst[..]).unwrap();
        let dir = store
            .unpack_layer(
                &digest,
                &diff_id,
                Compression::of_media_type(crate::oci::OCI_LAYER_TAR_ZSTD),
            )
            .unwrap();
        assert_eq!(fs::read(dir.join("z/stood")).unwrap(), b"zstd");
    }

    #[test]
    fn unpack_layer_rejects_wrong_diff_id() {
        let (_dir, store) = store();
        let (blob, digest, diff_id) = layer(&[("hello.txt", b"hi")], None);
        store.put_blob(&digest, None, &blob[..]).unwrap();
        let wrong = digest_of(b"not this layer");
        let err = store
            .unpack_layer(&digest, &wrong, Compression::Gzip)
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::DiffIdMismatch { actual, .. } if *actual == diff_id),
            "{err:?}"
        );
        assert!(!store.has_layer(&wrong).unwrap());
        assert!(temp_entries(&store).is_empty());
    }

    #[test]
    fn unpack_layer_missing_blob() {
        let (_dir, store) = store();
        let d = digest_of(b"x");
        assert!(matches!(
            store.unpack_layer(&d, &d, Compression::Gzip),
            Err(StoreError::BlobNotFound { .. })
        ));
    }

    #[test]
    fn unpack_layer_with_whiteouts() {
        let (_dir, store) = store();
        let (blob, digest, diff_id) = layer(&[("keep", b"k")], Some("etc/.wh.gone"));
        store.put_blob(&digest, None, &blob[..]).unwrap();
        // Root may always write the 0/0 character device; others may since
        // Linux 5.8 (whiteouts are exempt from CAP_MKNOD), before that apply
        // refuses with its own error.
        match store.unpack_layer(&digest, &diff_id, Compression::Gzip) {
            Ok(dir) => {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                let meta = fs::symlink_metadata(dir.join("etc/gone")).unwrap();
                assert!(meta.file_type().is_char_device());
                assert_eq!(meta.rdev(), 0);
                assert_eq!(fs::read(dir.join("keep")).unwrap(), b"k");
            }
            Err(err) => {
                assert!(!nix::unistd::Uid::effective().is_root(), "{err:?}");
                assert!(
                    matches!(
                        err,
                        StoreError::Apply {
                            cause: ApplyError::WhiteoutRefused { .. },
                            ..
                        }
                    ),
                    "{err:?}"
                );
                assert!(!store.has_layer(&diff_id).unwrap());
            }
        }
        assert!(temp_entries(&store).is_empty());
    }

    #[test]
    fn delete_layer_leaves_nothing_under_its_name() {
        let (_dir, store) = store();
        let (blob, digest, diff_id) = layer(&[("ro/file", b"x")], None);
        store.put_blob(&digest, None, &blob[..]).unwrap();
        let dir = store
            .unpack_layer(&digest, &diff_id, Compression::Gzip)
            .unwrap();
        fs::set_permissions(dir.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        assert_eq!(store.layer_diff_ids().unwrap(), vec![diff_id.clone()]);
        assert_eq!(store.blob_digests().unwrap(), vec![digest.clone()]);
        assert!(store.delete_layer(&diff_id).unwrap());
        assert!(!dir.exists());
        assert!(!store.delete_layer(&diff_id).unwrap());
        assert!(store.layer_diff_ids().unwrap().is_empty());
        assert!(temp_entries(&store).is_empty());
    }

    #[test]
    fn the_store_lock_is_shared_by_writers_and_exclusive_for_gc() {
        let (_dir, store) = store();
        let a = store.lock_shared().unwrap();
        let b = store.lock_shared().unwrap();
        assert!(!a.is_exclusive());
        assert!(store.try_lock_exclusive().unwrap().is_none());
        drop(a);
        assert!(store.try_lock_exclusive().unwrap().is_none());
        drop(b);
        let gc = store.try_lock_exclusive().unwrap().unwrap();
        assert!(gc.is_exclusive());
        // A writer waits for the collector: while the collector holds the
        // lock, the writer's thread cannot have got past lock_shared.
        let got_it = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let _lock = store.lock_shared().unwrap();
                got_it.store(true, Ordering::SeqCst);
            });
            std::thread::yield_now();
            assert!(!got_it.load(Ordering::SeqCst));
            drop(gc);
            writer.join().unwrap();
        });
        assert!(got_it.load(Ordering::SeqCst));
    }

    #[test]
    fn index_set_resolve_remove() {
        let (_dir, store) = store();
        let name = "docker.io/library/alpine:latest";
        let d1 = digest_of(b"1");
        let d2 = digest_of(b"2");
        assert_eq!(store.resolve(name).unwrap(), None);
        assert_eq!(store.set_name(name, &d1).unwrap(), None);
        assert_eq!(store.resolve(name).unwrap(), Some(d1.clone()));
        assert_eq!(store.set_name(name, &d2).unwrap(), Some(d1));
        assert_eq!(store.names().unwrap().len(), 1);
        assert_eq!(store.remove_name(name).unwrap(), Some(d2));
        assert_eq!(store.remove_name(name).unwrap(), None);
        assert!(store.names().unwrap().is_empty());
        assert!(matches!(
            store.set_name("a b", &digest_of(b"")),
            Err(StoreError::BadName(_))
        ));
        assert!(matches!(
            store.set_name(name, "latest"),
            Err(StoreError::BadDigest(_))
        ));
        assert!(!store.root().join("index.json.tmp").exists());
    }

    #[test]
    fn index_concurrent_updates() {
        let (_dir, store) = store();
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..10 {
                        let name = format!("example.com/t{t}:{i}");
                        store.set_name(&name, &digest_of(name.as_bytes())).unwrap();
                    }
                });
            }
        });
        let names = store.names().unwrap();
        assert_eq!(names.len(), 40);
        for (name, digest) in names {
            assert_eq!(digest, digest_of(name.as_bytes()));
        }
    }
}
