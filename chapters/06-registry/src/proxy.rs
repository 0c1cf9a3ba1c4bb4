//! A pull-through cache: `serve --proxy-remote-url URL`, the registry as a
//! mirror of another one (distribution's "proxy mode").
//!
//! A mirror answers pulls only. What it lacks it fetches from the remote
//! registry with chapter 5's client (token or Basic auth, retries, digest
//! checks), stores, and serves from its own disk afterwards:
//!
//! - **a blob** (`GET /v2/<name>/blobs/<digest>`) missing here is
//!   downloaded once into a file in `tmp/`, hashed on the way, and committed
//!   under its digest only if the bytes hash to it. Every client asking for
//!   it meanwhile — the first and any that come while it downloads — reads
//!   that file as it grows, so the first byte reaches them as soon as it
//!   arrives, and two clients cause one upstream download (single-flight).
//!   The last byte is held back until the digest is checked: a blob the
//!   remote corrupted reaches no client whole, and is not kept;
//! - **a manifest by digest** is fetched, checked against the digest,
//!   stored, and never asked for again (content addressed: it cannot
//!   change);
//! - **a manifest by tag** is served from here for `--proxy-ttl` after it
//!   was last checked; after that a `HEAD` to the remote asks what the tag
//!   points to now, and only a changed tag costs a download;
//! - **the remote down** (refused connection, 5xx): what is cached is
//!   served anyway, and the access log says so; what is not is refused
//!   with a 502 naming the remote;
//! - **the tag list** is the remote's (the cache holds only the tags
//!   pulled through it), or the cached tags when the remote is down;
//! - **pushes and deletes** are refused with `UNSUPPORTED`: a mirror's
//!   content is the remote's.
//!
//! The access log marks what came from the remote: `(from upstream)`,
//! `(upstream unreachable: served from the cache)`.
//!
//! distribution's `registry/proxy` (proxyblobstore, proxymanifeststore,
//! proxytagservice); Docker's "Registry as a pull through cache" guide;
//! pread(2), pwrite(2).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use ch04_overlay::files::TempPath;
use ch05_images::digest::{Digest, Verifier};
use ch05_images::mirrors::parse_mirror;
use ch05_images::oci;
use ch05_images::registry::{Call, ClientOptions, Credentials, Registry, RegistryError};
use http_body::Frame;
use tokio::sync::{mpsc, watch};

use crate::access_log::Note;
use crate::errors::{ApiError, ErrorCode, blob_unknown, digest_invalid};
use crate::names::{Reference, ReferenceError};
use crate::routes::{App, DOCKER_CONTENT_DIGEST, Endpoint, Query, empty_response};
use crate::storage::Storage;
use crate::{blobs, discovery, manifests};

/// How much of a blob is read or written at a time.
const CHUNK: usize = 256 * 1024;
/// The access log's notes.
const FROM_UPSTREAM: &str = "from upstream";
const REMOTE_DOWN: &str = "upstream unreachable: served from the cache";

/// What `serve --proxy-remote-url` was given.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `http://HOST:PORT` or `https://HOST[:PORT]`.
    pub remote_url: String,
    pub credentials: Option<Credentials>,
    /// How long a tag is trusted before it is checked against the remote.
    pub ttl: Duration,
}

/// Why `--proxy-remote-url` is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "--proxy-remote-url {0:?}: give the remote registry as http://HOST:PORT or https://HOST[:PORT], with no path"
    )]
    BadUrl(String),
    #[error("--proxy-remote-url {url}: {cause}")]
    Client { url: String, cause: RegistryError },
}

/// Where a blob download stands, as its readers see it.
#[derive(Debug, Clone)]
enum Progress {
    /// Asking the remote for it.
    Opening,
    /// `written` bytes are in the file; `size` as the remote announced it.
    Writing { size: Option<u64>, written: u64 },
    /// All `size` bytes are in and hash to the digest.
    Done { size: u64 },
    /// Refused or broken off: a reader not yet answered gets this error,
    /// the others' answers break off.
    Failed(ApiError),
}

/// A blob being downloaded: its file (read with pread(2), so readers
/// share it without sharing an offset) and its progress.
struct Fetch {
    file: Arc<std::fs::File>,
    progress: watch::Receiver<Progress>,
}

/// The cache: the remote's client, and what is being fetched or was checked.
pub struct Proxy {
    remote: Arc<Registry>,
    /// As given, for messages.
    pub url: String,
    pub ttl: Duration,
    /// When each `(repository, tag)` was last found current on the remote.
    checked: Mutex<HashMap<(String, String), Instant>>,
    /// Blobs being downloaded, by digest: a second client joins, never
    /// starts another download.
    inflight: Inflight,
}

/// The downloads in progress, shared with their tasks.
type Inflight = Arc<Mutex<HashMap<Digest, Arc<Fetch>>>>;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({}, ttl {:?})", self.url, self.ttl)
    }
}

/// `host[:port]` of `http(s)://host[:port][/]`, and whether it is plain
/// HTTP: a remote is named as a mirror is (chapter 5's `parse_mirror`).
pub fn parse_remote_url(url: &str) -> Result<(String, bool), ProxyError> {
    parse_mirror(url).map_err(|_| ProxyError::BadUrl(url.to_string()))
}

/// The cache's answer when the remote could not give what is not cached.
fn upstream_error(proxy_url: &str, what: &str, e: &RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound(..) => {
            let code = if what.starts_with("blob") {
                ErrorCode::BlobUnknown
            } else {
                ErrorCode::ManifestUnknown
            };
            ApiError::new(
                StatusCode::NOT_FOUND,
                code,
                format!("{what} is not on the remote {proxy_url} either"),
            )
        }
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::Unknown,
            format!("{what} is not cached and the remote {proxy_url} could not give it: {e}"),
        ),
    }
}

/// Whether the remote is down (or failing), rather than answering "no".
fn is_unreachable(e: &RegistryError) -> bool {
    match e {
        RegistryError::Transport { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// What the cache of `app`, if it is one, answers its own way: see
/// [`Proxy::answer`].
pub async fn answer(
    app: &App,
    method: &Method,
    endpoint: &Endpoint,
    query: &Query,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let proxy = app.proxy.as_ref()?;
    proxy
        .answer(&app.storage, method, endpoint, query, headers)
        .await
}

/// Adds an access-log note to a response.
fn noted(mut response: Response, note: &'static str) -> Response {
    response.extensions_mut().insert(Note(note));
    response
}

impl Proxy {
    /// A cache of the registry at `options.remote_url`.
    pub fn new(options: &ProxyOptions) -> Result<Proxy, ProxyError> {
        let (host, plain) = parse_remote_url(&options.remote_url)?;
        let client = ClientOptions {
            insecure: if plain {
                vec![host.clone()]
            } else {
                Vec::new()
            },
            credentials: options.credentials.clone(),
            trace: std::env::var_os("BERTH_TRACE_HTTP").is_some_and(|v| v == "1"),
        };
        let remote = Registry::new(&host, &client).map_err(|cause| ProxyError::Client {
            url: options.remote_url.clone(),
            cause,
        })?;
        Ok(Proxy {
            remote: Arc::new(remote),
            url: options.remote_url.clone(),
            ttl: options.ttl,
            checked: Mutex::new(HashMap::new()),
            inflight: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    // ANCHOR: proxy_answer
    /// Answers what a cache answers differently: pulls of manifests and
    /// blobs (through the cache), and every write (refused). `None`: the
    /// request is the ordinary registry's (`/v2/`, the catalog, referrers
    /// — of what is cached).
    pub async fn answer(
        &self,
        storage: &Storage,
        method: &Method,
        endpoint: &Endpoint,
        query: &Query,
        headers: &HeaderMap,
    ) -> Option<Result<Response, ApiError>> {
        let head = method == Method::HEAD;
        let reading = head || method == Method::GET;
        Some(match endpoint {
            Endpoint::Manifest { name, reference } if reading => {
                self.manifest(storage, name, reference, head).await
            }
            Endpoint::Blob { name, digest } if reading => {
                self.blob(storage, name, digest, headers, head).await
            }
            Endpoint::Tags { name } if method == Method::GET => {
                self.tags(storage, name, query).await
            }
            _ if !reading => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                format!(
                    "this registry is a pull-through cache of {}: it takes no pushes or \
                     deletes; push to the remote instead",
                    self.url
                ),
            )),
            _ => return None,
        })
    }
    // ANCHOR_END: proxy_answer

    /// A blocking call of chapter 5's client, off the async threads.
    async fn remote<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let remote = self.remote.clone();
        match tokio::task::spawn_blocking(move || call(&remote)).await {
            Ok(result) => result,
            Err(e) => Err(RegistryError::Read {
                what: "the remote's answer".into(),
                url: self.url.clone(),
                cause: std::io::Error::other(e.to_string()),
            }),
        }
    }

    // ----- manifests -----

    // ANCHOR: proxy_manifest
    /// `GET`/`HEAD` of a manifest: from the cache while it is current, else
    /// from the remote, stored first.
    async fn manifest(
        &self,
        storage: &Storage,
        name: &str,
        reference: &str,
        head: bool,
    ) -> Result<Response, ApiError> {
        let io = |e: std::io::Error| ApiError::internal(format!("manifest {reference}: {e}"));
        match Reference::parse(reference) {
            Err(ReferenceError::Digest(why)) => return Err(digest_invalid(reference, why)),
            // Not a tag we could store: the remote cannot have it either.
            Err(ReferenceError::Tag(_)) => {
                return manifests::get(storage, name, reference, head).await;
            }
            Ok(Reference::Digest(digest)) => {
                // 1. By digest: it cannot change, so cached is current.
                let cached = storage
                    .manifest_media_type(name, &digest)
                    .await
                    .map_err(io)?;
                if cached.is_some() {
                    return manifests::get(storage, name, reference, head).await;
                }
            }
            Ok(Reference::Tag(tag)) => {
                // 2. By tag, if cached: current for the TTL after its last
                //    check, then asked of the remote with a HEAD.
                let local = storage.resolve_tag(name, &tag).await.map_err(io)?;
                if let Some(local) = local
                    && let Some(answer) = self.revalidate(storage, name, &tag, &local, head).await?
                {
                    return Ok(answer);
                }
            }
        }
        // 3. Fetch it (checked against its digest by chapter 5), store it,
        //    answer from the cache.
        self.fetch_manifest(storage, name, reference).await?;
        let answer = manifests::get(storage, name, reference, head).await?;
        Ok(noted(answer, FROM_UPSTREAM))
    }
    // ANCHOR_END: proxy_manifest

    // ANCHOR: revalidate
    /// The cached answer for `tag` if it is still current: checked within
    /// the TTL, or the remote names the same digest (or cannot be asked:
    /// then said in the access log). `None`: the tag moved, fetch it.
    async fn revalidate(
        &self,
        storage: &Storage,
        name: &str,
        tag: &str,
        local: &Digest,
        head: bool,
    ) -> Result<Option<Response>, ApiError> {
        if self.is_fresh(name, tag) {
            return manifests::get(storage, name, tag, head).await.map(Some);
        }
        match self.remote_tag(name, tag).await {
            Ok(Some(remote)) if remote == *local => {
                self.mark_fresh(name, tag);
                manifests::get(storage, name, tag, head).await.map(Some)
            }
            Ok(_) => Ok(None),
            Err(e) if is_unreachable(&e) => {
                let answer = manifests::get(storage, name, tag, head).await?;
                Ok(Some(noted(answer, REMOTE_DOWN)))
            }
            Err(e) => Err(upstream_error(
                &self.url,
                &format!("manifest {name}:{tag}"),
                &e,
            )),
        }
    }
    // ANCHOR_END: revalidate

    fn is_fresh(&self, name: &str, tag: &str) -> bool {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        checked
            .get(&(name.to_string(), tag.to_string()))
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn mark_fresh(&self, name: &str, tag: &str) {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        checked.insert((name.to_string(), tag.to_string()), Instant::now());
    }

    /// `HEAD` of the tag on the remote: the digest it names now, `None` if
    /// the remote does not know it.
    async fn remote_tag(&self, name: &str, tag: &str) -> Result<Option<Digest>, RegistryError> {
        let (name, tag) = (name.to_string(), tag.to_string());
        self.remote(move |remote| {
            let url = remote.url(&format!("/v2/{name}/manifests/{tag}"));
            let call = Call::new("HEAD", url, &name)
                .header("Accept", oci::ACCEPTED_MANIFEST_TYPES.join(", "));
            let mut response = remote.send(&call)?;
            match response.status().as_u16() {
                200 => Ok(
                    ch05_images::registry::header(&response, DOCKER_CONTENT_DIGEST)
                        .and_then(|d| Digest::parse(&d).ok()),
                ),
                404 => Ok(None),
                _ => Err(remote.status_error(&call, &mut response)),
            }
        })
        .await
    }

    /// Fetches manifest `reference` of `name` from the remote and stores
    /// it (and the tag, if it is one).
    async fn fetch_manifest(
        &self,
        storage: &Storage,
        name: &str,
        reference: &str,
    ) -> Result<(), ApiError> {
        let (repository, wanted) = (name.to_string(), reference.to_string());
        let fetched = self
            .remote(move |remote| remote.fetch_manifest(&repository, &wanted))
            .await
            .map_err(|e| upstream_error(&self.url, &format!("manifest {name}:{reference}"), &e))?;
        let bad = |why: String| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::ManifestInvalid,
                format!(
                    "the remote {} sent manifest {name}:{reference}, refused: {why}",
                    self.url
                ),
            )
        };
        let checked = manifests::accept_manifest(&fetched.media_type, &fetched.bytes)
            .map_err(|e| bad(e.to_string()))?;
        let digest = Digest::parse(&fetched.digest).map_err(|e| bad(e.to_string()))?;
        let tags: Vec<&str> = match Reference::parse(reference) {
            Ok(Reference::Tag(_)) => vec![reference],
            _ => Vec::new(),
        };
        manifests::store_manifest(storage, name, &digest, &fetched.bytes, &checked, &tags).await?;
        if let Some(tag) = tags.first() {
            self.mark_fresh(name, tag);
        }
        Ok(())
    }

    // ----- tags -----

    /// `GET` of a repository's tags: the remote's list (the cache holds only
    /// the tags pulled through it), or the cached ones when the remote is
    /// down. `n` and `last` are passed on, and the remote's `Link`.
    async fn tags(
        &self,
        storage: &Storage,
        name: &str,
        query: &Query,
    ) -> Result<Response, ApiError> {
        let mut params: Vec<String> = Vec::new();
        for key in ["n", "last"] {
            if let Some(value) = query.get(key) {
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                params.push(format!("{key}={value}"));
            }
        }
        let path = match params.is_empty() {
            true => format!("/v2/{name}/tags/list"),
            false => format!("/v2/{name}/tags/list?{}", params.join("&")),
        };
        let repository = name.to_string();
        let fetched = self
            .remote(move |remote| {
                let call = Call::new("GET", remote.url(&path), &repository);
                let mut response = remote.send(&call)?;
                match response.status().as_u16() {
                    200 => {}
                    404 => return Ok(None),
                    _ => return Err(remote.status_error(&call, &mut response)),
                }
                let link = ch05_images::registry::header(&response, "link");
                let body = oci::read_document(response.body_mut().as_reader()).map_err(|e| {
                    RegistryError::Read {
                        what: "the tag list".into(),
                        url: call.url.clone(),
                        cause: std::io::Error::other(e.to_string()),
                    }
                })?;
                Ok(Some((body, link)))
            })
            .await;
        match fetched {
            Ok(Some((body, link))) => {
                let listed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if !listed["tags"].is_array() && !listed["tags"].is_null() {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        ErrorCode::Unknown,
                        format!("the remote {} sent a tag list that is not one", self.url),
                    ));
                }
                let mut out = vec![(header::CONTENT_TYPE, "application/json".to_string())];
                out.extend(link.map(|l| (header::LINK, l)));
                let mut response = empty_response(StatusCode::OK, out);
                *response.body_mut() = Body::from(body);
                Ok(noted(response, FROM_UPSTREAM))
            }
            Ok(None) => Err(crate::errors::name_unknown(name)),
            Err(e) if is_unreachable(&e) => {
                let answer = discovery::tags(storage, name, query).await?;
                Ok(noted(answer, REMOTE_DOWN))
            }
            Err(e) => Err(upstream_error(
                &self.url,
                &format!("the tags of {name}"),
                &e,
            )),
        }
    }

    // ----- blobs -----

    // ANCHOR: proxy_blob
    /// `GET`/`HEAD` of a blob: from the cache if it is here; else a `HEAD`
    /// asks the remote, and a `GET` joins (or starts) its download.
    async fn blob(
        &self,
        storage: &Storage,
        name: &str,
        digest_text: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Response, ApiError> {
        let digest = Digest::parse(digest_text).map_err(|e| digest_invalid(digest_text, e))?;
        let io = |e: std::io::Error| ApiError::internal(format!("blob {digest}: {e}"));
        // 1. Cached (in this repository, or in another: content is content).
        if storage.has_blob(name, &digest).await.map_err(io)?.is_none()
            && storage.blob_size(&digest).await.map_err(io)?.is_some()
        {
            storage.link_blob(name, &digest).await.map_err(io)?;
        }
        if storage.has_blob(name, &digest).await.map_err(io)?.is_some() {
            return blobs::get(storage, name, digest_text, headers, head).await;
        }
        // 2. HEAD: ask the remote, download nothing.
        if head {
            return self.remote_blob_head(name, &digest).await;
        }
        // 3. GET: one download, however many clients (or, if one just
        //    finished, the cache after all).
        match self.join_or_start(storage, name, &digest).await? {
            Some(fetch) => Ok(noted(stream_fetch(&fetch, &digest).await?, FROM_UPSTREAM)),
            None => blobs::get(storage, name, digest_text, headers, head).await,
        }
    }
    // ANCHOR_END: proxy_blob

    /// `HEAD` of a blob on the remote, answered as ours would be.
    async fn remote_blob_head(&self, name: &str, digest: &Digest) -> Result<Response, ApiError> {
        let (repository, wanted) = (name.to_string(), digest.to_string());
        let size = self
            .remote(move |remote| {
                let url = remote.url(&format!("/v2/{repository}/blobs/{wanted}"));
                let call = Call::new("HEAD", url, &repository);
                let mut response = remote.send(&call)?;
                match response.status().as_u16() {
                    // A HEAD has no body: its size is the header's.
                    200 => Ok(Some(
                        ch05_images::registry::header(&response, "content-length")
                            .and_then(|n| n.parse::<u64>().ok())
                            .unwrap_or(0),
                    )),
                    404 => Ok(None),
                    _ => Err(remote.status_error(&call, &mut response)),
                }
            })
            .await
            .map_err(|e| upstream_error(&self.url, &format!("blob {digest}"), &e))?;
        let Some(size) = size else {
            return Err(blob_unknown(name, &digest.to_string()));
        };
        Ok(empty_response(
            StatusCode::OK,
            vec![
                (header::CONTENT_TYPE, "application/octet-stream".into()),
                (
                    HeaderName::from_static(DOCKER_CONTENT_DIGEST),
                    digest.to_string(),
                ),
                (header::CONTENT_LENGTH, size.to_string()),
            ],
        ))
    }

    // ANCHOR: join_or_start
    /// The download of `digest` in progress, or a new one: the only place
    /// a blob download starts, under the `inflight` lock. `None`: a download
    /// finished since the caller looked, and the blob is cached.
    async fn join_or_start(
        &self,
        storage: &Storage,
        name: &str,
        digest: &Digest,
    ) -> Result<Option<Arc<Fetch>>, ApiError> {
        let io = |e: std::io::Error| ApiError::internal(format!("cache blob {digest}: {e}"));
        // 1. A file to download into (dropped unused if a download runs).
        let (file, temp) = storage.temp_file().await.map_err(io)?;
        let file = file.into_std().await;
        // Opened again to read: the temp file is write-only.
        let reader = Arc::new(std::fs::File::open(temp.path()).map_err(io)?);
        let (tx, rx) = watch::channel(Progress::Opening);
        // 2. Join a download in progress, or register this one.
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = inflight.get(digest) {
                return Ok(Some(running.clone()));
            }
            // A download commits the blob before it leaves `inflight`.
            if std::fs::metadata(storage.blob_path(digest)).is_ok() {
                return Ok(None);
            }
            let fetch = Arc::new(Fetch {
                file: reader,
                progress: rx,
            });
            inflight.insert(digest.clone(), fetch.clone());
            // 3. Download in a task of its own: it finishes (and fills the
            //    cache) even if every client goes away.
            let job = Download {
                remote: self.remote.clone(),
                url: self.url.clone(),
                storage: storage.clone(),
                name: name.to_string(),
                digest: digest.clone(),
                progress: tx,
                inflight: self.inflight.clone(),
            };
            tokio::spawn(job.run(file, temp));
            Ok(Some(fetch))
        }
    }
    // ANCHOR_END: join_or_start
}

/// One blob's download: remote to temp file, hashed, committed or dropped.
struct Download {
    remote: Arc<Registry>,
    url: String,
    storage: Storage,
    name: String,
    digest: Digest,
    progress: watch::Sender<Progress>,
    inflight: Inflight,
}

impl Download {
    /// Downloads into `file`, then commits it as the blob if it hashed to
    /// the digest; tells the readers either way, then leaves `inflight`.
    async fn run(self, file: std::fs::File, temp: TempPath) {
        // 1. The bytes, in a blocking thread (chapter 5's client is
        //    blocking), hashed as they are written.
        let (remote, name, digest) = (self.remote.clone(), self.name.clone(), self.digest.clone());
        let progress = self.progress.clone();
        let downloaded = tokio::task::spawn_blocking(move || {
            download_blob(&remote, &name, &digest, &file, &progress).map(|size| (size, file))
        })
        .await
        .unwrap_or_else(|e| Err(Failure::Broken(format!("the download stopped: {e}"))));
        // 2. Checked: into place, linked; readers told the end is there.
        let outcome = match downloaded {
            Ok((size, file)) => self.commit(file, temp, size).await.map_err(Failure::Broken),
            Err(failure) => {
                drop(temp);
                Err(failure)
            }
        };
        // 3. Later clients find the blob in the cache (or try again); then
        //    this download's readers learn how it ended.
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.digest);
        match outcome {
            Ok(size) => {
                let _ = self.progress.send(Progress::Done { size });
            }
            Err(failure) => {
                let what = format!("blob {}", self.digest);
                let error = match failure {
                    Failure::Remote(e) => upstream_error(&self.url, &what, &e),
                    Failure::Broken(why) => {
                        eprintln!(
                            "ch06-registry: proxy: {what} of {} from {}: {why}",
                            self.name, self.url
                        );
                        ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            ErrorCode::Unknown,
                            format!("{what} from the remote {}: {why}", self.url),
                        )
                    }
                };
                let _ = self.progress.send(Progress::Failed(error));
            }
        }
    }

    /// Moves the verified file into place and links it into the repository.
    async fn commit(&self, file: std::fs::File, temp: TempPath, size: u64) -> Result<u64, String> {
        let file = tokio::fs::File::from_std(file);
        self.storage
            .commit_blob(file, temp, &self.digest)
            .await
            .map_err(|e| format!("store: {e}"))?;
        self.storage
            .link_blob(&self.name, &self.digest)
            .await
            .map_err(|e| format!("link: {e}"))?;
        Ok(size)
    }
}

/// How a download failed: the remote would not give it, or it broke off
/// or was wrong.
enum Failure {
    Remote(RegistryError),
    Broken(String),
}

// ANCHOR: download_blob
/// `GET` of the blob on the remote, written to `file` with pwrite(2) and
/// hashed; every chunk written is announced on `progress`. The size (if
/// announced) and the digest must match, or it is an error.
fn download_blob(
    remote: &Registry,
    name: &str,
    digest: &Digest,
    file: &std::fs::File,
    progress: &watch::Sender<Progress>,
) -> Result<u64, Failure> {
    let (mut body, size) = remote
        .open_blob(name, &digest.to_string())
        .map_err(Failure::Remote)?;
    progress.send_replace(Progress::Writing { size, written: 0 });
    let mut verifier = Verifier::new(digest.algorithm());
    let mut buf = vec![0u8; CHUNK];
    let mut written: u64 = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Broken(format!(
                    "read from the remote after {written} bytes: {e}"
                )));
            }
        };
        verifier.update(&buf[..n]);
        file.write_all_at(&buf[..n], written)
            .map_err(|e| Failure::Broken(format!("write the cache's temporary file: {e}")))?;
        written += n as u64;
        progress.send_replace(Progress::Writing { size, written });
    }
    let (actual, len) = verifier.finish();
    if let Some(size) = size
        && size != len
    {
        return Err(Failure::Broken(format!(
            "the remote announced {size} bytes and sent {len}: not cached"
        )));
    }
    if actual != *digest {
        return Err(Failure::Broken(format!(
            "the remote sent content that hashes to {actual}, not {digest}: refused, not cached"
        )));
    }
    Ok(len)
}
// ANCHOR_END: download_blob

/// The answer to one client of a download: the file as it grows, read
/// with pread(2) from where this client is. The last byte waits for the
/// digest check; a failed download breaks the answer off.
async fn stream_fetch(fetch: &Arc<Fetch>, digest: &Digest) -> Result<Response, ApiError> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let file = fetch.file.clone();
    let mut progress = fetch.progress.clone();
    // 0. Wait for the remote's answer: its size, or why not.
    let opened = progress
        .wait_for(|p| !matches!(p, Progress::Opening))
        .await
        .map(|p| p.clone())
        .map_err(|_| ApiError::internal(format!("blob {digest}: the download stopped")))?;
    let size = match opened {
        Progress::Writing { size, .. } => size,
        Progress::Done { size } => Some(size),
        Progress::Failed(error) => return Err(error),
        Progress::Opening => None,
    };
    tokio::spawn(async move {
        let mut offset: u64 = 0;
        loop {
            // 1. How far this client may read now.
            let state = progress.borrow_and_update().clone();
            let (limit, done) = match state {
                Progress::Opening => (0, false),
                Progress::Writing { written, .. } => (written.saturating_sub(1), false),
                Progress::Done { size } => (size, true),
                Progress::Failed(error) => {
                    let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
                    return;
                }
            };
            // 2. Send what is there, a chunk at a time.
            if offset < limit {
                let want = (limit - offset).min(CHUNK as u64) as usize;
                let file = file.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    let n = file.read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>(buf)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                match read {
                    Ok(buf) if !buf.is_empty() => {
                        offset += buf.len() as u64;
                        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                            return; // the client went away
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if done && offset >= limit {
                return;
            }
            // 3. Wait for more.
            if progress.changed().await.is_err() && !done {
                // The download's sender is gone: the last state tells.
                if !matches!(&*progress.borrow(), Progress::Done { .. }) {
                    let _ = tx
                        .send(Err(std::io::Error::other("the download stopped")))
                        .await;
                    return;
                }
            }
        }
    });
    let mut out = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (
            HeaderName::from_static(DOCKER_CONTENT_DIGEST),
            digest.to_string(),
        ),
    ];
    if let Some(size) = size {
        out.push((header::CONTENT_LENGTH, size.to_string()));
    }
    let mut response = empty_response(StatusCode::OK, out);
    *response.body_mut() = Body::new(Channel(rx));
    Ok(response)
}

/// A response body fed through a channel by another task.
struct Channel(mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}
