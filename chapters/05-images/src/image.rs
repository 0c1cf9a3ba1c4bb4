//! An image in the store: a manifest, a config and layers, tied together by
//! digests — and the two things an engine does with one: make it from a
//! directory (`import`), and turn it back into directories to run (`unpack`).
//!
//! OCI image-spec: manifest.md (the manifest lists the config and the layers
//! by digest), config.md (`rootfs.diff_ids`: the digests of the *uncompressed*
//! layers, in order; `config`: Entrypoint, Cmd, Env...). Every blob is named by
//! the sha256 of its bytes, so the manifest's digest names the whole image:
//! change one byte of one layer and the image is another image. A name may
//! also point to an index (image-index.md: a multi-platform image, as
//! `load` keeps one): [`load_image`] then reads this host's entry.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ch04_overlay::commit::{CommitOptions, commit_layer};

use crate::digest::{Algorithm, Digest};
use crate::oci::{
    self, ContainerConfig, Descriptor, ImageConfig, ImageManifest, Manifest, Platform, RootFs,
};
use crate::reference::Reference;
use crate::store::{Compression, Store};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image {0} in the store: import or pull it first")]
    Unknown(String),
    #[error(
        "{0}: the name points to indexes nested more than {MAX_INDEX_NESTING} deep: refusing it"
    )]
    TooDeep(String),
    #[error("{name}: {cause}")]
    Platform { name: String, cause: oci::OciError },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Oci(#[from] oci::OciError),
    #[error("commit {path} as a layer: {cause}")]
    Commit {
        path: PathBuf,
        cause: ch04_overlay::commit::CommitError,
    },
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{what}: not valid JSON: {cause}")]
    Json {
        what: String,
        cause: serde_json::Error,
    },
    #[error("{0}: the config has {1} diff_ids for {2} layers")]
    DiffIds(String, usize, usize),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |cause| ImageError::Io { what, cause }
}

/// Store `bytes` as a blob and describe it.
fn put_json(store: &Store, media_type: &str, bytes: &[u8]) -> Result<Descriptor, ImageError> {
    let digest = Digest::of_bytes(Algorithm::Sha256, bytes).to_string();
    store.put_blob(&digest, Some(bytes.len() as u64), bytes)?;
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest,
        size: bytes.len() as u64,
        urls: None,
        annotations: None,
        data: None,
        platform: None,
        artifact_type: None,
    })
}

/// Make a single-layer image of the directory `rootfs` (as `docker import`
/// does), with `config` (Entrypoint, Cmd, Env...; a `Vec` of arguments is a
/// Cmd) and name it `name`. Deterministic: the same tree gives the same
/// digests. Returns the manifest's digest.
// ANCHOR: import_rootfs
pub fn import_rootfs(
    store: &Store,
    rootfs: &Path,
    name: &Reference,
    config: impl Into<ContainerConfig>,
) -> Result<String, ImageError> {
    // 1. The layer: the tree as a gzip tarball, written to a temp file and
    //    then moved into the store under its digest.
    let (layer, diff_id) = store_rootfs_layer(store, rootfs)?;
    // 2. The config: the platform, what to run, and the diff_id.
    let config = store_import_config(store, config.into(), diff_id)?;
    // 3. The manifest, last: it names the others, and its digest names the image.
    let manifest = store_import_manifest(store, config, layer)?;
    store.set_name(&name.to_string(), &manifest.digest)?;
    Ok(manifest.digest)
}
// ANCHOR_END: import_rootfs

// ANCHOR: store_rootfs_layer
/// Write the tree `rootfs` as a deterministic gzip layer into a temp file
/// in the store's directory, then put it in the store under its digest.
/// Returns the layer's descriptor and its `diff_id`.
fn store_rootfs_layer(store: &Store, rootfs: &Path) -> Result<(Descriptor, String), ImageError> {
    let mut tmp = tempfile::tempfile_in(store.root()).map_err(io("create a temp file"))?;
    let opts = CommitOptions {
        keep_times: false,
        gzip: true,
    };
    let digests = commit_layer(rootfs, &mut tmp, &opts).map_err(|cause| ImageError::Commit {
        path: rootfs.to_path_buf(),
        cause,
    })?;
    let blob = digests.digest.clone().unwrap_or_default();
    tmp.seek(SeekFrom::Start(0))
        .map_err(io("rewind the layer"))?;
    store.put_blob(&blob, Some(digests.size), &mut tmp)?;
    let layer = Descriptor {
        media_type: oci::OCI_LAYER_TAR_GZIP.to_string(),
        digest: blob,
        size: digests.size,
        urls: None,
        annotations: None,
        data: None,
        platform: None,
        artifact_type: None,
    };
    Ok((layer, digests.diff_id))
}
// ANCHOR_END: store_rootfs_layer

// ANCHOR: store_import_config
/// Put the image config in the store: the host's platform, `config` with
/// the standard `PATH`, and the one layer's `diff_id`; no creation date,
/// so the same tree gives the same digest.
fn store_import_config(
    store: &Store,
    config: ContainerConfig,
    diff_id: String,
) -> Result<Descriptor, ImageError> {
    let platform = Platform::host();
    let config = ImageConfig {
        created: None,
        author: None,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: None,
        os_features: None,
        variant: platform.variant.clone(),
        config: Some(with_default_path(config)),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id],
        },
        history: None,
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|cause| ImageError::Json {
        what: "the config".into(),
        cause,
    })?;
    put_json(store, oci::OCI_CONFIG, &config_bytes)
}
// ANCHOR_END: store_import_config

// ANCHOR: store_import_manifest
/// Put the OCI manifest naming `config` and the one `layer` in the store;
/// its descriptor's digest is the image's.
fn store_import_manifest(
    store: &Store,
    config: Descriptor,
    layer: Descriptor,
) -> Result<Descriptor, ImageError> {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config,
        layers: vec![layer],
        subject: None,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|cause| ImageError::Json {
        what: "the manifest".into(),
        cause,
    })?;
    put_json(store, oci::OCI_MANIFEST, &bytes)
}
// ANCHOR_END: store_import_manifest

/// The standard `PATH` first in `Env`, unless the config sets its own.
fn with_default_path(mut config: ContainerConfig) -> ContainerConfig {
    let env = config.env.get_or_insert_with(Vec::new);
    if !env.iter().any(|kv| kv.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", ch01_chroot::process::DEFAULT_PATH));
    }
    config
}

/// An image as the store holds it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image manifest's digest.
    pub digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    /// When the name points to an index (a multi-platform image), the
    /// index's digest: the image is then its entry for this host.
    pub index: Option<String>,
}

impl Image {
    /// The digest the name points to: the index's, if it is one, else the
    /// image manifest's. What `tag` names again and a container records.
    pub fn named_digest(&self) -> &str {
        self.index.as_deref().unwrap_or(&self.digest)
    }
}

/// How deep indexes may nest on the way from a name to an image manifest
/// (an index of indexes is legal; an endless chain is not).
pub const MAX_INDEX_NESTING: usize = 4;

/// Read image `name`'s manifest and config from the store. A name that
/// points to an index (a multi-platform image, as `load` keeps them) gives
/// the index's entry for this host's platform ([`oci::choose_platform`]).
// ANCHOR: load_image
pub fn load_image(store: &Store, name: &Reference) -> Result<Image, ImageError> {
    let full = name.to_string();
    let named = store
        .resolve(&full)?
        .ok_or_else(|| ImageError::Unknown(full.clone()))?;
    // 1. The manifest the name points to; an index → this platform's entry,
    //    and again if that is an index, a few levels at most.
    let host = Platform::host();
    let mut digest = named.clone();
    let mut manifest = None;
    for _ in 0..=MAX_INDEX_NESTING {
        match oci::parse_manifest("", &store.read_blob(&digest)?)? {
            Manifest::Image(m) => {
                manifest = Some(m);
                break;
            }
            Manifest::Index(index) => {
                let entry =
                    oci::choose_platform(&index, &host).map_err(|cause| ImageError::Platform {
                        name: full.clone(),
                        cause,
                    })?;
                digest = entry.digest.clone();
            }
        }
    }
    let manifest = manifest.ok_or_else(|| ImageError::TooDeep(full.clone()))?;
    // 2. The config, which must describe as many layers as the manifest has.
    let bytes = store.read_blob(&manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|cause| ImageError::Json {
        what: format!("config {}", manifest.config.digest),
        cause,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::DiffIds(
            full,
            config.rootfs.diff_ids.len(),
            manifest.layers.len(),
        ));
    }
    let index = (named != digest).then_some(named);
    Ok(Image {
        digest,
        manifest,
        config,
        index,
    })
}
// ANCHOR_END: load_image

/// Unpack every layer of `image` (once each, shared by every image that has
/// it) and return their directories, bottom first: the lowers of an overlay.
pub fn unpack_layers(store: &Store, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
    let mut dirs = Vec::new();
    for (layer, diff_id) in image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
    {
        let compression = Compression::of_media_type(&layer.media_type);
        dirs.push(store.unpack_layer(&layer.digest, diff_id, compression)?);
    }
    Ok(dirs)
}

/// The CREATED column of `images`: how long ago `created` (RFC 3339, as
/// image configs write it) was, in docker's words ("3 weeks ago"), or
/// `N/A` for an image without a date (as `import` makes them).
pub fn created_ago(created: Option<&str>, now: std::time::SystemTime) -> String {
    let Some(then) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "N/A".to_string();
    };
    let Ok(age) = now.duration_since(then) else {
        return "in the future".to_string();
    };
    let s = age.as_secs();
    let (minute, hour, day) = (60, 3600, 86_400);
    let text = match s {
        0 => "Less than a second".to_string(),
        1..60 => format!("{s} seconds"),
        60..120 => "About a minute".to_string(),
        120..3600 => format!("{} minutes", s / minute),
        3600..7200 => "About an hour".to_string(),
        7200..172_800 => format!("{} hours", s / hour),
        172_800..1_209_600 => format!("{} days", s / day),
        1_209_600..5_184_000 => format!("{} weeks", s / (7 * day)),
        5_184_000..63_072_000 => format!("{} months", s / (30 * day)),
        _ => format!("{} years", s / (365 * day)),
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_reads_like_docker() {
        let now = humantime::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let ago = |c: &str| created_ago(Some(c), now);
        assert_eq!(ago("2026-11-22T11:59:30Z"), "30 seconds ago");
        assert_eq!(ago("2026-11-22T11:58:30.123456789Z"), "About a minute ago");
        assert_eq!(ago("2026-11-22T09:00:00Z"), "3 hours ago");
        assert_eq!(ago("2026-11-15T12:00:00Z"), "7 days ago");
        assert_eq!(ago("2026-10-25T12:00:00Z"), "4 weeks ago");
        assert_eq!(ago("2026-05-01T12:00:00Z"), "6 months ago");
        assert_eq!(ago("2020-01-01T00:00:00Z"), "6 years ago");
        assert_eq!(created_ago(None, now), "N/A");
        assert_eq!(created_ago(Some("yesterday"), now), "N/A");
    }

    #[test]
    fn an_imported_tree_comes_back_from_its_layers_and_digests_are_stable() {
        // Layers unpack as overlay lowers (0/0 whiteouts): fine as any user on
        // Linux 5.8+, and this tree has no whiteouts anyway.
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("etc")).unwrap();
        std::fs::write(tree.path().join("etc/hostname"), "imported\n").unwrap();
        std::os::unix::fs::symlink("etc/hostname", tree.path().join("link")).unwrap();
        let name = Reference::parse("local/test:1").unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (
            Store::open(a.path()).unwrap(),
            Store::open(b.path()).unwrap(),
        );
        let da = import_rootfs(&sa, tree.path(), &name, vec!["/bin/sh".into()]).unwrap();
        let db = import_rootfs(&sb, tree.path(), &name, vec!["/bin/sh".into()]).unwrap();
        assert_eq!(da, db, "the same tree gives the same image");

        let image = load_image(&sa, &name).unwrap();
        assert_eq!(image.digest, da);
        assert_eq!(
            image.config.config.as_ref().unwrap().cmd,
            Some(vec!["/bin/sh".to_string()])
        );
        let dirs = unpack_layers(&sa, &image).unwrap();
        assert_eq!(dirs.len(), 1);
        assert_eq!(
            std::fs::read_to_string(dirs[0].join("etc/hostname")).unwrap(),
            "imported\n"
        );
        assert_eq!(
            std::fs::read_link(dirs[0].join("link")).unwrap(),
            Path::new("etc/hostname")
        );

        let missing = load_image(&sa, &Reference::parse("local/none").unwrap()).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no image docker.io/local/none:latest"),
            "{missing}"
        );
    }
}
