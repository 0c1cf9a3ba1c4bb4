//! # Chapter 5: images
//!
//! An image is a read-only template: an ordered list of layers (tarballs,
//! named by their sha256 digest) plus a configuration, described by a
//! manifest. This first part holds the pieces that need no network: image
//! names ([`reference`]), digests ([`digest`]), the OCI image format
//! ([`oci`]), the local content store ([`store`]), and images made from
//! a directory and unpacked again ([`image`]).

pub mod archive;
pub mod cli;
/// Digests are chapter 4's: a layer is named by one the moment it is written.
pub use ch04_overlay::digest;
pub mod gc;
pub mod image;
pub mod oci;
pub mod process;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod user;
pub mod workers;
