//! The copy driver ("vfs", as docker calls it): each container gets a full
//! copy of its layers.
//!
//! No kernel feature at all, which is its use: it works on any filesystem
//! and in any user namespace. Its cost is the point of comparison for
//! overlay: ten containers of a 500 MB image cost 5 GB here, and each start
//! copies every file. Layers are copied bottom first; a layer's overlay
//! whiteout (a character device 0/0) deletes what lies below it, and an
//! opaque directory replaces the one below instead of merging with it.
//!
//! Man pages: cp(1) (what `cp -a` preserves), mknod(2).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("copy {from} to {to}: {cause}")]
pub struct CopyError {
    pub from: PathBuf,
    pub to: PathBuf,
    pub cause: io::Error,
}

/// Copy `layers` (bottom first) into `dest`, the later ones over the earlier.
// ANCHOR: copy_layers
pub fn copy_layers(layers: &[PathBuf], dest: &Path) -> Result<u64, CopyError> {
    fs::create_dir_all(dest).map_err(|cause| CopyError {
        from: PathBuf::new(),
        to: dest.to_path_buf(),
        cause,
    })?;
    let mut bytes = 0;
    for layer in layers {
        bytes += copy_tree(layer, dest)?;
    }
    Ok(bytes)
}
// ANCHOR_END: copy_layers

fn copy_tree(from: &Path, to: &Path) -> Result<u64, CopyError> {
    let err = |cause| CopyError {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        cause,
    };
    let mut bytes = 0;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(|cause| CopyError {
            from: src.clone(),
            to: dst.clone(),
            cause,
        })?;
        let err = |cause| CopyError {
            from: src.clone(),
            to: dst.clone(),
            cause,
        };
        let kind = meta.file_type();
        let existing = fs::symlink_metadata(&dst).ok();
        // A whiteout: what the lower layers had here is gone.
        if kind.is_char_device() && meta.rdev() == 0 {
            remove(&dst, existing.as_ref()).map_err(err)?;
            continue;
        }
        if kind.is_dir() {
            // An opaque directory hides what the layers below had in it.
            let opaque = crate::commit::is_opaque(&src).unwrap_or(false);
            if existing.as_ref().is_some_and(|m| !m.is_dir()) || opaque {
                remove(&dst, existing.as_ref()).map_err(err)?;
            }
            if !dst.is_dir() {
                fs::create_dir(&dst).map_err(err)?;
            }
            bytes += copy_tree(&src, &dst)?;
        } else {
            remove(&dst, existing.as_ref()).map_err(err)?;
            if kind.is_symlink() {
                symlink(fs::read_link(&src).map_err(err)?, &dst).map_err(err)?;
                continue;
            }
            if !kind.is_file() {
                return Err(err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a device, fifo or socket: the vfs driver copies files, directories and links",
                )));
            }
            bytes += fs::copy(&src, &dst).map_err(err)?;
        }
        fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(err)?;
    }
    Ok(bytes)
}

fn remove(path: &Path, existing: Option<&fs::Metadata>) -> io::Result<()> {
    match existing {
        Some(m) if m.is_dir() => fs::remove_dir_all(path),
        Some(_) => fs::remove_file(path),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_whiteouts_delete() {
        let root = tempfile::tempdir().unwrap();
        let (base, top, dest) = (
            root.path().join("base"),
            root.path().join("top"),
            root.path().join("dest"),
        );
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/motd"), "base\n").unwrap();
        fs::write(base.join("keep"), "kept\n").unwrap();
        symlink("keep", base.join("link")).unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::write(top.join("etc/motd"), "top\n").unwrap();
        let copied = copy_layers(&[base, top], &dest).unwrap();
        assert!(copied > 0);
        assert_eq!(fs::read_to_string(dest.join("etc/motd")).unwrap(), "top\n");
        assert_eq!(fs::read_to_string(dest.join("link")).unwrap(), "kept\n");
        assert_eq!(fs::read_link(dest.join("link")).unwrap(), Path::new("keep"));
    }
}
