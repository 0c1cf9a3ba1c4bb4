//! Exercise 2: chroot hides files, not processes.
//!
//! Write `pids_visible_in_chroot`: start a child that chroots into `rootfs`,
//! mounts a proc filesystem on `/proc`, lists the numeric entries of `/proc`
//! (one per process it can see), unmounts `/proc` again, and sends the list
//! to the parent over a pipe. Return the list.
//!
//! The check asserts that the list holds the host's PID 1 and the check's own
//! PID, and that nothing is left mounted. Hints: book/src/01-chroot/exercises.md.

use std::path::Path;

use nix::errno::Errno;

/// The PIDs a process inside a chroot of `rootfs` sees in `/proc`.
pub fn pids_visible_in_chroot(_rootfs: &Path) -> Result<Vec<i32>, Errno> {
    todo!("exercise 2: fork, chroot, mount proc, read /proc, unmount, report")
}
