//! # Chapter 4: overlay (being written)
//!
//! A container's filesystem made of shared read-only layers and a private
//! writable layer on top. This first part holds the overlay mount itself
//! ([`overlay`]) and the layer tarball format: applying a layer to a
//! directory safely ([`apply`]) and writing a directory of changes as a
//! layer ([`commit`]).

pub mod apply;
pub mod cli;
pub mod commit;
pub mod overlay;
pub mod state;
pub mod vfs;
