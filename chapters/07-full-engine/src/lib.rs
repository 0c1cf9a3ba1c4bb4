//! # Chapter 7: the full engine
//!
//! Chapters 1 to 6 built the pieces: a process in its own root, namespaces,
//! cgroups, a layered filesystem, images and registries. Chapter 7 puts
//! them together the way real engines do, in layers with standards between
//! them (see "Chapter 7" in the book): an OCI **runtime** that turns a
//! bundle (a `config.json` and a root filesystem) into a running container,
//! and, on top of it, an **engine** that turns images and `docker run`
//! flags into bundles, with a **monitor** per container that outlives the
//! command that started it.
//!
//! Read in this order:
//!
//! 1. [`runtime`] — `berth-runtime`: runc's command line, the
//!    runtime-spec's semantics, chapters 2 to 4 behind them.
//! 2. [`engine`] — containers: records, names, bundles, the lifecycle,
//!    with chapters 4 and 5 underneath and any OCI runtime below.
//! 3. [`monitor`] — `berth-monitor`: one small process per container, its
//!    parent, its logs, its terminal, its restarts.
//! 4. [`cli`] — `berth`: docker's command line over the engine.
//! 5. [`build`] — `berth build`: a Dockerfile, step by step, into an
//!    image, with a layer cache.
//! 6. `init/` (the `berth-init` crate) — the container's PID 1 for
//!    `run --init`: chapter 2's init as a static program of its own.
//!
//! Each module's own header gives the reading order inside it.

pub mod build;
pub mod cli;
pub mod engine;
pub mod monitor;
pub mod runtime;
