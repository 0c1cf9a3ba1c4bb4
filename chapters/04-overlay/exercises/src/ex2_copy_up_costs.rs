//! Exercise 2: what one byte costs on overlay.
//!
//! Write `append_one_byte`: append one byte to `file` (a path relative to
//! the mount) through the merged view `merged`, then return the size of
//! that file's copy in the upper directory `upper`.
//! Hints: book/src/04-overlay/exercises.md.

use std::path::Path;

/// Append one byte to `merged/file`; return the size of `upper/file` afterwards.
pub fn append_one_byte(_merged: &Path, _upper: &Path, _file: &str) -> std::io::Result<u64> {
    todo!("exercise 2: open with append, write one byte, then stat the copy in upper")
}
