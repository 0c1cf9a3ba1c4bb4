//! The OCI runtime: `config.json` in, a container out.
//!
//! runc, crun and youki read the same bundle and answer the same command
//! line, so an engine (podman, containerd, our own `berth`) can use any of
//! them. `berth-runtime` is Berth's: chapters 2 to 4 behind the runtime
//! specification.
//!
//! Read the modules in this order:
//!
//! 1. [`config`] — a bundle's `config.json`, parsed strictly: errors name
//!    the field.
//! 2. [`validate`] — every field is honoured or refused by name.
//! 3. [`resources`] — `linux.resources`, handed to chapter 3.
//! 4. [`spec`] — the default `config.json` (`berth-runtime spec`).
//! 5. [`state`] — one directory per container: its state, its lock, and
//!    its status read from the kernel.
//! 6. [`hooks`] — programs run at the lifecycle's points, with the state on
//!    stdin and a timeout.
//! 7. [`seccomp`] — `linux.seccomp` compiled to a BPF filter.
//! 8. [`console`] — handing a terminal's master over a UNIX socket.
//! 9. [`signals`] — `kill`'s signal names and numbers.
//! 10. [`log`] — runc's log lines, which engines parse.
//! 11. [`cli`] and [`commands`] — runc's command line.
//! 12. [`features`] — what this runtime supports, as JSON.
//!
//! Specs: the OCI runtime specification 1.2 (`runtime.md`, `config.md`,
//! `config-linux.md`, `features.md`); runc(8) and its subcommand pages.

pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod features;
pub mod hooks;
pub mod log;
pub mod resources;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod state;
pub mod translate;
pub mod validate;
