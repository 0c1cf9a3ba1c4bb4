//! Names unique on one root, and what a user may type to mean a container.
//!
//! Each name is a symbolic link `ROOT/names/NAME -> ID`. Taking a name is
//! done under one lock for the whole root (`names.lock`, flock(2)), so two
//! `run --name web` at once cannot both win: the first makes the link, the
//! second finds it. A link is only a claim while its container exists
//! (its directory holds a record, or its creator still holds its lock); a
//! link left by an engine killed halfway is taken over.
//!
//! A container is named on the command line as docker allows: its whole
//! id, its name, or a prefix of its id that fits no other container, in that
//! order (docker's daemon looks them up the same way).
//!
//! Man pages: symlink(2), readlink(2), flock(2).

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

use super::ids::is_full_id;
use super::record::{ContainerDir, RECORD_FILE, RecordError, lock_path};
use super::roots::Roots;

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// docker's message, word for word.
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    InUse { name: String, id: String },
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NameError + '_ {
    move |cause| NameError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// The names of one root.
pub struct Names<'a> {
    roots: &'a Roots,
}

/// The root's name lock, held until dropped.
pub struct NamesLock(#[allow(dead_code)] Flock<File>);

impl<'a> Names<'a> {
    pub fn new(roots: &'a Roots) -> Names<'a> {
        Names { roots }
    }

    /// Take the names lock (creating the state root's directories).
    pub fn lock(&self) -> Result<NamesLock, NameError> {
        for dir in [self.roots.names(), self.roots.containers()] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(NamesLock(lock_path(&self.roots.names_lock())?))
    }

    /// The id `name` belongs to, if a container has it.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let id = self.link_target(name)?;
        self.exists(&id).then_some(id)
    }

    fn link_target(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.roots.names().join(name)).ok()?;
        let id = target.to_str()?.to_string();
        is_full_id(&id).then_some(id)
    }

    /// Whether container `id` exists: it has a record, or its creator is
    /// still at work (holds its lock).
    fn exists(&self, id: &str) -> bool {
        let dir = ContainerDir(self.roots.container(id));
        if dir.record().exists() {
            return true;
        }
        if !dir.0.exists() {
            return false;
        }
        // A directory without a record: being made, or left by a crash.
        match std::fs::File::open(dir.lock_file()) {
            Ok(file) => {
                Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
                    && !dir.record().exists()
            }
            Err(_) => false,
        }
    }

    /// Give `name` to `id`, under the names lock. A name whose container no
    /// longer exists is taken over.
    pub fn reserve(&self, _lock: &NamesLock, name: &str, id: &str) -> Result<(), NameError> {
        let link = self.roots.names().join(name);
        if let Some(owner) = self.link_target(name) {
            if owner != id && self.exists(&owner) {
                return Err(NameError::InUse {
                    name: name.to_string(),
                    id: owner,
                });
            }
            std::fs::remove_file(&link).map_err(io(&link))?;
        } else if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).map_err(io(&link))?;
        }
        std::os::unix::fs::symlink(id, &link).map_err(io(&link))
    }

    /// Drop `name`, if it is still `id`'s.
    pub fn release(&self, name: &str, id: &str) {
        if self.link_target(name).as_deref() == Some(id) {
            let _ = std::fs::remove_file(self.roots.names().join(name));
        }
    }

    /// Whether `name` is taken (for made-up names).
    pub fn taken(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }
}

/// Every container id under the root, sorted.
pub fn all_ids(roots: &Roots) -> Result<Vec<String>, NameError> {
    let dir = roots.containers();
    let mut ids: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_full_id(name))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io(&dir)(e)),
    };
    ids.sort();
    Ok(ids)
}

/// What `text` (an id, a name, or an id prefix) means: the container's id.
pub fn resolve(roots: &Roots, text: &str) -> Result<String, NameError> {
    let text = text.strip_prefix('/').unwrap_or(text);
    let has_record = |id: &str| roots.container(id).join(RECORD_FILE).exists();
    // 1. A whole id.
    if is_full_id(text) && has_record(text) {
        return Ok(text.to_string());
    }
    // 2. A name.
    if !text.is_empty()
        && !text.contains('/')
        && let Some(id) = Names::new(roots).lookup(text)
        && has_record(&id)
    {
        return Ok(id);
    }
    // 3. A prefix of exactly one id.
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let lower = text.to_ascii_lowercase();
        let matches: Vec<String> = all_ids(roots)?
            .into_iter()
            .filter(|id| id.starts_with(&lower) && has_record(id))
            .collect();
        match matches.len() {
            1 => return Ok(matches.into_iter().next().expect("one match")),
            0 => {}
            _ => return Err(NameError::Ambiguous(text.to_string())),
        }
    }
    Err(NameError::NotFound(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::Container;

    fn make(roots: &Roots, id: &str) {
        let dir = ContainerDir(roots.container(id));
        std::fs::create_dir_all(&dir.0).unwrap();
        dir.save(&Container::default()).unwrap();
    }

    #[test]
    fn names_are_unique_and_ids_resolve_by_name_id_or_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = Roots::new(Some(tmp.path().into()), Some(tmp.path().join("run")));
        let names = Names::new(&roots);
        let (a, b) = ("a".repeat(64), format!("ab{}", "c".repeat(62)));
        let lock = names.lock().unwrap();
        names.reserve(&lock, "web", &a).unwrap();
        make(&roots, &a);
        make(&roots, &b);
        let err = names.reserve(&lock, "web", &b).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "Conflict. The container name \"/web\" is already in use by container \"aaaa"
            ),
            "{err}"
        );
        assert_eq!(resolve(&roots, "web").unwrap(), a);
        assert_eq!(resolve(&roots, "/web").unwrap(), a);
        assert_eq!(resolve(&roots, &a).unwrap(), a);
        assert_eq!(resolve(&roots, "abc").unwrap(), b);
        assert_eq!(
            resolve(&roots, "a").unwrap_err().to_string(),
            "multiple IDs found with provided prefix: a"
        );
        assert_eq!(
            resolve(&roots, "nosuch").unwrap_err().to_string(),
            "No such container: nosuch"
        );
        // The container goes: its name is free again, even with the link left.
        std::fs::remove_dir_all(roots.container(&a)).unwrap();
        assert_eq!(names.lookup("web"), None);
        names.reserve(&lock, "web", &b).unwrap();
        assert_eq!(resolve(&roots, "web").unwrap(), b);
        names.release("web", &a);
        assert_eq!(names.lookup("web").as_deref(), Some(b.as_str()));
        names.release("web", &b);
        assert_eq!(names.lookup("web"), None);
    }
}
