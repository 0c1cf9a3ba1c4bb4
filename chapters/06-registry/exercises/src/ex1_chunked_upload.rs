//! Exercise 1: push a blob in chunks, by hand.
//!
//! Write `upload_in_chunks`: with plain HTTP requests (the `ureq` crate),
//! upload `blob` to repository `repository` of the registry at `registry`
//! (`127.0.0.1:PORT`, plain HTTP) the way a pushing client does it in
//! chunks: open an upload session with a `POST`, send the blob
//! `chunk_size` bytes at a time, each in a `PATCH` with `Content-Type:
//! application/octet-stream` and a `Content-Range` header, close the
//! session with an empty `PUT` naming the blob's digest, and last ask with
//! a `HEAD` whether the registry now has the blob, with the right size and
//! digest. Return the digest (`sha256:` and 64 lowercase hex digits). Any
//! refusal on the way is an `Err` with a message saying which request
//! failed and what the registry answered.
//! Hints: book/src/06-registry/exercises.md.

/// Uploads `blob` to `registry`'s `repository` in chunks of `chunk_size`
/// bytes; returns its digest once the registry confirms it has it.
pub fn upload_in_chunks(
    _registry: &str,
    _repository: &str,
    _blob: &[u8],
    _chunk_size: usize,
) -> Result<String, String> {
    todo!(
        "exercise 1: POST /v2/<repository>/blobs/uploads/, then a PATCH per chunk, a PUT ?digest=, and a HEAD"
    )
}
