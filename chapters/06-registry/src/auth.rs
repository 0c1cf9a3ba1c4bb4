//! Who may do what: open by default, HTTP Basic auth against an htpasswd
//! file, and a read-only mode.
//!
//! Open is what distribution does out of the box, and fine on 127.0.0.1.
//! With `--htpasswd FILE` every request must carry `Authorization: Basic
//! base64(user:password)`; without it, or with a wrong password, the answer
//! is `401 UNAUTHORIZED` with `WWW-Authenticate: Basic realm="..."`, the
//! challenge that makes `docker login`, skopeo and chapter 5's client send
//! credentials (RFC 7617). The file holds `user:hash` lines as `htpasswd -B`
//! writes them; only bcrypt hashes are accepted, as distribution accepts
//! only those: bcrypt is slow on purpose, so a stolen file is expensive to
//! crack. Being slow, a successful check is remembered (by the SHA-256 of
//! the credentials, never the password itself) so a pull of fifty blobs
//! costs one bcrypt, not fifty.
//!
//! `--read-only` refuses every write (push, delete) with `403 DENIED`,
//! e.g. while `gc` is about to run or for a mirror.
//!
//! `--token-realm` turns the registry into a Docker Hub in miniature: the
//! registry wants a bearer token on every request, and `/token` hands them
//! out, checking Basic credentials against the htpasswd file when a client
//! sends some (see `token.rs` for the tokens themselves). A request is
//! matched to the scope it needs — `repository:NAME:pull` to read,
//! `pull,push` to upload, `delete` to delete, `registry:catalog:*` for the
//! catalog — and the token must grant it; if not, the `401`'s challenge
//! names that scope, so the client can fetch the right token.
//!
//! Basic auth sends the password in the clear: outside loopback, put TLS in
//! front (a reverse proxy), as distribution's docs also insist.
//!
//! Specs: RFC 7617 (Basic), RFC 7235 (challenges); distribution-spec
//! "Error Codes" (UNAUTHORIZED, DENIED); Apache's htpasswd format;
//! distribution's token authentication (`docs/spec/auth/token.md`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

use crate::errors::{ApiError, ErrorCode};
use crate::routes::{Endpoint, Query};
use crate::token::{self, Claims, ResourceActions, Tokens};

/// The realm named in the challenge.
pub const REALM: &str = "ch06-registry";
/// How many verified credentials are remembered.
const VERIFIED_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}, line {line}: expected USER:HASH as `htpasswd -B` writes it")]
    Malformed { path: PathBuf, line: usize },
    #[error(
        "{path}, line {line}: user {user:?} has a non-bcrypt hash: only bcrypt entries are \
         accepted; make them with `htpasswd -B`"
    )]
    NotBcrypt {
        path: PathBuf,
        line: usize,
        user: String,
    },
    #[error("{path}: no users in it")]
    Empty { path: PathBuf },
}

/// Users and their bcrypt hashes.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Reads `path`: `user:$2y$...` lines; blank lines and `#` comments skipped.
    pub fn load(path: &Path) -> Result<Htpasswd, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|cause| AuthError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line
                .split_once(':')
                .filter(|(u, h)| !u.is_empty() && !h.is_empty())
            else {
                return Err(AuthError::Malformed {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            };
            if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                return Err(AuthError::NotBcrypt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    user: user.to_string(),
                });
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(AuthError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Htpasswd { users })
    }
}

/// The access policy.
#[derive(Debug, Default)]
pub struct Auth {
    htpasswd: Option<Htpasswd>,
    read_only: bool,
    /// SHA-256 of `user:password` pairs bcrypt accepted.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Bearer tokens instead of passwords (`--token-realm`).
    tokens: Option<Tokens>,
}

/// What a request was allowed: all it asks (an open registry, or Basic
/// auth), or what its token grants.
#[derive(Debug)]
pub enum Granted {
    Everything,
    Token(Claims),
}

impl Granted {
    /// Whether blobs of repository `from` may be read, as a
    /// cross-repository mount does. A token must say so; without `from`
    /// (a mount from wherever the blob is) no token can.
    pub fn may_mount_from(&self, from: Option<&str>) -> bool {
        match (self, from) {
            (Granted::Everything, _) => true,
            (Granted::Token(claims), Some(from)) => claims.allows("repository", from, "pull"),
            (Granted::Token(_), None) => false,
        }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail).with_header(
        header::WWW_AUTHENTICATE,
        &format!("Basic realm=\"{REALM}\""),
    )
}

/// `user` and `password` from `Authorization: Basic ...`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The token from `Authorization: Bearer ...`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

// ANCHOR: needed_scope
/// The scope a request needs under token auth: reading a repository needs
/// `pull`, uploading `pull,push`, deleting `delete`, the catalog
/// `registry:catalog:*`. `/v2/` needs only a valid token.
pub fn needed_scope(method: &Method, endpoint: &Endpoint) -> Option<ResourceActions> {
    let actions: &[&str] = match (method, endpoint) {
        (_, Endpoint::Base) => return None,
        (_, Endpoint::Catalog) => {
            return Some(ResourceActions {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            });
        }
        (&Method::DELETE, Endpoint::Manifest { .. } | Endpoint::Blob { .. }) => &["delete"],
        (_, Endpoint::Uploads { .. } | Endpoint::Upload { .. }) => &["pull", "push"],
        (m, _) if is_write(m) => &["pull", "push"],
        _ => &["pull"],
    };
    Some(ResourceActions {
        kind: "repository".into(),
        name: endpoint.name().unwrap_or_default().to_string(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    })
}
// ANCHOR_END: needed_scope

impl Auth {
    /// Everyone may do everything.
    pub fn open() -> Auth {
        Auth::default()
    }

    /// The policy `serve` was given.
    pub fn new(htpasswd: Option<Htpasswd>, read_only: bool) -> Auth {
        Auth {
            htpasswd,
            read_only,
            verified: Mutex::new(HashSet::new()),
            tokens: None,
        }
    }

    /// Bearer tokens from `tokens` on every request, instead of Basic auth.
    pub fn with_tokens(mut self, tokens: Tokens) -> Auth {
        self.tokens = Some(tokens);
        self
    }

    /// The token service, if tokens are in use.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    /// The same, to name its realm once the address is bound.
    pub fn tokens_mut(&mut self) -> Option<&mut Tokens> {
        self.tokens.as_mut()
    }

    /// Whether `user:password` is in the htpasswd file. A successful check
    /// is remembered; an unknown user costs a bcrypt too, so timing does
    /// not tell which users exist.
    async fn verify_password(&self, htpasswd: &Htpasswd, user: &str, password: &str) -> bool {
        let key: [u8; 32] = sha2::Sha256::digest(format!("{user}:{password}")).into();
        let known = self
            .verified
            .lock()
            .map(|v| v.contains(&key))
            .unwrap_or(false);
        if known {
            return true;
        }
        let hash = htpasswd.users.get(user).cloned().unwrap_or_else(|| {
            "$2y$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy".into()
        });
        let exists = htpasswd.users.contains_key(user);
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !(ok && exists) {
            return false;
        }
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(key);
        }
        true
    }

    // ANCHOR: check
    /// What the request may do, or the error that refuses it.
    pub async fn check(
        &self,
        method: &Method,
        endpoint: &Endpoint,
        headers: &HeaderMap,
    ) -> Result<Granted, ApiError> {
        let mut granted = Granted::Everything;
        // 1. Who, and what they may do: with tokens, a token that grants
        //    the scope this request needs...
        if let Some(tokens) = &self.tokens {
            granted = Granted::Token(check_bearer_token(tokens, method, endpoint, headers)?);
        // ...or, with an htpasswd file alone, valid credentials on every
        // request.
        } else if let Some(htpasswd) = &self.htpasswd {
            self.check_basic_auth(htpasswd, headers).await?;
        }
        // 2. What: nothing that writes on a read-only registry.
        if self.read_only && is_write(method) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                "this registry is read-only: it serves pulls, not pushes or deletes",
            ));
        }
        Ok(granted)
    }
    // ANCHOR_END: check

    // ANCHOR: check_basic_auth
    /// Refuses a request without credentials, or with ones the htpasswd
    /// file does not accept.
    async fn check_basic_auth(
        &self,
        htpasswd: &Htpasswd,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(unauthorized(
                "this registry needs a user name and password (HTTP Basic auth): \
                 log in with `docker login` or pass credentials to your client",
            ));
        };
        if !self.verify_password(htpasswd, &user, &password).await {
            return Err(unauthorized("wrong user name or password"));
        }
        Ok(())
    }
    // ANCHOR_END: check_basic_auth

    // ANCHOR: issue_token
    /// `GET /token?service=...&scope=...`: the token server. Credentials
    /// are optional (anonymous pulls need none); wrong ones are refused.
    /// The token grants what was asked as far as the policy allows.
    pub async fn issue_token(
        &self,
        query: &Query,
        headers: &HeaderMap,
    ) -> Result<serde_json::Value, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::Unsupported,
                "this registry does not issue tokens: start it with --token-realm",
            ));
        };
        // 1. For us?
        if let Some(service) = query.get("service")
            && service != token::SERVICE
        {
            return Err(bad_token_request(format!(
                "this token server issues tokens for service {:?}, not {service:?}",
                token::SERVICE
            )));
        }
        // 2. Who: a user of the htpasswd file, or anonymous.
        let user = self.token_user(headers).await?;
        // 3. What was asked.
        let requested = requested_scopes(query)?;
        // 4. What is granted, signed.
        let granted = tokens.grant(user.as_deref(), &requested);
        let now = token::now();
        let (token, claims) = tokens.issue(user.as_deref(), granted, now);
        let issued_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(claims.iat);
        Ok(serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": claims.exp - claims.iat,
            "issued_at": humantime::format_rfc3339_seconds(issued_at).to_string(),
        }))
    }
    // ANCHOR_END: issue_token

    // ANCHOR: token_user
    /// Who asks for a token: `None` without credentials (anonymous), the
    /// user if the htpasswd file accepts the credentials, and an error if
    /// it does not.
    async fn token_user(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some((user, password)) = basic_credentials(headers) else {
            return Ok(None);
        };
        let known = match &self.htpasswd {
            Some(htpasswd) => self.verify_password(htpasswd, &user, &password).await,
            None => false,
        };
        if !known {
            return Err(unauthorized("wrong user name or password"));
        }
        Ok(Some(user))
    }
    // ANCHOR_END: token_user
}

// ANCHOR: check_bearer_token
/// The claims of the request's bearer token if they grant the scope the
/// request needs; otherwise a `401` whose challenge names that scope.
fn check_bearer_token(
    tokens: &Tokens,
    method: &Method,
    endpoint: &Endpoint,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    let needed = needed_scope(method, endpoint);
    let refuse = |error: Option<&str>, detail: String| {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail).with_header(
            header::WWW_AUTHENTICATE,
            &tokens.challenge(needed.as_ref(), error),
        )
    };
    let Some(token) = bearer_token(headers) else {
        return Err(refuse(
            None,
            format!(
                "this registry takes bearer tokens: get one from {} (docker, podman, \
                 skopeo and chapter 5's pull do so by themselves)",
                tokens.realm
            ),
        ));
    };
    let claims = tokens
        .verify(token, token::now())
        .map_err(|e| refuse(Some("invalid_token"), e.to_string()))?;
    if let Some(needed) = &needed
        && let Some(missing) = needed
            .actions
            .iter()
            .find(|a| !claims.allows(&needed.kind, &needed.name, a))
    {
        let hint = if claims.sub.is_empty() {
            ": it is anonymous; log in to get more"
        } else {
            ""
        };
        return Err(refuse(
            Some("insufficient_scope"),
            format!(
                "the token does not grant {missing} on {} {}{hint}",
                needed.kind, needed.name
            ),
        ));
    }
    Ok(claims)
}
// ANCHOR_END: check_bearer_token

// ANCHOR: requested_scopes
/// The scopes a token request asks for: its `scope` parameters, each one
/// or more scopes separated by spaces.
fn requested_scopes(query: &Query) -> Result<Vec<ResourceActions>, ApiError> {
    let mut requested = Vec::new();
    for scope in query.get_all("scope").flat_map(str::split_whitespace) {
        requested.push(ResourceActions::parse_scope(scope).ok_or_else(|| {
            bad_token_request(format!(
                "scope {scope:?} is not TYPE:NAME:ACTIONS (e.g. repository:app:pull)"
            ))
        })?);
    }
    Ok(requested)
}
// ANCHOR_END: requested_scopes

/// The `400` for a token request the token server cannot answer.
fn bad_token_request(detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_files_accept_bcrypt_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("# users\n\nalice:{hash}\n")).unwrap();
        let file = Htpasswd::load(&path).unwrap();
        assert!(file.users.contains_key("alice"));

        std::fs::write(&path, format!("alice:{hash}\nbob:$apr1$abc$def\n")).unwrap();
        let err = Htpasswd::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("\"bob\"") && err.contains("htpasswd -B"),
            "{err}"
        );
        std::fs::write(&path, "nocolon\n").unwrap();
        assert!(
            Htpasswd::load(&path)
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            Htpasswd::load(&path),
            Err(AuthError::Empty { .. })
        ));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            "Basic dXNlcjpwYTpzcw==".parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("user".to_string(), "pa:ss".to_string()))
        );
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(basic_credentials(&headers), None);
    }

    #[tokio::test]
    async fn checks_passwords_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(
            &path,
            format!("alice:{}\n", bcrypt::hash("secret", 4).unwrap()),
        )
        .unwrap();
        let auth = Auth::new(Some(Htpasswd::load(&path).unwrap()), true);
        let with = |user: &str, password: &str| {
            let mut h = HeaderMap::new();
            let value = format!("Basic {}", BASE64.encode(format!("{user}:{password}")));
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        let code = |r: Result<Granted, ApiError>| r.err().map(|e| e.code().as_str());
        let e = Endpoint::Base;
        assert_eq!(
            code(auth.check(&Method::GET, &e, &HeaderMap::new()).await),
            Some("UNAUTHORIZED")
        );
        assert_eq!(
            code(auth.check(&Method::GET, &e, &with("alice", "wrong")).await),
            Some("UNAUTHORIZED")
        );
        assert_eq!(
            code(
                auth.check(&Method::GET, &e, &with("mallory", "secret"))
                    .await
            ),
            Some("UNAUTHORIZED")
        );
        assert_eq!(
            code(auth.check(&Method::GET, &e, &with("alice", "secret")).await),
            None
        );
        // Remembered; and read-only still refuses writes.
        assert_eq!(
            code(
                auth.check(&Method::HEAD, &e, &with("alice", "secret"))
                    .await
            ),
            None
        );
        assert_eq!(
            code(auth.check(&Method::PUT, &e, &with("alice", "secret")).await),
            Some("DENIED")
        );
    }
}
