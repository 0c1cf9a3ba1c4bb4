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

use axum::body::Body;
use ch05_images::digest::Verifier;
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
