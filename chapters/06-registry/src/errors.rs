//! The registry's error answers: an HTTP status and the spec's error JSON.
//!
//! Every failure a client can cause is answered with a 4xx status and a body
//! such as
//!
//! ```json
//! {"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"..."}]}
//! ```
//!
//! The `code` is what a client acts on (a `BLOB_UNKNOWN` on HEAD means "upload
//! it"); the `message` is the spec's fixed wording; the `detail` says, in our
//! words, what exactly was wrong and what to do. Our own failures (a full
//! disk) are 500s with code `UNKNOWN`, as distribution answers them, and are
//! logged on stderr.
//!
//! Spec: OCI distribution-spec v1.1, section "Error Codes" (the table of
//! codes code-1 to code-14 and the JSON shape).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The spec's error codes (distribution-spec "Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// Not the client's fault: our disk, our bug (distribution's `UNKNOWN`).
    Unknown,
}

impl ErrorCode {
    /// The identifier in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The spec's description of the code, used as the `message`.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::Unknown => "unknown error",
        }
    }
}

/// One entry of the `errors` list.
#[derive(Debug, Clone)]
pub struct ErrorEntry {
    pub code: ErrorCode,
    pub detail: String,
}

/// A failed request: its status, one or more spec errors, and headers the
/// client needs to recover (`Range` and `Location` on a 416,
/// `WWW-Authenticate` on a 401).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorEntry>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// One error with `detail` saying what was wrong.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![ErrorEntry {
                code,
                detail: detail.into(),
            }],
            headers: Vec::new(),
        }
    }

    /// Our own failure: logged with its cause, answered with a 500.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        eprintln!("ch06-registry: internal error: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unknown,
            what.to_string(),
        )
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        self.headers.push((name, value.to_string()));
        self
    }

    /// The first error's code (tests and the access log look at it).
    pub fn code(&self) -> ErrorCode {
        self.errors
            .first()
            .map_or(ErrorCode::Unknown, |entry| entry.code)
    }

    /// The spec's JSON body.
    pub fn body(&self) -> serde_json::Value {
        let errors: Vec<serde_json::Value> = self
            .errors
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "code": entry.code.as_str(),
                    "message": entry.code.message(),
                    "detail": entry.detail,
                })
            })
            .collect();
        serde_json::json!({ "errors": errors })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        for entry in &self.errors {
            write!(f, " {}: {}", entry.code.as_str(), entry.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// 404 `BLOB_UNKNOWN`.
pub fn blob_unknown(name: &str, digest: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::BlobUnknown,
        format!("blob {digest} is not in repository {name}: push it first"),
    )
}

/// 404 `NAME_UNKNOWN`.
pub fn name_unknown(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NameUnknown,
        format!("repository {name} does not exist: push an image to it first"),
    )
}

/// 400 `DIGEST_INVALID` for a digest that does not parse.
pub fn digest_invalid(text: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::DigestInvalid,
        format!("{why} (got {text:?})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_spec_shape() {
        let err = ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUnknown,
            "no such blob",
        );
        assert_eq!(
            err.body(),
            serde_json::json!({"errors": [{
                "code": "BLOB_UNKNOWN",
                "message": "blob unknown to registry",
                "detail": "no such blob"
            }]})
        );
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn codes_are_uppercase_and_underscores() {
        for code in [
            ErrorCode::BlobUnknown,
            ErrorCode::BlobUploadInvalid,
            ErrorCode::BlobUploadUnknown,
            ErrorCode::DigestInvalid,
            ErrorCode::ManifestBlobUnknown,
            ErrorCode::ManifestInvalid,
            ErrorCode::ManifestUnknown,
            ErrorCode::NameInvalid,
            ErrorCode::NameUnknown,
            ErrorCode::SizeInvalid,
            ErrorCode::Unauthorized,
            ErrorCode::Denied,
            ErrorCode::Unsupported,
            ErrorCode::TooManyRequests,
        ] {
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_')
            );
        }
    }
}
