//! # Chapter 1: chroot
//!
//! The oldest container trick in Unix: give a process a different idea of
//! where `/` is. This chapter starts a command the way every engine does —
//! fork, confine the child, exec the command, wait — with `chroot(2)` as the
//! only confinement, and then shows why that is not isolation.
//!
//! Read the modules in this order:
//!
//! 1. [`process`] — what to run: arguments, environment, and how a command is
//!    found on `PATH` *inside* the root filesystem (`execve(2)`).
//! 2. [`start_pipe`] — how a forked child tells its parent that a step failed
//!    (`pipe2(2)` with `O_CLOEXEC`).
//! 3. [`chroot`] — the confinement step itself (`chroot(2)`, `chdir(2)`).
//! 4. [`launch`] — fork, run the child's steps, exec, wait, and turn the wait
//!    status into an exit code (`fork(2)`, `waitpid(2)`, `signal(7)`).
//!    Just before the exec, [`fds`] makes sure no descriptor of the engine's
//!    but 0, 1 and 2 reaches the command (`close_range(2)`).
//! 5. [`escape`] — a root process walks out of its chroot.
//! 6. [`rootfs`] and [`elf`] — `mkrootfs`, the small root filesystem every
//!    chapter runs (`ld.so(8)`, `elf(5)`).
//! 7. [`sigpipe`] — every chapter's binary ends quietly when its output's
//!    reader goes away, as coreutils do (`pipe(7)`, `signal(7)`).
//!
//! Later chapters build on this API: chapter 2 replaces `chroot` with
//! namespaces and `pivot_root`, and keeps the rest.

pub mod chroot;
pub mod elf;
pub mod error;
pub mod escape;
pub mod fds;
pub mod launch;
pub mod process;
pub mod rootfs;
pub mod sigpipe;
pub mod start_pipe;

pub use error::StartError;
pub use launch::{exit_code, run, run_with};
pub use process::Process;
