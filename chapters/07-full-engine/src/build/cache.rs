//! The layer cache: a step that was done before, on the same parent, with
//! the same instruction, the same build args and (COPY, ADD) the same
//! files, gives the image it gave then; nothing runs, no layer is made.
//!
//! A key is the sha256 of those inputs; `build-cache/<key>` at the state
//! root holds the digest of the image manifest the step made. That image
//! is kept in the store under a dangling name (like docker's intermediate
//! images), so it stays until `image prune` removes it; an entry whose
//! image is gone is a miss. Since every key includes its parent's digest,
//! a change invalidates exactly the steps from the first one it affects.

use std::path::{Path, PathBuf};

use ch05_images::digest::{Algorithm, Digest};
use ch05_images::store::Store;

use crate::engine::record::write_atomic;

/// The cache at a state root.
pub struct Cache {
    dir: PathBuf,
}

/// The key of a step: its parent image, and what the step is.
pub fn key(parent: &str, parts: &[&str]) -> String {
    let mut text = String::from(parent);
    for part in parts {
        text.push('\n');
        text.push_str(part);
    }
    Digest::of_bytes(Algorithm::Sha256, text.as_bytes())
        .hex()
        .to_string()
}

impl Cache {
    pub fn new(root: &Path) -> Cache {
        Cache {
            dir: root.join("build-cache"),
        }
    }

    /// The manifest digest recorded for `key`, if its image is still in
    /// the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<String> {
        let digest = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let digest = digest.trim().to_string();
        store.has_blob(&digest).ok()?.then_some(digest)
    }

    /// Record that `key` made the image with manifest `digest`.
    pub fn put(&self, key: &str, digest: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.dir.join(key), digest.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_input() {
        let a = key("sha256:p", &["RUN a", ""]);
        assert_eq!(a, key("sha256:p", &["RUN a", ""]));
        assert_ne!(a, key("sha256:q", &["RUN a", ""]));
        assert_ne!(a, key("sha256:p", &["RUN b", ""]));
        assert_ne!(a, key("sha256:p", &["RUN a", "x"]));
        assert_eq!(a.len(), 64);
    }
}
