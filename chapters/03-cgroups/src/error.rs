//! The ways working with cgroups can fail, each naming the file or the
//! syscall, and saying what to do where there is something to do.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use crate::resources::ResourceError;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The request itself is wrong (checked before anything is created).
    #[error(transparent)]
    Resources(#[from] ResourceError),

    #[error("read {path}: {errno}")]
    Read { path: PathBuf, errno: Errno },

    #[error("write {path}: {errno} (writing {value:?})")]
    Write {
        path: PathBuf,
        value: String,
        errno: Errno,
    },

    /// mkdir, rmdir, opendir on the cgroup filesystem.
    #[error("{call} {path}: {errno}")]
    Syscall {
        call: &'static str,
        path: PathBuf,
        errno: Errno,
    },

    #[error("{path}: unexpected contents {text:?}: expected {expected}")]
    Parse {
        path: PathBuf,
        text: String,
        expected: &'static str,
    },

    #[error(
        "no cgroup filesystem with controllers in {mountinfo}: mount one (e.g. `mount -t cgroup2 none /sys/fs/cgroup`) or run where cgroups are available"
    )]
    NotMounted { mountinfo: PathBuf },

    /// A limit (or a reading) needs a controller this host does not offer.
    #[error("{what} needs the {controller} controller, which {why}")]
    ControllerMissing {
        what: &'static str,
        controller: &'static str,
        why: String,
    },

    /// The kernel lacks the file a limit is written to.
    #[error("{what}: this kernel has no {path}: {hint}")]
    Unsupported {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    #[error("{flag} {wanted}: {outside} not available here: {path} allows only {allowed}")]
    CpusetOutside {
        flag: &'static str,
        wanted: String,
        outside: String,
        path: PathBuf,
        allowed: String,
    },

    #[error("enable the {controller} controller in {path}: {errno}{hint}")]
    Enable {
        controller: String,
        path: PathBuf,
        errno: Errno,
        hint: &'static str,
    },

    #[error(
        "cgroup {path} already exists: is container {id} running? If not, a crashed run left it behind: remove it with `rmdir {path}`"
    )]
    Exists { id: String, path: PathBuf },

    #[error("container {id} has no cgroup: {path} does not exist")]
    NotFound { id: String, path: PathBuf },

    #[error(
        "{path} is not writable by uid {uid}: without root, berth puts containers in a delegated cgroup v2 subtree of your own: start it with `systemd-run --user --scope -p Delegate=yes berth ...`, or run as root"
    )]
    NotDelegated { path: PathBuf, uid: u32 },

    #[error(
        "cgroup v1 cannot be delegated to an unprivileged user: limits and stats need root on this host (or a host with cgroup v2); to run without a cgroup and without limits, add --no-cgroups"
    )]
    RootlessV1,

    #[error("{what} {path}: gave up after {waited:?}: {state}")]
    Timeout {
        what: &'static str,
        path: PathBuf,
        waited: Duration,
        state: String,
    },

    #[error("kill {pid} (in {path}): {errno}")]
    Kill {
        pid: i32,
        path: PathBuf,
        errno: Errno,
    },

    /// bpf(2) refused the device filter (cgroup v2's devices controller).
    #[error("{call} for {path}: {errno}: {hint}")]
    DeviceFilter {
        call: &'static str,
        path: PathBuf,
        errno: Errno,
        hint: String,
    },

    #[error(
        "device rules need root: only root may load the BPF program that carries them on cgroup v2 (without root, the user namespace already keeps the container from making device nodes): leave out --device-cgroup-rule"
    )]
    DevicesNeedRoot,

    #[error(
        "container id {0:?}: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters"
    )]
    InvalidId(String),
}

/// The errno inside an `std::io::Error` (EIO when there is none).
pub(crate) fn errno_of(err: &std::io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}
