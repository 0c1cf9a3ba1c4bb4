//! The access log: one line on stderr per request, once its answer is sent.
//!
//! `GET /v2/library/alpine/blobs/sha256:… 200 3623807 bytes 41.2 ms`: method,
//! path and query, status, the bytes of the response body actually sent,
//! and the time from the request's arrival to the last byte — or
//! `(aborted)` when the client went away first. Writing the line when the
//! body is *finished* (the body wrapper is dropped), not when the handler
//! returns, is what makes bytes and duration true for a streamed blob.
//!
//! Like the "common log format" of web servers (and distribution's own
//! access log), minus what we do not need.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};

/// A note a handler attaches to its response (as an extension) for the
/// log line: the pull-through cache says where the answer came from.
#[derive(Debug, Clone, Copy)]
pub struct Note(pub &'static str);

/// A response body that counts what passes and logs when dropped.
struct Logged {
    inner: Body,
    method: Method,
    path: String,
    status: StatusCode,
    start: Instant,
    bytes: u64,
    /// The response's Content-Length: hyper stops polling once it has sent
    /// that many bytes, so reaching it means complete.
    expected: Option<u64>,
    finished: bool,
    note: Option<Note>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // A body hyper never needed to poll (HEAD, empty) is complete too.
        let complete = self.finished
            || self.inner.is_end_stream()
            || self.expected == Some(self.bytes)
            || self.method == Method::HEAD;
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "{} {} {} {} bytes {ms:.1} ms{}{}",
            self.method,
            self.path,
            self.status.as_u16(),
            self.bytes,
            if complete { "" } else { " (aborted)" },
            self.note.map_or(String::new(), |Note(n)| format!(" ({n})"))
        );
    }
}

/// The middleware: wraps every response body in a [`Logged`].
pub async fn log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let response = next.run(request).await;
    let status = response.status();
    let expected = response
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let note = response.extensions().get::<Note>().copied();
    let (parts, inner) = response.into_parts();
    let body = Logged {
        inner,
        method,
        path,
        status,
        start,
        bytes: 0,
        expected,
        finished: false,
        note,
    };
    Response::from_parts(parts, Body::new(body))
}
