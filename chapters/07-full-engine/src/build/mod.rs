//! `berth build`: an image from a Dockerfile, as docker's classic builder
//! makes it, with a layer cache.
//!
//! A Dockerfile describes an image as steps; each step is either a
//! container whose changes become a layer (RUN, as `commit` does by hand),
//! files from the build context as a layer (COPY, ADD), or a change to the
//! image config (ENV, CMD, USER...).
//!
//! Read in this order:
//!
//! 1. [`dockerfile`] — the parser: lines, directives, instructions.
//! 2. [`expand`] — variable substitution in a Dockerfile's words.
//! 3. [`ignore`] — `.dockerignore` patterns.
//! 4. [`context`] — the build context, sources resolved inside it.
//! 5. [`view`] — a stage's files through its layers, without a mount.
//! 6. [`copy`] — COPY and ADD's staging tree and its digest.
//! 7. [`fetch`] — ADD's URLs.
//! 8. [`cache`] — the layer cache.
//! 9. [`builder`] — the steps; [`interrupt`], Ctrl-C during them.

pub mod builder;
pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod expand;
pub mod fetch;
pub mod ignore;
pub mod interrupt;
pub mod view;
