//! `gc`: removing what no manifest needs any more.
//!
//! Deleting a manifest or a tag only removes names; the layers stay, since
//! another image may share them. Garbage collection finds what is truly
//! unreachable, by mark and sweep:
//!
//! 1. take the storage lock *exclusively*: a running registry holds it
//!    shared, and must be stopped first — a blob pushed a moment ago, whose
//!    manifest is still on its way, is exactly what a collector would take
//!    for garbage;
//! 2. mark: every manifest a repository links is live, and so are the
//!    config and layers it names (and the manifests an index names);
//! 3. sweep each repository's blob links that none of *its* manifests name
//!    (so a `DELETE` of an image in one repository frees its layers there,
//!    while another repository keeps its own links);
//! 4. sweep the content no live manifest names, anywhere;
//! 5. remove upload sessions untouched for longer than the given age, and
//!    everything in `tmp/` (with the server stopped, nothing is in flight).
//!
//! The same rules as the distribution registry's `garbage-collect`
//! (`registry/storage/garbage_collect.go`), which also wants the registry
//! read-only or stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use ch05_images::digest::Digest;

use crate::storage::Storage;
use crate::uploads::purge_stale_offline;

/// What to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report, delete nothing.
    pub dry_run: bool,
    /// Upload sessions untouched for this long are removed.
    pub upload_max_age: Duration,
}

/// What was (or, in a dry run, would be) removed.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Content removed, with its size.
    pub blobs: Vec<(Digest, u64)>,
    /// `repository@digest` links removed.
    pub links: Vec<String>,
    /// Upload session directories removed.
    pub uploads: Vec<PathBuf>,
    /// Temporary files removed.
    pub temp_files: usize,
    /// Inconsistencies found on the way (a manifest whose content is gone).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(
        "a registry is serving {0} (it holds registry.lock): stop it first, since a blob it \
         received a moment ago may be waiting for its manifest"
    )]
    InUse(PathBuf),
    #[error("{what}: {cause}")]
    Io { what: String, cause: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> GcError {
    let what = what.into();
    move |cause| GcError::Io { what, cause }
}

/// The digests a manifest names: config and layers (blobs), and an index's
/// manifests. Not its `subject`, which it refers *to* without owning.
fn named_by(bytes: &[u8]) -> Option<(Vec<Digest>, Vec<Digest>)> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let digest_of = |d: &serde_json::Value| {
        d.get("digest")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| Digest::parse(s).ok())
    };
    let mut blobs: Vec<Digest> = value
        .get("config")
        .and_then(digest_of)
        .into_iter()
        .collect();
    if let Some(layers) = value.get("layers").and_then(serde_json::Value::as_array) {
        blobs.extend(layers.iter().filter_map(digest_of));
    }
    let manifests = value
        .get("manifests")
        .and_then(serde_json::Value::as_array)
        .map(|m| m.iter().filter_map(digest_of).collect())
        .unwrap_or_default();
    Some((blobs, manifests))
}

// ANCHOR: collect
/// Collects garbage in `storage` (see the module's steps).
pub async fn collect(storage: &Storage, options: &GcOptions) -> Result<GcReport, GcError> {
    // 1. Alone.
    let _lock = storage
        .try_lock(true)
        .map_err(io_err("lock registry.lock"))?
        .ok_or_else(|| GcError::InUse(storage.root().to_path_buf()))?;
    let mut report = GcReport::default();
    let repositories = storage
        .repositories()
        .await
        .map_err(io_err("list repositories"))?;
    // 2. Mark: what every manifest names, in all and per repository.
    let marks = mark(storage, &repositories, &mut report).await?;
    // 3. Blob links no manifest of their repository names.
    unlink_unnamed(storage, &repositories, &marks, options, &mut report).await?;
    // 4. Content nothing names.
    sweep_blobs(storage, &marks, options, &mut report).await?;
    // 5. Abandoned uploads and temporary files.
    if !options.dry_run {
        remove_leftovers(storage, options, &mut report).await?;
    }
    Ok(report)
}
// ANCHOR_END: collect

/// What the mark phase found named.
struct Marks {
    /// Every manifest, and every blob a manifest names.
    live: BTreeSet<Digest>,
    /// The blobs each repository's manifests name.
    named_here: BTreeMap<String, BTreeSet<Digest>>,
}

// ANCHOR: mark
/// Step 2: every manifest linked in a repository is live, and so is every
/// blob and manifest it names. A manifest whose content is gone or is not
/// JSON is a warning, not an error: the rest is collected all the same.
async fn mark(
    storage: &Storage,
    repositories: &[String],
    report: &mut GcReport,
) -> Result<Marks, GcError> {
    let mut marks = Marks {
        live: BTreeSet::new(),
        named_here: BTreeMap::new(),
    };
    for name in repositories {
        let here = marks.named_here.entry(name.clone()).or_default();
        for manifest in storage
            .manifest_links(name)
            .await
            .map_err(io_err(format!("list manifests of {name}")))?
        {
            marks.live.insert(manifest.clone());
            let Ok(bytes) = storage.read_blob(&manifest).await else {
                report.warnings.push(format!(
                    "{name}: manifest {manifest} is linked but its content is gone"
                ));
                continue;
            };
            let Some((blobs, manifests)) = named_by(&bytes) else {
                report
                    .warnings
                    .push(format!("{name}: manifest {manifest} is not JSON"));
                continue;
            };
            marks.live.extend(manifests);
            for blob in blobs {
                marks.live.insert(blob.clone());
                here.insert(blob);
            }
        }
    }
    Ok(marks)
}
// ANCHOR_END: mark

// ANCHOR: sweep
/// Step 3: a repository's links to blobs none of its manifests names go.
async fn unlink_unnamed(
    storage: &Storage,
    repositories: &[String],
    marks: &Marks,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    for name in repositories {
        let here = &marks.named_here[name];
        for blob in storage
            .blob_links(name)
            .await
            .map_err(io_err(format!("list blobs of {name}")))?
        {
            if here.contains(&blob) {
                continue;
            }
            if !options.dry_run {
                storage
                    .unlink_blob(name, &blob)
                    .await
                    .map_err(io_err(format!("unlink {blob} from {name}")))?;
            }
            report.links.push(format!("{name}@{blob}"));
        }
    }
    Ok(())
}

/// Step 4: content no manifest names goes, whoever linked it.
async fn sweep_blobs(
    storage: &Storage,
    marks: &Marks,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    for blob in storage.blob_digests().await.map_err(io_err("list blobs"))? {
        if marks.live.contains(&blob) {
            continue;
        }
        let size = storage
            .blob_size(&blob)
            .await
            .map_err(io_err(format!("stat {blob}")))?
            .unwrap_or(0);
        if !options.dry_run {
            storage
                .delete_blob(&blob)
                .await
                .map_err(io_err(format!("delete {blob}")))?;
        }
        report.blobs.push((blob, size));
    }
    Ok(())
}
// ANCHOR_END: sweep

/// Step 5: uploads abandoned for longer than the options say, and every
/// temporary file (nothing else runs).
async fn remove_leftovers(
    storage: &Storage,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    report.uploads = purge_stale_offline(storage, options.upload_max_age)
        .await
        .map_err(io_err("remove stale uploads"))?;
    let mut entries = tokio::fs::read_dir(storage.tmp_dir())
        .await
        .map_err(io_err("list tmp"))?;
    while let Some(entry) = entries.next_entry().await.map_err(io_err("list tmp"))? {
        tokio::fs::remove_file(entry.path())
            .await
            .map_err(io_err(format!("remove {}", entry.path().display())))?;
        report.temp_files += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_its_config_layers_and_index_entries_not_its_subject() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let manifest = format!(
            r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}}],"subject":{{"digest":"{}"}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let (blobs, manifests) = named_by(manifest.as_bytes()).unwrap();
        let names: Vec<String> = blobs.iter().map(|x| x.to_string()).collect();
        assert_eq!(names, [d('a'), d('b')]);
        assert!(manifests.is_empty());
        let index = format!(r#"{{"manifests":[{{"digest":"{}"}}]}}"#, d('e'));
        let (blobs, manifests) = named_by(index.as_bytes()).unwrap();
        assert!(blobs.is_empty());
        assert_eq!(manifests[0].to_string(), d('e'));
        assert!(named_by(b"nope").is_none());
    }
}
