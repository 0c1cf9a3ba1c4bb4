//! Where the engine keeps what it knows: two roots with two lifetimes.
//!
//! - The **state root** (`/var/lib/berth` for root, `$XDG_DATA_HOME/berth`
//!   otherwise, `--root`) holds what must survive a reboot: chapter 5's
//!   image store, and one directory per container with its record, its
//!   writable layer and its logs.
//! - The **run root** (`/run/berth`, `$XDG_RUNTIME_DIR/berth`,
//!   `--run-root` or `BERTH_RUN_ROOT`) holds what only means something
//!   while the machine is up: the runtime's state directories, each
//!   monitor's pid file and sockets. `/run` is a tmpfs, emptied by a
//!   reboot, and that is right: after a reboot no container runs, and the
//!   engine must never trust a pid written before it (see
//!   [`super::reconcile`]).
//!
//! ```text
//! ROOT/containers/ID/config.v2.json   the record (docker's inspect fields)
//! ROOT/containers/ID/config.json      chapter 4's state: layers, driver
//! ROOT/containers/ID/image            chapter 5: the image it was made from
//! ROOT/containers/ID/upper, work      overlay's writable layer
//! ROOT/containers/ID/merged           the rootfs, mounted while it runs
//! ROOT/containers/ID/bundle/config.json   the OCI bundle's config
//! ROOT/containers/ID/hostname, hosts, resolv.conf
//! ROOT/containers/ID/ID-json.log      the logs (docker's json-file)
//! ROOT/containers/ID/lock             flock(2)ed for every state change
//! ROOT/names/NAME                     a symlink to the container's id
//! ROOT/names.lock                     flock(2)ed while a name is taken
//! ROOT/events.log                     one JSON line per state change
//! RUN/runtime/RUNTIME/                the runtime's --root
//! RUN/ID/monitor.pid                  the monitor's pid and start time
//! RUN/ID/attach.sock, ctl.sock        the monitor's sockets
//! ```
//!
//! Man pages: hier(7) ("/run", "/var/lib"), file-hierarchy(7).

use std::path::{Path, PathBuf};

/// The environment variable that overrides the run root.
pub const RUN_ROOT_ENV: &str = "BERTH_RUN_ROOT";

/// The two roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// What survives a reboot.
    pub root: PathBuf,
    /// What a reboot empties.
    pub run: PathBuf,
}

impl Roots {
    /// The roots for this user, unless given.
    pub fn new(root: Option<PathBuf>, run: Option<PathBuf>) -> Roots {
        let root = root.unwrap_or_else(ch04_overlay::state::default_root);
        let run = run
            .or_else(|| std::env::var_os(RUN_ROOT_ENV).map(PathBuf::from))
            .unwrap_or_else(default_run_root);
        Roots {
            root: absolute(root),
            run: absolute(run),
        }
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    pub fn names(&self) -> PathBuf {
        self.root.join("names")
    }
    pub fn names_lock(&self) -> PathBuf {
        self.root.join("names.lock")
    }
    pub fn events(&self) -> PathBuf {
        self.root.join("events.log")
    }
    /// The runtime `name`'s `--root`: one per runtime, since runc, crun
    /// and berth-runtime each keep their own state format.
    pub fn runtime_root(&self, name: &str) -> PathBuf {
        self.run.join("runtime").join(name)
    }
    /// Container `id`'s directory under the run root.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join(id)
    }
}

/// `/run/berth` for root; `$XDG_RUNTIME_DIR/berth` for anyone else (the
/// per-user tmpfs systemd makes), else a directory of the user's in /tmp.
pub fn default_run_root() -> PathBuf {
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        return PathBuf::from("/run/berth");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("berth"),
        _ => PathBuf::from(format!("/tmp/berth-run-{uid}")),
    }
}

/// Paths given relative to the working directory are made absolute: the
/// monitor and the runtime run elsewhere.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_roots_are_kept_and_made_absolute() {
        let roots = Roots::new(Some("/srv/b".into()), Some("rel/run".into()));
        assert_eq!(roots.root, Path::new("/srv/b"));
        assert!(roots.run.is_absolute() && roots.run.ends_with("rel/run"));
        assert_eq!(roots.container("abc"), Path::new("/srv/b/containers/abc"));
        assert_eq!(roots.runtime_root("runc"), roots.run.join("runtime/runc"));
    }
}
