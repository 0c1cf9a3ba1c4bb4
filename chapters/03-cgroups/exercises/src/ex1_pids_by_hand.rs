//! Exercise 1: a pids limit by hand, with nothing but mkdir, write and fork.
//!
//! Write `forks_allowed`: make a cgroup named `name` in `pids_root` (the
//! directory of the pids controller: /sys/fs/cgroup/pids on cgroup v1,
//! /sys/fs/cgroup on v2), set its `pids.max` to `max`, start a child that
//! moves itself into it and then forks children (that wait) until fork(2)
//! fails, and return how many the child managed to fork. Kill them, and
//! remove the cgroup before you return.
//! Hints: book/src/03-cgroups/exercises.md.

use std::path::Path;

use nix::errno::Errno;

/// How many processes a child in a fresh cgroup with `pids.max = max` can fork.
pub fn forks_allowed(_pids_root: &Path, _name: &str, _max: u64) -> Result<u64, Errno> {
    todo!("exercise 1: mkdir, write pids.max, fork, join via cgroup.procs, fork until EAGAIN")
}
