//! `push`: an image from chapter 5's store to a registry.
//!
//! `docker push`, step by step (distribution-spec "Push"):
//!
//! 1. the image's manifest is read from the store, and the blobs it names;
//!    for an index (a multi-platform image), each platform's manifest is
//!    pushed first, by digest, since a registry refuses an index whose
//!    manifests it lacks;
//! 2. for each blob (config, then layers): `HEAD` — if the registry has it
//!    in this repository, nothing to send ("Layer already exists");
//! 3. otherwise `POST …/blobs/uploads/?mount=<digest>&from=<repository>`:
//!    a registry that has it in another repository links it without a byte
//!    sent ("Mounted from …"); one that cannot answers `202` with an upload
//!    session, which step 4 uses;
//! 4. the bytes: one `PUT <session>?digest=<digest>` streaming the file, or
//!    with `--chunk-size`, `PATCH`es with `Content-Range` and an empty
//!    closing `PUT`; the registry checks the digest, not us;
//! 5. the manifest last, `PUT …/manifests/<tag>`: only when everything it
//!    names is there can the tag appear, so a pull never sees half an image.
//!
//! The config goes first, then the layers, `--jobs` at a time (docker's
//! `max-concurrent-uploads`): the first failure stops the others, whose
//! bodies fail at their next read and whose upload sessions are cancelled
//! (`DELETE`), so the registry keeps nothing half-sent.
//!
//! Blobs are streamed from their files; nothing is read whole but manifests.
//! The requests go through chapter 5's client ([`Registry::send`]), with
//! the scope `repository:<name>:pull,push` ([`Access::Push`]), so a push
//! answers the same Basic and Bearer challenges as a pull.
//!
//! Specs: distribution-spec v1.1 "Pushing blobs", "Mounting a blob from
//! another repository", "Pushing Manifests"; image-spec `image-index.md`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use ch05_images::digest::{Algorithm, Digest};
use ch05_images::oci;
use ch05_images::registry::{Access, Call, Payload, Registry, RegistryError, header};
use ch05_images::store::{Store, StoreError};
use ch05_images::workers;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {cause}")]
    Refused { what: String, cause: RegistryError },
    #[error("{what}: {method} {url}: the registry answered {status} without a Location header")]
    NoLocation {
        what: String,
        method: &'static str,
        url: String,
        status: u16,
    },
    #[error("manifest {digest} in the store is not valid JSON: {cause}")]
    Manifest {
        digest: String,
        cause: serde_json::Error,
    },
    #[error(
        "blob {digest} in the store has {actual} bytes but the manifest says {expected}: the store is damaged; pull or load the image again"
    )]
    Size {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "the registry stored {what} as {actual}, not {expected}: it changed the content; refusing to trust it"
    )]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("blob {digest}: stopped, since another upload failed")]
    Cancelled { digest: String },
}

type Result<T> = std::result::Result<T, PushError>;

/// How many layers upload at once, as docker's default
/// `max-concurrent-uploads` (5).
pub const DEFAULT_JOBS: usize = 5;

/// How to upload.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Upload in `PATCH` chunks of this many bytes instead of one `PUT`.
    pub chunk_size: Option<u64>,
    /// A repository on the same registry that may already have the blobs.
    pub mount_from: Option<String>,
    /// Layers uploaded at once.
    pub jobs: usize,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            chunk_size: None,
            mount_from: None,
            jobs: DEFAULT_JOBS,
        }
    }
}

/// What became of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    AlreadyExists,
    /// Linked from another repository of the registry (named, if we asked
    /// for one).
    Mounted(Option<String>),
    Pushed,
}

/// The words docker prints after a blob's short id.
impl std::fmt::Display for BlobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobOutcome::AlreadyExists => f.write_str("Layer already exists"),
            BlobOutcome::Mounted(Some(from)) => write!(f, "Mounted from {from}"),
            BlobOutcome::Mounted(None) => f.write_str("Mounted"),
            BlobOutcome::Pushed => f.write_str("Pushed"),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The digest of the manifest pushed under the tag.
    pub digest: String,
    /// Its size in bytes.
    pub size: usize,
    /// Every blob, in push order, and its fate.
    pub blobs: Vec<(String, BlobOutcome)>,
}

/// Hooks for showing progress: a bar per blob on a terminal. Called from
/// the upload workers, hence `&self` and `Sync`.
pub trait Progress: Sync {
    /// A blob upload starts; the bar (if any) is what the body reads update.
    fn start(&self, digest: &str, size: u64) -> Option<indicatif::ProgressBar>;
    /// A blob is done (called in the manifest's order, once all are).
    fn done(&self, digest: &str, outcome: &BlobOutcome);
}

/// Where a push goes.
#[derive(Debug, Clone)]
pub struct Destination<'a> {
    pub registry: &'a Registry,
    /// `library/app`, as the API names it.
    pub repository: &'a str,
}

impl<'a> Destination<'a> {
    /// A write to `location` (an API path or an upload's `Location`), which
    /// may also read blobs of the repository `from`.
    fn call<'c>(&self, method: &'static str, location: &str, from: Option<&'c str>) -> Call<'c>
    where
        'a: 'c,
    {
        Call {
            access: Access::Push,
            also_pulls: from,
            ..Call::new(method, self.registry.url(location), self.repository)
        }
    }

    /// Sends `call`; an answer other than `expected` is an error naming
    /// `what` was being pushed.
    fn expect(
        &self,
        call: &Call,
        expected: &[u16],
        what: &dyn Fn() -> String,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut response = self.registry.send(call)?;
        if expected.contains(&response.status().as_u16()) {
            return Ok(response);
        }
        Err(PushError::Refused {
            what: what(),
            cause: self.registry.status_error(call, &mut response),
        })
    }
}

/// `len` bytes of the file `path` from `offset`: a whole blob or one chunk
/// of it, read from disk again for each try.
struct FilePart<'a> {
    path: PathBuf,
    offset: u64,
    len: u64,
    /// Moved along by the bytes read, if a bar is shown.
    bar: Option<indicatif::ProgressBar>,
    /// Set when another upload failed: the next read fails, which ends
    /// this request.
    cancelled: &'a AtomicBool,
}

/// A reader that fails once `cancelled` is set.
struct Cancellable<'a, R> {
    inner: R,
    cancelled: &'a AtomicBool,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("stopped: another upload failed"));
        }
        self.inner.read(buf)
    }
}

impl Payload for FilePart<'_> {
    fn size(&self) -> u64 {
        self.len
    }

    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
        };
        let mut file = File::open(&self.path).map_err(named)?;
        file.seek(SeekFrom::Start(self.offset)).map_err(named)?;
        let part = Cancellable {
            inner: file.take(self.len),
            cancelled: self.cancelled,
        };
        Ok(match &self.bar {
            Some(bar) => {
                bar.set_position(self.offset);
                Box::new(bar.wrap_read(part))
            }
            None => Box::new(part),
        })
    }
}

/// `location` with `key=value` added to its query.
fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

fn read_manifest(store: &Store, digest: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    store
        .open_blob(digest)?
        .take(oci::MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|cause| PushError::Read {
            path: store.blob_path(digest).unwrap_or_default(),
            cause,
        })?;
    Ok(bytes)
}

// ANCHOR: push_blob
/// Steps 2 to 4 for one blob. `cancelled`: set when another upload failed.
fn push_blob(
    store: &Store,
    dest: &Destination,
    digest: &str,
    size: u64,
    options: &PushOptions,
    progress: &dyn Progress,
    cancelled: &AtomicBool,
) -> Result<BlobOutcome> {
    let path = check_blob_size(store, digest, size)?;
    let repo = dest.repository;
    let from = options.mount_from.as_deref();
    let what = || format!("blob {digest}");

    // 2. Already there?
    let head = dest.call("HEAD", &format!("/v2/{repo}/blobs/{digest}"), from);
    if dest.expect(&head, &[200, 404], &what)?.status() == 200 {
        return Ok(BlobOutcome::AlreadyExists);
    }

    // 3. Mount, or start a session.
    if cancelled.load(Ordering::SeqCst) {
        return Err(PushError::Cancelled {
            digest: digest.to_string(),
        });
    }
    let Some(mut location) = mount_or_start_upload(dest, digest, from)? else {
        return Ok(BlobOutcome::Mounted(from.map(str::to_string)));
    };

    // 4. The bytes. If they do not all arrive, the session is cancelled,
    //    so the registry keeps nothing half-sent.
    let upload = Upload {
        dest,
        path,
        digest,
        size,
        from,
        cancelled,
        bar: progress.start(digest, size),
    };
    let sent = upload.send(&mut location, options.chunk_size);
    if let Some(bar) = &upload.bar {
        bar.finish_and_clear();
    }
    if sent.is_err() {
        let cancel = dest.call("DELETE", &location, from);
        let _ = dest.registry.send(&cancel);
    }
    sent.map(|()| BlobOutcome::Pushed)
}
// ANCHOR_END: push_blob

// ANCHOR: check_blob_size
/// The path of blob `digest` in the store, once its file is checked to
/// hold the `size` bytes the manifest says: a damaged store is reported
/// as such, not discovered by the registry.
fn check_blob_size(store: &Store, digest: &str, size: u64) -> Result<PathBuf> {
    let path = store.blob_path(digest)?;
    let actual = std::fs::metadata(&path)
        .map_err(|cause| PushError::Read {
            path: path.clone(),
            cause,
        })?
        .len();
    if actual != size {
        return Err(PushError::Size {
            digest: digest.to_string(),
            expected: size,
            actual,
        });
    }
    Ok(path)
}
// ANCHOR_END: check_blob_size

// ANCHOR: mount_or_start_upload
/// `POST ?mount=<digest>` (and `&from=`): `None` if the registry mounted
/// the blob, else the location of the upload session it started.
fn mount_or_start_upload(
    dest: &Destination,
    digest: &str,
    from: Option<&str>,
) -> Result<Option<String>> {
    let repo = dest.repository;
    let what = || format!("blob {digest}");
    let mut start = format!("/v2/{repo}/blobs/uploads/?mount={digest}");
    if let Some(from) = from {
        start = with_query(&start, "from", from);
    }
    let post = dest.call("POST", &start, from);
    let answer = dest.expect(&post, &[201, 202], &what)?;
    if answer.status() == 201 {
        return Ok(None);
    }
    let location = header(&answer, "location").ok_or_else(|| PushError::NoLocation {
        what: what(),
        method: "POST",
        url: post.url.clone(),
        status: 202,
    })?;
    Ok(Some(location))
}
// ANCHOR_END: mount_or_start_upload

/// One blob's bytes, on their way to an upload session.
struct Upload<'a> {
    dest: &'a Destination<'a>,
    path: PathBuf,
    digest: &'a str,
    size: u64,
    from: Option<&'a str>,
    cancelled: &'a AtomicBool,
    bar: Option<indicatif::ProgressBar>,
}

impl Upload<'_> {
    fn part(&self, offset: u64, len: u64) -> FilePart<'_> {
        FilePart {
            path: self.path.clone(),
            offset,
            len,
            bar: self.bar.clone(),
            cancelled: self.cancelled,
        }
    }

    // ANCHOR: upload_send
    /// The whole file in the closing `PUT`, or `PATCH`es of `chunk_size`
    /// bytes and an empty `PUT`. `location` follows the session.
    fn send(&self, location: &mut String, chunk_size: Option<u64>) -> Result<()> {
        let (dest, digest, size) = (self.dest, self.digest, self.size);
        let what = || format!("blob {digest}");
        let last = match chunk_size.filter(|&c| c > 0 && c < size) {
            None => Some(self.part(0, size)),
            Some(chunk) => {
                self.send_chunks(location, chunk)?;
                None
            }
        };
        let put = Call {
            body: last.as_ref().map(|p| p as &dyn Payload),
            ..dest
                .call("PUT", &with_query(location, "digest", digest), self.from)
                .header("Content-Type", "application/octet-stream")
        };
        let put = dest.expect(&put, &[201], &what)?;
        if let Some(stored) = header(&put, "docker-content-digest")
            && stored != digest
        {
            return Err(PushError::Digest {
                what: what(),
                expected: digest.to_string(),
                actual: stored,
            });
        }
        Ok(())
    }
    // ANCHOR_END: upload_send

    // ANCHOR: send_chunks
    /// A `PATCH` per `chunk` bytes of the file, each with its
    /// `Content-Range`; `location` follows the session.
    fn send_chunks(&self, location: &mut String, chunk: u64) -> Result<()> {
        let (dest, digest, size) = (self.dest, self.digest, self.size);
        let what = || format!("blob {digest}");
        let mut offset = 0;
        while offset < size {
            if self.cancelled.load(Ordering::SeqCst) {
                return Err(PushError::Cancelled {
                    digest: digest.to_string(),
                });
            }
            let len = chunk.min(size - offset);
            let chunk = self.part(offset, len);
            let patch = Call {
                body: Some(&chunk),
                ..dest
                    .call("PATCH", location, self.from)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{offset}-{}", offset + len - 1))
            };
            let answer = dest.expect(&patch, &[202], &what)?;
            if let Some(next) = header(&answer, "location") {
                *location = next;
            }
            offset += len;
        }
        Ok(())
    }
    // ANCHOR_END: send_chunks
}

// ANCHOR: push_layers
/// Steps 2 to 4 for each of `layers`, `options.jobs` at a time, each
/// worker taking the next. The first failure stops the others: they start
/// nothing new, their bodies fail at the next read, and the first error is
/// the one reported. Returns each layer's outcome, in order.
fn push_layers(
    store: &Store,
    dest: &Destination,
    layers: &[(String, u64)],
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Vec<BlobOutcome>> {
    workers::run_all(layers, options.jobs, |_, (digest, size), failed| {
        push_blob(store, dest, digest, *size, options, progress, failed)
    })
}
// ANCHOR_END: push_layers

// ANCHOR: push
/// Pushes the manifest `digest` from `store`, and everything it names, to
/// `dest`, under `tag` (or by digest).
pub fn push(
    store: &Store,
    digest: &str,
    dest: &Destination,
    tag: Option<&str>,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Pushed> {
    // 1. The manifest, as stored: its bytes are what its digest names.
    let (bytes, value) = read_manifest_json(store, digest)?;
    let mut blobs = Vec::new();
    // An index: each platform's manifest first, by digest.
    for (child, _, _) in descriptors(&value, "manifests") {
        let pushed = push(store, &child, dest, None, options, progress)?;
        blobs.extend(pushed.blobs);
    }
    // 2-4. The config, then the layers, several at a time.
    push_config_and_layers(store, dest, &value, options, progress, &mut blobs)?;
    // 5. The manifest, last.
    let media_type = media_type_of(&value);
    put_manifest(
        dest,
        digest,
        tag.unwrap_or(digest),
        media_type,
        &bytes,
        options,
    )?;
    Ok(Pushed {
        digest: digest.to_string(),
        size: bytes.len(),
        blobs,
    })
}
// ANCHOR_END: push

/// The stored manifest `digest`: its bytes and their JSON.
fn read_manifest_json(store: &Store, digest: &str) -> Result<(Vec<u8>, serde_json::Value)> {
    let bytes = read_manifest(store, digest)?;
    let value = serde_json::from_slice(&bytes).map_err(|cause| PushError::Manifest {
        digest: digest.to_string(),
        cause,
    })?;
    Ok((bytes, value))
}

/// The manifest's media type: its `mediaType`, else what its fields say.
fn media_type_of(value: &serde_json::Value) -> &str {
    value["mediaType"]
        .as_str()
        .unwrap_or(if value.get("manifests").is_some() {
            oci::OCI_INDEX
        } else {
            oci::OCI_MANIFEST
        })
}

/// The descriptors under `key` (a list, or one object): digest, size and
/// media type each.
fn descriptors(value: &serde_json::Value, key: &str) -> Vec<(String, u64, String)> {
    let list: Vec<&serde_json::Value> = match &value[key] {
        serde_json::Value::Array(items) => items.iter().collect(),
        serde_json::Value::Object(_) => vec![&value[key]],
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|d| {
            Some((
                d["digest"].as_str()?.to_string(),
                d["size"].as_u64()?,
                d["mediaType"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Steps 2-4 of [`push`]: the config, then the layers, several at a time;
/// each blob once (an image may list a layer twice), and not foreign
/// layers, which live elsewhere by design. Each outcome is added to `blobs`.
fn push_config_and_layers(
    store: &Store,
    dest: &Destination,
    value: &serde_json::Value,
    options: &PushOptions,
    progress: &dyn Progress,
    blobs: &mut Vec<(String, BlobOutcome)>,
) -> Result<()> {
    let never = AtomicBool::new(false);
    for (config, size, _) in descriptors(value, "config") {
        let outcome = push_blob(store, dest, &config, size, options, progress, &never)?;
        progress.done(&config, &outcome);
        blobs.push((config, outcome));
    }
    let mut layers: Vec<(String, u64)> = Vec::new();
    for (layer, size, media_type) in descriptors(value, "layers") {
        let seen =
            blobs.iter().any(|(d, _)| *d == layer) || layers.iter().any(|(d, _)| *d == layer);
        if !seen && !oci::is_foreign_layer(&media_type) {
            layers.push((layer, size));
        }
    }
    let outcomes = push_layers(store, dest, &layers, options, progress)?;
    for ((layer, _), outcome) in layers.into_iter().zip(outcomes) {
        progress.done(&layer, &outcome);
        blobs.push((layer, outcome));
    }
    Ok(())
}

/// Step 5 of [`push`]: `PUT` the manifest `bytes` under `reference`, and
/// check that the registry names it `digest`.
fn put_manifest(
    dest: &Destination,
    digest: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    options: &PushOptions,
) -> Result<()> {
    let body = bytes;
    let put = Call {
        body: Some(&body),
        ..dest
            .call(
                "PUT",
                &format!("/v2/{}/manifests/{reference}", dest.repository),
                // The blobs' scope, whose token is already here.
                options.mount_from.as_deref(),
            )
            .header("Content-Type", media_type)
    };
    let put = dest.expect(&put, &[201], &|| format!("manifest {digest}"))?;
    let ours = Digest::parse(digest)
        .map(|d| d.algorithm())
        .unwrap_or(Algorithm::Sha256);
    let stored = header(&put, "docker-content-digest")
        .unwrap_or_else(|| Digest::of_bytes(ours, bytes).to_string());
    if stored != digest {
        return Err(PushError::Digest {
            what: format!("manifest {digest}"),
            expected: digest.to_string(),
            actual: stored,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended() {
        assert_eq!(
            with_query("/v2/a/blobs/uploads/x", "digest", "d"),
            "/v2/a/blobs/uploads/x?digest=d"
        );
        assert_eq!(
            with_query("/up?_state=abc", "digest", "d"),
            "/up?_state=abc&digest=d"
        );
    }
}
