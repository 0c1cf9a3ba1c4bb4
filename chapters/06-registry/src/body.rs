//! Request bodies: streamed to disk and hashed on the way, never held whole.
//!
//! A layer can be gigabytes. hyper hands the body over in frames of a few
//! kilobytes as they arrive on the socket; each frame is fed to the hash
//! (chapter 5's [`Verifier`]) and written to a file, then dropped, so a 1 GB
//! upload costs the server a few hundred kilobytes of memory, however many
//! run at once. The digest is known the moment the last byte lands, with no
//! second pass over the file.
//!
//! hyper enforces `Content-Length` (RFC 9110 section 8.6): a body that ends
//! early is an error here, which the caller answers with `SIZE_INVALID` after
//! undoing what was written. Manifests are the exception to streaming: they
//! are small JSON documents, read into memory up to a cap and refused beyond.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use ch05_images::digest::Verifier;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How a body copy failed.
#[derive(Debug)]
pub enum BodyError {
    /// The client's fault: the body broke off, or was longer than allowed.
    Client(String),
    /// Ours: the disk.
    Disk(std::io::Error),
}

/// Copies `body` into `out`, hashing it into `verifier` (if any), and returns
/// how many bytes it held. More than `limit` bytes is an error.
pub async fn copy_body<W: AsyncWrite + Unpin>(
    body: Body,
    out: &mut W,
    mut verifier: Option<&mut Verifier>,
    limit: Option<u64>,
) -> Result<u64, BodyError> {
    let mut body = body;
    let mut count: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            BodyError::Client(format!(
                "the request body broke off after {count} bytes ({e}): it was shorter than its \
                 Content-Length, or the connection was lost; send it again"
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        count += data.len() as u64;
        if let Some(limit) = limit
            && count > limit
        {
            return Err(BodyError::Client(format!(
                "the request body is larger than {limit} bytes"
            )));
        }
        if let Some(v) = verifier.as_deref_mut() {
            v.update(&data);
        }
        out.write_all(&data).await.map_err(BodyError::Disk)?;
    }
    out.flush().await.map_err(BodyError::Disk)?;
    Ok(count)
}

/// A request body shared between its handler and [`dispatch`], which
/// finishes what the handler left.
///
/// A request answered before its body was read — refused at once: a `401`,
/// a bad name, an out-of-order chunk, or a `POST` whose client sent an
/// empty chunked body nobody reads — leaves that body on the connection,
/// where it would be taken for the start of the next request. So after the
/// handler, what is left is read and dropped if it is small (as Go's
/// `net/http`, distribution's server, does), and otherwise the connection
/// is closed, and the client told so with `Connection: close` (RFC 9112
/// section 9.6) so it does not reuse it.
///
/// [`dispatch`]: crate::routes::dispatch
struct Shared {
    inner: Arc<Mutex<Body>>,
    ended: Arc<AtomicBool>,
}

fn lock(body: &Mutex<Body>) -> std::sync::MutexGuard<'_, Body> {
    // A handler that panicked mid-read left a body that can still be read.
    body.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut inner = lock(&self.inner);
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || inner.is_end_stream() {
            self.ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.inner).is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.inner).size_hint()
    }
}

/// What the handler may leave of a request body.
pub struct Leftover {
    inner: Arc<Mutex<Body>>,
    ended: Arc<AtomicBool>,
}

/// `body` for the handler, and a [`Leftover`] to finish it afterwards.
/// `has_body`: whether the request said it carries one (one without
/// `Content-Length` or `Transfer-Encoding` has none, RFC 9112 section 6.3).
pub fn share(body: Body, has_body: bool) -> (Body, Leftover) {
    let inner = Arc::new(Mutex::new(body));
    let ended = Arc::new(AtomicBool::new(!has_body));
    let shared = Shared {
        inner: inner.clone(),
        ended: ended.clone(),
    };
    (Body::new(shared), Leftover { inner, ended })
}

/// Whether a request with these headers carries a body of at least a byte.
pub fn has_body(headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header;
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

impl Leftover {
    /// Reads and drops what is left of the body, if it ends within `limit`
    /// bytes and `wait`. True if the body is over: the connection can carry
    /// the next request.
    pub async fn finish(&self, limit: u64, wait: Duration) -> bool {
        if self.ended.load(Ordering::Relaxed) {
            return true;
        }
        let mut left = limit;
        let drain = async {
            loop {
                let frame =
                    std::future::poll_fn(|cx| Pin::new(&mut *lock(&self.inner)).poll_frame(cx))
                        .await;
                match frame {
                    None => return true,
                    Some(Err(_)) => return false,
                    Some(Ok(frame)) => {
                        let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                        if n > left {
                            return false;
                        }
                        left -= n;
                    }
                }
            }
        };
        tokio::time::timeout(wait, drain).await.unwrap_or(false)
    }
}

/// Reads a small body (a manifest) into memory; `None` if it is larger than
/// `limit` bytes, in which case reading stopped right after the limit.
pub async fn read_small_body(body: Body, limit: usize) -> Result<Option<Vec<u8>>, BodyError> {
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            BodyError::Client(format!(
                "the request body broke off after {} bytes ({e}): it was shorter than its \
                 Content-Length, or the connection was lost",
                bytes.len()
            ))
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Ok(None);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ch05_images::digest::{Algorithm, Digest};

    #[tokio::test]
    async fn copies_and_hashes() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        let mut verifier = Verifier::new(Algorithm::Sha256);
        let n = copy_body(
            Body::from(data.clone()),
            &mut out,
            Some(&mut verifier),
            None,
        )
        .await
        .unwrap();
        assert_eq!(n, 200_000);
        assert_eq!(out, data);
        assert_eq!(
            verifier.finish().0,
            Digest::of_bytes(Algorithm::Sha256, &data)
        );
    }

    #[tokio::test]
    async fn limits_are_enforced() {
        let mut out = Vec::new();
        let err = copy_body(Body::from(vec![0u8; 11]), &mut out, None, Some(10)).await;
        assert!(matches!(err, Err(BodyError::Client(m)) if m.contains("larger than 10")));
        assert_eq!(
            read_small_body(Body::from(vec![1u8; 10]), 10)
                .await
                .unwrap()
                .map(|b| b.len()),
            Some(10)
        );
        assert!(
            read_small_body(Body::from(vec![1u8; 11]), 10)
                .await
                .unwrap()
                .is_none()
        );
    }
}
