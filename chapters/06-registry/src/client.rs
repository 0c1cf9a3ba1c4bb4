//! The push side of the registry client: any method, any body, with the
//! same authentication as chapter 5's pull.
//!
//! Chapter 5's [`Registry`](ch05_images::registry::Registry) only reads
//! (`GET`, `HEAD`, scope `pull`). Pushing writes — `POST`, `PATCH`, `PUT` with
//! a streamed body — under the scope `repository:<name>:pull,push`, and when
//! mounting from another repository, `repository:<other>:pull` as well. The
//! pieces that do not depend on the method come from chapter 5: where a
//! registry's API lives ([`api_host`]), plain HTTP only for loopback or
//! `--insecure-registry` ([`uses_plain_http`]), credentials from the flags
//! or `~/.docker/config.json` ([`docker_config_credentials`]), and the
//! `WWW-Authenticate` parser ([`parse_challenge`]).
//!
//! A request that meets a `401` learns the challenge — `Basic`: send the
//! credentials; `Bearer`: fetch a token for the scope from the realm — and
//! is sent once more, its body made again from its source (a file is
//! reopened; a stream cannot be rewound). The answer is remembered per
//! scope, so one push authenticates once.
//!
//! Specs: RFC 7235 and 7617 (challenges, Basic), Docker's token
//! authentication (`distribution/docs/spec/auth/token.md`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ch05_images::registry::{
    ClientOptions, Credentials, api_host, docker_config_credentials, docker_config_dir,
    parse_challenge, uses_plain_http,
};
use ureq::SendBody;

/// Tokens and error bodies are small.
const SMALL_BODY_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}: {cause}")]
    Transport {
        method: String,
        url: String,
        cause: Box<ureq::Error>,
    },
    #[error("{0}")]
    Config(String),
    #[error(
        "{registry}: authentication required{detail}: log in with `docker login {registry}` or pass --username and --password-stdin"
    )]
    Unauthorized { registry: String, detail: String },
    #[error("{registry}: the registry's authentication challenge is not understood: {challenge:?}")]
    BadChallenge { registry: String, challenge: String },
    #[error("token from {realm}: {cause}")]
    Token { realm: String, cause: String },
    #[error("read {path}: {cause}")]
    Source {
        path: PathBuf,
        cause: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, ClientError>;

/// Where a request body comes from: made again for a retry.
#[derive(Debug, Clone)]
pub enum Payload {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes of `path` from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Payload {
    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// The body to send; `progress` sees every byte read from a file.
    fn open(&self, progress: Option<&indicatif::ProgressBar>) -> Result<SendBody<'static>> {
        match self {
            Payload::Empty => Ok(SendBody::from_owned_reader(std::io::empty())),
            Payload::Bytes(b) => Ok(SendBody::from_owned_reader(std::io::Cursor::new(b.clone()))),
            Payload::File { path, offset, len } => {
                let source = |cause| ClientError::Source {
                    path: path.clone(),
                    cause,
                };
                let mut file = File::open(path).map_err(source)?;
                file.seek(SeekFrom::Start(*offset)).map_err(source)?;
                let reader = file.take(*len);
                Ok(match progress {
                    Some(bar) => SendBody::from_owned_reader(bar.wrap_read(reader)),
                    None => SendBody::from_owned_reader(reader),
                })
            }
        }
    }
}

/// An answer: status, headers we use, and a short body (errors, manifests).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The registry's own words, from the spec's error JSON: `: CODE: detail`.
    pub fn detail(&self) -> String {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return String::new();
        };
        let Some(errors) = value["errors"].as_array() else {
            return String::new();
        };
        errors
            .iter()
            .map(|e| {
                let code = e["code"].as_str().unwrap_or_default();
                let words = e["detail"]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .or_else(|| e["message"].as_str())
                    .unwrap_or_default();
                format!(": {code}: {words}")
            })
            .collect()
    }
}

/// A client for one registry, for pushing.
pub struct Client {
    agent: ureq::Agent,
    name: String,
    base: String,
    credentials: Option<Credentials>,
    authorization: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.base)
    }
}

impl Client {
    /// A client for `registry` (`host[:port]`, as a reference names it).
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Client> {
        let scheme = if uses_plain_http(registry, &options.insecure) {
            "http"
        } else {
            "https"
        };
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => match docker_config_dir() {
                Some(dir) => docker_config_credentials(&dir, registry)
                    .map_err(|e| ClientError::Config(e.to_string()))?,
                None => None,
            },
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("berth-ch06/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .max_redirects(0)
            .build()
            .into();
        Ok(Client {
            agent,
            name: registry.to_string(),
            base: format!("{scheme}://{}", api_host(registry)),
            credentials,
            authorization: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An absolute URL for a path or a `Location` header (which may be
    /// relative or absolute).
    pub fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.authorization
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ANCHOR: send
    /// Sends `method location` with `headers` and `payload` under `scope`,
    /// answering one auth challenge. Every status is returned; the caller
    /// decides what it means.
    pub fn send(
        &self,
        method: &str,
        location: &str,
        scope: &str,
        headers: &[(&str, String)],
        payload: &Payload,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Answer> {
        let url = self.url(location);
        let mut answered = false;
        loop {
            let authorization = self.lock().get(scope).cloned();
            let mut builder = ureq::http::Request::builder().method(method).uri(&url);
            for (name, value) in headers {
                builder = builder.header(*name, value);
            }
            if let Some(a) = &authorization {
                builder = builder.header("Authorization", a);
            }
            if let Some(bar) = progress {
                bar.set_position(0);
            }
            let transport = |cause| ClientError::Transport {
                method: method.to_string(),
                url: url.clone(),
                cause: Box::new(cause),
            };
            // GET, HEAD and DELETE carry no body at all; the others say
            // how long theirs is, so a file streams without chunking.
            let sent = if matches!(method, "POST" | "PUT" | "PATCH") {
                let body = payload.open(progress)?;
                builder
                    .header("Content-Length", payload.len().to_string())
                    .body(body)
                    .map_err(|e| transport(ureq::Error::Http(e)))
                    .map(|request| self.agent.run(request))?
            } else {
                builder
                    .body(())
                    .map_err(|e| transport(ureq::Error::Http(e)))
                    .map(|request| self.agent.run(request))?
            };
            let mut response = sent.map_err(transport)?;
            let status = response.status().as_u16();
            let body = if method == "HEAD" {
                Vec::new()
            } else {
                response
                    .body_mut()
                    .with_config()
                    .limit(SMALL_BODY_LIMIT * 8)
                    .read_to_vec()
                    .unwrap_or_default()
            };
            let answer = Answer {
                status,
                headers: response.headers().clone(),
                body,
            };
            if status != 401 || answered {
                if status == 401 {
                    return Err(ClientError::Unauthorized {
                        registry: self.name.clone(),
                        detail: answer.detail(),
                    });
                }
                return Ok(answer);
            }
            let challenge = answer
                .header("www-authenticate")
                .unwrap_or_default()
                .to_string();
            let header = self.answer_challenge(&challenge, scope, &answer.detail())?;
            self.lock().insert(scope.to_string(), header);
            answered = true;
        }
    }
    // ANCHOR_END: send

    /// `Basic`: the credentials; `Bearer`: a token for `scope` (space
    /// separated scopes become repeated `scope` parameters).
    fn answer_challenge(&self, header: &str, scope: &str, detail: &str) -> Result<String> {
        let bad = || ClientError::BadChallenge {
            registry: self.name.clone(),
            challenge: header.to_string(),
        };
        let unauthorized = || ClientError::Unauthorized {
            registry: self.name.clone(),
            detail: detail.to_string(),
        };
        let challenge = parse_challenge(header).ok_or_else(bad)?;
        let basic = |c: &Credentials| {
            format!(
                "Basic {}",
                BASE64.encode(format!("{}:{}", c.username, c.password))
            )
        };
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            return self
                .credentials
                .as_ref()
                .map(basic)
                .ok_or_else(unauthorized);
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Err(bad());
        }
        let realm = challenge.params.get("realm").ok_or_else(bad)?;
        let mut request = self.agent.get(realm);
        for s in scope.split(' ') {
            request = request.query("scope", s);
        }
        if let Some(service) = challenge.params.get("service") {
            request = request.query("service", service);
        }
        if let Some(c) = &self.credentials {
            request = request.header("Authorization", basic(c));
        }
        let token_error = |cause: String| ClientError::Token {
            realm: realm.clone(),
            cause,
        };
        let mut response = request.call().map_err(|e| token_error(e.to_string()))?;
        if matches!(response.status().as_u16(), 401 | 403) {
            return Err(unauthorized());
        }
        if response.status().as_u16() != 200 {
            return Err(token_error(format!("status {}", response.status())));
        }
        let answer: serde_json::Value = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY_LIMIT)
            .read_json()
            .map_err(|e| token_error(format!("not a token answer: {e}")))?;
        let token = answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_error("the answer has no token".into()))?;
        Ok(format!("Bearer {token}"))
    }
}
