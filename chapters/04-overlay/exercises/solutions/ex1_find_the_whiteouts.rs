//! Exercise 1, reference solution.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The container paths of the whiteouts under `upper`, sorted.
pub fn deleted_paths(upper: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    walk(upper, "", &mut found)?;
    found.sort();
    Ok(found)
}

/// Collect the whiteouts under `dir`, whose container path is `prefix`.
fn walk(dir: &Path, prefix: &str, found: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        // symlink_metadata: a symlink is an entry of its own, never followed.
        let meta = std::fs::symlink_metadata(entry.path())?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            // A whiteout: the lower file or directory of this name is gone.
            found.push(path);
        } else if kind.is_dir() {
            walk(&entry.path(), &path, found)?;
        }
    }
    Ok(())
}
