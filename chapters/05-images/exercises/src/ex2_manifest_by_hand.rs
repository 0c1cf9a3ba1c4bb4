//! Exercise 2: read an image's layer list from a registry, by hand.
//!
//! Write `fetch_diff_ids`: with plain HTTP requests (the `ureq` crate), ask
//! the registry at `registry` (`127.0.0.1:PORT`, plain HTTP) for the
//! manifest of `repository:tag`, check that its bytes hash to the digest
//! the registry states in `Docker-Content-Digest`, fetch the config blob
//! the manifest names, check it against its digest too, and return the
//! config's `rootfs.diff_ids`. A failure (unknown tag, a digest that does
//! not match) is an `Err` with a message saying what went wrong.
//! Hints: book/src/05-images/exercises.md.

/// The diff_ids of `registry/repository:tag`, from its config.
pub fn fetch_diff_ids(
    _registry: &str,
    _repository: &str,
    _tag: &str,
) -> Result<Vec<String>, String> {
    todo!(
        "exercise 2: GET /v2/<repository>/manifests/<tag> with an Accept header, then the config blob"
    )
}
