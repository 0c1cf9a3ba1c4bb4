//! Where containers live between commands: one directory each.
//!
//! Chapters 1–3 ran a container and forgot it. From chapter 4 on a container
//! has a writable layer that outlives its process — `diff` and `commit` read
//! it after the command has exited — so the engine keeps state on disk:
//! `ROOT/containers/NAME/` with `config.json` (the layers, the driver),
//! `upper/` and `work/` (overlay's writable layer and scratch space) and
//! `merged/` (the container's `/` while it runs). ROOT is `/var/lib/berth`
//! for root, `$XDG_DATA_HOME/berth` otherwise, or `--root`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a container's filesystem is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageDriver {
    /// overlayfs: layers shared, changes in upper/.
    Overlay,
    /// A full copy of the layers per container (docker's "vfs").
    Vfs,
}

/// `config.json` of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub name: String,
    /// Read-only layers, bottom first, as absolute paths.
    pub layers: Vec<PathBuf>,
    pub driver: StorageDriver,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0} already exists: choose another --name, or remove it with `rm {0}`")]
    Exists(String),
    #[error("no container {name} in {root}: see `ps` for the containers there")]
    NotFound { name: String, root: PathBuf },
    #[error(
        "{0:?}: not a container name: use letters, digits, '-', '_' and '.', starting with a letter or digit"
    )]
    BadName(String),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a container config: {cause}")]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
}

/// The default state root for this user.
pub fn default_root() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/berth");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    data.join("berth")
}

/// The state directory of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDir(pub PathBuf);

impl ContainerDir {
    pub fn upper(&self) -> PathBuf {
        self.0.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.0.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.0.join("merged")
    }
    fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |cause| StateError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

fn check_name(name: &str) -> Result<(), StateError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadName(name.to_string()))
    }
}

/// Create `ROOT/containers/NAME/` with its config; refuse an existing name.
pub fn create(root: &Path, state: &ContainerState) -> Result<ContainerDir, StateError> {
    check_name(&state.name)?;
    let containers = root.join("containers");
    std::fs::create_dir_all(&containers).map_err(io(&containers))?;
    let dir = containers.join(&state.name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StateError::Exists(state.name.clone()));
        }
        Err(e) => return Err(io(&dir)(e)),
    }
    let dir = ContainerDir(dir);
    let json = serde_json::to_string_pretty(state).map_err(|cause| StateError::Json {
        path: dir.config(),
        cause,
    })?;
    std::fs::write(dir.config(), json + "\n").map_err(io(&dir.config()))?;
    Ok(dir)
}

/// Read container NAME's config.
pub fn load(root: &Path, name: &str) -> Result<(ContainerDir, ContainerState), StateError> {
    check_name(name)?;
    let dir = ContainerDir(root.join("containers").join(name));
    let text = std::fs::read_to_string(dir.config()).map_err(|cause| {
        if cause.kind() == std::io::ErrorKind::NotFound {
            StateError::NotFound {
                name: name.to_string(),
                root: root.to_path_buf(),
            }
        } else {
            io(&dir.config())(cause)
        }
    })?;
    let state = serde_json::from_str(&text).map_err(|cause| StateError::Json {
        path: dir.config(),
        cause,
    })?;
    Ok((dir, state))
}

/// Every container under ROOT, sorted by name.
pub fn list(root: &Path) -> Result<Vec<ContainerState>, StateError> {
    let containers = root.join("containers");
    let mut names: Vec<String> = match std::fs::read_dir(&containers) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io(&containers)(e)),
    };
    names.sort();
    names
        .iter()
        .map(|n| load(root, n).map(|(_, s)| s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_created_once_loaded_and_listed() {
        let root = tempfile::tempdir().unwrap();
        let state = ContainerState {
            name: "web".into(),
            layers: vec!["/l/base".into()],
            driver: StorageDriver::Overlay,
        };
        let dir = create(root.path(), &state).unwrap();
        assert!(matches!(
            create(root.path(), &state),
            Err(StateError::Exists(_))
        ));
        assert_eq!(load(root.path(), "web").unwrap(), (dir, state.clone()));
        assert_eq!(list(root.path()).unwrap(), [state]);
        let err = load(root.path(), "db").unwrap_err();
        assert!(err.to_string().starts_with("no container db in"), "{err}");
        for bad in ["", "../x", "a/b", "-x"] {
            assert!(
                matches!(check_name(bad), Err(StateError::BadName(_))),
                "{bad}"
            );
        }
    }
}
