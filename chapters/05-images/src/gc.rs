//! Removing images (`rmi`), and the garbage collection that frees their
//! content.
//!
//! An image name is one line of `index.json`; the content is blobs and
//! unpacked layers, shared between images. Removing a name therefore frees
//! nothing by itself: the blobs may serve other names, or a container. What
//! may go is decided the way a garbage collector decides which memory is
//! still in use, by **mark and sweep** (McCarthy, 1960):
//!
//! 1. **Roots.** What is in use without question: every manifest an image
//!    name points to, and every manifest a container was made from (the
//!    `image` file in its state directory, written by `run`).
//! 2. **Mark.** Everything reachable from a root is live. A manifest keeps
//!    its config and its layer blobs; an index (a multi-platform image)
//!    keeps its child manifests, which keep theirs, and so on; a config keeps
//!    the unpacked layers named by its `rootfs.diff_ids`. Content is named
//!    by digest, so a digest is the pointer being followed. (A container's
//!    own layer directories are marked too, for containers made without an
//!    image, such as chapter 4's `run --layer` on store layers.)
//! 3. **Sweep.** Every blob in `blobs/sha256/` and every directory in
//!    `layers/sha256/` that was not marked is garbage, and is removed.
//!
//! Images that share a base layer keep it as long as one of them is named:
//! it is reachable from that one.
//!
//! **Concurrency.** A pull writes its blobs *before* it names the image (so
//! a name never points to missing content); between the two, its blobs are
//! unreachable, and a sweep would take them. So the collector holds the
//! store lock exclusive ([`Store::lock_exclusive`]) and every writer holds it
//! shared ([`Store::lock_shared`]) from its first blob to its name; `run`
//! holds it shared until its container has recorded its image. `rmi` holds
//! it exclusive from the moment it checks for containers until the sweep is
//! done.
//!
//! **Crashes.** The name goes first (one atomic rename of `index.json`),
//! the content after. A crash in between leaves garbage, which the next
//! collection removes, never a name pointing to missing content. A blob is
//! removed with one unlink(2); a layer directory is first renamed out of
//! `layers/sha256/` ([`Store::delete_layer`]), so a half-removed directory is
//! never taken for the layer.
//!
//! `rmi` follows docker (`docker image rm`): removing one of several names
//! of an image only untags it; removing the last name deletes the image,
//! which is refused while a container made from it exists. `NAME@DIGEST`
//! removes the names of repository NAME that point to that manifest; an
//! image ID (a prefix of the config digest, as `images` shows it) removes
//! all the image's names, if they are all in one repository.
//!
//! See also: the OCI image-spec's descriptor.md (content addressing) and
//! image-layout.md, which describes garbage collection of an OCI layout the
//! same way; containerd's `gc` package is a production mark-and-sweep over
//! the same graph.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ch04_overlay::state::{self, StateError};

use crate::digest::Digest;
use crate::reference::{Reference, ReferenceError};
use crate::store::{CleanReport, Store, StoreError, StoreLock};

/// The file in a container's state directory that names the manifest it
/// was made from.
pub const IMAGE_FILE: &str = "image";

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "garbage collection needs the store lock held exclusive (Store::lock_exclusive), not shared"
    )]
    NotExclusive,
    #[error(
        "{what}: {digest}: {cause}: cannot tell what it refers to, so nothing was collected (remove that image with rmi, then prune again)"
    )]
    Unreadable {
        what: String,
        digest: String,
        cause: String,
    },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error(
        "{path}: {text:?} is not a manifest digest (write sha256:HEX, or remove the container)"
    )]
    BadImageFile { path: PathBuf, text: String },
    #[error("no image {0}: see `images` for the names, and the IDs to use instead")]
    NoImage(String),
    #[error("image {image} is in use by {containers}: {hint}, then rmi again")]
    InUse {
        image: String,
        containers: String,
        hint: String,
    },
    #[error("image ID {prefix} is ambiguous: it matches {images}: give more digits")]
    Ambiguous { prefix: String, images: String },
    #[error(
        "image ID {id} has names in several repositories ({names}): remove them by name, or give --force to remove them all"
    )]
    ManyRepositories { id: String, names: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> GcError + '_ {
    move |cause| GcError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

// ----- containers: what they hold on to -----

/// What one container holds on to in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUse {
    pub name: String,
    /// The manifest digest it was made from (`None`: not made by `run IMAGE`).
    pub image: Option<String>,
    /// Its read-only layer directories.
    pub layers: Vec<PathBuf>,
}

// ANCHOR: record_image
/// Record in the container's state directory `container_dir` that it was
/// made from the manifest `digest`, so that `rmi` refuses to delete that
/// image and garbage collection keeps it. Written to a temporary file and
/// renamed: the file is whole or absent, never a torn digest. Removed with
/// the container's directory.
pub fn record_image(container_dir: &Path, digest: &str) -> Result<(), GcError> {
    let path = container_dir.join(IMAGE_FILE);
    let mut tmp = tempfile::NamedTempFile::new_in(container_dir).map_err(io_err(container_dir))?;
    tmp.write_all(format!("{digest}\n").as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err(tmp.path()))?;
    tmp.persist(&path).map_err(|e| GcError::Io {
        path: path.clone(),
        cause: e.error,
    })?;
    Ok(())
}
// ANCHOR_END: record_image

/// Every container under `root` and what it holds on to, sorted by name. A
/// directory without a `config.json` is a container still being made, or
/// not one at all: it holds nothing.
pub fn container_uses(root: &Path) -> Result<Vec<ContainerUse>, GcError> {
    let containers = root.join("containers");
    let mut names: Vec<String> = match std::fs::read_dir(&containers) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io_err(&containers))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io_err(&containers)(e)),
    };
    names.sort();
    let mut uses = Vec::new();
    for name in names {
        let (dir, container) = match state::load(root, &name) {
            Ok(loaded) => loaded,
            Err(StateError::NotFound { .. } | StateError::BadName(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let path = dir.0.join(IMAGE_FILE);
        let image = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if Digest::parse(text).is_err() {
                    return Err(GcError::BadImageFile {
                        path,
                        text: text.to_string(),
                    });
                }
                Some(text.to_string())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path)(e)),
        };
        uses.push(ContainerUse {
            name: container.name,
            image,
            layers: container.layers,
        });
    }
    Ok(uses)
}

// ----- mark -----

/// What the mark phase found live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Live blobs: manifests, indexes, configs, layer tarballs.
    pub blobs: BTreeSet<String>,
    /// Live unpacked layers, by diff_id.
    pub layers: BTreeSet<String>,
}

/// A blob read as JSON, or `None` if the store does not have it.
fn read_document(
    store: &Store,
    what: &str,
    digest: &str,
) -> Result<Option<serde_json::Value>, GcError> {
    let unreadable = |cause: String| GcError::Unreadable {
        what: what.to_string(),
        digest: digest.to_string(),
        cause,
    };
    let bytes = match store.read_blob(digest) {
        Ok(bytes) => bytes,
        Err(StoreError::BlobNotFound { .. }) => return Ok(None),
        Err(e @ (StoreError::TooLarge { .. } | StoreError::Read { .. })) => {
            return Err(unreadable(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| unreadable(format!("not JSON: {e}")))
}

/// The digests in `value[key]` (one descriptor) or `value[key][..]` (a
/// list of them). Anything that is not a well-formed digest is no pointer.
fn descriptor_digests<'a>(value: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    let one = |d: &'a serde_json::Value| d.get("digest").and_then(|d| d.as_str());
    let digests: Vec<&str> = match value.get(key) {
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(one).collect(),
        Some(d) => one(d).into_iter().collect(),
        None => vec![],
    };
    digests
        .into_iter()
        .filter(|d| Digest::parse(d).is_ok())
        .collect()
}

// ANCHOR: mark
/// The mark phase: everything reachable from the image names and from the
/// containers' images and layers.
pub fn mark(store: &Store, containers: &[ContainerUse]) -> Result<Marks, GcError> {
    let mut marks = Marks::default();
    // 1. The roots: every name, every container's image. `what` says who
    //    holds each, for error messages.
    let mut todo: Vec<(String, String)> = store
        .names()?
        .into_iter()
        .map(|(name, digest)| (format!("image {name}"), digest))
        .collect();
    for c in containers {
        if let Some(digest) = &c.image {
            todo.push((format!("container {}", c.name), digest.clone()));
        }
    }
    // 2. Trace: a manifest keeps its config and layers, an index its
    //    manifests (pushed to be traced in turn); a blob already marked has
    //    been traced, which also ends any cycle.
    while let Some((what, digest)) = todo.pop() {
        if !marks.blobs.insert(digest.clone()) {
            continue;
        }
        // Not in the store (an index's other platforms are never pulled):
        // nothing to keep below it.
        let Some(doc) = read_document(store, &what, &digest)? else {
            continue;
        };
        for child in descriptor_digests(&doc, "manifests") {
            todo.push((what.clone(), child.to_string()));
        }
        for layer in descriptor_digests(&doc, "layers") {
            marks.blobs.insert(layer.to_string());
        }
        for config in descriptor_digests(&doc, "config") {
            marks.blobs.insert(config.to_string());
            // 3. The config names the unpacked layers, by diff_id.
            let Some(config) = read_document(store, &what, config)? else {
                continue;
            };
            let diff_ids = config
                .pointer("/rootfs/diff_ids")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str());
            marks.layers.extend(diff_ids.map(str::to_string));
        }
    }
    // 4. Layer directories containers mount, whatever made them: their
    //    path ends in the diff_id's algorithm and hex.
    let layers = containers.iter().flat_map(|c| &c.layers);
    marks
        .layers
        .extend(layers.filter_map(|l| diff_id_of_dir(l)));
    Ok(marks)
}
// ANCHOR_END: mark

/// `<algorithm>:<hex>` for a layer directory `.../layers/<algorithm>/<hex>`.
fn diff_id_of_dir(dir: &Path) -> Option<String> {
    let name = |p: &Path| p.file_name()?.to_str().map(str::to_string);
    Some(format!("{}:{}", name(dir.parent()?)?, name(dir)?))
}

// ----- sweep -----

/// What garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed, by digest, sorted.
    pub blobs: Vec<String>,
    /// Unpacked layers removed, by diff_id, sorted.
    pub layers: Vec<String>,
    /// Temporary files left by crashed writers, removed.
    pub leftovers: CleanReport,
}

impl GcReport {
    /// `deleted: sha256:...` for each blob, `deleted: layer sha256:...` for
    /// each unpacked layer, as `docker rmi` lists what it deleted.
    pub fn lines(&self) -> Vec<String> {
        let blobs = self.blobs.iter().map(|d| format!("deleted: {d}"));
        let layers = self.layers.iter().map(|d| format!("deleted: layer {d}"));
        blobs.chain(layers).collect()
    }
}

// ANCHOR: sweep
/// The sweep phase: remove every blob and unpacked layer not in `marks`.
pub fn sweep(store: &Store, marks: &Marks) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    for digest in store.blob_digests()? {
        if !marks.blobs.contains(&digest) && store.delete_blob(&digest)? {
            report.blobs.push(digest);
        }
    }
    for diff_id in store.layer_diff_ids()? {
        if !marks.layers.contains(&diff_id) && store.delete_layer(&diff_id)? {
            report.layers.push(diff_id);
        }
    }
    Ok(report)
}
// ANCHOR_END: sweep

/// Collect garbage: mark, then sweep, then remove the temporary files that
/// killed writers left (all of them: no writer runs meanwhile).
/// `lock` must be the store lock held exclusive.
pub fn collect_garbage(store: &Store, lock: &StoreLock) -> Result<GcReport, GcError> {
    if !lock.is_exclusive() {
        return Err(GcError::NotExclusive);
    }
    let containers = container_uses(store.root())?;
    let marks = mark(store, &containers)?;
    let mut report = sweep(store, &marks)?;
    // With the lock exclusive no writer is running: every temporary file
    // or directory was left by one that was killed.
    report.leftovers = store.clean_temp_older_than(std::time::Duration::ZERO)?;
    Ok(report)
}

// ----- undoing a failed writer -----

/// Every blob and unpacked layer in the store now, as [`Marks`]: taken
/// before a load or pull, to undo it if it fails.
pub fn contents(store: &Store) -> Result<Marks, GcError> {
    Ok(Marks {
        blobs: store.blob_digests()?.into_iter().collect(),
        layers: store.layer_diff_ids()?.into_iter().collect(),
    })
}

// ANCHOR: remove_added
/// Undo a load or pull that failed: remove the blobs and layers it added
/// (in the store now, not in `before`), so that bad input leaves the store
/// as it was. `lock` must be the store lock held exclusive, so no writer
/// runs; what another writer added meanwhile and named is reachable, and
/// stays.
pub fn remove_added(store: &Store, lock: &StoreLock, before: &Marks) -> Result<GcReport, GcError> {
    if !lock.is_exclusive() {
        return Err(GcError::NotExclusive);
    }
    let mut keep = mark(store, &container_uses(store.root())?)?;
    keep.blobs.extend(before.blobs.iter().cloned());
    keep.layers.extend(before.layers.iter().cloned());
    sweep(store, &keep)
}
// ANCHOR_END: remove_added

/// [`remove_added`] with the store lock taken exclusive here (the failed
/// writer must have dropped its shared one).
pub fn undo_added(store: &Store, before: &Marks) -> Result<GcReport, GcError> {
    let lock = store.lock_exclusive()?;
    remove_added(store, &lock, before)
}

// ----- rmi -----

/// What [`remove_image`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// The names removed, with the manifest digest each pointed to.
    pub untagged: Vec<(String, String)>,
    /// The image itself was deleted (its last name went): what the
    /// garbage collection then removed.
    pub deleted: Option<GcReport>,
}

/// The config digest of the manifest `digest` (its image ID), if it is an
/// image manifest in the store.
fn config_of(store: &Store, digest: &str) -> Option<String> {
    let doc = read_document(store, "", digest).ok()??;
    descriptor_digests(&doc, "config")
        .first()
        .map(|d| d.to_string())
}

/// `HEX` or `sha256:HEX`, 1 to 64 lowercase hex digits: maybe an image ID.
fn id_prefix(text: &str) -> Option<&str> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    let ok = (1..=64).contains(&hex.len())
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}

fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.registry == b.registry && a.repository == b.repository
}

// ANCHOR: which_names
/// Which names `rmi target` removes, and the manifest they point to.
fn names_to_remove(
    store: &Store,
    names: &BTreeMap<String, String>,
    target: &str,
    force: bool,
) -> Result<(String, Vec<String>), GcError> {
    // 1. A name, as docker reads it (`alpine` is docker.io/library/alpine:latest).
    let parsed = match Reference::parse(target) {
        Ok(reference) => Some(reference),
        Err(_) if id_prefix(target).is_some() => None,
        Err(e) => return Err(e.into()),
    };
    // 2. That name, or NAME@DIGEST: the names of that repository pointing there.
    if let Some(reference) = &parsed
        && let Some(found) = names_by_reference(names, reference)
    {
        return Ok(found);
    }
    // 3. An image ID: a prefix of the config digest, which `images` shows.
    let Some(prefix) = id_prefix(target) else {
        return Err(GcError::NoImage(target.to_string()));
    };
    let (digest, matching) = names_by_id(store, names, target, prefix)?;
    // 4. By ID, every name goes: refused across repositories unless forced.
    refuse_many_repositories(target, &matching, force)?;
    Ok((digest, matching))
}
// ANCHOR_END: which_names

// ANCHOR: names_by_reference
/// The names a reference removes: itself if the store has it; for
/// `NAME@DIGEST`, every name of that repository pointing to the digest.
/// `None` if there is none.
fn names_by_reference(
    names: &BTreeMap<String, String>,
    reference: &Reference,
) -> Option<(String, Vec<String>)> {
    let full = reference.to_string();
    if let Some(digest) = names.get(&full) {
        return Some((digest.clone(), vec![full]));
    }
    let digest = reference.digest.as_ref()?.to_string();
    let matching: Vec<String> = names
        .iter()
        .filter(|(name, d)| {
            **d == digest && Reference::parse(name).is_ok_and(|n| same_repository(&n, reference))
        })
        .map(|(name, _)| name.clone())
        .collect();
    (!matching.is_empty()).then_some((digest, matching))
}
// ANCHOR_END: names_by_reference

// ANCHOR: names_by_id
/// The manifest whose config digest starts with the image ID `prefix`,
/// and every name pointing to it; an error if no image or more than one
/// matches (naming them).
fn names_by_id(
    store: &Store,
    names: &BTreeMap<String, String>,
    target: &str,
    prefix: &str,
) -> Result<(String, Vec<String>), GcError> {
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, digest) in names {
        let is_it = config_of(store, digest)
            .is_some_and(|c| c.trim_start_matches("sha256:").starts_with(prefix));
        if is_it {
            images.entry(digest.clone()).or_default().push(name.clone());
        }
    }
    let mut found = images.into_iter();
    match (found.next(), found.next()) {
        (None, _) => Err(GcError::NoImage(target.to_string())),
        (Some(one), None) => Ok(one),
        (Some(a), Some(b)) => {
            let images = [a, b]
                .into_iter()
                .chain(found)
                .map(|(_, names)| familiar(&names[0]))
                .collect::<Vec<_>>()
                .join(", ");
            Err(GcError::Ambiguous {
                prefix: target.to_string(),
                images,
            })
        }
    }
}
// ANCHOR_END: names_by_id

// ANCHOR: refuse_many_repositories
/// Refuse, unless `force`, to remove by ID names of more than one
/// repository, as docker does: the error lists them.
fn refuse_many_repositories(target: &str, matching: &[String], force: bool) -> Result<(), GcError> {
    let repositories: BTreeSet<String> = matching
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| format!("{}/{}", r.registry, r.repository))
        .collect();
    if repositories.len() > 1 && !force {
        return Err(GcError::ManyRepositories {
            id: target.to_string(),
            names: matching
                .iter()
                .map(|n| familiar(n))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}
// ANCHOR_END: refuse_many_repositories

/// A stored name as `images` shows it.
pub fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

// ANCHOR: remove_image
/// `rmi target`: remove the names `target` stands for; when that takes the
/// image's last name, delete the image (refused while a container made from
/// it exists) and collect the garbage. `lock` must be the store lock held
/// exclusive, so no pull or run can use the image meanwhile.
pub fn remove_image(
    store: &Store,
    lock: &StoreLock,
    target: &str,
    force: bool,
) -> Result<Removal, GcError> {
    if !lock.is_exclusive() {
        return Err(GcError::NotExclusive);
    }
    // 1. Which names go, and which image they name.
    let names = store.names()?;
    let (digest, doomed) = names_to_remove(store, &names, target, force)?;
    // 2. Is this the image's last name? Then it is deleted, which no
    //    container made from it may survive: refuse before changing anything.
    let last = names
        .iter()
        .all(|(name, d)| *d != digest || doomed.contains(name));
    if last {
        let users: Vec<String> = container_uses(store.root())?
            .into_iter()
            .filter(|c| c.image.as_deref() == Some(digest.as_str()))
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            let (containers, hint) = match users.as_slice() {
                [one] => (
                    format!("container {one}"),
                    format!("remove it first with `rm {one}`"),
                ),
                _ => (
                    format!("containers {}", users.join(", ")),
                    "remove them first with `rm NAME` for each".to_string(),
                ),
            };
            return Err(GcError::InUse {
                image: familiar(&doomed[0]),
                containers,
                hint,
            });
        }
    }
    // 3. The names go first: a crash after this leaves garbage, never a
    //    name without its content.
    let mut removal = Removal::default();
    for name in doomed {
        if let Some(d) = store.remove_name(&name)? {
            removal.untagged.push((name, d));
        }
    }
    // 4. Then the content no name or container reaches any more.
    if last {
        removal.deleted = Some(collect_garbage(store, lock)?);
    }
    Ok(removal)
}
// ANCHOR_END: remove_image

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::oci;

    fn digest_of(bytes: &[u8]) -> String {
        Digest::of_bytes(Algorithm::Sha256, bytes).to_string()
    }

    fn put(store: &Store, bytes: &[u8]) -> String {
        let digest = digest_of(bytes);
        store.put_blob(&digest, None, bytes).unwrap();
        digest
    }

    /// A fake layer: a blob, and an unpacked directory under a diff_id
    /// (made directly: these tests are about reachability, not unpacking).
    struct Layer {
        blob: String,
        diff_id: String,
    }

    fn layer(store: &Store, content: &str) -> Layer {
        let blob = put(store, format!("layer tarball {content}").as_bytes());
        let diff_id = digest_of(format!("layer tar {content}").as_bytes());
        let dir = store.layer_path(&diff_id).unwrap();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/content"), content).unwrap();
        Layer { blob, diff_id }
    }

    /// An image of `layers`, named `name`; returns (manifest, config).
    fn image(store: &Store, name: Option<&str>, layers: &[&Layer], cmd: &str) -> (String, String) {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        });
        let config_digest = put(store, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST,
            "config": {"mediaType": oci::OCI_CONFIG, "digest": config_digest, "size": 1},
            "layers": layers.iter().map(|l| serde_json::json!(
                {"mediaType": oci::OCI_LAYER_TAR_GZIP, "digest": l.blob, "size": 1})).collect::<Vec<_>>(),
        });
        let digest = put(store, manifest.to_string().as_bytes());
        if let Some(name) = name {
            store.set_name(name, &digest).unwrap();
        }
        (digest, config_digest)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    const A: &str = "docker.io/library/a:latest";
    const B: &str = "docker.io/library/b:latest";

    #[test]
    fn rmi_of_the_last_name_deletes_what_only_that_image_reached() {
        let (_dir, store) = store();
        let base = layer(&store, "base");
        let only_a = layer(&store, "a");
        let only_b = layer(&store, "b");
        let (ma, ca) = image(&store, Some(A), &[&base, &only_a], "a");
        let (mb, _) = image(&store, Some(B), &[&base, &only_b], "b");
        store.set_name("docker.io/library/a:other", &ma).unwrap();
        let lock = store.lock_exclusive().unwrap();

        // One of two names: untagged, nothing deleted.
        let removal = remove_image(&store, &lock, "a:other", false).unwrap();
        assert_eq!(
            removal.untagged,
            [("docker.io/library/a:other".to_string(), ma.clone())]
        );
        assert_eq!(removal.deleted, None);

        // The last name: a's manifest, config and own layer go; the base
        // layer, shared with b, stays.
        let removal = remove_image(&store, &lock, "a", false).unwrap();
        let report = removal.deleted.unwrap();
        let mut expected = vec![ma, ca, only_a.blob.clone()];
        expected.sort();
        assert_eq!(report.blobs, expected);
        assert_eq!(report.layers, vec![only_a.diff_id.clone()]);
        assert!(!store.has_layer(&only_a.diff_id).unwrap());
        for kept in [&base.blob, &only_b.blob, &mb] {
            assert!(store.has_blob(kept).unwrap(), "{kept}");
        }
        assert!(store.has_layer(&base.diff_id).unwrap());
        assert!(store.has_layer(&only_b.diff_id).unwrap());
        assert_eq!(
            report.lines()[3],
            format!("deleted: layer {}", only_a.diff_id)
        );

        // Nothing left to collect.
        let again = collect_garbage(&store, &lock).unwrap();
        assert!(again.blobs.is_empty() && again.layers.is_empty());
        drop(lock);

        let lock = store.lock_shared().unwrap();
        assert!(matches!(
            collect_garbage(&store, &lock),
            Err(GcError::NotExclusive)
        ));
        assert!(matches!(
            remove_image(&store, &lock, "b", false),
            Err(GcError::NotExclusive)
        ));
    }

    #[test]
    fn an_index_keeps_its_manifests_and_a_container_its_image() {
        let (dir, store) = store();
        let l1 = layer(&store, "one");
        let l2 = layer(&store, "two");
        let (m1, c1) = image(&store, None, &[&l1], "one");
        let (m2, _) = image(&store, None, &[&l2], "two");
        let missing_child = digest_of(b"a platform never pulled");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_INDEX,
            "manifests": [
                {"mediaType": oci::OCI_MANIFEST, "digest": m1, "size": 1},
                {"mediaType": oci::OCI_MANIFEST, "digest": missing_child, "size": 1},
            ],
        });
        let index = put(&store, index.to_string().as_bytes());
        store.set_name(A, &index).unwrap();
        // A container made from m2, which has no name.
        let container = dir.path().join("containers/web");
        std::fs::create_dir_all(&container).unwrap();
        let state = ch04_overlay::state::ContainerState {
            name: "web".into(),
            layers: vec![store.layer_path(&l2.diff_id).unwrap()],
            driver: ch04_overlay::state::StorageDriver::Overlay,
        };
        std::fs::write(
            container.join("config.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        record_image(&container, &m2).unwrap();
        // Garbage: a stray blob and a stray layer.
        let stray = put(&store, b"stray");
        let stray_layer = layer(&store, "stray");

        let containers = container_uses(dir.path()).unwrap();
        assert_eq!(containers[0].image.as_deref(), Some(m2.as_str()));
        let marks = mark(&store, &containers).unwrap();
        assert!(marks.blobs.contains(&index) && marks.blobs.contains(&c1));
        assert!(marks.blobs.contains(&m2));
        let lock = store.lock_exclusive().unwrap();
        let report = collect_garbage(&store, &lock).unwrap();
        let mut expected = vec![stray, stray_layer.blob];
        expected.sort();
        assert_eq!(report.blobs, expected);
        assert_eq!(report.layers, [stray_layer.diff_id]);
        for l in [&l1, &l2] {
            assert!(store.has_blob(&l.blob).unwrap());
            assert!(store.has_layer(&l.diff_id).unwrap());
        }

        // The container's image has no name: nothing to rmi. Its file
        // going (rm) makes it garbage.
        std::fs::remove_dir_all(&container).unwrap();
        let report = collect_garbage(&store, &lock).unwrap();
        assert!(report.blobs.contains(&m2));
        assert_eq!(report.layers, vec![l2.diff_id.clone()]);
    }

    #[test]
    fn rmi_is_refused_while_a_container_uses_the_image() {
        let (dir, store) = store();
        let l = layer(&store, "x");
        let (m, _) = image(&store, Some(A), &[&l], "x");
        for name in ["web", "db"] {
            let container = dir.path().join("containers").join(name);
            std::fs::create_dir_all(&container).unwrap();
            let state = ch04_overlay::state::ContainerState {
                name: name.into(),
                layers: vec![],
                driver: ch04_overlay::state::StorageDriver::Vfs,
            };
            std::fs::write(
                container.join("config.json"),
                serde_json::to_string(&state).unwrap(),
            )
            .unwrap();
            record_image(&container, &m).unwrap();
        }
        let before = store.blob_digests().unwrap();
        let lock = store.lock_exclusive().unwrap();
        let err = remove_image(&store, &lock, "a", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image a:latest is in use by containers db, web: remove them first with `rm NAME` for each, then rmi again"
        );
        assert_eq!(store.resolve(A).unwrap(), Some(m.clone()));
        assert_eq!(store.blob_digests().unwrap(), before);
        // Another name of the same image may go: the image stays.
        store.set_name(B, &m).unwrap();
        let removal = remove_image(&store, &lock, "a", false).unwrap();
        assert_eq!(removal.deleted, None);
        // A corrupt image file is no reason to guess.
        std::fs::write(dir.path().join("containers/web/image"), "latest\n").unwrap();
        assert!(matches!(
            remove_image(&store, &lock, "b", false),
            Err(GcError::BadImageFile { .. })
        ));
    }

    #[test]
    fn rmi_by_digest_and_by_id() {
        let (_dir, store) = store();
        let l = layer(&store, "x");
        let (m, config) = image(&store, Some(A), &[&l], "x");
        store.set_name("docker.io/library/a:1", &m).unwrap();
        store.set_name("docker.io/library/c:1", &m).unwrap();
        let lock = store.lock_exclusive().unwrap();
        // NAME@DIGEST: both names of repository a.
        let removal = remove_image(&store, &lock, &format!("a@{m}"), false).unwrap();
        let untagged: Vec<&str> = removal.untagged.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(untagged, ["docker.io/library/a:1", A]);
        assert_eq!(removal.deleted, None);
        // An unknown digest or name.
        let other = digest_of(b"other");
        assert!(matches!(
            remove_image(&store, &lock, &format!("a@{other}"), false),
            Err(GcError::NoImage(_))
        ));
        assert!(matches!(
            remove_image(&store, &lock, "nosuch", false),
            Err(GcError::NoImage(_))
        ));
        assert!(matches!(
            remove_image(&store, &lock, "Bad Name", false),
            Err(GcError::Reference(_))
        ));

        // By ID (the config digest, as `images` shows 12 digits of it):
        // names in two repositories need --force.
        store.set_name(B, &m).unwrap();
        let id = &config["sha256:".len().."sha256:".len() + 12];
        let err = remove_image(&store, &lock, id, false).unwrap_err();
        assert!(matches!(err, GcError::ManyRepositories { .. }), "{err}");
        let removal = remove_image(&store, &lock, &format!("sha256:{id}"), true).unwrap();
        assert_eq!(removal.untagged.len(), 2);
        assert!(removal.deleted.unwrap().blobs.contains(&m));
        assert!(store.names().unwrap().is_empty());
        // A full 64-digit ID is not a name either.
        assert!(matches!(
            remove_image(&store, &lock, &config["sha256:".len()..], false),
            Err(GcError::NoImage(_))
        ));
    }

    #[test]
    fn an_unreadable_named_manifest_stops_the_collection() {
        let (_dir, store) = store();
        let l = layer(&store, "x");
        let junk = put(&store, b"\x00not json");
        store.set_name(A, &junk).unwrap();
        let stray = put(&store, b"stray");
        let lock = store.lock_exclusive().unwrap();
        let err = collect_garbage(&store, &lock).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("image docker.io/library/a:latest: sha256:"),
            "{err}"
        );
        assert!(store.has_blob(&stray).unwrap());
        assert!(store.has_layer(&l.diff_id).unwrap());
        // rmi of that name removes it, then collects.
        let removal = remove_image(&store, &lock, "a", false).unwrap();
        assert!(removal.deleted.unwrap().blobs.contains(&stray));
    }
}
