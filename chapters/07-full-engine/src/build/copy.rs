//! COPY and ADD: files from the context (or another stage) become a layer.
//!
//! The files are copied into a staging directory laid out as the layer
//! will be (the destination's parent directories included), with the
//! owner (`--chown`, else 0:0), the mode (`--chmod`, else the source's)
//! and the source's mtime (clamped to `SOURCE_DATE_EPOCH` when set); the
//! staging tree is then hashed for the cache key ([`tree_digest`]: names,
//! types, modes, owners, link targets and contents; not times, as docker
//! ignores them) and written by chapter 4's `commit_layer`.
//!
//! Man pages: lchown(2), chmod(2), utimensat(2), symlink(7).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ch05_images::digest::{Algorithm, Verifier};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};

/// A failed copy: what and where.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {cause}", .path.display())]
pub struct CopyError {
    pub what: &'static str,
    pub path: PathBuf,
    pub cause: std::io::Error,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CopyError + 'a {
    move |cause| CopyError {
        what,
        path: path.to_path_buf(),
        cause,
    }
}

/// How the copied files end up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub uid: u32,
    pub gid: u32,
    /// `--chmod`: permission bits for every file and directory copied.
    pub mode: Option<u32>,
    /// `SOURCE_DATE_EPOCH`: no mtime later than this.
    pub clamp: Option<i64>,
}

/// Where a directory's entries come from: the context's tree, or a
/// stage's merged layers.
pub trait Tree {
    /// The entries of directory `rel`: name → host path, in name order.
    fn list(&self, rel: &str, host: &Path) -> Vec<(String, PathBuf)>;
    /// Whether `rel` is left out (`.dockerignore`).
    fn excluded(&self, rel: &str) -> bool;
}

/// A file's mtime (seconds), clamped.
fn mtime_of(meta: &std::fs::Metadata, clamp: Option<i64>) -> i64 {
    match clamp {
        Some(limit) => meta.mtime().min(limit),
        None => meta.mtime(),
    }
}

/// Set `path`'s mtime (and atime) to `secs`, not following a symlink.
pub fn set_mtime(path: &Path, secs: i64) -> Result<(), CopyError> {
    let time = TimeSpec::new(secs, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| CopyError {
        what: "set the mtime of",
        path: path.to_path_buf(),
        cause: e.into(),
    })
}

/// Set `path`'s owner to `attrs`', not following a symlink.
pub fn set_owner(path: &Path, attrs: &Attrs) -> Result<(), CopyError> {
    fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(attrs.uid)),
        Some(Gid::from_raw(attrs.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| CopyError {
        what: "chown",
        path: path.to_path_buf(),
        cause: e.into(),
    })
}

/// Copy the entry `src` (context path `rel`) to `dst`, a directory's
/// contents too; symlinks as they are, never followed.
pub fn copy_entry(
    tree: &dyn Tree,
    rel: &str,
    src: &Path,
    dst: &Path,
    attrs: &Attrs,
) -> Result<(), CopyError> {
    let meta = src.symlink_metadata().map_err(io("stat", src))?;
    let kind = meta.file_type();
    // What an earlier source left at `dst` is replaced, never followed:
    // only a real directory is kept (a directory merges).
    let existing = dst.symlink_metadata().ok();
    let keep_dir = kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir());
    if let Some(old) = existing.filter(|_| !keep_dir) {
        let removed = if old.is_dir() {
            std::fs::remove_dir_all(dst)
        } else {
            std::fs::remove_file(dst)
        };
        removed.map_err(io("replace", dst))?;
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(src).map_err(io("readlink", src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(io("symlink", dst))?;
    } else if kind.is_dir() {
        if !keep_dir {
            std::fs::create_dir(dst).map_err(io("mkdir", dst))?;
        }
        for (name, host) in tree.list(rel, src) {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if tree.excluded(&child) && !host.is_dir() {
                continue;
            }
            copy_entry(tree, &child, &host, &dst.join(&name), attrs)?;
        }
        let mode = attrs.mode.unwrap_or(meta.mode() & 0o7777);
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", dst))?;
    } else if kind.is_file() {
        copy_file(src, dst)?;
        let mode = attrs.mode.unwrap_or(meta.mode() & 0o7777);
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", dst))?;
    } else {
        // Devices, fifos, sockets: docker's COPY skips nothing, but a
        // context has none worth copying; left out.
        return Ok(());
    }
    set_owner(dst, attrs)?;
    set_mtime(dst, mtime_of(&meta, attrs.clamp))
}

/// Copy the regular file `src` to the new file `dst` (created, never
/// opened through a link: O_EXCL).
fn copy_file(src: &Path, dst: &Path) -> Result<(), CopyError> {
    let mut from = std::fs::File::open(src).map_err(io("open", src))?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(io("create", dst))?;
    std::io::copy(&mut from, &mut to).map_err(io("copy", src))?;
    Ok(())
}

/// Make the directories of `rel` (a/b/c) under `staging` that it lacks,
/// each as the stage has it (`existing`), else new: 0755, owned by
/// `attrs`' owner (`--chown` applies to the directories COPY creates, as
/// BuildKit and buildah do).
pub fn make_parents(
    staging: &Path,
    rel: &str,
    existing: &dyn Fn(&str) -> Option<std::fs::Metadata>,
    attrs: &Attrs,
) -> Result<(), CopyError> {
    let clamp = attrs.clamp;
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for depth in 1..=parts.len() {
        let sub = parts[..depth].join("/");
        let path = staging.join(&sub);
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => continue,
            // A link or file an earlier source put here: replaced by the
            // directory, never followed.
            Ok(_) => std::fs::remove_file(&path).map_err(io("replace", &path))?,
            Err(_) => {}
        }
        std::fs::create_dir(&path).map_err(io("mkdir", &path))?;
        let (mode, uid, gid, mtime) = match existing(&sub) {
            Some(m) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid(), mtime_of(&m, clamp)),
            _ => (0o755, attrs.uid, attrs.gid, clamp.unwrap_or_else(now_secs)),
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &path))?;
        set_owner(
            &path,
            &Attrs {
                uid,
                gid,
                ..Attrs::default()
            },
        )?;
        set_mtime(&path, mtime)?;
    }
    Ok(())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Clamp every mtime under `dir` to `limit` (a RUN's upper directory,
/// an unpacked ADD archive), directories last so their times stay.
pub fn clamp_tree(dir: &Path, limit: i64) -> Result<(), CopyError> {
    let entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
    for entry in entries {
        let entry = entry.map_err(io("read", dir))?;
        let path = entry.path();
        let meta = path.symlink_metadata().map_err(io("stat", &path))?;
        if meta.is_dir() {
            clamp_tree(&path, limit)?;
        }
        if meta.mtime() > limit {
            set_mtime(&path, limit)?;
        }
    }
    let meta = dir.symlink_metadata().map_err(io("stat", dir))?;
    if meta.mtime() > limit {
        set_mtime(dir, limit)?;
    }
    Ok(())
}

/// A digest of the tree under `dir`: each entry's path, type, mode,
/// owner, link target and content, in name order (the COPY cache key).
pub fn tree_digest(dir: &Path) -> Result<String, CopyError> {
    let mut hash = Verifier::new(Algorithm::Sha256);
    digest_into(dir, "", &mut hash)?;
    let (digest, _) = hash.finish();
    Ok(digest.to_string())
}

fn digest_into(dir: &Path, rel: &str, hash: &mut Verifier) -> Result<(), CopyError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io("read", dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let child = format!("{rel}/{name}");
        let meta = path.symlink_metadata().map_err(io("stat", &path))?;
        let kind = meta.file_type();
        let line = format!(
            "{child}\0{:o}\0{}\0{}\0",
            meta.mode(),
            meta.uid(),
            meta.gid()
        );
        hash.update(line.as_bytes());
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io("readlink", &path))?;
            hash.update(target.to_string_lossy().as_bytes());
        } else if kind.is_file() {
            let mut file = std::fs::File::open(&path).map_err(io("open", &path))?;
            let mut content = Verifier::new(Algorithm::Sha256);
            std::io::copy(&mut file, &mut content).map_err(io("read", &path))?;
            hash.update(content.finish().0.to_string().as_bytes());
        } else if kind.is_dir() {
            digest_into(&path, &child, hash)?;
        }
        hash.update(b"\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;
    impl Tree for Plain {
        fn list(&self, _rel: &str, host: &Path) -> Vec<(String, PathBuf)> {
            let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(host)
                .unwrap()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect();
            v.sort();
            v
        }
        fn excluded(&self, rel: &str) -> bool {
            rel.ends_with(".skip")
        }
    }

    #[test]
    fn a_link_left_by_an_earlier_source_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(two.join("x")).unwrap();
        std::os::unix::fs::symlink(&outside, one.join("x")).unwrap();
        std::fs::write(two.join("x/passwd"), "pwned").unwrap();
        std::os::unix::fs::symlink(outside.join("f"), one.join("f")).unwrap();
        std::fs::write(two.join("f"), "pwned").unwrap();
        let me = Attrs {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            ..Attrs::default()
        };
        let dst = tmp.path().join("dst");
        copy_entry(&Plain, "", &one, &dst, &me).unwrap();
        copy_entry(&Plain, "", &two, &dst, &me).unwrap();
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(dst.join("x").symlink_metadata().unwrap().is_dir());
        assert_eq!(
            std::fs::read_to_string(dst.join("x/passwd")).unwrap(),
            "pwned"
        );
        assert!(dst.join("f").symlink_metadata().unwrap().is_file());
        // make_parents too replaces a link on the way.
        std::fs::remove_dir_all(dst.join("x")).unwrap();
        std::os::unix::fs::symlink(&outside, dst.join("x")).unwrap();
        make_parents(&dst, "x/y", &|_| None, &me).unwrap();
        assert!(dst.join("x/y").is_dir());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_copied_tree_keeps_links_takes_the_mode_and_hashes_by_content() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/f"), "one").unwrap();
        std::fs::write(src.join("d/x.skip"), "no").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("d/l")).unwrap();
        set_mtime(&src.join("d/f"), 2_000_000_000).unwrap();
        let me = Attrs {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            mode: Some(0o750),
            clamp: Some(1_000),
        };
        let dst = tmp.path().join("dst");
        copy_entry(&Plain, "", &src, &dst, &me).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("d/f")).unwrap(), "one");
        assert!(!dst.join("d/x.skip").exists());
        assert_eq!(
            std::fs::read_link(dst.join("d/l")).unwrap(),
            Path::new("/etc/passwd")
        );
        let meta = dst.join("d/f").metadata().unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o750);
        assert_eq!(meta.mtime(), 1_000);
        let before = tree_digest(&dst).unwrap();
        // Times do not count; contents do.
        set_mtime(&dst.join("d/f"), 5).unwrap();
        assert_eq!(tree_digest(&dst).unwrap(), before);
        std::fs::write(dst.join("d/f"), "two").unwrap();
        assert_ne!(tree_digest(&dst).unwrap(), before);
        clamp_tree(&dst, 3).unwrap();
        assert_eq!(dst.join("d").metadata().unwrap().mtime(), 3);
    }
}
