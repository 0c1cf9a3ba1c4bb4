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
//! Reading order, the chapter's idea first:
//!
//! 1. [`routes`]: the URLs and which code answers them;
//! 2. [`uploads`]: pushing blobs (monolithic, chunked, mounts);
//! 3. [`blobs`]: pulling blobs, with `Range`;
//! 4. [`manifests`]: pushing and pulling manifests, and what is checked;
//! 5. [`discovery`]: tags, the catalog, referrers;
//! 6. [`storage`]: the disk: shared content, per-repository links;
//! 7. [`body`]: streaming request bodies to disk while hashing them;
//! 8. [`names`] and [`errors`]: the grammar of the URLs' names, tags and
//!    digests, and the spec's error codes and JSON;
//! 9. [`server`]: running it all;
//! 10. [`push`]: the other side, pushing an image from chapter 5's store
//!     with chapter 5's registry client.
//!
//! Going further: [`auth`] and [`token`] (who may: Basic auth, or bearer
//! tokens as Docker Hub issues them), [`access_log`] (what happened) and
//! [`gc`] (removing content no manifest needs); [`proxy`] (the registry
//! as a pull-through cache, a mirror, of another: `--proxy-remote-url`).

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
