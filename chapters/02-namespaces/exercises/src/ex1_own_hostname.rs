//! Exercise 1: a hostname of your own.
//!
//! Write `hostname_in_new_uts`: start a child process that moves itself into
//! a new UTS namespace with unshare(2) (not clone: the other way in), sets
//! its hostname to `name`, reads it back with uname(2), and sends what it
//! read to the parent over a pipe. Return that. The check also makes sure
//! the host's own hostname did not change.
//! Hints: book/src/02-namespaces/exercises.md.

use nix::errno::Errno;

/// The hostname a child sees after `unshare(CLONE_NEWUTS)` and `sethostname(name)`.
pub fn hostname_in_new_uts(_name: &str) -> Result<String, Errno> {
    todo!("exercise 1: fork, unshare(CLONE_NEWUTS), sethostname, uname, report")
}
