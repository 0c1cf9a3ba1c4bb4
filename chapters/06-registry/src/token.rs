//! Bearer tokens, as Docker Hub issues them: who may do what to which
//! repository, signed so the registry can check it without asking anyone.
//!
//! With `--token-realm` the registry stops looking at passwords. A request
//! without a token gets `401` and
//!
//! ```text
//! WWW-Authenticate: Bearer realm="http://127.0.0.1:5000/token",service="ch06-registry",scope="repository:app:pull"
//! ```
//!
//! The client takes that to the *token server* (the realm: here a URL of
//! the registry itself; Docker Hub's is `auth.docker.io`), with a Basic
//! user name and password if it has them, and gets a token granting at most
//! the scope it asked for: `pull` to anyone (unless `--no-anonymous-pull`),
//! `push` and `delete` to users of the `--htpasswd` file only. It sends the
//! token back as `Authorization: Bearer <token>` on every request; the
//! registry checks the signature, the expiry and that the token's `access`
//! covers the request.
//!
//! The token is a JSON Web Token (RFC 7519) in its compact form,
//! `header.claims.signature`, each part base64url: the header says
//! `{"alg":"HS256"}`, the claims are Docker's (`iss`, `sub` the user, `aud`
//! the service, `exp`, `nbf`, `iat`, `jti`, and `access`, a list of
//! `{"type":"repository","name":"app","actions":["pull"]}`), and the
//! signature is HMAC-SHA256 of the first two parts under a key drawn at
//! random when the server starts. Only this server can make one, any change
//! to a claim breaks the signature, and a restart voids every token issued
//! before, which clients shrug off by asking for a new one. (Docker's own
//! token servers sign with a private key, RS256 or ES256, so a registry
//! elsewhere can check with the public key; one process needs no such
//! split.)
//!
//! Specs: distribution's token authentication (`docs/spec/auth/token.md`,
//! `scope.md`, `jwt.md`); RFC 7519 (JWT), RFC 7515 (JWS compact form),
//! RFC 2104 (HMAC), RFC 6750 (Bearer, `invalid_token`,
//! `insufficient_scope`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The `service` named in challenges and in tokens' `aud`.
pub const SERVICE: &str = "ch06-registry";
/// How long a token is good for, unless `--token-ttl` says otherwise
/// (Docker Hub's are good for 300 s too).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// More than this is not a token we made.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The JWS header of every token: always the same bytes.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not header.claims.signature in base64url")]
    Malformed,
    #[error(
        "the token's signature does not match: it was not issued by this server, or was changed"
    )]
    BadSignature,
    #[error("the token expired {0} s ago: ask the token server for a new one")]
    Expired(u64),
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for service {0:?}, not {SERVICE:?}")]
    WrongService(String),
}

/// One entry of a token's `access`, and of a requested `scope`:
/// `repository:app:pull,push` is `{type: repository, name: app, actions:
/// [pull, push]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceActions {
    /// Parses a scope `type:name:actions`. The name may itself hold colons
    /// (`repository:localhost:5000/app:pull`), so the type ends at the first
    /// colon and the actions begin after the last.
    pub fn parse_scope(scope: &str) -> Option<ResourceActions> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(ResourceActions {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// `type:name:actions`, as challenges write it.
    pub fn scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// What a token says (Docker's claim set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who issued it.
    pub iss: String,
    /// The user, or `""` for an anonymous token.
    pub sub: String,
    /// The service it is good for.
    pub aud: String,
    /// Expiry, not-before and issue times, in seconds since the epoch.
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// A unique id for this token.
    pub jti: String,
    pub access: Vec<ResourceActions>,
}

impl Claims {
    /// Whether the token grants `action` on `kind:name` (`*` grants all).
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action || x == "*")
        })
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Issues and checks tokens.
pub struct Tokens {
    /// HMAC-SHA256 keyed with 32 random bytes, ready to be cloned for each
    /// token made or checked.
    mac: Hmac<Sha256>,
    /// Where clients get tokens: `http://ADDR/token` unless given.
    pub realm: String,
    pub ttl: Duration,
    /// Whether a client without credentials gets `pull`.
    pub anonymous_pull: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({}, key hidden)", self.realm)
    }
}

impl Tokens {
    /// A token service with a fresh random key.
    pub fn new(realm: String, ttl: Duration, anonymous_pull: bool) -> std::io::Result<Tokens> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(std::io::Error::other)?;
        Ok(Tokens {
            mac,
            realm,
            ttl,
            anonymous_pull,
        })
    }

    // ANCHOR: grant
    /// What `user` (`None`: anonymous) gets of what was `requested`: the
    /// token server hands out at most what was asked, and never more than
    /// the policy allows. What is not granted is left out, not refused: the
    /// registry then says "insufficient scope" where it matters.
    pub fn grant(&self, user: Option<&str>, requested: &[ResourceActions]) -> Vec<ResourceActions> {
        let may = |action: &str| match action {
            "pull" => user.is_some() || self.anonymous_pull,
            "push" | "delete" => user.is_some(),
            _ => false,
        };
        let mut granted: Vec<ResourceActions> = Vec::new();
        for want in requested {
            let actions: Vec<String> = match want.kind.as_str() {
                "repository" => want.actions.iter().filter(|a| may(a)).cloned().collect(),
                // Listing every repository: for whoever may pull.
                "registry" if want.name == "catalog" && may("pull") => vec!["*".to_string()],
                _ => Vec::new(),
            };
            if !actions.is_empty() {
                granted.push(ResourceActions {
                    actions,
                    ..want.clone()
                });
            }
        }
        granted
    }
    // ANCHOR_END: grant

    // ANCHOR: issue
    /// A signed token for `user` granting `access`, valid from `now` for
    /// the configured time.
    pub fn issue(
        &self,
        user: Option<&str>,
        access: Vec<ResourceActions>,
        now: u64,
    ) -> (String, Claims) {
        let claims = Claims {
            iss: self.realm.clone(),
            sub: user.unwrap_or_default().to_string(),
            aud: SERVICE.to_string(),
            exp: now + self.ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        // Serialising our own struct cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let signed = format!("{}.{}", B64URL.encode(HEADER), B64URL.encode(json));
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let signature = B64URL.encode(mac.finalize().into_bytes());
        (format!("{signed}.{signature}"), claims)
    }
    // ANCHOR_END: issue

    // ANCHOR: verify
    /// The claims of `token` if this server signed it, it is for this
    /// service, and it is good at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // 1. The signature, first: nothing in an unsigned token is read.
        //    `verify_slice` compares in constant time, so the time taken
        //    does not tell how much of a forged signature was right.
        let signature = B64URL
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(claims.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        // 2. The header is ours (a signed token with another "alg" was
        //    not made here either).
        if B64URL.decode(header).ok().as_deref() != Some(HEADER.as_bytes()) {
            return Err(TokenError::Malformed);
        }
        // 3. The claims: for us, and not expired.
        let claims: Claims = B64URL
            .decode(claims)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.aud != SERVICE {
            return Err(TokenError::WrongService(claims.aud));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired(now - claims.exp));
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
    // ANCHOR_END: verify

    /// The `WWW-Authenticate` header sending a client to get a token for
    /// `scope`; `error` says why the one it sent was not enough (RFC 6750).
    pub fn challenge(&self, scope: Option<&ResourceActions>, error: Option<&str>) -> String {
        let mut header = format!(r#"Bearer realm="{}",service="{SERVICE}""#, self.realm);
        if let Some(scope) = scope {
            header.push_str(&format!(r#",scope="{}""#, scope.scope()));
        }
        if let Some(error) = error {
            header.push_str(&format!(r#",error="{error}""#));
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(anonymous_pull: bool) -> Tokens {
        Tokens::new(
            "http://127.0.0.1:5000/token".into(),
            DEFAULT_TTL,
            anonymous_pull,
        )
        .unwrap()
    }

    fn scope(s: &str) -> ResourceActions {
        ResourceActions::parse_scope(s).unwrap()
    }

    #[test]
    fn scopes_are_parsed_from_both_ends() {
        let s = scope("repository:localhost:5000/team/app:pull,push");
        assert_eq!(
            (s.kind.as_str(), s.name.as_str()),
            ("repository", "localhost:5000/team/app")
        );
        assert_eq!(s.actions, ["pull", "push"]);
        assert_eq!(s.scope(), "repository:localhost:5000/team/app:pull,push");
        assert_eq!(scope("registry:catalog:*").actions, ["*"]);
        assert!(ResourceActions::parse_scope("repository").is_none());
        assert!(ResourceActions::parse_scope("repository::pull").is_none());
    }

    #[test]
    fn grants_follow_the_policy_and_never_exceed_the_request() {
        let t = tokens(true);
        let want = [
            scope("repository:app:pull,push,delete"),
            scope("repository:b:pull"),
        ];
        assert_eq!(
            t.grant(None, &want),
            [scope("repository:app:pull"), scope("repository:b:pull")]
        );
        assert_eq!(t.grant(Some("alice"), &want), want);
        assert_eq!(
            t.grant(Some("alice"), &[scope("repository:app:push,frobnicate")]),
            [scope("repository:app:push")]
        );
        assert_eq!(
            t.grant(None, &[scope("registry:catalog:*")]),
            [scope("registry:catalog:*")]
        );
        let private = tokens(false);
        assert!(private.grant(None, &want).is_empty());
        assert!(
            private
                .grant(None, &[scope("registry:catalog:*")])
                .is_empty()
        );
        assert_eq!(private.grant(Some("bob"), &want), want);
    }

    #[test]
    fn tokens_round_trip_and_refuse_changes_expiry_and_strangers() {
        let t = tokens(true);
        let (token, claims) = t.issue(Some("alice"), vec![scope("repository:a:pull")], 1_000);
        assert_eq!(t.verify(&token, 1_000), Ok(claims.clone()));
        assert!(claims.allows("repository", "a", "pull"));
        assert!(!claims.allows("repository", "a", "push"));
        assert!(!claims.allows("repository", "b", "pull"));
        assert_eq!(claims.exp, 1_300);

        // Expired at exp, not a second later.
        assert_eq!(t.verify(&token, 1_300), Err(TokenError::Expired(0)));
        assert_eq!(t.verify(&token, 999), Err(TokenError::NotYetValid));

        // The claims changed to name another repository: the signature
        // no longer matches.
        let parts: Vec<&str> = token.split('.').collect();
        let json = String::from_utf8(B64URL.decode(parts[1]).unwrap()).unwrap();
        let forged = B64URL.encode(json.replace(r#""name":"a""#, r#""name":"b""#));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(t.verify(&tampered, 1_000), Err(TokenError::BadSignature));

        // Another server (another key) did not issue it.
        assert_eq!(
            tokens(true).verify(&token, 1_000),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(t.verify(junk, 1_000).is_err(), "{junk}");
        }
    }

    #[test]
    fn challenges_name_realm_service_scope_and_error() {
        let t = tokens(true);
        assert_eq!(
            t.challenge(
                Some(&scope("repository:a:pull,push")),
                Some("insufficient_scope")
            ),
            r#"Bearer realm="http://127.0.0.1:5000/token",service="ch06-registry",scope="repository:a:pull,push",error="insufficient_scope""#
        );
        assert_eq!(
            t.challenge(None, None),
            r#"Bearer realm="http://127.0.0.1:5000/token",service="ch06-registry""#
        );
    }
}
