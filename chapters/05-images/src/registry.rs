//! The registry client: the pull side of the OCI distribution API, over
//! plain HTTP requests (and, through [`Registry::send`], any request the
//! push side of chapter 6 needs).
//!
//! A registry is a web server with a small, fixed set of URLs
//! (distribution-spec, spec.md):
//!
//! - `GET /v2/` — "do you speak the API, and who are you?";
//! - `GET /v2/<name>/manifests/<tag or digest>` — the manifest, in one of the
//!   media types listed in the request's `Accept` header;
//! - `GET /v2/<name>/blobs/<digest>` — a config or layer, often answered with
//!   a redirect to blob storage.
//!
//! Authentication is a challenge (RFC 7235): a request without credentials
//! gets `401` and a `WWW-Authenticate` header. `Basic` asks for a user name
//! and password on every request. `Bearer realm=...,service=...,scope=...`
//! (Docker's token protocol, as Docker Hub uses) sends the client to a token
//! server, which hands out a short-lived token for exactly that scope
//! (`repository:library/alpine:pull`); the client retries with
//! `Authorization: Bearer <token>`. Public images get anonymous tokens.
//!
//! A push writes: `POST`, `PATCH` and `PUT` with a body ([`Payload`],
//! opened again for each try), under the scope
//! `repository:<name>:pull,push` ([`Access::Push`]). [`Registry::send`]
//! takes such a [`Call`] as readily as a `GET`, with the same challenges.
//!
//! Credentials come from `--username`/`--password-stdin`, or from
//! `~/.docker/config.json` as `docker login` writes it (`auths`, or a
//! credential helper named by `credsStore`/`credHelpers`).
//!
//! Everything that crosses the network is distrusted: manifests are capped
//! at [`oci::MAX_MANIFEST_BYTES`] and checked against their digest; blobs are
//! checked by the store as they stream in (see `store.rs`).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::digest::{Algorithm, Digest};
use crate::oci::{self, Manifest};
use crate::reference::DEFAULT_REGISTRY;

/// Where Docker Hub's API really lives: `docker.io` is only its name.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key `docker login` uses for Docker Hub in `config.json`.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// How often a request is tried before a transient failure (a refused
/// connection, a 429 or a 5xx) is given up on.
pub const ATTEMPTS: u32 = 4;
/// The wait before the first retry; doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Tokens and error bodies are small; more than this is not a real answer.
const SMALL_BODY_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: {cause}")]
    Transport {
        method: &'static str,
        url: String,
        cause: Box<ureq::Error>,
    },
    #[error("{method} {url}: {status}{detail}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        /// The registry's own words, from the spec's error JSON.
        detail: String,
    },
    #[error("{0} not found on {1}: check the name and tag (`skopeo list-tags` shows the tags)")]
    NotFound(String, String),
    #[error(
        "{registry}: authentication required ({status}{detail}): log in with `docker login {registry}` or pass --username and --password-stdin"
    )]
    Unauthorized {
        registry: String,
        status: u16,
        detail: String,
    },
    #[error("{registry}: the registry's authentication challenge is not understood: {challenge:?}")]
    BadChallenge { registry: String, challenge: String },
    #[error("token server {realm}: {cause}")]
    Token { realm: String, cause: String },
    #[error(
        "manifest {reference}: more than {limit} bytes: refused (a real manifest is a few KiB)",
        limit = oci::MAX_MANIFEST_BYTES
    )]
    ManifestTooLarge { reference: String },
    #[error(
        "manifest {reference}: the registry sent content with digest {actual}, not {expected}: refused"
    )]
    ManifestDigest {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("manifest {reference}: {cause}")]
    Manifest {
        reference: String,
        cause: oci::OciError,
    },
    #[error("read {what} from {url}: {cause}")]
    Read {
        what: String,
        url: String,
        cause: std::io::Error,
    },
    #[error("credentials in {path}: {cause}")]
    Config { path: PathBuf, cause: String },
    #[error("{method} {url}: the request body: {cause}")]
    Body {
        method: &'static str,
        url: String,
        cause: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, RegistryError>;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <hidden>)", self.username)
    }
}

impl Credentials {
    fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", BASE64.encode(pair))
    }
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Registries (`host` or `host:port`) that may be spoken to over plain
    /// HTTP, as `--insecure-registry` names them. Loopback always may.
    pub insecure: Vec<String>,
    /// Credentials that override the docker config file's.
    pub credentials: Option<Credentials>,
    /// Print each request and response line on stderr (`BERTH_TRACE_HTTP=1`).
    pub trace: bool,
}

/// Whether `registry` (`host[:port]`) is spoken to over plain HTTP: loopback
/// addresses always (nothing leaves the machine), others only when named by
/// the user, as docker's `insecure-registries` does.
pub fn uses_plain_http(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback || insecure.iter().any(|i| i == registry || i == host)
}

/// `host` of `host:port`, `[v6]:port` or `host`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

/// Test-only: `HOST:PORT` of a registry that plays Docker Hub, so that a
/// loopback registry can stand in for `docker.io` (the tests have no
/// internet). Never set it otherwise.
pub const DOCKER_HUB_ENV: &str = "BERTH_DOCKER_HUB";

/// The host that serves `registry`'s API (for `docker.io`, Docker Hub's
/// API host, or `$BERTH_DOCKER_HUB` in the tests).
pub fn api_host(registry: &str) -> String {
    if registry != DEFAULT_REGISTRY {
        return registry.to_string();
    }
    match std::env::var(DOCKER_HUB_ENV) {
        Ok(host) if !host.is_empty() => host,
        _ => DOCKER_HUB_API.to_string(),
    }
}

// ANCHOR: docker_config
/// The credentials `docker login` stored for `registry`, from
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: a credential
/// helper (`credHelpers` for this registry, else `credsStore`), else the
/// base64 `user:password` in `auths`. `None` when there are none.
pub fn docker_config_credentials(config_dir: &Path, registry: &str) -> Result<Option<Credentials>> {
    let path = config_dir.join("config.json");
    let bad = |cause: String| RegistryError::Config {
        path: path.clone(),
        cause,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    // Docker Hub is filed under its old v1 URL.
    let keys: Vec<String> = if registry == DEFAULT_REGISTRY {
        vec![DOCKER_HUB_CONFIG_KEY.into(), registry.into()]
    } else {
        vec![
            registry.into(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    let helper = keys
        .iter()
        .find_map(|k| config["credHelpers"][k].as_str())
        .or_else(|| config["credsStore"].as_str());
    if let Some(helper) = helper {
        return credential_helper(helper, &keys[0]).map_err(bad);
    }
    let Some(entry) = keys.iter().find_map(|k| config["auths"].get(k)) else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(Some(Credentials {
            username: u.into(),
            password: p.into(),
        }));
    }
    let Some(auth) = entry["auth"].as_str() else {
        return Ok(None);
    };
    let decoded = BASE64
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad(format!("auths.{registry}.auth is not base64 text")))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| bad(format!("auths.{registry}.auth is not user:password")))?;
    Ok(Some(Credentials {
        username: username.into(),
        password: password.into(),
    }))
}
// ANCHOR_END: docker_config

/// Ask `docker-credential-<helper> get` for `server`'s credentials, as docker
/// does: the server on stdin, `{"Username":…,"Secret":…}` on stdout.
fn credential_helper(
    helper: &str,
    server: &str,
) -> std::result::Result<Option<Credentials>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| format!("write to {program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("run {program}: {e}"))?;
    if !out.status.success() {
        // The helper's way of saying "no credentials for this server".
        return Ok(None);
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{program} answered with invalid JSON: {e}"))?;
    match (answer["Username"].as_str(), answer["Secret"].as_str()) {
        (Some(u), Some(s)) => Ok(Some(Credentials {
            username: u.into(),
            password: s.into(),
        })),
        _ => Ok(None),
    }
}

/// The docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(dir.into());
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker"))
}

// ANCHOR: challenge
/// A parsed `WWW-Authenticate` header: the scheme (`Bearer`, `Basic`) and
/// its parameters (`realm`, `service`, `scope`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parse `Scheme key="value", key=token, ...` (RFC 7235 auth-params; quoted
/// values may hold commas and backslash escapes).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest.trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => value.push(chars.next()?.1),
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}
// ANCHOR_END: challenge

/// A manifest as fetched: its bytes (exactly as the registry sent them, since
/// the digest is over these bytes), media type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
    pub manifest: Manifest,
}

/// A client for one registry.
pub struct Registry {
    agent: ureq::Agent,
    /// `docker.io`, `localhost:5000`, ...: as references name it.
    name: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    base: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header to send, per scope, once a challenge has
    /// been answered.
    authorization: Mutex<HashMap<String, String>>,
    trace: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.base)
    }
}

/// What a request may do to its repository: the actions of the token scope
/// asked for (`repository:NAME:pull`, or `repository:NAME:pull,push` to
/// write, as a push does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// A request body that can be sent more than once: a retry after a
/// challenge or a dropped connection needs it again from its first byte,
/// and a stream cannot be rewound, so the body is opened anew each time.
pub trait Payload: Sync {
    /// Its size in bytes, sent as `Content-Length` (so nothing is chunked).
    fn size(&self) -> u64;
    /// A reader of the whole body, from its first byte.
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>>;
}

/// Bytes in memory: a manifest, an empty body.
impl Payload for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(*self))
    }
}

/// One request to the registry: what it names in errors, the scope it
/// needs, and what it carries. [`Registry::fetch_manifest`] and
/// [`Registry::open_blob`] make their own; chapter 6's push makes `HEAD`,
/// `POST`, `PATCH` and `PUT` ones and sends them with [`Registry::send`].
pub struct Call<'a> {
    pub method: &'static str,
    pub url: String,
    pub repository: &'a str,
    pub access: Access,
    /// Another repository the request reads from (a cross-repository
    /// mount's `from`): its `pull` scope is asked for as well.
    pub also_pulls: Option<&'a str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a dyn Payload>,
}

impl<'a> Call<'a> {
    /// `method url` on `repository`, needing only `pull`, with no headers
    /// and no body.
    pub fn new(method: &'static str, url: String, repository: &'a str) -> Call<'a> {
        Call {
            method,
            url,
            repository,
            access: Access::Pull,
            also_pulls: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call<'a> {
        self.headers.push((name, value.into()));
        self
    }

    /// The token scope(s) this call needs, space-separated as the token
    /// protocol writes several.
    fn scope(&self) -> String {
        let mut scope = format!("repository:{}:{}", self.repository, self.access.actions());
        if let Some(from) = self.also_pulls.filter(|from| *from != self.repository) {
            scope.push_str(&format!(" repository:{from}:pull"));
        }
        scope
    }

    /// Whether trying again could do harm: a write may have been half
    /// done, so it is retried only when it surely was not.
    fn writes(&self) -> bool {
        !matches!(self.method, "GET" | "HEAD")
    }
}

impl Registry {
    /// A client for `registry` (as a reference names it). Credentials come
    /// from `options`, else from the docker config file.
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Registry> {
        let host = api_host(registry);
        let scheme = if uses_plain_http(registry, &options.insecure)
            || uses_plain_http(&host, &options.insecure)
        {
            "http"
        } else {
            "https"
        };
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => match docker_config_dir() {
                Some(dir) => docker_config_credentials(&dir, registry)?,
                None => None,
            },
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Every status is an answer to read, not an error to throw:
            // 401 starts the auth dance, 404 names an unknown tag...
            .http_status_as_error(false)
            .user_agent(concat!("berth-ch05/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A transfer that stalls for this long is dropped and retried.
            .timeout_per_read(Some(Duration::from_secs(60)))
            // Redirects to blob storage (S3, a CDN) are followed, and the
            // registry's Authorization is never sent along to them.
            .max_redirects(10)
            // Kept for the trace, which shows where a blob really came from.
            .save_redirect_history(true)
            .build()
            .into();
        Ok(Registry {
            agent,
            name: registry.to_string(),
            base: format!("{scheme}://{host}"),
            credentials,
            authorization: Mutex::new(HashMap::new()),
            trace: options.trace,
        })
    }

    /// The registry's name, as references give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The absolute URL of an API path (`/v2/...`) or of a `Location`
    /// header, which may be either a path or a URL.
    pub fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    // ANCHOR: fetch_manifest
    /// `GET /v2/<repository>/manifests/<reference>` with every manifest type
    /// we understand in `Accept`. The body is capped, parsed and checked: if
    /// `reference` is a digest the bytes must hash to it; if the registry
    /// states a `Docker-Content-Digest`, it must agree too.
    pub fn fetch_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest> {
        let name = format!("{}/{repository}:{reference}", self.name);
        // 1. The request; a 404 names the tag or digest that is missing.
        let (call, mut response) = self.request_manifest(repository, reference, &name)?;
        // 2. What the registry says the body is, before reading it.
        let media_type = header(&response, "content-type").unwrap_or_default();
        let stated = header(&response, "docker-content-digest");
        // 3. The body, capped.
        let bytes = Self::read_manifest_body(&call, &mut response, &name)?;
        // 4. The digest, checked against the reference or the stated one.
        let actual = Self::check_manifest_digest(reference, stated.as_deref(), &bytes, &name)?;
        // 5. The document, parsed by its media type.
        let manifest =
            oci::parse_manifest(&media_type, &bytes).map_err(|cause| RegistryError::Manifest {
                reference: name,
                cause,
            })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: actual.to_string(),
            manifest,
        })
    }
    // ANCHOR_END: fetch_manifest

    // ANCHOR: request_manifest
    /// Send the manifest request, with every manifest type we read in
    /// `Accept`, and return the call and a 200 answer. A 404 becomes
    /// [`RegistryError::NotFound`] naming the tag or digest; any other
    /// status, the registry's error.
    fn request_manifest<'a>(
        &self,
        repository: &'a str,
        reference: &str,
        name: &str,
    ) -> Result<(Call<'a>, ureq::http::Response<ureq::Body>)> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let call = Call::new("GET", url, repository)
            .header("Accept", oci::ACCEPTED_MANIFEST_TYPES.join(", "));
        let mut response = self.send(&call)?;
        match response.status().as_u16() {
            200 => Ok((call, response)),
            404 => {
                let detail = error_detail(&mut response);
                if self.trace {
                    eprintln!("  {}", detail.trim_start_matches(": "));
                }
                let what = if reference.contains(':') {
                    format!("manifest {name}")
                } else {
                    format!("tag {reference} of {repository}")
                };
                Err(RegistryError::NotFound(what, self.name.clone()))
            }
            _ => Err(self.status_error(&call, &mut response)),
        }
    }
    // ANCHOR_END: request_manifest

    // ANCHOR: read_manifest_body
    /// Read the manifest's bytes through [`oci::read_document`], which
    /// stops one byte past its cap: too large is
    /// [`RegistryError::ManifestTooLarge`], a failed read names the URL.
    fn read_manifest_body(
        call: &Call,
        response: &mut ureq::http::Response<ureq::Body>,
        name: &str,
    ) -> Result<Vec<u8>> {
        match oci::read_document(response.body_mut().as_reader()) {
            Ok(bytes) => Ok(bytes),
            Err(oci::DocumentError::TooLarge) => Err(RegistryError::ManifestTooLarge {
                reference: name.to_string(),
            }),
            Err(oci::DocumentError::Read(cause)) => Err(RegistryError::Read {
                what: "manifest".into(),
                url: call.url.clone(),
                cause,
            }),
        }
    }
    // ANCHOR_END: read_manifest_body

    // ANCHOR: check_manifest_digest
    /// The manifest's digest, checked: a `reference` that is a digest must
    /// match the bytes, else the registry's `Docker-Content-Digest` must if
    /// it stated one. The algorithm is the expected digest's (sha256 when
    /// nothing is expected).
    fn check_manifest_digest(
        reference: &str,
        stated: Option<&str>,
        bytes: &[u8],
        name: &str,
    ) -> Result<Digest> {
        let expected = match Digest::parse(reference) {
            Ok(d) => Some(d),
            Err(_) => stated.and_then(|s| Digest::parse(s).ok()),
        };
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, |d| d.algorithm());
        let actual = Digest::of_bytes(algorithm, bytes);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(RegistryError::ManifestDigest {
                reference: name.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(actual)
    }
    // ANCHOR_END: check_manifest_digest

    /// `GET /v2/<repository>/blobs/<digest>`: the blob's bytes as a stream
    /// (after any redirect) and its length if the server gave one. The
    /// caller checks size and digest as it reads (`Store::put_blob`).
    pub fn open_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let call = Call::new("GET", url, repository);
        let mut response = self.send(&call)?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                return Err(RegistryError::NotFound(
                    format!("blob {digest} of {repository}"),
                    self.name.clone(),
                ));
            }
            _ => return Err(self.status_error(&call, &mut response)),
        }
        let length = response.body().content_length();
        Ok((Box::new(response.into_body().into_reader()), length))
    }

    // ANCHOR: send
    /// Send `call`, answering an auth challenge once and retrying transient
    /// failures with exponential backoff. Returns whatever final response
    /// the server gave; the caller interprets its status.
    pub fn send(&self, call: &Call) -> Result<ureq::http::Response<ureq::Body>> {
        let scope = call.scope();
        let mut answered_challenge = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let authorization = self.lock_authorization().get(&scope).cloned();
            let result = self.send_once(call, authorization.as_deref())?;
            // A read can always be tried again; a write only if it surely
            // did nothing: it never got through, or was told "too many".
            let transient = match &result {
                Err(e) if call.writes() => never_arrived(e),
                Err(e) => is_transient(e),
                Ok(r) if call.writes() => r.status().as_u16() == 429,
                Ok(r) => matches!(r.status().as_u16(), 429 | 500 | 502 | 503 | 504),
            };
            if transient && attempt < ATTEMPTS {
                let wait = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                if self.trace {
                    eprintln!("  (transient failure; retry {attempt} in {wait:?})");
                }
                std::thread::sleep(wait);
                continue;
            }
            let response = result.map_err(|cause| RegistryError::Transport {
                method: call.method,
                url: call.url.clone(),
                cause: Box::new(cause),
            })?;
            if response.status().as_u16() != 401 || answered_challenge {
                return Ok(response);
            }
            // 401: learn how to authenticate, once, then try again.
            let mut response = response;
            let challenge = header(&response, "www-authenticate").unwrap_or_default();
            let detail = error_detail(&mut response);
            let authorization = self.answer_challenge(&challenge, &scope, &detail)?;
            self.lock_authorization()
                .insert(scope.clone(), authorization);
            answered_challenge = true;
            attempt = 0;
        }
    }
    // ANCHOR_END: send

    fn lock_authorization(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A thread that panicked holding the lock left a valid map.
        self.authorization
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One try of `call`. The outer error is ours (the body could not be
    /// opened), the inner one the network's.
    fn send_once(
        &self,
        call: &Call,
        authorization: Option<&str>,
    ) -> Result<std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>> {
        let mut request = ureq::http::Request::builder()
            .method(call.method)
            .uri(&call.url);
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        if self.trace {
            eprintln!("> {} {}", call.method, self.path_of(&call.url));
            for (name, value) in &call.headers {
                eprintln!(">   {name}: {value}");
            }
            if let Some(a) = authorization {
                let scheme = a.split(' ').next().unwrap_or_default();
                eprintln!(">   Authorization: {scheme} [hidden]");
            }
        }
        // A write states its length (zero for an empty one), so a file
        // streams as it is, without chunked encoding.
        let sent = if call.writes() {
            const NOTHING: &[u8] = &[];
            let payload: &dyn Payload = call.body.unwrap_or(&NOTHING);
            let mut body = payload.open().map_err(|cause| RegistryError::Body {
                method: call.method,
                url: call.url.clone(),
                cause,
            })?;
            request
                .header("Content-Length", payload.size().to_string())
                .body(ureq::SendBody::from_reader(&mut body))
                .map_err(ureq::Error::Http)
                .and_then(|request| self.agent.run(request))
        } else {
            request
                .body(())
                .map_err(ureq::Error::Http)
                .and_then(|request| self.agent.run(request))
        };
        if self.trace
            && let Ok(response) = &sent
        {
            trace_response(response);
        }
        Ok(sent)
    }

    fn path_of<'u>(&self, url: &'u str) -> &'u str {
        url.strip_prefix(&self.base).unwrap_or(url)
    }

    // ANCHOR: answer_challenge
    /// Turn a `WWW-Authenticate` challenge into an `Authorization` header:
    /// `Basic` uses the credentials directly; `Bearer` fetches a token for
    /// `scope` from the realm, sending the credentials if we have some
    /// (anonymous otherwise: public images need no account).
    fn answer_challenge(&self, header: &str, scope: &str, detail: &str) -> Result<String> {
        let unauthorized = || RegistryError::Unauthorized {
            registry: self.name.clone(),
            status: 401,
            detail: detail.to_string(),
        };
        let challenge = parse_challenge(header).ok_or_else(|| RegistryError::BadChallenge {
            registry: self.name.clone(),
            challenge: header.to_string(),
        })?;
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            return self
                .credentials
                .as_ref()
                .map(Credentials::basic_header)
                .ok_or_else(unauthorized);
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Err(RegistryError::BadChallenge {
                registry: self.name.clone(),
                challenge: header.to_string(),
            });
        }
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| RegistryError::BadChallenge {
                registry: self.name.clone(),
                challenge: header.to_string(),
            })?;
        // 1. A token for the scope, from the realm.
        let service = challenge.params.get("service").map(String::as_str);
        let response = self.request_token(realm, service, scope)?;
        // 2. The token, from the answer.
        let token = read_token(response, realm)?;
        Ok(format!("Bearer {token}"))
    }
    // ANCHOR_END: answer_challenge

    // ANCHOR: request_token
    /// `GET realm?scope=...&service=...`, with our credentials as Basic
    /// auth if we have some, and return the 200 answer; 401 and 403 are
    /// [`RegistryError::Unauthorized`], any other status a token error.
    fn request_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        // Several scopes (a mount reads another repository) are several
        // `scope` parameters.
        let mut request = self.agent.get(realm);
        for scope in scope.split(' ') {
            request = request.query("scope", scope);
        }
        if let Some(service) = service {
            request = request.query("service", service);
        }
        if let Some(credentials) = &self.credentials {
            request = request.header("Authorization", credentials.basic_header());
        }
        if self.trace {
            eprintln!("> GET {realm}?scope={scope}");
        }
        let token_error = |cause: String| RegistryError::Token {
            realm: realm.to_string(),
            cause,
        };
        let mut response = request.call().map_err(|e| token_error(e.to_string()))?;
        if self.trace {
            trace_response(&response);
        }
        match response.status().as_u16() {
            200 => Ok(response),
            401 | 403 => Err(RegistryError::Unauthorized {
                registry: self.name.clone(),
                status: response.status().as_u16(),
                detail: error_detail(&mut response),
            }),
            status => {
                let detail = error_detail(&mut response);
                Err(token_error(format!("status {status}{detail}")))
            }
        }
    }
    // ANCHOR_END: request_token

    /// The error for a response that is not what `call` hoped for:
    /// `Unauthorized` (with what to do) for 401 and 403, else the status and
    /// the registry's own words.
    pub fn status_error(
        &self,
        call: &Call,
        response: &mut ureq::http::Response<ureq::Body>,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let detail = error_detail(response);
        if matches!(status, 401 | 403) {
            return RegistryError::Unauthorized {
                registry: self.name.clone(),
                status,
                detail,
            };
        }
        RegistryError::Status {
            method: call.method,
            url: call.url.clone(),
            status,
            detail,
        }
    }
}

/// Whether a failed request is worth trying again.
fn is_transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
    )
}

/// Whether a request failed before the server could see any of it.
fn never_arrived(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// A response header, if it is there and is text.
pub fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn trace_response(response: &ureq::http::Response<ureq::Body>) {
    use ureq::ResponseExt as _;
    for uri in response
        .get_redirect_history()
        .unwrap_or_default()
        .iter()
        .skip(1)
    {
        eprintln!("< (redirected to {uri})");
    }
    let status = response.status();
    eprintln!(
        "< {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    for name in [
        "content-type",
        "content-length",
        "docker-content-digest",
        "www-authenticate",
        "location",
    ] {
        if let Some(value) = header(response, name) {
            eprintln!("<   {name}: {value}");
        }
    }
}

/// `: CODE: detail` from the spec's error body
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"...","detail":...}]}`;
/// the `message` if the `detail` is not text), or empty.
pub fn error_detail(response: &mut ureq::http::Response<ureq::Body>) -> String {
    let Ok(body) = response
        .body_mut()
        .with_config()
        .limit(SMALL_BODY_LIMIT)
        .read_to_vec()
    else {
        return String::new();
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return String::new();
    };
    let errors: Vec<String> = json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let code = e["code"].as_str().unwrap_or("UNKNOWN");
            // `detail` is free-form: when it is text, it says more than
            // the spec's fixed `message`.
            let words = e["detail"]
                .as_str()
                .or_else(|| e["message"].as_str())
                .filter(|m| !m.is_empty());
            match words {
                Some(m) => format!("{code}: {m}"),
                None => code.to_string(),
            }
        })
        .collect();
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

// ANCHOR: read_token
/// The token of a token server's JSON answer (read up to
/// `SMALL_BODY_LIMIT`): Docker's servers say `token`, OAuth2 ones
/// `access_token`; an empty one is no token.
fn read_token(mut response: ureq::http::Response<ureq::Body>, realm: &str) -> Result<String> {
    let token_error = |cause: String| RegistryError::Token {
        realm: realm.to_string(),
        cause,
    };
    let answer: serde_json::Value = response
        .body_mut()
        .with_config()
        .limit(SMALL_BODY_LIMIT)
        .read_json()
        .map_err(|e| token_error(format!("not a token answer: {e}")))?;
    answer["token"]
        .as_str()
        .or_else(|| answer["access_token"].as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| token_error("the answer has no token".into()))
}
// ANCHOR_END: read_token

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_with_quotes_and_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/alpine:pull,push");

        let c = parse_challenge(r#"Basic realm="Registry \"Realm\"", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.params["realm"], r#"Registry "Realm""#);
        assert_eq!(c.params["charset"], "UTF-8");

        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn plain_http_only_for_loopback_or_named_registries() {
        let none: Vec<String> = vec![];
        assert!(uses_plain_http("localhost:5000", &none));
        assert!(uses_plain_http("127.0.0.1:5000", &none));
        assert!(uses_plain_http("127.0.0.2", &none));
        assert!(uses_plain_http("[::1]:5000", &none));
        assert!(!uses_plain_http("docker.io", &none));
        assert!(!uses_plain_http("registry.lan:5000", &none));
        let named = vec!["registry.lan:5000".to_string(), "10.0.0.5".to_string()];
        assert!(uses_plain_http("registry.lan:5000", &named));
        assert!(uses_plain_http("10.0.0.5:443", &named));
        assert!(!uses_plain_http("registry.lan:6000", &named));
        assert_eq!(api_host("docker.io"), DOCKER_HUB_API);
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn docker_config_auths_and_hub_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::json!({
                "auths": {
                    "https://index.docker.io/v1/": {"auth": BASE64.encode("hubuser:hubpass")},
                    "localhost:5000": {"auth": BASE64.encode("me:p:w")},
                    "broken.example": {"auth": "%%%"}
                }
            })
            .to_string(),
        )
        .unwrap();
        let hub = docker_config_credentials(dir.path(), "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hubuser", "hubpass")
        );
        let local = docker_config_credentials(dir.path(), "localhost:5000")
            .unwrap()
            .unwrap();
        assert_eq!(local.password, "p:w", "only the first colon splits");
        assert!(
            docker_config_credentials(dir.path(), "ghcr.io")
                .unwrap()
                .is_none()
        );
        let err = docker_config_credentials(dir.path(), "broken.example").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        assert!(
            !format!("{local:?}").contains("p:w"),
            "Debug hides the password"
        );

        let empty = tempfile::tempdir().unwrap();
        assert!(
            docker_config_credentials(empty.path(), "docker.io")
                .unwrap()
                .is_none()
        );
    }
}
