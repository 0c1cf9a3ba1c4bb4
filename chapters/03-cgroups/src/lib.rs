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
//! 6. [`devices`] — which device nodes a container may use: docker's
//!    rules, and what cgroup v1 makes of them.
//! 7. [`device_filter`] — the same rules on cgroup v2: a BPF program.
//! 8. [`v1`] and [`v2`] — the two drivers.
//! 9. [`cgroup`] — the one interface the engine uses: create, add a
//!    process, stats, OOM kills, freeze, kill, remove.
//! 10. [`view`] — what the container sees of its cgroup: /sys/fs/cgroup,
//!     read-only.
//! 11. [`exec`] — a process started in a running container joins its
//!     cgroups.
//! 12. [`error`] — how it all can fail.
//!
//! From chapter 2 the engine uses the start sequence's `before_release`
//! hook: the child joins its cgroup there, before it execs; and its
//! `after_rootfs` hook, where the child mounts its view of its cgroup.

pub mod cgroup;
pub mod cgroupfs;
pub mod cli;
pub mod detect;
pub mod device_filter;
pub mod devices;
pub mod error;
pub mod exec;
pub mod mapping;
pub mod resources;
pub mod size;
pub mod v1;
pub mod v2;
pub mod view;

pub use cgroup::{Cgroup, OomReport, Placement, Stats};
pub use detect::{Layout, detect};
pub use devices::{DeviceType, LinuxDeviceCgroup};
pub use error::CgroupError;
pub use resources::{
    LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxPids, LinuxResources, ResourceError, ResourceFlags,
};
pub use size::{SizeError, format_size, parse_size};
