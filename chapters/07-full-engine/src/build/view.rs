//! A stage's filesystem without mounting it: its unpacked layers looked
//! through from the top, as overlayfs would (the top entry wins, a 0/0
//! character device is a whiteout, an opaque directory hides what lies
//! below it). COPY reads `--from` stages through it, and asks it whether a
//! destination is an existing directory.
//!
//! Symlinks met on the way are resolved inside the stage (an absolute
//! target starts again at the stage's root, `..` stops at it), so a link
//! never leads out to the host.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many symlinks one lookup may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// A stage's layers, bottom first.
#[derive(Debug, Clone, Default)]
pub struct LayerView {
    pub layers: Vec<PathBuf>,
}

fn is_whiteout(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn is_opaque(path: &Path) -> bool {
    ch04_overlay::commit::is_opaque(path).unwrap_or(false)
}

impl LayerView {
    pub fn new(layers: Vec<PathBuf>) -> LayerView {
        LayerView { layers }
    }

    /// The host path of the entry at `rel` (components, no symlinks
    /// followed), if the stage has one.
    fn entry(&self, rel: &[String]) -> Option<PathBuf> {
        for layer in self.layers.iter().rev() {
            let mut hidden_below = false;
            for depth in 1..=rel.len() {
                let path = layer.join(rel[..depth].join("/"));
                if is_whiteout(&path) {
                    return None;
                }
                match path.symlink_metadata() {
                    Ok(meta) if depth < rel.len() && !meta.is_dir() => {
                        // A file over a directory of the same name below.
                        return None;
                    }
                    Ok(_) if depth < rel.len() && is_opaque(&path) => hidden_below = true,
                    Ok(_) => {}
                    Err(_) => break,
                }
                if depth == rel.len() {
                    return Some(path);
                }
            }
            if rel.is_empty() {
                return Some(layer.clone());
            }
            if hidden_below {
                return None;
            }
        }
        None
    }

    /// `path` (absolute in the stage) resolved, symlinks followed inside
    /// the stage: its components, and the host path of its entry.
    pub fn resolve(&self, path: &str) -> Option<(String, PathBuf)> {
        let mut todo: Vec<String> = path
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
            let entry = self.entry(&done)?;
            let meta = entry.symlink_metadata().ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return None;
                }
                let target = std::fs::read_link(&entry).ok()?;
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
        let entry = self.entry(&done)?;
        Some((done.join("/"), entry))
    }

    /// Whether `path` is a directory in the stage (symlinks followed).
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path)
            .is_some_and(|(_, p)| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
    }

    /// The host entry at `rel` without following its last component.
    pub fn entry_at(&self, rel: &str) -> Option<PathBuf> {
        let parts: Vec<String> = rel
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        self.entry(&parts)
    }

    /// The merged listing of directory `rel`: name → host path.
    pub fn list(&self, rel: &str) -> BTreeMap<String, PathBuf> {
        let parts: Vec<String> = rel
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let mut names = BTreeMap::new();
        let mut gone = std::collections::BTreeSet::new();
        for layer in self.layers.iter().rev() {
            let dir = layer.join(parts.join("/"));
            let Ok(meta) = dir.symlink_metadata() else {
                if is_whiteout(&dir) {
                    break;
                }
                continue;
            };
            if !meta.is_dir() {
                break;
            }
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if names.contains_key(&name) || gone.contains(&name) {
                    continue;
                }
                if is_whiteout(&entry.path()) {
                    gone.insert(name);
                } else {
                    names.insert(name, entry.path());
                }
            }
            if is_opaque(&dir) {
                break;
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_layer_wins_and_links_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let (low, up) = (tmp.path().join("low"), tmp.path().join("up"));
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::write(low.join("etc/a"), "low").unwrap();
        std::fs::write(low.join("etc/b"), "low").unwrap();
        std::fs::write(up.join("etc/a"), "up").unwrap();
        std::os::unix::fs::symlink("/etc/../../../etc", up.join("link")).unwrap();
        let view = LayerView::new(vec![low.clone(), up.clone()]);
        let (rel, a) = view.resolve("/etc/a").unwrap();
        assert_eq!(rel, "etc/a");
        assert_eq!(std::fs::read_to_string(a).unwrap(), "up");
        assert_eq!(view.resolve("/link/b").unwrap().1, low.join("etc/b"));
        assert!(view.is_dir("/link"));
        let names: Vec<String> = view.list("/etc").into_keys().collect();
        assert_eq!(names, ["a", "b"]);
        assert!(view.resolve("/nope").is_none());
    }
}
