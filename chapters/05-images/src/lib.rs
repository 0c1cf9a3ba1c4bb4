//! # Chapter 5: images
//!
//! An image is a read-only template: an ordered list of layers (tarballs,
//! named by their digest) plus a configuration, described by a manifest.
//!
//! Reading order, the chapter's idea first:
//!
//! 1. [`oci`]: the OCI image format: manifests, indexes, configs, and the
//!    one check of a manifest's structure;
//! 2. [`digest`] (chapter 4's, re-exported): content addresses, sha256 or
//!    sha512;
//! 3. [`store`]: the local content store: blobs, unpacked layers, names;
//! 4. [`image`]: images made from a directory, loaded and unpacked again;
//! 5. [`reference`](mod@reference): image names as users type them, and the grammar of
//!    repository names and tags;
//! 6. [`pull`] and [`registry`]: fetching an image over the distribution
//!    API;
//! 7. [`process`]: the process a container of an image runs, its config
//!    applied;
//! 8. [`gc`]: removing images, and what no image needs.
//!
//! Going further: [`archive`] (docker and OCI archives, root filesystem
//! tarballs), [`user`] (users by name, from the image's own `/etc/passwd`),
//! [`mirrors`] (Docker Hub images pulled through a mirror first),
//! and the helpers that are no format idea: [`workers`] (the worker pool),
//! [`progress`] (the bars of long transfers) and [`cli`] (options shared
//! by the binaries).

pub mod oci;
/// Digests are chapter 4's: a layer is named by one the moment it is written.
pub use ch04_overlay::digest;
pub mod image;
pub mod process;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;

pub mod gc;

// Going further.
pub mod archive;
pub mod cli;
pub mod mirrors;
pub mod progress;
pub mod user;
pub mod workers;
