//! Exercise 2: every tag of a repository, page by page.
//!
//! Write `all_tags`: with plain HTTP requests (the `ureq` crate), list the
//! tags of `repository` on the registry at `registry` (`127.0.0.1:PORT`,
//! plain HTTP), asking for at most `page_size` tags per request
//! (`GET /v2/<repository>/tags/list?n=<page_size>`) and following the
//! `Link` header to the next page until there is none. Return every tag,
//! in the order the registry gave them. An unknown repository (or any
//! other refusal) is an `Err` with a message saying what the registry
//! answered.
//! Hints: book/src/06-registry/exercises.md.

/// Every tag of `registry`'s `repository`, fetched `page_size` at a time.
pub fn all_tags(
    _registry: &str,
    _repository: &str,
    _page_size: usize,
) -> Result<Vec<String>, String> {
    todo!(
        "exercise 2: GET /v2/<repository>/tags/list?n=<page_size>, then follow Link: <...>; rel=\"next\""
    )
}
