//! Pulling blobs: `GET` and `HEAD /v2/<name>/blobs/<digest>`, with `Range`,
//! and `DELETE`.
//!
//! A blob is served straight from its file, a buffer at a time (tokio-util's
//! `ReaderStream`), so a gigabyte layer never sits in memory. `HEAD` answers
//! "do you have it, and how big is it?" — what a pushing client asks before
//! uploading. `Range: bytes=START-END` resumes an interrupted download
//! (`206 Partial Content` with `Content-Range`; `416` for a range outside the
//! blob). `DELETE` removes the blob from *this* repository only; the content
//! stays as long as another repository links it, and `gc` removes it once
//! nothing does.
//!
//! Specs: distribution-spec v1.1, "Pulling blobs", "Checking if content
//! exists", "Deleting Blobs" (end-2, end-10); RFC 9110 section 14 (range
//! requests).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;
use ch05_images::digest::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::errors::{ApiError, blob_unknown, digest_invalid};
use crate::routes::{DOCKER_CONTENT_DIGEST, empty_response};
use crate::storage::Storage;

/// The read size when streaming a blob out.
const READ_BUFFER: usize = 256 * 1024;

/// What a `Range` header asks of a blob of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, or one we do not serve (several ranges): the whole blob.
    Whole,
    /// Bytes `start..=end`, clamped to the blob.
    Part { start: u64, end: u64 },
    /// Outside the blob, or END before START: 416.
    Unsatisfiable,
}

/// Reads `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` (RFC 9110
/// section 14.1.2) against a blob of `len` bytes. An END past the blob is
/// cut to its last byte; a START past it cannot be served.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (number(first), number(last), first.is_empty()) {
        // -SUFFIX: the last SUFFIX bytes.
        (None, Some(suffix), true) => {
            if suffix == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        (Some(start), end, false) if last.is_empty() || end.is_some() => {
            let end = end.unwrap_or(u64::MAX);
            if start >= len || end < start {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => RangeRequest::Whole,
    }
}

fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    Digest::parse(text).map_err(|e| digest_invalid(text, e))
}

// ANCHOR: get_blob
/// `GET` (or `HEAD`) `/v2/<name>/blobs/<digest>`.
pub async fn get(
    storage: &Storage,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let len = blob_size(storage, name, &digest).await?;
    let mut out = blob_headers(&digest);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        RangeRequest::Whole => (StatusCode::OK, 0, len),
        RangeRequest::Part { start, end } => {
            out.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            return Ok(empty_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                vec![
                    (header::CONTENT_RANGE, format!("bytes */{len}")),
                    (header::CONTENT_LENGTH, "0".into()),
                ],
            ));
        }
    };
    out.push((header::CONTENT_LENGTH, count.to_string()));
    if head {
        return Ok(empty_response(status, out));
    }
    stream_blob(storage, &digest, start, count, status, out).await
}
// ANCHOR_END: get_blob

// ANCHOR: blob_size
/// The size of blob `digest` if repository `name` links it;
/// `BLOB_UNKNOWN` if not.
async fn blob_size(storage: &Storage, name: &str, digest: &Digest) -> Result<u64, ApiError> {
    let Some(len) = storage
        .has_blob(name, digest)
        .await
        .map_err(|e| ApiError::internal(format!("stat {digest}: {e}")))?
    else {
        return Err(blob_unknown(name, &digest.to_string()));
    };
    Ok(len)
}
// ANCHOR_END: blob_size

// ANCHOR: blob_headers
/// The headers every answer about a blob carries: its type, its digest (as
/// `Docker-Content-Digest` and `ETag`) and that ranges are served.
fn blob_headers(digest: &Digest) -> Vec<(HeaderName, String)> {
    vec![
        (header::CONTENT_TYPE, "application/octet-stream".into()),
        (
            HeaderName::from_static(DOCKER_CONTENT_DIGEST),
            digest.to_string(),
        ),
        (header::ETAG, format!("\"{digest}\"")),
        (header::ACCEPT_RANGES, "bytes".into()),
    ]
}
// ANCHOR_END: blob_headers

// ANCHOR: stream_blob
/// The response that sends `count` bytes of blob `digest` from byte
/// `start`, a buffer at a time, with `status` and the headers `out`.
async fn stream_blob(
    storage: &Storage,
    digest: &Digest,
    start: u64,
    count: u64,
    status: StatusCode,
    out: Vec<(HeaderName, String)>,
) -> Result<Response, ApiError> {
    let mut file = storage
        .open_blob(digest)
        .await
        .map_err(|e| ApiError::internal(format!("open {digest}: {e}")))?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::internal(format!("seek {digest}: {e}")))?;
    }
    let stream = ReaderStream::with_capacity(file.take(count), READ_BUFFER);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    for (name, value) in out {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
// ANCHOR_END: stream_blob

/// `DELETE /v2/<name>/blobs/<digest>`: forget the blob in this repository.
pub async fn delete(storage: &Storage, name: &str, digest: &str) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let removed = storage
        .unlink_blob(name, &digest)
        .await
        .map_err(|e| ApiError::internal(format!("unlink {digest}: {e}")))?;
    if !removed {
        return Err(blob_unknown(name, &digest.to_string()));
    }
    Ok(empty_response(
        StatusCode::ACCEPTED,
        vec![
            (
                HeaderName::from_static(DOCKER_CONTENT_DIGEST),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn ranges_as_rfc_9110_and_the_conformance_suite_read_them() {
        let len = 2048;
        let r = |h: &str| parse_range(Some(h), len);
        assert_eq!(parse_range(None, len), Whole);
        assert_eq!(
            r("bytes=500-1499"),
            Part {
                start: 500,
                end: 1499
            }
        );
        assert_eq!(
            r("bytes=500-"),
            Part {
                start: 500,
                end: 2047
            }
        );
        assert_eq!(
            r("bytes=-500"),
            Part {
                start: 1548,
                end: 2047
            }
        );
        assert_eq!(
            r("bytes=-5000"),
            Part {
                start: 0,
                end: 2047
            }
        );
        assert_eq!(
            r("bytes=2000-5000"),
            Part {
                start: 2000,
                end: 2047
            }
        );
        assert_eq!(r("bytes=500-0"), Unsatisfiable);
        assert_eq!(r("bytes=5000-10000"), Unsatisfiable);
        assert_eq!(r("bytes=2048-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Whole);
        assert_eq!(r("items=0-1"), Whole);
        assert_eq!(r("bytes=x-1"), Whole);
        assert_eq!(r("bytes=-"), Whole);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }
}
