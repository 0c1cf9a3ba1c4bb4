//! What a URL may name: repositories, tags and digests, by the spec's grammar.
//!
//! Chapter 5 parses what a *user* types (`alpine` means
//! `docker.io/library/alpine:latest`); a registry sees only the API's `<name>`
//! and `<reference>` and must check them before they touch its disk: a name
//! becomes a directory path, so `..` or an empty component must never get
//! that far.
//!
//! - `<name>`: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
//!   at most [`NAME_MAX`] characters (clients count 255 with the host);
//! - a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`;
//! - a digest: `algorithm:encoded`, sha256 or sha512, parsed by chapter 5's
//!   [`Digest`].
//!
//! The grammar of name components and tags is chapter 5's
//! ([`ch05_images::reference`]), the one every chapter uses; this module
//! adds what a URL needs: the whole name checked with messages for an API
//! client, and a `<reference>` that is a tag or a digest.
//!
//! Spec: OCI distribution-spec v1.1, "Pulling manifests" (the two regular
//! expressions) and "Listing Tags".

use ch05_images::digest::Digest;
use ch05_images::reference::is_path_component;
/// The grammar is chapter 5's: a tag, and the limits (distribution's).
pub use ch05_images::reference::{NAME_MAX, TAG_MAX, is_tag};

/// Why a repository name is refused, in words a user can act on.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "repository name is {} characters long; the limit is {NAME_MAX}",
            name.len()
        ));
    }
    for component in name.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "repository name {name:?}: path component {component:?} is not valid: use \
                 lowercase letters and digits, separated by one '.', one or two '_' or any \
                 number of '-', starting and ending with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// The `<reference>` of `/v2/<name>/manifests/<reference>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Why a reference is refused: a malformed digest, or a malformed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// It has a ':' so it meant to be a digest.
    Digest(String),
    Tag(String),
}

impl Reference {
    /// A digest if it has a ':' (tags cannot), else a tag.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.contains(':') {
            return Digest::parse(text)
                .map(Reference::Digest)
                .map_err(|e| ReferenceError::Digest(e.to_string()));
        }
        if is_tag(text) {
            Ok(Reference::Tag(text.to_string()))
        } else {
            Err(ReferenceError::Tag(format!(
                "tag {text:?} is not valid: a tag is 1 to {TAG_MAX} letters, digits, '_', '.' \
                 and '-', not starting with '.' or '-'"
            )))
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for good in [
            "a",
            "library/alpine",
            "a/b/c",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "my.app",
            "0",
            "a1/b2.c3-d4_e5",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "A",
            "Library/alpine",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            ".a",
            "a.",
            "a..b",
            "a___b",
            "a_-b",
            "-a",
            "a-",
            "a b",
            "a%2fb",
            "_catalog",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check_name(&"a".repeat(NAME_MAX)).is_ok());
        let err = check_name(&"a".repeat(NAME_MAX + 1)).unwrap_err();
        assert!(err.contains("the limit is 255"), "{err}");
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for good in ["latest", "1.0", "v1.2.3-rc_1", "_x", "A", &"a".repeat(128)] {
            assert!(is_tag(good), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", &"a".repeat(129)] {
            assert!(!is_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert_eq!(
            Reference::parse("latest"),
            Ok(Reference::Tag("latest".into()))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            Reference::parse(&digest),
            Ok(Reference::Digest(_))
        ));
        assert!(matches!(
            Reference::parse("sha256:baddigeststring"),
            Err(ReferenceError::Digest(_))
        ));
        assert!(matches!(
            Reference::parse(".hidden"),
            Err(ReferenceError::Tag(_))
        ));
    }
}
