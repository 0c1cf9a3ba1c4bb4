//! Where containers live between commands: one directory each.
//!
//! Chapters 1–3 ran a container and forgot it. From chapter 4 on a container
//! has a writable layer that outlives its process — `diff` and `commit` read
//! it after the command has exited — so the engine keeps state on disk:
//! `ROOT/containers/NAME/` with `config.json` (the layers, the driver),
//! `upper/` and `work/` (overlay's writable layer and scratch space) and
//! `merged/` (the container's `/` while it runs). ROOT is `/var/lib/berth`
//! for root, `$XDG_DATA_HOME/berth` otherwise, or `--root`.
//!
//! **Who may look inside.** A writable layer holds whatever the container
//! wrote, and its `merged/` is the image's whole tree while it runs:
//! setuid-root programs, device nodes, world-writable directories. Reached
//! from the host, a setuid file from an image gives any local user root.
//! So no one but the engine's own user may go below ROOT: a root engine's
//! ROOT and `containers/` are mode 0711 (crossed, never listed) and each
//! container's directory 0700 — or, for a container in a user namespace,
//! 0710 with the group of the container's root, which must cross it to
//! reach its `merged/` (docker gives `/var/lib/docker` the remapped root's
//! group for the same reason). A rootless engine's ROOT is 0700: the
//! container's root is the engine's own user. Chapter 5 closes its
//! content store the same way.
//!
//! **Engines that die.** While the container runs, the file `engine` in its
//! directory names the engine's process (pid and start time, which tell it
//! from a later process given the same pid). So `rm` tells a container
//! whose engine is alive, which it refuses to touch, from one whose engine
//! was killed (`kill -9` leaves the file), whose leftovers it cleans up. The container's cgroup is
//! named after the container *and* its ROOT ([`cgroup_id`]): two stores may
//! each run a container called `web`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    #[error(
        "container {name} is running (its engine is pid {pid}, see {}): stop it first",
        .record.display()
    )]
    Running {
        name: String,
        pid: String,
        record: PathBuf,
    },
    #[error(
        "{path} is mode {mode:o} and cannot be made private ({cause}): image content below it would be open to every user; run as the owner of {path}, or chmod {want:o} it"
    )]
    NotPrivate {
        path: PathBuf,
        mode: u32,
        want: u32,
        cause: std::io::Error,
    },
    #[error("no store at {0}: check --root (only pull, load, import and run make one)")]
    NoStore(PathBuf),
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
    /// The record of the engine running the container, while it runs.
    pub fn engine_file(&self) -> PathBuf {
        self.0.join("engine")
    }
}

/// The modes of ROOT and `containers/`: crossed by all (a user namespace's
/// root must reach its `merged/`), listed by none, as root; the user's
/// alone, rootless.
pub fn private_dir_mode() -> u32 {
    if nix::unistd::Uid::effective().is_root() {
        0o711
    } else {
        0o700
    }
}

/// Make `dir` mode `want` if it lets others (or its group) do more, and
/// say why not if we may not change it.
pub fn make_private(dir: &Path, want: u32) -> Result<(), StateError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !want & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want)).map_err(|cause| {
        StateError::NotPrivate {
            path: dir.to_path_buf(),
            mode,
            want,
            cause,
        }
    })
}

/// Create ROOT if missing and close it, and `containers/` if there is one,
/// to other users (a store made before this was open: fixed here).
/// Existing containers' directories lose every permission for others.
pub fn prepare_root(root: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(private_dir_mode())
        .create(root)
        .map_err(io(root))?;
    make_private(root, private_dir_mode())?;
    let containers = root.join("containers");
    if !containers.is_dir() {
        return Ok(());
    }
    make_private(&containers, private_dir_mode())?;
    for entry in std::fs::read_dir(&containers).map_err(io(&containers))? {
        let path = entry.map_err(io(&containers))?.path();
        if path.is_dir() {
            let mode = std::fs::metadata(&path)
                .map_err(io(&path))?
                .permissions()
                .mode();
            make_private(&path, mode & 0o770)?;
        }
    }
    Ok(())
}

/// The name of container `name`'s cgroup: the name, and 8 hex digits of
/// the sha256 of ROOT's absolute path, so containers of the same name in
/// two stores do not collide, and the name stays readable.
pub fn cgroup_id(root: &Path, name: &str) -> String {
    let root = std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf());
    let hash = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// The record of the engine running a container, removed when dropped.
#[derive(Debug)]
pub struct EngineRecord(PathBuf);

impl Drop for EngineRecord {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// When process `pid` started (field 22 of `PROC/PID/stat`, in clock ticks
/// since boot): with the pid, it names one process, even after the pid is
/// reused.
pub fn process_start(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Record in the container's directory that this process runs it: its pid
/// and start time. A lock would not do: the container's init is forked
/// from the engine and would inherit it, keeping it held after the engine
/// is killed.
pub fn record_engine(dir: &ContainerDir, proc_root: &Path) -> Result<EngineRecord, StateError> {
    let path = dir.engine_file();
    let pid = std::process::id();
    let start = process_start(proc_root, pid).unwrap_or(0);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    writeln!(file, "{pid} {start}").map_err(io(&path))?;
    Ok(EngineRecord(path))
}

/// Refuse if the engine of container `name` (in `dir`) is alive: the
/// process its record names exists and started when the record says. No
/// record (the engine finished, or the container was made before records)
/// means no engine.
pub fn check_engine_gone(
    dir: &ContainerDir,
    name: &str,
    proc_root: &Path,
) -> Result<(), StateError> {
    let path = dir.engine_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start))) = (fields.next(), fields.next()) else {
        return Ok(()); // torn by a crash while it was written: no engine
    };
    let alive = u32::try_from(pid)
        .ok()
        .and_then(|pid| process_start(proc_root, pid))
        .is_some_and(|now| now == start);
    if alive {
        return Err(StateError::Running {
            name: name.to_string(),
            pid: pid.to_string(),
            record: path,
        });
    }
    Ok(())
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

/// Refuse `name` if it is not a container name, or taken in ROOT.
pub fn check_free(root: &Path, name: &str) -> Result<(), StateError> {
    check_name(name)?;
    if root.join("containers").join(name).exists() {
        return Err(StateError::Exists(name.to_string()));
    }
    Ok(())
}

/// Create `ROOT/containers/NAME/` (mode 0700) with its config; refuse an
/// existing name.
pub fn create(root: &Path, state: &ContainerState) -> Result<ContainerDir, StateError> {
    check_name(&state.name)?;
    prepare_root(root)?;
    let containers = root.join("containers");
    match std::fs::DirBuilder::new()
        .mode(private_dir_mode())
        .create(&containers)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(&containers)(e)),
    }
    let dir = containers.join(&state.name);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
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

/// Refuse a ROOT that does not exist: commands that only read state must
/// not make a store (a mistyped `--root` would look empty, not wrong).
pub fn check_root(root: &Path) -> Result<(), StateError> {
    if root.is_dir() {
        Ok(())
    } else {
        Err(StateError::NoStore(root.to_path_buf()))
    }
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
