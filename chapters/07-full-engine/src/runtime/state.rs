//! One directory per container: its state, its lock, and its status.
//!
//! A runtime has no daemon: `create`, `start`, `kill` and `delete` are
//! separate processes, and what one learns the next must find on disk. runc
//! keeps a directory per container under `--root` (`/run/runc`, a tmpfs, so
//! a reboot empties it); ours is `/run/berth-runtime`, or
//! `$XDG_RUNTIME_DIR/berth-runtime` for a user. In it:
//!
//! - `state.json`: what `create` decided — the init process's PID and its
//!   start time, the bundle, the annotations, the hooks still to run —
//!   written to a temporary file and renamed, so a reader never sees half;
//! - `exec.fifo`: while it exists, the container is *created*: its init
//!   waits to open it until `start` reads from it (see [`EXEC_FIFO`]).
//!
//! Two commands on one container at once (a `kill` racing a `delete`) take
//! turns: each holds an `flock(2)` on the directory while it works.
//!
//! The **status** is never stored: it is read from the kernel each time, so
//! it cannot go stale when a container dies, or when `berth-runtime` itself
//! is killed halfway through a command.
//!
//! | status | how we know |
//! | --- | --- |
//! | stopped | no process with the PID, or one with another start time (the PID was reused), or a zombie |
//! | paused | the process lives and its cgroup is frozen |
//! | created | the process lives and `exec.fifo` exists |
//! | running | otherwise |
//!
//! Man pages: proc(5) (`/proc/PID/stat`: field 3 the state, field 22 the
//! start time), flock(2), fifo(7); runtime-spec `runtime.md` ("State").

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::config::io_reason;

/// The state file in a container's directory.
pub const STATE_FILE: &str = "state.json";
/// The FIFO a created container's init opens for writing, which blocks
/// until `start` opens it for reading: the gate between create and start.
pub const EXEC_FIFO: &str = "exec.fifo";
/// `--root` for root.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// What can go wrong with a container's directory. The messages keep the
/// words engines look for: containerd treats "does not exist" on delete as
/// done, and "container not running" on kill as the process having exited.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "invalid container ID format: {0:?}: use letters, digits and _ + - . (not \".\" or \"..\")"
    )]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotExist(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("{}: unreadable state: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |err| StateError::Io {
        path: path.to_path_buf(),
        reason: io_reason(&err),
    }
}

/// runc's rule: letters, digits, `_`, `+`, `-`, `.`, and not `.` or `..`;
/// so an id is always one plain file name under `--root`.
// ANCHOR: check_id
pub fn check_id(id: &str) -> Result<(), StateError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if id.is_empty() || id == "." || id == ".." || id.len() > 255 || !id.chars().all(allowed) {
        return Err(StateError::InvalidId(id.to_string()));
    }
    Ok(())
}
// ANCHOR_END: check_id

/// What `create` records, in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// The container's init, as the host sees it.
    pub init_process_pid: i32,
    /// Its start time (clock ticks since boot, /proc/PID/stat field 22):
    /// with the PID, it names one process, even after the PID is reused.
    pub init_process_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, nanoseconds, UTC.
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The spec's hooks, for those that run after create (poststart at
    /// start, poststop at delete): config.json may have changed since.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// config.json's process: what `exec` without `--process` starts from.
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    /// `linux.cgroupsPath` as given (none: chapter 3's `/berth/ID`), so
    /// every later command finds the cgroup where create made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
}

/// The lifecycle's states (runtime-spec "State"; `creating` is never
/// seen from outside: `create` holds the lock until the state is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The state directory, `--root`.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

/// A container's directory, locked while this value lives.
#[derive(Debug)]
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    _lock: Flock<File>,
}

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Root {
        Root { path: path.into() }
    }

    /// The default `--root`: /run/berth-runtime for root, else
    /// `$XDG_RUNTIME_DIR/berth-runtime` (as runc does with its own name).
    pub fn default_path(euid_is_root: bool, xdg_runtime_dir: Option<&Path>) -> PathBuf {
        match (euid_is_root, xdg_runtime_dir) {
            (false, Some(dir)) if !dir.as_os_str().is_empty() => dir.join("berth-runtime"),
            _ => PathBuf::from(DEFAULT_ROOT),
        }
    }

    /// Make the directory for a new container, locked. It must not exist:
    /// two `create`s of one id cannot both get here (mkdir is atomic).
    // ANCHOR: create_dir
    pub fn create_dir(&self, id: &str) -> Result<ContainerDir, StateError> {
        check_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io(&self.path))?;
        let path = self.path.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()));
            }
            Err(e) => return Err(io(&path)(e)),
        }
        let lock = lock_dir(&path)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }
    // ANCHOR_END: create_dir

    /// Lock an existing container's directory. Waits for another command
    /// holding it; a directory deleted meanwhile does not exist.
    /// Container `id`'s state as last written, read without its lock (for
    /// a caller that holds the lock already, or needs no consistency with
    /// other fields: `state.json` is replaced whole, never half-written).
    pub fn peek_state(&self, id: &str) -> Option<State> {
        check_id(id).ok()?;
        let bytes = std::fs::read(self.path.join(id).join(STATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn open_dir(&self, id: &str) -> Result<ContainerDir, StateError> {
        check_id(id)?;
        let path = self.path.join(id);
        let lock = match lock_dir(&path) {
            Ok(lock) => lock,
            Err(StateError::Io { .. }) if !path.exists() => {
                return Err(StateError::NotExist(id.to_string()));
            }
            Err(err) => return Err(err),
        };
        // Still the same directory? (`delete` may have removed it while we
        // waited for the lock.)
        let held = lock.metadata().map_err(io(&path))?;
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
            _ => return Err(StateError::NotExist(id.to_string())),
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }

    /// The ids of the containers under the root, sorted. A missing root
    /// means none.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock_dir(path: &Path) -> Result<Flock<File>, StateError> {
    let dir = File::open(path).map_err(io(path))?;
    Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, errno)| StateError::Io {
        path: path.to_path_buf(),
        reason: format!("flock: {}", errno.desc().to_lowercase()),
    })
}

impl ContainerDir {
    /// `state.json`; a directory without one (a `create` killed before it
    /// wrote it) is a container that does not exist, for all but
    /// `delete --force`.
    pub fn read_state(&self) -> Result<State, StateError> {
        let path = self.path.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotExist(self.id.clone()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path,
            why: e.to_string(),
        })
    }

    /// Write `state.json` whole or not at all: a temporary file, fsynced,
    /// renamed over the old one.
    pub fn write_state(&self, state: &State) -> Result<(), StateError> {
        let path = self.path.join(STATE_FILE);
        let temp = self.path.join(format!(".{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec(state).expect("State serializes");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io(&path)(e)
        })
    }

    /// The status of the container this directory describes.
    pub fn status(&self, state: &State, proc_root: &Path, frozen: impl Fn() -> bool) -> Status {
        if !init_alive(proc_root, state) {
            Status::Stopped
        } else if frozen() {
            // runc's order: a frozen container is paused, created or not.
            Status::Paused
        } else if self.path.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Remove the directory and everything in it; the lock goes with it.
    pub fn remove(self) -> Result<(), StateError> {
        std::fs::remove_dir_all(&self.path).map_err(io(&self.path))
    }

    /// Who owns the directory: the user who created the container.
    pub fn owner_uid(&self) -> Option<u32> {
        std::fs::metadata(&self.path).ok().map(|m| m.uid())
    }
}

/// What /proc/PID/stat says of a process: its state letter and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Read `proc_root/PID/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the *last* `)`.
// ANCHOR: proc_stat
pub fn proc_stat(proc_root: &Path, pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: field 3 (state) is fields[0], field 22 is fields[19].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}
// ANCHOR_END: proc_stat

/// True when the container's init is still the process `create` started:
/// same PID, same start time, and not a zombie.
pub fn init_alive(proc_root: &Path, state: &State) -> bool {
    if state.init_process_pid <= 0 {
        return false;
    }
    match proc_stat(proc_root, state.init_process_pid) {
        Some(stat) => {
            stat.start_time == state.init_process_start && !matches!(stat.state, 'Z' | 'X' | 'x')
        }
        None => false,
    }
}

/// The state as the runtime-spec defines it: what `state` prints (with
/// runc's `rootfs`, `created` and `owner` added) and what hooks read on
/// their stdin.
// ANCHOR: spec_state
pub fn spec_state(state: &State, status: Status) -> serde_json::Value {
    let pid = if status == Status::Stopped {
        0
    } else {
        state.init_process_pid
    };
    let mut value = serde_json::json!({
        "ociVersion": state.oci_version,
        "id": state.id,
        "status": status,
        "pid": pid,
        "bundle": state.bundle,
    });
    if !state.annotations.is_empty() {
        value["annotations"] = serde_json::json!(state.annotations);
    }
    value
}
// ANCHOR_END: spec_state

/// A user's name from `etc/passwd` under `root`, or `#UID` as runc shows
/// one it cannot name.
pub fn user_name(root: &Path, uid: u32) -> String {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id: u32 = fields.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, pid: i32, start: u64) -> State {
        State {
            oci_version: "1.2.0".into(),
            id: id.into(),
            init_process_pid: pid,
            init_process_start: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00.000000001Z".into(),
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
            hooks: None,
            process: None,
            cgroups_path: None,
        }
    }

    #[test]
    fn ids_follow_runcs_rules() {
        for good in ["a", "web-1", "A_b+c.d", "0123456789abcdef", "..x", "x.."] {
            check_id(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "a,b",
            "é",
            &"x".repeat(256),
        ] {
            let err = check_id(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid container ID format: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn proc_stat_counts_fields_after_the_last_parenthesis() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("42")).unwrap();
        // A command name with a space and a ") " in it.
        let rest = (4..=52).map(|n| {
            if n == 22 {
                "777".to_string()
            } else {
                n.to_string()
            }
        });
        let line = format!(
            "42 (evil) S 1 (x) S {}\n",
            rest.collect::<Vec<_>>().join(" ")
        );
        std::fs::write(proc_root.path().join("42/stat"), line).unwrap();
        assert_eq!(
            proc_stat(proc_root.path(), 42),
            Some(ProcStat {
                state: 'S',
                start_time: 777
            })
        );
        assert_eq!(proc_stat(proc_root.path(), 43), None);
        // Our own process, for real.
        let me = proc_stat(Path::new("/proc"), std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert!(matches!(me.state, 'R' | 'S'));
    }

    #[test]
    fn the_status_is_read_from_the_kernel_and_survives_pid_reuse() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::new(root_dir.path().join("run"));
        let dir = root.create_dir("c1").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = proc_stat(Path::new("/proc"), pid).unwrap().start_time;
        let proc_root = Path::new("/proc");
        let state = sample("c1", pid, start);
        dir.write_state(&state).unwrap();
        assert_eq!(dir.read_state().unwrap(), state);

        std::fs::write(dir.path.join(EXEC_FIFO), "").unwrap();
        assert_eq!(dir.status(&state, proc_root, || false), Status::Created);
        std::fs::remove_file(dir.path.join(EXEC_FIFO)).unwrap();
        assert_eq!(dir.status(&state, proc_root, || false), Status::Running);
        assert_eq!(dir.status(&state, proc_root, || true), Status::Paused);
        // Another process now holds the PID: same number, other start time.
        let reused = sample("c1", pid, start + 1);
        assert_eq!(dir.status(&reused, proc_root, || false), Status::Stopped);
        // A zombie is stopped: killed, not yet reaped.
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while proc_stat(proc_root, pid).is_some_and(|s| s.state != 'Z') {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(dir.status(&state, proc_root, || false), Status::Stopped);
        child.wait().unwrap();
        assert_eq!(dir.status(&state, proc_root, || false), Status::Stopped);

        let shown = spec_state(&state, Status::Stopped);
        assert_eq!(
            shown,
            serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "stopped", "pid": 0,
                               "bundle": "/b", "annotations": {"k": "v"}})
        );
        drop(dir);
        assert_eq!(root.ids().unwrap(), ["c1"]);
    }

    #[test]
    fn directories_are_exclusive_and_locked() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::new(root_dir.path().join("run"));
        assert!(root.ids().unwrap().is_empty());
        let dir = root.create_dir("c2").unwrap();
        let err = root.create_dir("c2").unwrap_err().to_string();
        assert_eq!(err, "container with id exists: c2");
        assert!(matches!(
            root.create_dir("../c2"),
            Err(StateError::InvalidId(_))
        ));
        // Without state.json it does not exist (a create killed early).
        assert_eq!(
            dir.read_state().unwrap_err().to_string(),
            "container c2 does not exist"
        );

        // Another command waits for the lock; when it gets it, the
        // directory has been removed: it does not exist.
        let root2 = root.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            tx.send(()).unwrap();
            root2.open_dir("c2").map(|_| ()).map_err(|e| e.to_string())
        });
        rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished(), "open_dir did not wait for the lock");
        dir.remove().unwrap();
        assert_eq!(
            waiter.join().unwrap().unwrap_err(),
            "container c2 does not exist"
        );
        assert_eq!(
            root.open_dir("nosuch").unwrap_err().to_string(),
            "container nosuch does not exist"
        );
        let meta = std::fs::metadata(&root.path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
    }

    #[test]
    fn default_root_and_owner_names() {
        assert_eq!(
            Root::default_path(true, Some(Path::new("/run/user/1000"))),
            Path::new(DEFAULT_ROOT)
        );
        assert_eq!(
            Root::default_path(false, Some(Path::new("/run/user/1000"))),
            Path::new("/run/user/1000/berth-runtime")
        );
        assert_eq!(Root::default_path(false, None), Path::new(DEFAULT_ROOT));
        let etc = tempfile::tempdir().unwrap();
        std::fs::create_dir(etc.path().join("etc")).unwrap();
        std::fs::write(
            etc.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/h:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(user_name(etc.path(), 0), "root");
        assert_eq!(user_name(etc.path(), 1000), "bob");
        assert_eq!(user_name(etc.path(), 7), "#7");
    }
}
