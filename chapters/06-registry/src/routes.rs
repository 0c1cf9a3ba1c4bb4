//! The API's URLs: from a request line to the code that answers it.
//!
//! Every endpoint of the distribution spec lives under `/v2/`, and the
//! repository `<name>` in the middle may itself contain slashes
//! (`library/alpine`, `team/app/backend`). A router pattern cannot say "any
//! number of segments, then `manifests`, then one more", so axum routes all
//! of `/v2/*` to [`dispatch`], which reads the path from its *end*: the
//! last segments say which endpoint (`…/manifests/<reference>`,
//! `…/blobs/uploads/<uuid>`, `…/tags/list`), and what is before them is the
//! name, checked against the spec's grammar before anything touches the
//! disk.
//!
//! | method            | path                                   | module       |
//! | ----------------- | -------------------------------------- | ------------ |
//! | GET               | `/v2/`                                 | here         |
//! | GET HEAD DELETE   | `/v2/<name>/blobs/<digest>`            | `blobs`      |
//! | POST              | `/v2/<name>/blobs/uploads/`            | `uploads`    |
//! | GET PATCH PUT DELETE | `/v2/<name>/blobs/uploads/<uuid>`   | `uploads`    |
//! | GET HEAD PUT DELETE | `/v2/<name>/manifests/<reference>`   | `manifests`  |
//! | GET               | `/v2/<name>/tags/list`                 | `discovery`  |
//! | GET               | `/v2/<name>/referrers/<digest>`        | `discovery`  |
//! | GET               | `/v2/_catalog`                         | `discovery`  |
//! | GET               | `/token` (with `--token-realm`)        | `auth`       |
//!
//! Every answer carries `Docker-Distribution-API-Version: registry/2.0`,
//! which Docker clients look for on `/v2/`.
//!
//! Spec: distribution-spec v1.1, "Endpoints" (the table end-1 to end-14).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::auth::{Auth, Granted};
use crate::errors::{ApiError, ErrorCode};
use crate::names::check_name;
use crate::proxy::Proxy;
use crate::storage::Storage;
use crate::uploads::Uploads;
use crate::{access_log, blobs, body, discovery, manifests, proxy};

/// How much of a request body its handler left unread is read to keep the
/// connection (Go's `net/http` reads up to 256 KiB), and for how long.
const UNREAD_BODY_MAX: u64 = 256 * 1024;
const UNREAD_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The header naming the digest of what a response holds or a request stored.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Everything a request handler needs.
#[derive(Debug)]
pub struct App {
    pub storage: Storage,
    pub uploads: Uploads,
    pub auth: Auth,
    /// With `--proxy-remote-url`: the registry is a pull-through cache.
    pub proxy: Option<Proxy>,
}

/// The decoded query string, keeping repeated keys (`?tag=a&tag=b`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same without the keys `drop`.
    pub fn without(&self, drop: &[&str]) -> Query {
        Query(
            self.0
                .iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// Every value of `key`.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A response with no body and these headers.
pub fn empty_response(status: StatusCode, headers: Vec<(HeaderName, String)>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Which endpoint a `/v2/...` path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Base,
    Catalog,
    Tags { name: String },
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    Uploads { name: String },
    Upload { name: String, id: String },
    Referrers { name: String, digest: String },
}

impl Endpoint {
    /// The repository the endpoint is about, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags { name }
            | Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::Uploads { name }
            | Endpoint::Upload { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }
}

/// Decodes `%XX` escapes in one path segment (a digest's ':' may come as
/// `%3A`). Invalid escapes are kept as they are; the grammar checks refuse
/// them later.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ANCHOR: parse_path
/// Reads a request path from its end. `None`: no such endpoint.
pub fn parse_path(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Endpoint::Base);
    }
    if rest == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let n = segments.len();
    let name = |k: usize| segments[..n - k].join("/");
    let last = segments[n - 1].clone();
    let at = |k: usize, word: &str| n > k && segments[n - 1 - k] == word;
    // …/tags/list
    if at(1, "tags") && last == "list" && n >= 3 {
        return Some(Endpoint::Tags { name: name(2) });
    }
    // …/blobs/uploads/ and …/blobs/uploads/<uuid>
    if n >= 4 && at(2, "blobs") && at(1, "uploads") {
        return Some(if last.is_empty() {
            Endpoint::Uploads { name: name(3) }
        } else {
            Endpoint::Upload {
                name: name(3),
                id: last,
            }
        });
    }
    if n >= 3 && at(1, "blobs") && last == "uploads" {
        return Some(Endpoint::Uploads { name: name(2) });
    }
    if n >= 3 && !last.is_empty() {
        if at(1, "manifests") {
            return Some(Endpoint::Manifest {
                name: name(2),
                reference: last,
            });
        }
        if at(1, "blobs") {
            return Some(Endpoint::Blob {
                name: name(2),
                digest: last,
            });
        }
        if at(1, "referrers") {
            return Some(Endpoint::Referrers {
                name: name(2),
                digest: last,
            });
        }
    }
    None
}
// ANCHOR_END: parse_path

fn not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unsupported,
        format!("{method} is not supported on {path}"),
    )
}

// ANCHOR: dispatch
/// Answers one `/v2/` request.
pub async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let (body, leftover) = body::share(body, body::has_body(&parts.headers));
    let result = route(&app, &parts.method, &path, &query, &parts.headers, body).await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    // What the handler did not read of the body is read now if small, or
    // the connection is closed (see `body::share`).
    if !leftover.finish(UNREAD_BODY_MAX, UNREAD_BODY_WAIT).await {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response.headers_mut().insert(
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    response
}
// ANCHOR_END: dispatch

// ANCHOR: admit_request
/// The endpoint `path` names and what the caller was granted, or the error
/// that turns the request away before any handler runs.
async fn admit_request(
    app: &App,
    method: &Method,
    path: &str,
    headers: &axum::http::HeaderMap,
) -> Result<(Endpoint, Granted), ApiError> {
    let Some(endpoint) = parse_path(path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            format!("{path} is not an endpoint of the distribution API"),
        ));
    };
    // 1. Who is asking, and may they? (Before the name: an anonymous client
    //    learns nothing, not even which names are valid.)
    let granted = app.auth.check(method, &endpoint, headers).await?;
    // 2. The name, before it becomes a path on disk.
    if let Some(name) = endpoint.name() {
        check_name(name)
            .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::NameInvalid, why))?;
    }
    Ok((endpoint, granted))
}
// ANCHOR_END: admit_request

// ANCHOR: route
/// Admits the request, then hands it to the module's function that
/// answers its method on its endpoint.
async fn route(
    app: &App,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (endpoint, granted) = admit_request(app, method, path, headers).await?;
    let storage = &app.storage;
    if let Some(answer) = proxy::answer(app, method, &endpoint, query, headers).await {
        return answer; // a pull-through cache's own
    }
    use Endpoint::*;
    match (method.clone(), endpoint) {
        // "Yes, this is a registry" (HEAD gets the headers only).
        (Method::GET | Method::HEAD, Base) => Ok(empty_response(
            StatusCode::OK,
            vec![(header::CONTENT_TYPE, "application/json".into())],
        )
        .map(|_| Body::from("{}"))),
        (Method::GET, Catalog) => discovery::catalog(storage, query).await,
        (Method::GET, Tags { name }) => discovery::tags(storage, &name, query).await,
        (Method::GET, Referrers { name, digest }) => {
            discovery::referrers(storage, &name, &digest, query).await
        }
        (Method::GET | Method::HEAD, Manifest { name, reference }) => {
            manifests::get(storage, &name, &reference, *method == Method::HEAD).await
        }
        (Method::PUT, Manifest { name, reference }) => {
            manifests::put(storage, &name, &reference, query, headers, body).await
        }
        (Method::DELETE, Manifest { name, reference }) => {
            manifests::delete(storage, &name, &reference).await
        }
        (Method::GET | Method::HEAD, Blob { name, digest }) => {
            blobs::get(storage, &name, &digest, headers, *method == Method::HEAD).await
        }
        (Method::DELETE, Blob { name, digest }) => blobs::delete(storage, &name, &digest).await,
        (Method::POST, Uploads { name }) => {
            // A mount reads another repository: only if that is allowed
            // too; else the client uploads the blob after all.
            let query = if granted.may_mount_from(query.get("from")) {
                query
            } else {
                &query.without(&["mount", "from"])
            };
            app.uploads.start(&name, query, headers, body).await
        }
        (Method::GET, Upload { name, id }) => app.uploads.status(&name, &id).await,
        (Method::PATCH, Upload { name, id }) => app.uploads.patch(&name, &id, headers, body).await,
        (Method::PUT, Upload { name, id }) => {
            app.uploads.put(&name, &id, query, headers, body).await
        }
        (Method::DELETE, Upload { name, id }) => app.uploads.cancel(&name, &id).await,
        (method, _) => Err(not_allowed(&method, path)),
    }
}
// ANCHOR_END: route

async fn not_found(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::Unsupported,
        format!(
            "{} is not part of the registry API, which lives under /v2/",
            request.uri().path()
        ),
    )
    .into_response()
}

/// `GET /token`: the token server, when the registry issues tokens.
pub async fn token(State(app): State<Arc<App>>, request: Request) -> Response {
    let query = Query::parse(request.uri().query());
    match app.auth.issue_token(&query, request.headers()).await {
        Ok(answer) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            answer.to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The whole HTTP application: `/v2/…` to [`dispatch`], `/token` to
/// [`token`] when tokens are on, the access log around it, no body size
/// limit (blobs are streamed; manifests are capped by their handler).
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    if app.auth.tokens().is_some() {
        router = router.route("/token", get(token));
    }
    router
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .fallback(not_found)
        .with_state(app)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(access_log::log))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn paths_are_read_from_the_end() {
        use Endpoint::*;
        let d = "sha256:aaaa";
        let cases = [
            ("/v2/", Some(Base)),
            ("/v2", Some(Base)),
            ("/v2/_catalog", Some(Catalog)),
            ("/v2/a/b/tags/list", Some(Tags { name: s("a/b") })),
            (
                "/v2/a/manifests/latest",
                Some(Manifest {
                    name: s("a"),
                    reference: s("latest"),
                }),
            ),
            (
                "/v2/a/manifests/b/manifests/latest",
                Some(Manifest {
                    name: s("a/manifests/b"),
                    reference: s("latest"),
                }),
            ),
            (
                "/v2/x/tags/manifests/list",
                Some(Manifest {
                    name: s("x/tags"),
                    reference: s("list"),
                }),
            ),
            (
                "/v2/a/blobs/sha256:aaaa",
                Some(Blob {
                    name: s("a"),
                    digest: s(d),
                }),
            ),
            (
                "/v2/a/blobs/sha256%3Aaaaa",
                Some(Blob {
                    name: s("a"),
                    digest: s(d),
                }),
            ),
            ("/v2/a/b/blobs/uploads/", Some(Uploads { name: s("a/b") })),
            ("/v2/a/b/blobs/uploads", Some(Uploads { name: s("a/b") })),
            (
                "/v2/a/blobs/uploads/1234",
                Some(Upload {
                    name: s("a"),
                    id: s("1234"),
                }),
            ),
            (
                "/v2/a/blobs/uploads/x/blobs/sha256:aaaa",
                Some(Blob {
                    name: s("a/blobs/uploads/x"),
                    digest: s(d),
                }),
            ),
            (
                "/v2/a/referrers/sha256:aaaa",
                Some(Referrers {
                    name: s("a"),
                    digest: s(d),
                }),
            ),
            ("/v2/a", None),
            ("/v2/a/manifests/", None),
            ("/v2/manifests/latest", None),
            ("/v3/a/manifests/latest", None),
            ("/v2/tags/list", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse_path(path), want, "{path}");
        }
    }

    #[test]
    fn queries_keep_repeated_keys() {
        let q = Query::parse(Some("tag=a&tag=b&n=2&mount=sha256%3Ax"));
        assert_eq!(q.get_all("tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("n"), Some("2"));
        assert_eq!(q.get("mount"), Some("sha256:x"));
        assert_eq!(q.get("last"), None);
    }
}
