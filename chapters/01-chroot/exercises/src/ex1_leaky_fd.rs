//! Exercise 1: the leaked directory.
//!
//! A careless engine opened a host directory *without* `O_CLOEXEC` before it
//! started the container, so the container's process inherits that file
//! descriptor. (runc had this bug in 2024: CVE-2024-21626, "Leaky Vessels".)
//!
//! Write `escape_through_leaked_fd`. It runs inside the chroot, after
//! `chroot_into` and before `exec` (it is a `ChildStep` for `run_with`), and
//! must make the host's real `/` the process's root again, using `fd`.
//!
//! It runs in the child while it still shares the engine's memory: use
//! system calls only (nix functions), no `format!`, no `Vec`.
//! Hints: book/src/01-chroot/exercises.md.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

/// Use the leaked directory `fd` to leave the chroot.
pub fn escape_through_leaked_fd(_fd: BorrowedFd<'_>) -> Result<(), Errno> {
    todo!("exercise 1: fchdir to the leaked directory, then climb out")
}
