//! `pull`: from a name to layers on disk, trusting nothing on the way.
//!
//! docker pull, step by step (distribution-spec "Pulling manifests" and
//! "Pulling blobs"; image-spec image-index.md, manifest.md, config.md):
//!
//! 1. the tag (or digest) is resolved to a manifest;
//! 2. if that is an index (a multi-platform image), the entry for our
//!    platform is picked and its manifest fetched, by digest;
//! 3. the config blob, then every layer blob, is downloaded — layers in
//!    parallel — each hashed while it streams to a temporary file, and
//!    renamed to its digest only if the hash and the size match;
//! 4. each layer is unpacked once, keyed by its diff_id;
//! 5. the manifest goes into the store last, and only then the name: a name
//!    never points to an image whose content is not all there.
//!
//! Killed at any moment, a pull leaves at worst temporary files (removed
//! by the next pull once they are old) and complete, verified blobs and
//! layers, which the next pull reuses.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;

use crate::progress::Transfers;

use crate::gc;
use crate::oci::{self, Descriptor, ImageConfig, ImageManifest, Manifest, Platform};
use crate::reference::Reference;
use crate::registry::{ATTEMPTS, FetchedManifest, Registry, RegistryError};
use crate::store::{Compression, Store, StoreError};
use crate::workers;

/// How many layers download at once, as docker's default
/// `max-concurrent-downloads` (3).
pub const DEFAULT_JOBS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Oci(#[from] oci::OciError),
    #[error(transparent)]
    Gc(#[from] gc::GcError),
    #[error("{error} (undoing the pull failed too: {undo}; `prune` removes what it left)")]
    NotUndone {
        error: Box<PullError>,
        undo: Box<gc::GcError>,
    },
    #[error(
        "the index entry for {platform} is itself an index: refused (nested indexes are not images)"
    )]
    NestedIndex { reference: String, platform: String },
    #[error("the image is for {found}, not {wanted}: pick another tag, or leave out --platform")]
    WrongPlatform {
        reference: String,
        wanted: String,
        found: String,
    },
    #[error(
        "config {digest}: the manifest says {size} bytes, over the {}-byte limit for a config: refused without downloading it",
        oci::MAX_MANIFEST_BYTES
    )]
    ConfigTooLarge { digest: String, size: u64 },
    #[error("config {digest}: not a valid image config: {cause}")]
    Config {
        digest: String,
        cause: serde_json::Error,
    },
    #[error("config {digest}: {diff_ids} diff_ids for {layers} layers: the image is broken")]
    DiffIds {
        digest: String,
        diff_ids: usize,
        layers: usize,
    },
}

/// What to pull beyond the name.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Whether the user asked for that platform (`--platform`): then an
    /// image for another one is refused rather than warned about.
    pub platform_given: bool,
    /// Layers downloaded at once.
    pub jobs: usize,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform::host(),
            platform_given: false,
            jobs: DEFAULT_JOBS,
        }
    }
}

/// What became of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOutcome {
    /// The blob was already in the store.
    AlreadyExists,
    /// Downloaded, verified and unpacked.
    PullComplete,
}

/// The words docker prints after a layer's short id.
impl std::fmt::Display for LayerOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerOutcome::AlreadyExists => "Already exists",
            LayerOutcome::PullComplete => "Pull complete",
        })
    }
}

/// What a pull did, for the caller to report.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The digest the tag named: the index's for a multi-platform image.
    pub digest: String,
    /// The digest of the image manifest now in the store.
    pub manifest_digest: String,
    /// The layers' short ids (12 hex digits of the blob digest), bottom
    /// first, and what happened to each.
    pub layers: Vec<(String, LayerOutcome)>,
    /// Whether the name already pointed to this image.
    pub up_to_date: bool,
}

/// The 12 hex digits docker shows for a digest.
pub fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

// ANCHOR: pull
/// Pull `reference` from `registry` into `store`.
pub fn pull(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Pulled, PullError> {
    // The store lock, shared, until the name is set: garbage collection
    // (which takes it exclusive) must not sweep blobs that are in but not
    // yet named. Taking it alone sweeps what killed writers left; with
    // others, only leftovers idle for an hour go (fresh ones may be
    // another pull's, running now). What the store holds is noted, and a
    // pull that fails is undone: bad content leaves the store as it was.
    let lock = store.lock_shared()?;
    store.clean_temp()?;
    let before = gc::contents(store)?;
    match pull_locked(store, registry, reference, options) {
        Ok(pulled) => Ok(pulled),
        Err(error) => {
            drop(lock);
            match gc::undo_added(store, &before) {
                Ok(_) => Err(error),
                Err(undo) => Err(PullError::NotUndone {
                    error: Box::new(error),
                    undo: Box::new(undo),
                }),
            }
        }
    }
}
// ANCHOR_END: pull

/// The pull itself, the store lock held.
// ANCHOR: pull_locked
fn pull_locked(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Pulled, PullError> {
    let name = reference.to_string();
    let repository = reference.api_repository();

    // 1-2. The tag or digest → a manifest; an index → our platform's.
    let (top, image) = resolve_manifest(registry, reference, options)?;
    let Manifest::Image(manifest) = &image.manifest else {
        unreachable!("an index was resolved to its child");
    };

    // 3. The config: needed to check the layers against.
    let config = fetch_config(store, registry, repository, manifest)?;
    check_platform(&name, &config, options)?;

    // 4. The layers, in parallel: download, verify, unpack.
    let layers = pull_layers(store, registry, repository, manifest, &config, options)?;

    // 5. The manifest, then the name: from now on the image is complete.
    store.put_blob(
        &image.digest,
        Some(image.bytes.len() as u64),
        &image.bytes[..],
    )?;
    let previous = store.set_name(&name, &image.digest)?;
    Ok(Pulled {
        digest: top.digest,
        manifest_digest: image.digest.clone(),
        layers,
        up_to_date: previous.as_deref() == Some(image.digest.as_str()),
    })
}
// ANCHOR_END: pull_locked

// ANCHOR: resolve_manifest
/// Steps 1 and 2: the manifest `reference` names (a digest wins over a
/// tag: it names exactly one content), and if that is an index, the
/// manifest for our platform, fetched by its digest so the registry
/// cannot swap it. Returns both: the first, whose digest the tag named,
/// and the image manifest.
fn resolve_manifest(
    registry: &Registry,
    reference: &Reference,
    options: &PullOptions,
) -> Result<(FetchedManifest, FetchedManifest), PullError> {
    let repository = reference.api_repository();
    let top = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => registry.fetch_manifest(repository, &digest.to_string())?,
        (None, Some(tag)) => registry.fetch_manifest(repository, tag)?,
        (None, None) => registry.fetch_manifest(repository, crate::reference::DEFAULT_TAG)?,
    };
    let Manifest::Index(index) = &top.manifest else {
        return Ok((top.clone(), top));
    };
    let entry = oci::choose_platform(index, &options.platform)?;
    let child = registry.fetch_manifest(repository, &entry.digest)?;
    if matches!(child.manifest, Manifest::Index(_)) {
        return Err(PullError::NestedIndex {
            reference: reference.to_string(),
            platform: options.platform.to_string(),
        });
    }
    Ok((top, child))
}
// ANCHOR_END: resolve_manifest

// ANCHOR: fetch_config
/// Step 3: the config blob, small (refused unread if the manifest says it
/// is not), into the store and parsed; it must name one diff_id per layer.
fn fetch_config(
    store: &Store,
    registry: &Registry,
    repository: &str,
    manifest: &ImageManifest,
) -> Result<ImageConfig, PullError> {
    if manifest.config.size > oci::MAX_MANIFEST_BYTES as u64 {
        return Err(PullError::ConfigTooLarge {
            digest: manifest.config.digest.clone(),
            size: manifest.config.size,
        });
    }
    download_blob(
        store,
        registry,
        repository,
        &manifest.config,
        &|_| {},
        &NEVER,
    )?;
    let config = read_config(store, &manifest.config.digest)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(PullError::DiffIds {
            digest: manifest.config.digest.clone(),
            diff_ids: config.rootfs.diff_ids.len(),
            layers: manifest.layers.len(),
        });
    }
    Ok(config)
}
// ANCHOR_END: fetch_config

fn read_config(store: &Store, digest: &str) -> Result<ImageConfig, PullError> {
    serde_json::from_slice(&store.read_blob(digest)?).map_err(|cause| PullError::Config {
        digest: digest.to_string(),
        cause,
    })
}

/// An image for another platform than asked for is refused when the user
/// named the platform, and warned about otherwise (it would fail with
/// "exec format error" at run time).
fn check_platform(
    reference: &str,
    config: &ImageConfig,
    options: &PullOptions,
) -> Result<(), PullError> {
    let found = config.platform();
    if found.os.is_empty() || options.platform.matches(&found) {
        return Ok(());
    }
    if options.platform_given {
        return Err(PullError::WrongPlatform {
            reference: reference.to_string(),
            wanted: options.platform.to_string(),
            found: found.to_string(),
        });
    }
    eprintln!(
        "warning: {reference} is for {found}, not this host's {}: it may not run here",
        options.platform
    );
    Ok(())
}

// ANCHOR: pull_layers
/// Download and unpack `manifest`'s layers with `options.jobs` workers
/// taking layers in order. The first failure stops the others: their
/// downloads are cut short, and their temporary files removed.
fn pull_layers(
    store: &Store,
    registry: &Registry,
    repository: &str,
    manifest: &ImageManifest,
    config: &ImageConfig,
    options: &PullOptions,
) -> Result<Vec<(String, LayerOutcome)>, PullError> {
    let bars = Bars::new(&manifest.layers);
    let pulled = workers::run_all(&manifest.layers, options.jobs, |i, layer, failed| {
        let bar = &bars.bars[i];
        let result = (|| -> Result<LayerOutcome, PullError> {
            let outcome =
                download_blob(store, registry, repository, layer, &|n| bar.inc(n), failed)?;
            bar.set_message("extracting");
            let compression = Compression::of_media_type(&layer.media_type);
            store.unpack_layer(&layer.digest, &config.rootfs.diff_ids[i], compression)?;
            bars.done(i, layer, outcome);
            Ok(outcome)
        })();
        if result.is_err() {
            bars.failed(i);
        }
        result
    });
    bars.finish();
    let outcomes = pulled?;
    Ok(manifest
        .layers
        .iter()
        .zip(outcomes)
        .map(|(layer, outcome)| (short_id(&layer.digest), outcome))
        .collect())
}
// ANCHOR_END: pull_layers

static NEVER: AtomicBool = AtomicBool::new(false);

// ANCHOR: download_blob
/// Download the blob `descriptor` names into the store, unless it is there
/// already. The store checks size and digest as the bytes stream in. A
/// connection that breaks mid-way is retried from the start; a blob whose
/// content is wrong is not (the registry would send the same again).
fn download_blob(
    store: &Store,
    registry: &Registry,
    repository: &str,
    descriptor: &Descriptor,
    on_bytes: &(dyn Fn(u64) + Sync),
    cancelled: &AtomicBool,
) -> Result<LayerOutcome, PullError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if store.has_blob(&descriptor.digest)? {
            return Ok(LayerOutcome::AlreadyExists);
        }
        let (body, _length) = registry.open_blob(repository, &descriptor.digest)?;
        let reader = WatchedReader {
            inner: body,
            on_bytes,
            cancelled,
        };
        let result = store.put_blob(&descriptor.digest, Some(descriptor.size), reader);
        match result {
            Ok(_) => return Ok(LayerOutcome::PullComplete),
            Err(StoreError::Read { .. })
                if attempt < ATTEMPTS && !cancelled.load(Ordering::SeqCst) =>
            {
                eprintln!(
                    "{}: connection lost, retrying ({attempt} of {})",
                    short_id(&descriptor.digest),
                    ATTEMPTS - 1
                );
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
// ANCHOR_END: download_blob

/// A reader that reports progress, and fails once `cancelled` is set so a
/// download stops as soon as another layer has failed.
struct WatchedReader<'a> {
    inner: Box<dyn Read + Send>,
    on_bytes: &'a (dyn Fn(u64) + Sync),
    cancelled: &'a AtomicBool,
}

impl Read for WatchedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled: another layer failed"));
        }
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// Progress: a bar per layer on a terminal; without one (a log, a pipe),
/// one plain line per finished layer. Both on stderr: stdout holds only
/// the summary.
struct Bars {
    transfers: Transfers,
    bars: Vec<ProgressBar>,
}

impl Bars {
    fn new(layers: &[Descriptor]) -> Bars {
        let transfers = Transfers::on_stderr();
        let bars = layers
            .iter()
            .map(|layer| transfers.add(&short_id(&layer.digest), layer.size, "downloading"))
            .collect();
        Bars { transfers, bars }
    }

    fn done(&self, i: usize, layer: &Descriptor, outcome: LayerOutcome) {
        let bar = &self.bars[i];
        let what = match outcome {
            LayerOutcome::AlreadyExists => "already exists",
            LayerOutcome::PullComplete => "pull complete",
        };
        bar.set_message(what);
        bar.set_position(layer.size);
        bar.finish();
        if !self.transfers.drawn() {
            eprintln!(
                "{}: {what} ({})",
                short_id(&layer.digest),
                ch03_cgroups::format_size(layer.size)
            );
        }
    }

    fn failed(&self, i: usize) {
        self.bars[i].abandon_with_message("failed");
    }

    fn finish(&self) {
        for bar in &self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_twelve_hex_digits() {
        assert_eq!(
            short_id("sha256:0123456789abcdef0123456789abcdef"),
            "0123456789ab"
        );
        assert_eq!(short_id("abc"), "abc");
    }
}
