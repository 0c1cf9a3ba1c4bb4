//! A container's record: what it was made from, how it was configured, and
//! where it is in its life, in docker's own field names.
//!
//! Docker keeps each container in `config.v2.json`, and `docker inspect`
//! prints it; scripts read `.State.ExitCode`, `.Config.Env` and
//! `.HostConfig.Memory` by those names. So our record *is* the inspect
//! document (same fields, same order, same JSON types), plus one object of
//! our own, `Berth`, that `inspect` leaves out.
//!
//! **Lifecycle** (`State.Status`): `created` (bundle ready, runtime
//! `create` done, the process waits before the user's program), `running`,
//! `paused` (frozen by the cgroup freezer), `restarting` (exited, waiting
//! its back-off before the restart policy starts it again), `exited`,
//! `dead` (could not be cleaned up), and `removing` while `rm` works. A
//! removed container has no record at all.
//!
//! **Writing**: the record is replaced whole, written to a temporary file
//! in the same directory and renamed over the old one (rename(2) is atomic
//! within a filesystem), so a reader sees the old record or the new one,
//! never half of one, and a crash leaves one of the two. Every change is
//! read-modify-write under the container's lock ([`ContainerLock`], an
//! flock(2) on `lock` in its directory), so two commands never lose each
//! other's changes. Whoever holds the lock never waits for the monitor (the
//! monitor takes the same lock to record an exit), so there is no
//! deadlock.
//!
//! Man pages: rename(2), flock(2).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The record's file name, docker's.
pub const RECORD_FILE: &str = "config.v2.json";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// What a time that never happened looks like in docker's JSON (Go's zero
/// `time.Time`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a container record: {cause}")]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("lock {path}: {errno}")]
    Lock {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |cause| RecordError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process may be alive: someone must look (monitor, runtime).
    pub fn may_have_process(self) -> bool {
        matches!(
            self,
            Status::Created | Status::Running | Status::Paused | Status::Restarting
        )
    }
}

/// `State`: where the container is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// The container's first process, as the host sees it; 0 when none.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Default for State {
    fn default() -> State {
        State {
            status: Status::Created,
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

impl State {
    /// Set the status and the booleans that mirror it.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
        self.running = matches!(
            status,
            Status::Running | Status::Paused | Status::Restarting
        );
        self.paused = status == Status::Paused;
        self.restarting = status == Status::Restarting;
        self.dead = status == Status::Dead;
        if !matches!(status, Status::Running | Status::Paused) {
            self.pid = 0;
        }
    }
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    pub maximum_retry_count: i64,
}

/// One `--ulimit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `HostConfig`: how the container runs on this host (docker's fields, in
/// docker's order; those berth has no flag for keep docker's zero values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: BTreeMap<String, serde_json::Value>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub console_size: [u16; 2],
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroupns_mode: String,
    pub dns: Vec<String>,
    pub dns_options: Vec<String>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub ipc_mode: String,
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    pub oom_score_adj: i32,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: i64,
    pub runtime: String,
    pub isolation: String,
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: Vec<serde_json::Value>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub init: Option<bool>,
    /// `--mount`, as the API's `HostConfig.Mounts` ([`super::volumes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<serde_json::Value>,
    /// `--tmpfs`: destination to options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
}

/// `Config`: what runs (the image's config merged with the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
}

/// `GraphDriver`: where the filesystem lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

/// `NetworkSettings` and its `Networks` entries: the network crate's,
/// docker's shapes (see `ch07_network::inspect`).
pub use ch07_network::inspect::{EndpointSettings, NetworkSettings};

/// The network flags docker keeps in `NetworkingConfig`, and what the
/// engine made for them (berth's own: not in inspect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkFields {
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `-p`, as typed (parsed again at each start).
    pub publish: Vec<String>,
    /// Networks joined with `network connect`, beyond `NetworkMode`'s.
    pub networks: Vec<ConnectedNetwork>,
    /// The network namespace file made for the container, while it runs.
    pub netns: String,
}

/// A network joined with `network connect`, and its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectedNetwork {
    pub name: String,
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
}

impl NetworkFields {
    pub fn is_empty(&self) -> bool {
        *self == NetworkFields::default()
    }
}

/// What berth keeps beside docker's fields; `inspect` leaves it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct BerthFields {
    /// The runtime's program, as found when the container was made.
    pub runtime_path: String,
    /// The manifest digest the container was made from (chapter 5's
    /// `image` file holds the same, for garbage collection).
    pub image_manifest: String,
    /// The image's unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// `stop`, `kill` or `rm` stopped it: no restart policy applies until
    /// it is started again (docker's HasBeenManuallyStopped).
    pub manually_stopped: bool,
    /// The cgroup path given to the runtime (`cgroupsPath`).
    pub cgroups_path: String,
    /// A start made resources (mount, runtime state, cgroup, run
    /// directory) that no cleanup has released yet: set before the
    /// monitor starts, cleared by the cleanup. A monitor killed between
    /// recording the exit and cleaning up leaves it set, and the next
    /// command finishes the job.
    #[serde(default)]
    pub needs_cleanup: bool,
    /// The network flags and the namespace file (see `engine::network`).
    #[serde(default, skip_serializing_if = "NetworkFields::is_empty")]
    pub network: NetworkFields,
}

/// The record: `docker inspect`'s document, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "Id")]
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    /// The image's config digest (`sha256:...`), docker's image id.
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    /// `/NAME`, as docker keeps it.
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<serde_json::Value>,
    pub config: Config,
    pub network_settings: NetworkSettings,
    /// Berth's own fields: on disk, never in `inspect` (see [`Container::inspect`]).
    #[serde(default, skip_serializing_if = "BerthFields::is_empty")]
    pub berth: BerthFields,
}

impl BerthFields {
    fn is_empty(&self) -> bool {
        *self == BerthFields::default()
    }
}

impl Container {
    /// The name without docker's leading `/`.
    pub fn name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }

    /// The inspect document: the record without berth's own object.
    /// (Serialized as a struct, so the keys keep docker's order.)
    pub fn inspect(&self) -> Container {
        Container {
            berth: BerthFields::default(),
            ..self.clone()
        }
    }
}

/// A container's directory under the state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDir(pub PathBuf);

impl ContainerDir {
    pub fn record(&self) -> PathBuf {
        self.0.join(RECORD_FILE)
    }
    pub fn lock_file(&self) -> PathBuf {
        self.0.join(LOCK_FILE)
    }
    pub fn bundle(&self) -> PathBuf {
        self.0.join("bundle")
    }
    /// Where the overlay is mounted: chapter 4's `merged/`.
    pub fn rootfs(&self) -> PathBuf {
        self.0.join("merged")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.0.join(format!("{id}-json.log"))
    }

    /// Read the record.
    pub fn load(&self) -> Result<Container, RecordError> {
        let path = self.record();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes).map_err(|cause| RecordError::Json { path, cause })
    }

    /// Replace the record, atomically.
    pub fn save(&self, container: &Container) -> Result<(), RecordError> {
        let json = serde_json::to_vec(container).map_err(|cause| RecordError::Json {
            path: self.record(),
            cause,
        })?;
        write_atomic(&self.record(), &json)
    }

    /// Take the container's lock, waiting for whoever holds it.
    pub fn lock(&self) -> Result<ContainerLock, RecordError> {
        lock_path(&self.lock_file()).map(ContainerLock)
    }
}

/// The container's lock, held until dropped.
pub struct ContainerLock(#[allow(dead_code)] Flock<File>);

/// An exclusive flock(2) on `path` (created if missing).
pub fn lock_path(path: &Path) -> Result<Flock<File>, RecordError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| RecordError::Lock {
        path: path.to_path_buf(),
        errno,
    })
}

/// Write `bytes` to `path` whole or not at all: a temporary file beside it,
/// renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| RecordError::Io {
        path: path.to_path_buf(),
        cause: e.error,
    })?;
    Ok(())
}

/// The time now as docker writes it: RFC 3339 in UTC, with nanoseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Parse one of our times back; `None` for the zero time or garbage.
pub fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    if text.is_empty() || text == ZERO_TIME {
        return None;
    }
    humantime::parse_rfc3339_weak(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_inspect_hides_berths_fields() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = ContainerDir(dir.path().to_path_buf());
        let mut c = Container {
            id: "a".repeat(64),
            name: "/web".into(),
            ..Container::default()
        };
        c.state.set_status(Status::Running);
        c.state.pid = 42;
        cdir.save(&c).unwrap();
        assert_eq!(cdir.load().unwrap(), c);
        assert_eq!(c.name(), "web");
        c.berth.runtime_path = "/usr/bin/runc".into();
        cdir.save(&c).unwrap();
        assert_eq!(cdir.load().unwrap().berth.runtime_path, "/usr/bin/runc");
        let text = serde_json::to_string(&c.inspect()).unwrap();
        assert!(text.starts_with("{\"Id\":"), "{text}");
        assert!(text.ends_with("\"Networks\":{}}}"), "{text}");
        let inspect: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(inspect.get("Berth").is_none());
        assert_eq!(inspect["State"]["Status"], "running");
        assert_eq!(inspect["State"]["Running"], true);
        assert_eq!(inspect["State"]["OOMKilled"], false);
        assert_eq!(inspect["State"]["FinishedAt"], ZERO_TIME);
        // No temporary file is left behind.
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn status_booleans_follow_the_status() {
        let mut s = State {
            pid: 7,
            ..State::default()
        };
        s.set_status(Status::Paused);
        assert!(s.running && s.paused && !s.restarting && s.pid == 7);
        s.set_status(Status::Exited);
        assert!(!s.running && !s.paused && s.pid == 0);
        assert!(Status::Restarting.may_have_process() && !Status::Exited.may_have_process());
        assert_eq!(parse_time(ZERO_TIME), None);
        assert!(parse_time(&now_rfc3339()).is_some());
    }
}
