//! The ways starting a container can fail, each with the message a user sees
//! and the exit code `docker run` uses for it.
//!
//! Exit codes (the convention of `docker run`, `chroot(1)` and POSIX shells):
//! 125 the engine itself failed, 126 the command cannot be executed,
//! 127 the command was not found; otherwise the command's own status, or
//! 128+N when signal N killed it.

use std::path::PathBuf;

use nix::errno::Errno;

/// The engine itself failed (bad rootfs, no privilege, a failed syscall).
pub const EXIT_ENGINE: i32 = 125;
/// The command was found but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("rootfs {0}: no such directory: create one with `ch01-chroot mkrootfs {0}`")]
    RootfsMissing(PathBuf),

    #[error(
        "rootfs {0}: not a directory: ROOTFS must be a directory holding the container's files"
    )]
    RootfsNotDirectory(PathBuf),

    #[error(
        "chroot {0}: EPERM: chroot needs CAP_SYS_CHROOT: run as root (sudo); chapter 2 adds a rootless mode"
    )]
    NotPermitted(PathBuf),

    #[error("no command given: say what to run inside the rootfs, e.g. /bin/sh")]
    NoCommand,

    #[error("{0:?}: contains a NUL byte, which cannot be passed to a program")]
    NulByte(String),

    #[error(
        "{command}: command not found in {rootfs} (searched PATH={path}): check the name, or give its full path inside the rootfs"
    )]
    CommandNotFound {
        command: String,
        rootfs: PathBuf,
        path: String,
    },

    #[error(
        "{path}: exists in {rootfs} but cannot run: its ELF interpreter or script interpreter is missing there (copy it in, or use a static binary)"
    )]
    InterpreterMissing { path: String, rootfs: PathBuf },

    #[error(
        "{path}: permission denied: not an executable file ({errno}); check its mode (chmod +x) and that it is not a directory"
    )]
    NotExecutable {
        path: String,
        errno: Errno,
        rootfs: PathBuf,
    },

    /// A step in the child failed: `step` names it ("chroot /srv/rootfs").
    #[error("{step}: {errno}")]
    Child { step: String, errno: Errno },

    /// A system call in the parent failed.
    #[error("{call}: {errno}")]
    Syscall { call: &'static str, errno: Errno },
}

impl StartError {
    /// The exit code `docker run` would use for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::CommandNotFound { .. } | StartError::InterpreterMissing { .. } => {
                EXIT_NOT_FOUND
            }
            StartError::NotExecutable { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_ENGINE,
        }
    }
}
