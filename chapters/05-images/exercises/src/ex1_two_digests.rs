//! Exercise 1: the two digests of a layer.
//!
//! Write `layer_digests`: read the gzip-compressed layer blob at `blob` and
//! return its two names, each as `sha256:<64 lowercase hex digits>`:
//! the digest of the blob's bytes (what a manifest lists and a registry
//! serves) and the digest of the uncompressed tar (the config's `diff_id`).
//! Read the file once, and never hold it whole in memory.
//! Hints: book/src/05-images/exercises.md.

use std::path::Path;

/// `(digest, diff_id)` of the gzip layer blob at `blob`.
pub fn layer_digests(_blob: &Path) -> std::io::Result<(String, String)> {
    todo!("exercise 1: hash the bytes as they are read, and hash what GzDecoder makes of them")
}
