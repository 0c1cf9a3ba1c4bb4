//! Registry mirrors: Docker Hub images pulled from a mirror close by.
//!
//! `"registry-mirrors": ["https://mirror.example"]` in docker's
//! `daemon.json` (or `dockerd --registry-mirror`) names registries that
//! hold copies of Docker Hub — pull-through caches such as chapter 6's
//! `serve --proxy-remote-url`, or distribution's proxy mode. Docker's rules,
//! which we follow:
//!
//! - only images of Docker Hub (`docker.io/...`, so `busybox`,
//!   `library/alpine`) go through mirrors; an image that names its registry
//!   (`ghcr.io/x`, `localhost:5000/y`) never does;
//! - the mirrors are tried in order, and the first that gives the image
//!   wins; one that fails (down, or without the image) is reported on
//!   stderr and the next is tried, Docker Hub itself last;
//! - the image keeps its Docker Hub name in the store: a mirror is where
//!   bytes came from, not what the image is called (the digests prove it
//!   is the same image);
//! - a mirror is a URL: `http://` makes it plain HTTP (docker would also
//!   want it in `insecure-registries`), `https://` is verified TLS.
//!
//! Docker's `registry/config.go` (`ValidateMirror`) and
//! `distribution/pull.go` (endpoint fallback).

use crate::pull::{PullError, PullOptions, Pulled, pull};
use crate::reference::{DEFAULT_REGISTRY, Reference};
use crate::registry::{ClientOptions, Registry};
use crate::store::Store;

/// A mirror URL that is not one.
#[derive(Debug, thiserror::Error)]
#[error(
    "registry mirror {0:?}: give it as http://HOST[:PORT] or https://HOST[:PORT], with no path"
)]
pub struct BadMirror(pub String);

/// A mirror as a registry name (`host[:port]`), and whether it is plain
/// HTTP.
pub fn parse_mirror(url: &str) -> Result<(String, bool), BadMirror> {
    let bad = || BadMirror(url.to_string());
    let (rest, plain) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, false)
    } else {
        return Err(bad());
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    Ok((host.to_string(), plain))
}

/// Where a pull got its image.
#[derive(Debug, Clone)]
pub struct PulledFrom {
    pub pulled: Pulled,
    /// The mirror's URL, or `None` for the image's own registry.
    pub mirror: Option<String>,
}

// ANCHOR: pull_with_mirrors
/// [`pull`] of `reference`, through `mirrors` first if it is a Docker Hub
/// image: each mirror in turn, then Docker Hub. A mirror that fails is
/// reported on stderr, with why, and the next one is tried.
pub fn pull_with_mirrors(
    store: &Store,
    reference: &Reference,
    mirrors: &[String],
    client: &ClientOptions,
    options: &PullOptions,
) -> Result<PulledFrom, PullError> {
    if reference.registry == DEFAULT_REGISTRY {
        for mirror in mirrors {
            match pull_from_mirror(store, reference, mirror, client, options) {
                Ok(pulled) => {
                    return Ok(PulledFrom {
                        pulled,
                        mirror: Some(mirror.clone()),
                    });
                }
                Err(e) => eprintln!(
                    "pull {} from mirror {mirror}: {e}: trying the next source",
                    reference.familiar()
                ),
            }
        }
    }
    let registry = Registry::new(&reference.registry, client)?;
    let pulled = pull(store, &registry, reference, options)?;
    Ok(PulledFrom {
        pulled,
        mirror: None,
    })
}
// ANCHOR_END: pull_with_mirrors

/// One mirror's try: a client for it (plain HTTP if its URL says so), and
/// chapter 5's pull under the image's own name.
fn pull_from_mirror(
    store: &Store,
    reference: &Reference,
    mirror: &str,
    client: &ClientOptions,
    options: &PullOptions,
) -> Result<Pulled, String> {
    let (host, plain) = parse_mirror(mirror).map_err(|e| e.to_string())?;
    let mut client = client.clone();
    if plain {
        client.insecure.push(host.clone());
    }
    let registry = Registry::new(&host, &client).map_err(|e| e.to_string())?;
    pull(store, &registry, reference, options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_urls_without_paths() {
        assert_eq!(
            parse_mirror("https://mirror.gcr.io").unwrap(),
            ("mirror.gcr.io".to_string(), false)
        );
        assert_eq!(
            parse_mirror("http://127.0.0.1:5000/").unwrap(),
            ("127.0.0.1:5000".to_string(), true)
        );
        for bad in [
            "mirror.gcr.io",
            "ftp://x",
            "https://",
            "https://x/v2",
            "https://u@x",
        ] {
            assert!(parse_mirror(bad).is_err(), "{bad}");
        }
    }
}
