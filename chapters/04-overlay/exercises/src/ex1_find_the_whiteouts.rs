//! Exercise 1: find the whiteouts an overlay left in its upper directory.
//!
//! Write `deleted_paths`: walk `upper` (without following symlinks) and
//! return, sorted, the container paths (`/etc/group`) of every whiteout: a
//! character device whose device number is 0/0. Each one is a file or
//! directory the container deleted from a lower layer.
//! Hints: book/src/04-overlay/exercises.md.

use std::path::Path;

/// The container paths of the whiteouts under `upper`, sorted.
pub fn deleted_paths(_upper: &Path) -> std::io::Result<Vec<String>> {
    todo!("exercise 1: walk upper with symlink_metadata, keep char devices with rdev 0")
}
