//! # Chapter 3: cgroups
//!
//! Chapter 2's namespaces decide what a container can *see*; nothing yet
//! stops it from eating all the memory, every CPU, or the PID table. A
//! control group (cgroup) is a set of processes the kernel accounts and
//! limits together. This chapter puts each container in a cgroup of its
//! own, with docker's limit flags (`--memory 32m`, `--cpus 1.5`,
//! `--pids-limit 64`, ...), reads its usage, reports when the kernel's
//! OOM killer struck, freezes and thaws it, and removes it at the end.
//!
//! There are two versions of the interface, and hosts run either one or a
//! hybrid of both, so there are two drivers behind one type.
//!
//! Read the modules in this order:
//!
//! 1. [`size`] — `32m`, `1.5g`: docker's sizes.
//! 2. [`resources`] — the limits, in the OCI runtime spec's words, from
//!    docker's flags.
//! 3. [`detect`](mod@detect) — which layout this host has: v1, v2 or hybrid.
//! 4. [`mapping`] — the one table from v1 names and units to v2's.
//! 5. [`cgroupfs`] — the whole kernel interface is small text files.
//! 6. [`v1`] and [`v2`] — the two drivers.
//! 7. [`cgroup`] — the one interface the engine uses: create, add a
//!    process, stats, OOM kills, freeze, kill, remove.
//! 8. [`error`] — how it all can fail.
//!
//! From chapter 2 the engine uses the start sequence's `before_release`
//! hook: the child joins its cgroup there, before it execs.

pub mod cgroup;
pub mod cgroupfs;
pub mod cli;
pub mod detect;
pub mod error;
pub mod mapping;
pub mod resources;
pub mod size;
pub mod v1;
pub mod v2;

pub use cgroup::{Cgroup, OomReport, Placement, Stats};
pub use detect::{Layout, detect};
pub use error::CgroupError;
pub use resources::{
    LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxPids, LinuxResources, ResourceError, ResourceFlags,
};
pub use size::{SizeError, format_size, parse_size};
