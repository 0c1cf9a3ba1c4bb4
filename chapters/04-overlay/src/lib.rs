//! # Chapter 4: overlay
//!
//! A container's filesystem made of shared read-only layers and a private
//! writable layer on top. This first part holds the overlay mount itself
//! ([`overlay`]) and the layer tarball format: applying a layer to a
//! directory safely ([`apply`]) and writing a directory of changes as a
//! layer ([`commit`]), each named by its [`digest`]. Layers are someone
//! else's content, so two helpers keep it in its place: [`walk`] goes
//! through trees of any depth with a fixed number of descriptors, and
//! [`escape`] prints their names safely. [`files`] is the one home of
//! atomic writes, temporary files and bounded reads, for every chapter.

pub mod apply;
pub mod cli;
pub mod commit;
pub mod digest;
pub mod escape;
pub mod files;
pub mod overlay;
pub mod state;
pub mod vfs;
pub mod walk;
