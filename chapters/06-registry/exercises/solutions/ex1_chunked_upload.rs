//! Reference solution for exercise 1: an upload session opened, fed chunk
//! by chunk, closed with the digest, and checked with a HEAD.

use sha2::{Digest, Sha256};

/// A client that hands every status back instead of failing on 4xx/5xx:
/// the registry's error JSON is what says what went wrong.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// `what: STATUS BODY`, for an answer that was not the one expected.
fn refused(what: &str, response: &mut ureq::http::Response<ureq::Body>) -> String {
    let body = response.body_mut().read_to_string().unwrap_or_default();
    format!("{what}: {} {body}", response.status())
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Uploads `blob` to `registry`'s `repository` in chunks of `chunk_size`
/// bytes; returns its digest once the registry confirms it has it.
pub fn upload_in_chunks(
    registry: &str,
    repository: &str,
    blob: &[u8],
    chunk_size: usize,
) -> Result<String, String> {
    if chunk_size == 0 {
        return Err("the chunk size must be at least one byte".into());
    }
    let digest = format!("sha256:{:x}", Sha256::digest(blob));
    let base = format!("http://{registry}");
    // A Location may be a path on the registry or a whole URL.
    let url = |location: &str| {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{base}{location}")
        }
    };
    let agent = agent();
    let transport = |what: &str, e: ureq::Error| format!("{what}: {e}");

    // 1. A session: 202 and where to send the bytes.
    let start = format!("{base}/v2/{repository}/blobs/uploads/");
    let mut post = agent
        .post(&start)
        .send_empty()
        .map_err(|e| transport("POST", e))?;
    if post.status() != 202 {
        return Err(refused(&format!("POST {start}"), &mut post));
    }
    let mut location = header(&post, "location").ok_or("POST: the registry gave no Location")?;

    // 2. The chunks, in order; each answer may move the session.
    for (i, chunk) in blob.chunks(chunk_size).enumerate() {
        let first = i * chunk_size;
        let last = first + chunk.len() - 1;
        let mut patch = agent
            .patch(url(&location))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{first}-{last}"))
            .send(chunk)
            .map_err(|e| transport("PATCH", e))?;
        if patch.status() != 202 {
            return Err(refused(&format!("PATCH bytes {first}-{last}"), &mut patch));
        }
        if let Some(next) = header(&patch, "location") {
            location = next;
        }
    }

    // 3. Close: the registry hashes what it got and compares.
    let separator = if location.contains('?') { '&' } else { '?' };
    let close = format!("{}{separator}digest={digest}", url(&location));
    let mut put = agent
        .put(&close)
        .send_empty()
        .map_err(|e| transport("PUT", e))?;
    if put.status() != 201 {
        return Err(refused(&format!("PUT {close}"), &mut put));
    }

    // 4. Trust, but verify: is it there, with our size and digest?
    let blob_url = format!("{base}/v2/{repository}/blobs/{digest}");
    let head = agent
        .head(&blob_url)
        .call()
        .map_err(|e| transport("HEAD", e))?;
    if head.status() != 200 {
        return Err(format!("HEAD {blob_url}: {}", head.status()));
    }
    let size = header(&head, "content-length");
    if size.as_deref() != Some(blob.len().to_string().as_str()) {
        return Err(format!(
            "HEAD {blob_url}: Content-Length {size:?}, but the blob has {} bytes",
            blob.len()
        ));
    }
    let stated = header(&head, "docker-content-digest");
    if stated.as_deref() != Some(digest.as_str()) {
        return Err(format!("HEAD {blob_url}: Docker-Content-Digest {stated:?}"));
    }
    Ok(digest)
}
