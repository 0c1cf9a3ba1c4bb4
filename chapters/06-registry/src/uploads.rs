//! Pushing blobs: upload sessions, in one request or in chunks.
//!
//! The protocol (distribution-spec v1.1, "Pushing blobs" and the endpoints
//! end-4a to end-6, end-11, end-13, end-14):
//!
//! - `POST /v2/<name>/blobs/uploads/?digest=D` with the whole blob as body:
//!   a *monolithic* upload, answered `201 Created` once the bytes hash to D;
//! - `POST /v2/<name>/blobs/uploads/?mount=D&from=OTHER`: a *cross-repository
//!   mount*: if OTHER has D, this repository gets it without a byte sent
//!   (`201`); otherwise a session starts as below;
//! - `POST /v2/<name>/blobs/uploads/`: starts a *session*, `202 Accepted` with
//!   `Location: /v2/<name>/blobs/uploads/<uuid>` and `Docker-Upload-UUID`;
//! - `PATCH <location>` with `Content-Range: START-END` (inclusive) appends a
//!   chunk. START must be exactly the bytes received so far, else `416`
//!   (chunks arrive in order, or not at all); without `Content-Range` the
//!   body is simply appended (a "streamed" upload). `202` with
//!   `Range: 0-<last byte>`;
//! - `GET <location>`: where the session is (`204`, `Range`), to resume after
//!   an error; `DELETE <location>` cancels it;
//! - `PUT <location>?digest=D`, optionally with a last chunk: closes the
//!   session. The bytes must hash to D, else `400 DIGEST_INVALID` and the
//!   session is gone; on success the data file is renamed into the blob
//!   store (`201`, `Location` of the blob, `Docker-Content-Digest`).
//!
//! A session is a directory `ROOT/uploads/<uuid>/` holding `info.json` (the
//! repository and digest algorithm) and `data` (the bytes so far). The
//! running hash lives in memory, so closing a 1 GB upload costs no second
//! read; after a restart, or after a chunk that failed half-way (the file is
//! cut back to where the chunk began), the hash is rebuilt from `data` once.
//! A session nobody touches for [`UPLOAD_MAX_AGE`] is removed, as is any left
//! by a crash (`gc` and the server's hourly sweep).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use ch05_images::digest::{Algorithm, Digest, Verifier};
use serde::{Deserialize, Serialize};
use tokio::fs::{self, OpenOptions};
use tokio::io::BufWriter;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::body::{BodyError, copy_body};
use crate::errors::{ApiError, ErrorCode, digest_invalid};
use crate::names::check_name;
use crate::routes::{Query, empty_response};
use crate::storage::Storage;

/// How long an untouched upload session lives.
pub const UPLOAD_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The write buffer between the socket and the data file.
const WRITE_BUFFER: usize = 256 * 1024;

/// `info.json` of a session.
#[derive(Debug, Serialize, Deserialize)]
struct Info {
    repository: String,
    algorithm: String,
}

/// One upload session.
struct Session {
    id: Uuid,
    name: String,
    dir: PathBuf,
    /// Bytes in `data`.
    size: u64,
    /// The hash algorithm the running hash uses.
    algorithm: Algorithm,
    /// The hash of `data` so far; `None` means it must be rebuilt from disk.
    verifier: Option<Verifier>,
    /// Closed or cancelled: requests that waited for the lock find it gone.
    gone: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Session({} of {}, {} bytes)",
            self.id, self.name, self.size
        )
    }
}

impl Session {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn location(&self) -> String {
        format!("/v2/{}/blobs/uploads/{}", self.name, self.id)
    }

    /// `0-<last byte>`; `0-0` when empty, as distribution answers (there is
    /// no last byte to name, and clients parse two numbers).
    fn range(&self) -> String {
        format!("0-{}", self.size.saturating_sub(1))
    }

    fn progress_headers(&self) -> Vec<(header::HeaderName, String)> {
        vec![
            (header::LOCATION, self.location()),
            (header::RANGE, self.range()),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                self.id.to_string(),
            ),
        ]
    }

    /// The running hash, rebuilt from `data` if it was lost.
    async fn verifier(&mut self) -> io::Result<Verifier> {
        match self.verifier.take() {
            Some(v) => Ok(v),
            None => hash_file(&self.data(), self.algorithm)
                .await
                .map(|(v, _)| v),
        }
    }
}

/// Hashes a file from the start, off the async threads.
async fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<(Verifier, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut verifier = Verifier::new(algorithm);
        let mut file = std::fs::File::open(&path)?;
        let n = std::io::copy(&mut file, &mut verifier)?;
        Ok((verifier, n))
    })
    .await
    .map_err(io::Error::other)?
}

/// A session in the table: its repository, fixed, readable without waiting
/// for the session's lock (which a long PATCH holds).
#[derive(Debug)]
struct Handle {
    name: String,
    session: Mutex<Session>,
}

type Table = Mutex<HashMap<Uuid, Arc<Handle>>>;

/// The upload sessions of one registry.
#[derive(Debug)]
pub struct Uploads {
    storage: Storage,
    sessions: Table,
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::BlobUploadUnknown,
        format!(
            "upload {id} is not in progress here (finished, cancelled, expired or never \
             started): start a new one with POST /v2/<name>/blobs/uploads/"
        ),
    )
}

/// A `Content-Range: START-END` header (inclusive, `^[0-9]+-[0-9]+$`).
fn parse_content_range(text: &str) -> Option<(u64, u64)> {
    let (start, end) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || !digits(end) {
        return None;
    }
    Some((start.parse().ok()?, end.parse().ok()?))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_error(err: BodyError) -> ApiError {
    match err {
        BodyError::Client(detail) => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::SizeInvalid, detail)
        }
        BodyError::Disk(e) => ApiError::internal(format!("write upload data: {e}")),
    }
}

/// The digest a request names in `?digest=`, required.
fn required_digest(query: &Query) -> Result<Digest, ApiError> {
    let Some(text) = query.get("digest") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            "the digest query parameter is missing: close the upload with PUT <location>?digest=<digest of the whole blob>",
        ));
    };
    Digest::parse(text).map_err(|e| digest_invalid(text, e))
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    empty_response(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
}

impl Uploads {
    pub fn new(storage: Storage) -> Uploads {
        Uploads {
            storage,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The session `id` of repository `name`: from memory, or rebuilt from
    /// its directory (after a restart).
    async fn session(&self, name: &str, id: &str) -> Result<Arc<Handle>, ApiError> {
        let uuid = Uuid::try_parse(id).map_err(|_| upload_unknown(id))?;
        let mut sessions = self.sessions.lock().await;
        if let Some(handle) = sessions.get(&uuid) {
            if handle.name != name {
                return Err(upload_unknown(id));
            }
            return Ok(handle.clone());
        }
        // Not in memory: a session from before a restart?
        let dir = self.storage.uploads_dir().join(uuid.to_string());
        let info: Info = match fs::read(dir.join("info.json")).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| upload_unknown(id))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(upload_unknown(id)),
            Err(e) => return Err(ApiError::internal(format!("read upload {id}: {e}"))),
        };
        if info.repository != name {
            return Err(upload_unknown(id));
        }
        let algorithm = match info.algorithm.as_str() {
            "sha512" => Algorithm::Sha512,
            _ => Algorithm::Sha256,
        };
        let size = fs::metadata(dir.join("data"))
            .await
            .map_err(|e| ApiError::internal(format!("upload {id}: {e}")))?
            .len();
        let handle = Arc::new(Handle {
            name: name.to_string(),
            session: Mutex::new(Session {
                id: uuid,
                name: name.to_string(),
                dir,
                size,
                algorithm,
                verifier: None,
                gone: false,
            }),
        });
        sessions.insert(uuid, handle.clone());
        Ok(handle)
    }

    /// Creates a session directory and its empty data file.
    async fn create(&self, name: &str, algorithm: Algorithm) -> Result<Session, ApiError> {
        let id = Uuid::new_v4();
        let dir = self.storage.uploads_dir().join(id.to_string());
        let made = async {
            fs::create_dir(&dir).await?;
            fs::File::create(dir.join("data")).await?;
            let info = Info {
                repository: name.to_string(),
                algorithm: algorithm.name().to_string(),
            };
            let json = serde_json::to_vec(&info).map_err(io::Error::other)?;
            self.storage
                .write_atomic(&dir.join("info.json"), &json)
                .await
        };
        if let Err(e) = made.await {
            let _ = fs::remove_dir_all(&dir).await;
            return Err(ApiError::internal(format!("start upload: {e}")));
        }
        Ok(Session {
            id,
            name: name.to_string(),
            dir,
            size: 0,
            algorithm,
            verifier: Some(Verifier::new(algorithm)),
            gone: false,
        })
    }

    /// Removes session `session` from memory and disk.
    async fn remove(&self, session: &mut Session) {
        session.gone = true;
        self.sessions.lock().await.remove(&session.id);
        if let Err(e) = fs::remove_dir_all(&session.dir).await
            && e.kind() != io::ErrorKind::NotFound
        {
            eprintln!(
                "ch06-registry: remove upload {}: {e} (gc will)",
                session.dir.display()
            );
        }
    }

    // ANCHOR: start
    /// `POST /v2/<name>/blobs/uploads/`: monolithic upload, mount, or a new
    /// session.
    pub async fn start(
        &self,
        name: &str,
        query: &Query,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        // 1. A mount: no bytes needed if the blob is already here.
        if let Some(mount) = query.get("mount") {
            let digest = Digest::parse(mount).map_err(|e| digest_invalid(mount, e))?;
            if let Some(response) = self.mount(name, &digest, query.get("from")).await? {
                return Ok(response);
            }
            // Not mountable: the client uploads it after all (spec: 202).
        } else if let Some(text) = query.get("digest") {
            // 2. The whole blob in this one request.
            let digest = Digest::parse(text).map_err(|e| digest_invalid(text, e))?;
            return self.monolithic(name, &digest, headers, body).await;
        }
        // 3. A session, for PATCHes and a closing PUT.
        let algorithm = match query.get("digest-algorithm") {
            None | Some("sha256") => Algorithm::Sha256,
            Some("sha512") => Algorithm::Sha512,
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::DigestInvalid,
                    format!("digest-algorithm {other:?} is not supported: use sha256 or sha512"),
                ));
            }
        };
        let session = self.create(name, algorithm).await?;
        let mut headers = session.progress_headers();
        headers.push((header::CONTENT_LENGTH, "0".into()));
        let response = empty_response(StatusCode::ACCEPTED, headers);
        let handle = Handle {
            name: name.to_string(),
            session: Mutex::new(session),
        };
        let id = handle.session.lock().await.id;
        self.sessions.lock().await.insert(id, Arc::new(handle));
        Ok(response)
    }
    // ANCHOR_END: start

    /// Links `digest` into `name` if `from` (or, without `from`, any
    /// repository: the registry may "cross-mount the blob if it can be
    /// found") has it. `None` if it cannot be mounted.
    async fn mount(
        &self,
        name: &str,
        digest: &Digest,
        from: Option<&str>,
    ) -> Result<Option<Response>, ApiError> {
        let found = match from {
            Some(from) => {
                check_name(from).map_err(|why| {
                    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::NameInvalid, why)
                })?;
                self.storage.has_blob(from, digest).await
            }
            None => self.storage.blob_size(digest).await,
        }
        .map_err(|e| ApiError::internal(format!("mount {digest}: {e}")))?;
        if found.is_none() {
            return Ok(None);
        }
        self.storage
            .link_blob(name, digest)
            .await
            .map_err(|e| ApiError::internal(format!("link {digest} into {name}: {e}")))?;
        Ok(Some(blob_created(name, digest)))
    }

    // ANCHOR: monolithic
    /// `POST ...?digest=D` with the blob: streamed to a temporary file,
    /// hashed on the way, renamed into the store only if it hashes to D.
    async fn monolithic(
        &self,
        name: &str,
        digest: &Digest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let (file, temp) = self
            .storage
            .temp_file()
            .await
            .map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut verifier = Verifier::new(digest.algorithm());
        // The temporary file is removed when `temp` drops on any error below.
        let received = copy_body(body, &mut out, Some(&mut verifier), None)
            .await
            .map_err(body_error)?;
        if let Some(declared) = content_length(headers)
            && declared != received
        {
            return Err(size_invalid(declared, received));
        }
        let (actual, _) = verifier.finish();
        if actual != *digest {
            return Err(digest_mismatch(digest, &actual, received));
        }
        self.storage
            .commit_blob(out.into_inner(), temp, digest)
            .await
            .map_err(|e| ApiError::internal(format!("store {digest}: {e}")))?;
        self.storage
            .link_blob(name, digest)
            .await
            .map_err(|e| ApiError::internal(format!("link {digest} into {name}: {e}")))?;
        Ok(blob_created(name, digest))
    }
    // ANCHOR_END: monolithic

    // ANCHOR: append
    /// Appends `body` to the session's data, checking `Content-Range` first.
    /// On any failure the data file is cut back to where it was, so the
    /// session stays usable.
    async fn append(
        &self,
        session: &mut Session,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(), ApiError> {
        let range = chunk_length(session, headers)?;
        if let (Some(expected), Some(declared)) = (range, content_length(headers))
            && expected != declared
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::SizeInvalid,
                format!("Content-Range names {expected} bytes but Content-Length is {declared}"),
            ));
        }

        write_chunk(session, body, range).await
    }
    // ANCHOR_END: append

    /// `PATCH <location>`: one more chunk.
    pub async fn patch(
        &self,
        name: &str,
        id: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let handle = self.session(name, id).await?;
        let mut session = handle.session.lock().await;
        if session.gone {
            return Err(upload_unknown(id));
        }
        self.append(&mut session, headers, body).await?;
        let mut headers = session.progress_headers();
        headers.push((header::CONTENT_LENGTH, "0".into()));
        Ok(empty_response(StatusCode::ACCEPTED, headers))
    }

    // ANCHOR: close
    /// `PUT <location>?digest=D`: the last chunk if any, then the check and
    /// the rename into the store.
    pub async fn put(
        &self,
        name: &str,
        id: &str,
        query: &Query,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let digest = required_digest(query)?;
        let handle = self.session(name, id).await?;
        let mut session = handle.session.lock().await;
        if session.gone {
            return Err(upload_unknown(id));
        }
        // 1. The final chunk, checked like a PATCH.
        self.append(&mut session, headers, body).await?;
        // 2. The digest of everything received: the running hash, or a
        //    fresh one if the client names another algorithm.
        let actual = if session.algorithm == digest.algorithm() {
            session.verifier().await.map(|v| v.finish().0)
        } else {
            hash_file(&session.data(), digest.algorithm())
                .await
                .map(|(v, _)| v.finish().0)
        }
        .map_err(|e| ApiError::internal(format!("hash upload {id}: {e}")))?;
        // 3. Wrong content: refuse, and drop the session (its bytes are known
        //    bad; nothing reaches the store).
        if actual != digest {
            let size = session.size;
            self.remove(&mut session).await;
            return Err(digest_mismatch(&digest, &actual, size));
        }
        // 4. Right content: into the store, into the repository, session gone.
        self.storage
            .commit_blob_path(&session.data(), &digest)
            .await
            .map_err(|e| ApiError::internal(format!("store {digest}: {e}")))?;
        self.storage
            .link_blob(name, &digest)
            .await
            .map_err(|e| ApiError::internal(format!("link {digest} into {name}: {e}")))?;
        self.remove(&mut session).await;
        Ok(blob_created(name, &digest))
    }
    // ANCHOR_END: close

    /// `GET <location>`: how far the upload is.
    pub async fn status(&self, name: &str, id: &str) -> Result<Response, ApiError> {
        let handle = self.session(name, id).await?;
        let session = handle.session.lock().await;
        if session.gone {
            return Err(upload_unknown(id));
        }
        let mut headers = session.progress_headers();
        headers.push((header::CONTENT_LENGTH, "0".into()));
        Ok(empty_response(StatusCode::NO_CONTENT, headers))
    }

    /// `DELETE <location>`: cancel.
    pub async fn cancel(&self, name: &str, id: &str) -> Result<Response, ApiError> {
        let handle = self.session(name, id).await?;
        let mut session = handle.session.lock().await;
        if session.gone {
            return Err(upload_unknown(id));
        }
        self.remove(&mut session).await;
        Ok(empty_response(
            StatusCode::NO_CONTENT,
            vec![(header::CONTENT_LENGTH, "0".into())],
        ))
    }

    /// Removes sessions whose data was last written more than `max_age`
    /// ago (and session directories a crash left half made). Returns the
    /// directories removed.
    pub async fn purge_stale(&self, max_age: Duration) -> io::Result<Vec<PathBuf>> {
        purge_stale_uploads(&self.storage, max_age, &self.sessions).await
    }
}

// ANCHOR: chunk_length
/// The length of the chunk `Content-Range` announces, if the header is
/// there: a `416` if the chunk does not start where the upload ends, or
/// its length cannot be a number.
fn chunk_length(session: &Session, headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let length = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            let Some((start, end)) = parse_content_range(text) else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BlobUploadInvalid,
                    format!("Content-Range {text:?} is not START-END (inclusive byte offsets)"),
                ));
            };
            // Chunks come in order: this one starts where the last ended,
            // and its length (END - START + 1) must be a number: with
            // END = 2^64 - 1 it would wrap around to 0.
            let length = end.checked_sub(start).and_then(|n| n.checked_add(1));
            if start != session.size || length.is_none() {
                let why = if start != session.size {
                    "is out of order"
                } else {
                    "ends before it starts, or past the last byte there can be"
                };
                let mut err = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::BlobUploadInvalid,
                    format!(
                        "chunk {start}-{end} {why}: the upload has {} bytes, so the next \
                         chunk starts at {}",
                        session.size, session.size
                    ),
                );
                for (name, value) in session.progress_headers() {
                    err = err.with_header(name, &value);
                }
                return Err(err);
            }
            length
        }
    };
    Ok(length)
}
// ANCHOR_END: chunk_length

// ANCHOR: write_chunk
/// Streams `body` onto the end of the session's data, feeding its hash;
/// `range` is the length `Content-Range` announced. On any failure the
/// data file is cut back to where it was, so the session stays usable.
async fn write_chunk(
    session: &mut Session,
    body: Body,
    range: Option<u64>,
) -> Result<(), ApiError> {
    let mut verifier = session
        .verifier()
        .await
        .map_err(|e| ApiError::internal(format!("rehash upload {}: {e}", session.id)))?;
    let before = session.size;
    let data = session.data();
    let file = OpenOptions::new()
        .append(true)
        .open(&data)
        .await
        .map_err(|e| ApiError::internal(format!("open {}: {e}", data.display())))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let result = match copy_body(body, &mut out, Some(&mut verifier), None).await {
        Ok(n) if range.is_some_and(|expected| expected != n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range names {} bytes but the body held {n}",
                range.unwrap_or_default()
            ),
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(body_error(e)),
    };
    match result {
        Ok(n) => {
            session.size = before + n;
            session.verifier = Some(verifier);
            Ok(())
        }
        Err(err) => {
            // Undo the partial chunk; the hash must be rebuilt.
            drop(out);
            if let Err(e) = truncate(&data, before).await {
                eprintln!("ch06-registry: cut {} back: {e}", data.display());
            }
            session.size = before;
            session.verifier = None;
            Err(err)
        }
    }
}
// ANCHOR_END: write_chunk

/// [`Uploads::purge_stale`], also usable by `gc` without a running server.
async fn purge_stale_uploads(
    storage: &Storage,
    max_age: Duration,
    sessions: &Table,
) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut entries = fs::read_dir(storage.uploads_dir()).await?;
    let now = SystemTime::now();
    while let Some(entry) = entries.next_entry().await? {
        let dir = entry.path();
        // The newest of the directory's and its data's modification times.
        let mut newest = entry.metadata().await?.modified()?;
        if let Ok(meta) = fs::metadata(dir.join("data")).await {
            newest = newest.max(meta.modified()?);
        }
        let age = now.duration_since(newest).unwrap_or_default();
        if age < max_age {
            continue;
        }
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|s| Uuid::try_parse(s).ok())
        {
            let handle = sessions.lock().await.remove(&id);
            if let Some(handle) = handle {
                handle.session.lock().await.gone = true;
            }
        }
        match fs::remove_dir_all(&dir).await {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Removes upload sessions older than `max_age` under `storage` (for `gc`,
/// with the server stopped).
pub async fn purge_stale_offline(storage: &Storage, max_age: Duration) -> io::Result<Vec<PathBuf>> {
    purge_stale_uploads(storage, max_age, &Mutex::new(HashMap::new())).await
}

async fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path).await?;
    file.set_len(len).await
}

fn size_invalid(declared: u64, received: u64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::SizeInvalid,
        format!("Content-Length said {declared} bytes but the body held {received}"),
    )
}

fn digest_mismatch(expected: &Digest, actual: &Digest, size: u64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::DigestInvalid,
        format!(
            "the {size} bytes received hash to {actual}, not {expected}: nothing was stored; \
             check the digest and upload the blob again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_are_strict() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("100-100"), Some((100, 100)));
        for bad in [
            "",
            "-",
            "0-",
            "-5",
            "bytes 0-5",
            "0-5/10",
            "a-b",
            " 0-5",
            "0 - 5",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }
}
