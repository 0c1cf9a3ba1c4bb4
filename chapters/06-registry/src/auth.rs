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
//! Basic auth sends the password in the clear: outside loopback, put TLS in
//! front (a reverse proxy), as distribution's docs also insist.
//!
//! Specs: RFC 7617 (Basic), RFC 7235 (challenges); distribution-spec
//! "Error Codes" (UNAUTHORIZED, DENIED); Apache's htpasswd format.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

use crate::errors::{ApiError, ErrorCode};
use crate::routes::Endpoint;

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
        }
    }

    // ANCHOR: check
    /// `Ok` if the request may proceed.
    pub async fn check(
        &self,
        method: &Method,
        _endpoint: &Endpoint,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        // 1. Who: with an htpasswd file, valid credentials on every request.
        if let Some(htpasswd) = &self.htpasswd {
            let Some((user, password)) = basic_credentials(headers) else {
                return Err(unauthorized(
                    "this registry needs a user name and password (HTTP Basic auth): \
                     log in with `docker login` or pass credentials to your client",
                ));
            };
            let key: [u8; 32] = sha2::Sha256::digest(format!("{user}:{password}")).into();
            let known = self
                .verified
                .lock()
                .map(|v| v.contains(&key))
                .unwrap_or(false);
            if !known {
                // An unknown user costs a bcrypt too, so timing does not
                // tell which users exist.
                let hash = htpasswd.users.get(&user).cloned().unwrap_or_else(|| {
                    "$2y$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy".into()
                });
                let exists = htpasswd.users.contains_key(&user);
                let ok = tokio::task::spawn_blocking(move || {
                    bcrypt::verify(&password, &hash).unwrap_or(false)
                })
                .await
                .unwrap_or(false);
                if !(ok && exists) {
                    return Err(unauthorized("wrong user name or password"));
                }
                if let Ok(mut verified) = self.verified.lock() {
                    if verified.len() >= VERIFIED_MAX {
                        verified.clear();
                    }
                    verified.insert(key);
                }
            }
        }
        // 2. What: nothing that writes on a read-only registry.
        if self.read_only && is_write(method) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                "this registry is read-only: it serves pulls, not pushes or deletes",
            ));
        }
        Ok(())
    }
    // ANCHOR_END: check
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
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.code().as_str());
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
