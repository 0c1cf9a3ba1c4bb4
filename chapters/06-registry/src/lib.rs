//! # Chapter 6: a registry
//!
//! Chapter 5 pulled images from a registry; this chapter *is* one. A
//! registry is a web server with a dozen URLs (the OCI distribution spec):
//! clients push blobs — layers and configs, opaque bytes named by their
//! digest — then a manifest that names them; others pull the manifest by tag
//! and the blobs by digest. Because every name is a hash, the registry need
//! not be trusted: a client checks what it gets. And because it is plain
//! HTTP, `curl` can speak it.
//!
//! - [`routes`]: the URLs and which code answers them;
//! - [`uploads`]: pushing blobs (monolithic, chunked, mounts);
//! - [`blobs`]: pulling blobs, with `Range`;
//! - [`manifests`]: pushing and pulling manifests, and what is checked;
//! - [`discovery`]: tags, the catalog, referrers;
//! - [`storage`]: the disk: shared content, per-repository links;
//! - [`body`]: streaming request bodies to disk while hashing them;
//! - [`names`]: the grammar of names, tags and digests;
//! - [`errors`]: the spec's error codes and JSON;
//! - [`gc`]: removing content no manifest needs;
//! - [`auth`] and [`token`], [`access_log`], [`server`]: who may (Basic
//!   auth, or bearer tokens as Docker Hub issues them), what happened, and
//!   running it all;
//! - [`proxy`]: the registry as a pull-through cache (a mirror) of
//!   another, with `--proxy-remote-url`;
//! - [`push`]: the other side, pushing an image from chapter 5's store
//!   with chapter 5's registry client.

pub mod access_log;
pub mod auth;
pub mod blobs;
pub mod body;
pub mod discovery;
pub mod errors;
pub mod gc;
pub mod manifests;
pub mod names;
pub mod proxy;
pub mod push;
pub mod routes;
pub mod server;
pub mod storage;
pub mod token;
pub mod uploads;
