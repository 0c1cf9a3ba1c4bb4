//! The engine: images and `docker run` flags in, containers with a life of
//! their own out.
//!
//! An [`Engine`] is two directories (see [`roots`]) and the operations on
//! them. It has no daemon: each `berth` command opens the engine, takes the
//! locks it needs, does its work and exits, as podman does. What must
//! outlive the command is done by the per-container monitor
//! (`crate::monitor`), and what actually runs a container is an OCI runtime
//! (runc, crun, berth-runtime) the engine talks to through its command line.
//!
//! Read the modules in this order:
//!
//! 1. [`roots`] — where state lives: a state root and a run root.
//! 2. [`ids`], [`names`] — ids, names, and what a user may type.
//! 3. [`record`] — a container's record, docker's inspect document.
//! 4. [`events`] — the log of state changes.
//! 5. [`create`] — an image and flags become a container.
//! 6. [`rootfs`], [`network`], [`security`], [`seccomp_profile`],
//!    [`bundle`] — what a start prepares: the overlay, the network and
//!    the /etc files, the config.json.
//! 7. [`runtime_client`] — speaking runc's command line.
//! 8. [`start`], [`monitor_client`] — starting: the monitor takes over.
//! 9. [`control`] — stop, kill, pause, restart, wait, rename.
//! 10. [`remove`] — rm, prune, and the cleanup the monitor calls.
//! 11. [`reconcile`] — after a crash or a reboot, the truth.
//! 12. [`logs`], [`exec`], [`top`] — looking at running containers.
//! 13. [`commit`] — a container's writable layer as a new image.
//! 14. [`settings`] — the settings file, docker's `daemon.json`.
//!
//! The API, for the commands to come (images, volumes, commit, events):
//! [`Engine::image_store`] is chapter 5's store at the state root;
//! [`Engine::containers`] and [`Engine::container`] read records (with
//! their liveness checked); every state change appends to
//! [`Engine::events_log`].

pub mod bundle;
pub mod commit;
pub mod control;
pub mod create;
pub mod events;
pub mod exec;
pub mod filesystem;
pub mod ids;
pub mod logs;
pub mod monitor_client;
pub mod names;
pub mod network;
pub mod reconcile;
pub mod record;
pub mod remove;
pub mod rootfs;
pub mod roots;
pub mod runtime_client;
pub mod seccomp_profile;
pub mod security;
pub mod settings;
pub mod start;
pub mod stats;
pub mod top;
pub mod update;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ch05_images::store::Store;

use names::NameError;
use record::{Container, ContainerDir, RecordError};
use roots::Roots;
use runtime_client::RuntimeError;

/// How a command failed, with docker's words where docker has them.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The container's program could not be started; `code` is docker's
    /// exit code for it (125, 126, 127).
    #[error("{message}")]
    Start { code: i32, message: String },
    /// Anything else, worded for the user.
    #[error("{0}")]
    Message(String),
}

impl EngineError {
    pub fn msg(text: impl Into<String>) -> EngineError {
        EngineError::Message(text.into())
    }

    /// The exit code `docker run` gives this error.
    pub fn run_exit_code(&self) -> i32 {
        match self {
            EngineError::Start { code, .. } => *code,
            _ => 125,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Where an engine keeps its state, and how it finds its helpers.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// `--root`: the state root.
    pub root: Option<PathBuf>,
    /// `--run-root`: the run root.
    pub run_root: Option<PathBuf>,
    /// The settings file's (`daemon.json`).
    pub settings: settings::Settings,
}

/// The engine.
pub struct Engine {
    roots: Roots,
    proc_root: PathBuf,
    store: OnceLock<Store>,
    settings: settings::Settings,
}

impl Engine {
    pub fn open(options: EngineOptions) -> Engine {
        Engine {
            roots: Roots::new(options.root, options.run_root),
            proc_root: PathBuf::from("/proc"),
            store: OnceLock::new(),
            settings: options.settings,
        }
    }

    /// What the settings file says.
    pub fn settings(&self) -> &settings::Settings {
        &self.settings
    }

    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Chapter 5's image store, at the state root.
    pub fn image_store(&self) -> Result<&Store> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = Store::open(&self.roots.root).map_err(|e| {
            EngineError::msg(format!(
                "open the image store in {}: {e}",
                self.roots.root.display()
            ))
        })?;
        Ok(self.store.get_or_init(|| store))
    }

    /// The events log (`berth events` reads it).
    pub fn events_log(&self) -> PathBuf {
        self.roots.events()
    }

    /// Append an event about container `c`.
    pub fn event(&self, action: &str, c: &Container, extra: &[(&str, String)]) {
        events::append(
            &self.roots.events(),
            &events::Event::container(action, &c.id, c.name(), &c.config.image, extra),
        );
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> ContainerDir {
        ContainerDir(self.roots.container(id))
    }

    /// The id of what the user typed (an id, a prefix, a name).
    pub fn resolve(&self, text: &str) -> Result<String> {
        Ok(names::resolve(&self.roots, text)?)
    }

    /// Container `text`'s record, its liveness checked.
    pub fn container(&self, text: &str) -> Result<Container> {
        let id = self.resolve(text)?;
        self.load_checked(&id)
    }

    /// Every container, newest first (as `ps` lists them), liveness checked.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut all = Vec::new();
        for id in names::all_ids(&self.roots)? {
            match self.load_checked(&id) {
                Ok(c) => all.push(c),
                // Removed meanwhile (by another command, or by the check
                // itself: `--rm` of a container that ended unseen), or
                // still being made.
                Err(EngineError::Record(RecordError::Io { .. }))
                | Err(EngineError::Name(NameError::NotFound(_))) => {}
                Err(err) => return Err(err),
            }
        }
        all.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(all)
    }

    /// A record, and if it claims a process, the truth about it
    /// ([`reconcile`]).
    pub fn load_checked(&self, id: &str) -> Result<Container> {
        let dir = self.dir(id);
        let c = dir.load()?;
        if reconcile::looks_alive(self, &c) {
            return Ok(c);
        }
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile::reconcile(self, &mut c)?;
        Ok(c)
    }
}
