//! # Chapter 2: namespaces
//!
//! Chapter 1's chroot changed what `/` means and nothing else. A namespace
//! gives a process its own copy of one kind of global resource: the mount
//! table, the hostname, SysV IPC, the process IDs, the network stack, the
//! user IDs, the cgroup tree. This chapter starts the container in all seven,
//! swaps chroot for `pivot_root`, gives it its own /proc, /dev and /sys, and
//! puts a tiny init at PID 1.
//!
//! Read the modules in this order:
//!
//! 1. [`namespaces`] — the seven kinds and their clone flags.
//! 2. [`idmap`] — user namespaces: uid_map, gid_map, setgroups.
//! 3. [`mounts`] — private mounts, /proc, /dev, /sys, `pivot_root`; with
//!    [`in_root`], every mount point looked up inside the rootfs
//!    (`openat2(2)`), and [`masks`], the parts of /proc and /sys hidden or
//!    made read-only.
//! 4. [`network`] — bringing up `lo` in a new network namespace.
//! 5. [`capabilities`] and [`security`] — why root in the container is not
//!    root on the host: capability sets, no_new_privs, the defaults and
//!    `--privileged`.
//! 6. [`init`] — PID 1: reaping zombies and passing on signals.
//! 7. [`container`] — the start sequence that ties them together.
//! 8. [`exec`] — joining a running container with `setns(2)`.
//! 9. [`sealed_exe`] — the engine runs from a copy the container cannot
//!    write (CVE-2019-5736).
//! 10. [`cli`] — the `run` flags, shared with the chapters after this one.
//!
//! From chapter 1 it uses the process plan, the start pipe, `spawn_child`
//! (now with namespace flags), signal forwarding and exit codes.

pub mod capabilities;
pub mod cli;
pub mod container;
pub mod exec;
pub mod idmap;
pub mod in_root;
pub mod init;
pub mod masks;
pub mod mounts;
pub mod namespaces;
pub mod network;
pub mod sealed_exe;
pub mod security;

pub use container::{ContainerConfig, ContainerError, run_container};
