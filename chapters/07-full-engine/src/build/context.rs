//! The build context: the files COPY and ADD may read.
//!
//! A directory, a tarball (plain or gzip) unpacked into a temporary
//! directory, or `-` (stdin: a tarball, or else a Dockerfile alone with an
//! empty context), with its `.dockerignore` (see [`super::ignore`]).
//!
//! Every source path is resolved *inside* the context: `..` is refused, a
//! symlink is followed as if the context were the root (an absolute
//! target starts again at the context's root), so nothing outside it is
//! ever read; the files inside a copied directory are copied as they are,
//! symlinks as symlinks.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ignore::{self, Ignore};

/// How many symlinks one lookup may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// A context that cannot be used, or a source it does not have.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("unable to prepare context: {0}")]
    Prepare(String),
    #[error("forbidden path outside the build context: {0}")]
    Outside(String),
    #[error(
        "file not found in build context or excluded by .dockerignore: stat {0}: file does not exist"
    )]
    NotFound(String),
    #[error("no source files were specified matching {0}")]
    NoMatch(String),
}

/// An open build context.
pub struct Context {
    /// Its root directory.
    pub root: PathBuf,
    pub ignore: Ignore,
    /// The Dockerfile's text, when it came with the context (stdin).
    pub dockerfile_text: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

fn prepare(what: &str, e: impl std::fmt::Display) -> ContextError {
    ContextError::Prepare(format!("{what}: {e}"))
}

/// Whether `bytes` start a tar (ustar magic) or gzip stream.
fn is_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b]) || bytes.get(257..262) == Some(b"ustar")
}

/// Unpack the (maybe gzip) tar `bytes` into `dir`; entries that would land
/// outside it are refused by the tar crate's `unpack_in`. `keep_owners`:
/// the archive's uid and gid too (ADD, as docker's; a context's owners do
/// not matter, COPY sets its own).
pub fn unpack_archive(bytes: &[u8], dir: &Path, keep_owners: bool) -> Result<(), ContextError> {
    let reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(keep_owners);
    for entry in archive
        .entries()
        .map_err(|e| prepare("read the archive", e))?
    {
        let mut entry = entry.map_err(|e| prepare("read the archive", e))?;
        entry
            .unpack_in(dir)
            .map_err(|e| prepare("unpack the archive", e))?;
    }
    Ok(())
}

impl Context {
    /// Open the context `spec` (a directory, a tarball, `-`).
    pub fn open(spec: &str, temp_in: &Path) -> Result<Context, ContextError> {
        let temp = || tempfile::tempdir_in(temp_in).map_err(|e| prepare("temporary directory", e));
        let (root, dockerfile_text, temp_dir) = if spec == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| prepare("read stdin", e))?;
            let dir = temp()?;
            if is_archive(&bytes) {
                unpack_archive(&bytes, dir.path(), false)?;
                (dir.path().to_path_buf(), None, Some(dir))
            } else {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                (dir.path().to_path_buf(), Some(text), Some(dir))
            }
        } else {
            let path = Path::new(spec);
            let meta = path
                .metadata()
                .map_err(|e| prepare(&format!("path {spec:?} not found"), e))?;
            if meta.is_dir() {
                let root = path
                    .canonicalize()
                    .map_err(|e| prepare(&format!("resolve {spec}"), e))?;
                (root, None, None)
            } else {
                let bytes = std::fs::read(path).map_err(|e| prepare(&format!("read {spec}"), e))?;
                if !is_archive(&bytes) {
                    return Err(ContextError::Prepare(format!(
                        "{spec} is neither a directory nor a tar archive"
                    )));
                }
                let dir = temp()?;
                unpack_archive(&bytes, dir.path(), false)?;
                (dir.path().to_path_buf(), None, Some(dir))
            }
        };
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Ignore::parse(&text),
            Err(_) => Ignore::default(),
        };
        Ok(Context {
            root,
            ignore,
            dockerfile_text,
            _temp: temp_dir,
        })
    }

    /// `rel` (context-relative) resolved inside the context, symlinks
    /// followed as if the context were `/`: the resolved relative path.
    pub fn resolve(&self, rel: &str) -> Option<String> {
        let mut todo: Vec<String> = rel
            .split('/')
            .filter(|p| !p.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => done.push(part),
            }
            let path = self.root.join(done.join("/"));
            let meta = path.symlink_metadata().ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return None;
                }
                let target = std::fs::read_link(&path).ok()?;
                let target = target.to_string_lossy().into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|p| !p.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
        }
        Some(done.join("/"))
    }

    /// The sources a COPY names: context-relative paths that exist and
    /// are not ignored (wildcards expanded, in name order).
    pub fn sources(&self, pattern: &str) -> Result<Vec<String>, ContextError> {
        let cleaned = ignore::clean(pattern);
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::Outside(pattern.to_string()));
        }
        if !ignore::has_wildcards(&cleaned) {
            let Some(rel) = self.resolve(&cleaned) else {
                return Err(ContextError::NotFound(pattern.to_string()));
            };
            if !rel.is_empty() && self.ignore.excludes(&rel) && !self.is_dir(&rel) {
                return Err(ContextError::NotFound(pattern.to_string()));
            }
            return Ok(vec![rel]);
        }
        // Wildcards: match component by component.
        let mut found = vec![String::new()];
        for part in cleaned.split('/') {
            let mut next = Vec::new();
            for dir in &found {
                let path = self.root.join(dir);
                let mut names: Vec<String> = std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    if ignore::glob_matches(part, &name) {
                        next.push(if dir.is_empty() {
                            name
                        } else {
                            format!("{dir}/{name}")
                        });
                    }
                }
            }
            found = next;
        }
        found.retain(|rel| !self.ignore.excludes(rel) || self.is_dir(rel));
        if found.is_empty() {
            return Err(ContextError::NoMatch(pattern.to_string()));
        }
        Ok(found)
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.root
            .join(rel)
            .symlink_metadata()
            .is_ok_and(|m| m.is_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(tmp: &Path) -> Context {
        let root = tmp.join("ctx");
        std::fs::create_dir_all(root.join("site/css")).unwrap();
        std::fs::write(root.join("site/index.html"), "hi").unwrap();
        std::fs::write(root.join("site/a.html"), "a").unwrap();
        std::fs::write(root.join("site/css/x.css"), "x").unwrap();
        std::fs::write(root.join("secret.key"), "k").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.key\n").unwrap();
        std::fs::write(tmp.join("outside"), "host").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/site", root.join("abs")).unwrap();
        Context::open(root.to_str().unwrap(), tmp).unwrap()
    }

    #[test]
    fn sources_resolve_inside_the_context() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        assert_eq!(ctx.sources("site/index.html").unwrap(), ["site/index.html"]);
        assert_eq!(
            ctx.sources("site/*.html").unwrap(),
            ["site/a.html", "site/index.html"]
        );
        // An absolute link starts again at the context's root.
        assert_eq!(ctx.sources("abs/a.html").unwrap(), ["site/a.html"]);
        // `..` is refused; a link leading out stays in (and finds nothing).
        assert!(matches!(
            ctx.sources("../outside"),
            Err(ContextError::Outside(_))
        ));
        assert!(matches!(ctx.sources("up"), Err(ContextError::NotFound(_))));
        // .dockerignore'd.
        assert!(matches!(
            ctx.sources("secret.key"),
            Err(ContextError::NotFound(_))
        ));
        assert!(matches!(
            ctx.sources("*.key"),
            Err(ContextError::NoMatch(_))
        ));
    }

    #[test]
    fn an_archive_cannot_write_through_its_own_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // Written by hand: tar::Builder refuses such names.
        for (n, path) in ["l/evil", "../evil"].into_iter().enumerate() {
            let mut raw = Vec::new();
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            link.set_mode(0o777);
            link.set_path("l").unwrap();
            link.set_link_name(&outside).unwrap();
            link.set_cksum();
            raw.extend_from_slice(link.as_bytes());
            let mut file = tar::Header::new_gnu();
            file.set_size(4);
            file.set_mode(0o644);
            let name = &mut file.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            file.set_cksum();
            raw.extend_from_slice(file.as_bytes());
            raw.extend_from_slice(b"evil");
            raw.extend_from_slice(&[0u8; 508]);
            raw.extend_from_slice(&[0u8; 1024]);
            let dir = tmp.path().join(format!("in{n}"));
            std::fs::create_dir(&dir).unwrap();
            assert!(unpack_archive(&raw, &dir, true).is_err(), "{path}");
            assert!(
                dir.join("l").symlink_metadata().is_ok(),
                "the link itself unpacks"
            );
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{path}");
            assert!(!tmp.path().join("evil").exists(), "{path}");
        }
    }

    #[test]
    fn a_tarball_is_a_context() {
        let tmp = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "Dockerfile", &b"FROM "[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let path = tmp.path().join("ctx.tar");
        std::fs::write(&path, bytes).unwrap();
        let ctx = Context::open(path.to_str().unwrap(), tmp.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(ctx.root.join("Dockerfile")).unwrap(),
            "FROM "
        );
        std::fs::write(tmp.path().join("plain"), "x").unwrap();
        assert!(Context::open(tmp.path().join("plain").to_str().unwrap(), tmp.path()).is_err());
    }
}
