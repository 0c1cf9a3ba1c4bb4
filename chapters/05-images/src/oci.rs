//! The OCI image format: the JSON documents that describe an image.
//!
//! A registry does not hand out "an image": it hands out a **manifest**, a
//! small JSON document naming a **config** blob (entrypoint, cmd, env...) and
//! an ordered list of **layer** blobs (tarballs), each by its digest. A
//! multi-platform image adds one level above: an **index** (Docker calls it a
//! manifest list) naming one manifest per platform, from which the engine picks
//! the one for the host. Every pointer is a **descriptor**: media type, digest
//! and size, so that a reader knows what it fetches, can check it, and can
//! refuse it before downloading when it is too big.
//!
//! This module holds those types and the rules an engine applies to them:
//! which media types it accepts ([`parse_manifest`]), which platform it runs
//! ([`choose_platform`]), and how the config's `Entrypoint` and `Cmd` become a
//! process ([`process_args`]).
//!
//! Specs: the OCI image spec v1.1 — `descriptor.md`, `manifest.md`,
//! `image-index.md`, `config.md`, `media-types.md`
//! (<https://github.com/opencontainers/image-spec>) — and Docker's "Image
//! Manifest V2, Schema 2", whose manifest and manifest list have the same shape
//! as OCI's manifest and index under other media types. Field names are the
//! specs' own: camelCase in manifests and descriptors, snake_case in the
//! config's `rootfs` and `history`, PascalCase inside the config's `config`.
//!
//! Digests are kept here as checked strings (`sha256:` + 64 lowercase hex
//! digits, or `sha512:` + 128). Note that a digest names the *bytes* that were
//! fetched: never re-serialize one of these types to compute or check a digest,
//! as serde's output need not match the registry's bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a list of manifests, one per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, an uncompressed tar archive.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, a gzip-compressed tar archive.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, a zstd-compressed tar archive.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The empty descriptor's content, `{}` (the config of an artifact that has none).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Prefix of OCI's deprecated non-distributable layers (`.tar`, `+gzip`, `+zstd`).
pub const OCI_LAYER_NONDISTRIBUTABLE_PREFIX: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (Docker's image index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, a gzip-compressed tar archive.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker "foreign" layer: content not in the registry (Windows base layers).
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 manifest (deprecated, refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 manifest with a JWS signature (deprecated, refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Registries refuse manifests over 4 MiB, so a bigger one is not a manifest
/// (or is an attack): refuse it before parsing. Image configs are held to
/// the same limit (docker's own are a few KiB; `load` always refused bigger
/// ones), so every JSON document of an image is read through
/// [`read_document`] with one cap.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Why [`read_document`] gave no document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error(
        "more than {MAX_MANIFEST_BYTES} bytes, the limit for a manifest or config: refusing to read it"
    )]
    TooLarge,
}

// ANCHOR: read_document
/// Read a manifest, index or config from `reader`, refusing it as soon as
/// it passes [`MAX_MANIFEST_BYTES`]: never more than one byte past the
/// limit is read, so an oversized document costs neither memory nor time.
/// The one way this chapter reads a JSON document of an image, from a
/// registry, an archive or the store.
pub fn read_document(reader: impl std::io::Read) -> Result<Vec<u8>, DocumentError> {
    ch04_overlay::files::read_bounded(reader, MAX_MANIFEST_BYTES)
        .map_err(DocumentError::Read)?
        .ok_or(DocumentError::TooLarge)
}
// ANCHOR_END: read_document

/// Every media type a registry may be asked for in an `Accept` header, best first.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "manifest is {size} bytes, over the {limit}-byte limit registries enforce: refusing to parse it"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "schema 1 manifests are deprecated and not supported: ask for a schema 2 or OCI manifest (the image must be pushed again with a current tool)"
    )]
    Schema1,
    #[error(
        "{0:?}: not a manifest media type: expected an OCI manifest or index, or a Docker schema 2 manifest or manifest list"
    )]
    UnsupportedMediaType(String),
    #[error("not a valid manifest: {0}")]
    Json(serde_json::Error),
    #[error("manifest has schemaVersion {0}: only schemaVersion 2 is supported")]
    SchemaVersion(i64),
    #[error(
        "{what} has a malformed digest {digest:?}: expected sha256: and 64 lowercase hex digits, or sha512: and 128"
    )]
    BadDigest { what: String, digest: String },
    #[error(
        "the registry said {declared:?} but the manifest says mediaType {content:?}: refusing an ambiguous document"
    )]
    MediaTypeMismatch { declared: String, content: String },
    #[error(
        "manifest has both \"manifests\" and \"layers\": refusing an ambiguous document (see CVE-2021-41190)"
    )]
    Ambiguous,
    #[error(
        "cannot tell what this document is: it has no mediaType and neither \"manifests\" nor \"layers\""
    )]
    Unrecognized,
    #[error(
        "layer {digest} is a foreign (non-distributable) layer ({media_type}): its content is not in the registry, so it cannot be pulled; such layers are Windows base images, and berth runs Linux images"
    )]
    ForeignLayer { digest: String, media_type: String },
    #[error(
        "layer {digest} has media type {media_type:?}: not an image layer (expected an OCI tar, tar+gzip or tar+zstd layer, or a Docker tar.gzip layer)"
    )]
    UnknownLayerType { digest: String, media_type: String },
    #[error(
        "this is an artifact, not a container image (its config has media type {0:?}): there is nothing to run"
    )]
    NotAnImage(String),
    #[error("no image for {wanted} in this index; it has: {available}")]
    NoMatchingPlatform { wanted: String, available: String },
}

/// Checks that `digest` is a valid digest ([`Digest::parse`]: `sha256:` + 64
/// lowercase hex digits or `sha512:` + 128). `what` names its owner for the
/// error message.
pub fn check_digest(what: &str, digest: &str) -> Result<(), OciError> {
    match Digest::parse(digest) {
        Ok(_) => Ok(()),
        Err(_) => Err(OciError::BadDigest {
            what: what.to_string(),
            digest: digest.to_string(),
        }),
    }
}

/// A pointer to content: what it is, its digest, its size (descriptor.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    /// `algorithm:hex`, checked by [`parse_manifest`].
    pub digest: String,
    /// Size in bytes: a reader must refuse content of another size.
    pub size: u64,
    /// Other places to download the content from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The content itself, base64, for small blobs (v1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// In an index: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// In an index or a `subject`: the artifact's type (v1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `size` bytes with `digest`, nothing optional set.
    pub fn new(media_type: &str, digest: String, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            data: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// A platform, in Go's names: `GOOS` as `os`, `GOARCH` as `architecture`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant: `v7` for arm, `v8` for arm64...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Reserved by OCI; Docker's manifest lists may carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    /// A platform with only os and architecture (and optionally a variant).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
            features: None,
        }
    }

    /// The platform this program runs on, in Go's names (Rust says `x86_64`
    /// and `aarch64`, images say `amd64` and `arm64`).
    pub fn host() -> Platform {
        use std::env::consts::{ARCH, OS};
        let little = cfg!(target_endian = "little");
        let (arch, variant) = match ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", None),
            "powerpc64" if little => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "mips64" if little => ("mips64le", None),
            "mips" if little => ("mipsle", None),
            "loongarch64" => ("loong64", None),
            // riscv64, s390x, mips64, mips: same name in Go.
            other => (other, None),
        };
        let os = match OS {
            "macos" => "darwin",
            other => other,
        };
        Platform::new(os, arch, variant)
    }

    /// Whether an image for `other` runs here: same os and architecture, and
    /// the same variant once defaults are filled in (arm64 means arm64/v8,
    /// arm means arm/v7); a variant missing on either side matches any.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match (self.normalized_variant(), other.normalized_variant()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            (_, Some(v)) if !v.is_empty() => Some(v),
            ("arm64", _) => Some("v8"),
            ("arm", _) => Some("v7"),
            _ => None,
        }
    }
}

/// `os/architecture[/variant]`, as `--platform` spells it.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match self.variant.as_deref() {
            Some(v) if !v.is_empty() => write!(f, "/{v}"),
            _ => Ok(()),
        }
    }
}

/// `--platform os/arch[/variant]`: `linux/amd64`, `linux/arm64/v8`. An
/// architecture alone (`arm64`) means Linux, as docker reads it.
impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !parts.iter().all(valid) {
            return Err(format!(
                "{text:?} is not a platform: write os/architecture[/variant], e.g. linux/arm64"
            ));
        }
        match parts[..] {
            [arch] => Ok(Platform::new("linux", arch, None)),
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(format!(
                "{text:?} is not a platform: write os/architecture[/variant], e.g. linux/arm64"
            )),
        }
    }
}

/// One image for one platform: a config and layers, bottom first (manifest.md).
/// Docker's schema 2 manifest has the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (a signature, an SBOM...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A list of manifests, typically one per platform (image-index.md).
/// Docker's manifest list has the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The image config (config.md): what to run and the layers' uncompressed digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 date and time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
}

impl ImageConfig {
    /// The platform this image was built for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: None,
        }
    }
}

/// An empty JSON object, `{}`: the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// How to run a container from this image: the config's `config` object.
/// Docker writes `null` for absent lists; that reads as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group`, `uid:gid`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `"80/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `SIGTERM`, `SIGQUIT`, `9`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's extensions, which a Dockerfile sets (HEALTHCHECK, ONBUILD,
    /// SHELL) and docker's image configs carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// ONBUILD: instructions a build FROM this image runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// SHELL: what runs a shell-form command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// A HEALTHCHECK, as docker's image config keeps it (durations in
/// nanoseconds; 0 means the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", arg...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A config that only sets `Cmd`: what `import --cmd` gives.
impl From<Vec<String>> for ContainerConfig {
    fn from(cmd: Vec<String>) -> ContainerConfig {
        ContainerConfig {
            cmd: Some(cmd),
            ..ContainerConfig::default()
        }
    }
}

/// The layers' uncompressed digests ("diff IDs"), bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// One step of the image's build, as `docker history` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when this step made no layer (ENV, CMD...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// A fetched manifest: one image, or an index to choose from.
// Boxing would save a few hundred bytes on a value made once per pull, at the
// cost of `Box` patterns for every reader.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Index,
}

fn kind_of(media_type: &str) -> Result<Option<Kind>, OciError> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Some(Kind::Image)),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(Some(Kind::Index)),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(OciError::Schema1),
        // No type, or a generic one: look inside.
        "" | "application/json" | "application/octet-stream" => Ok(None),
        other => Err(OciError::UnsupportedMediaType(other.to_string())),
    }
}

// ANCHOR: check_manifest
/// A document that has the structure of a manifest or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedManifest {
    pub manifest: Manifest,
    /// The manifest media type it was sent with or states in `mediaType`
    /// (the declared one if both); `None` if neither says and its fields
    /// told what it is.
    pub media_type: Option<String>,
}

/// Checks the structure every manifest must have, whoever reads it: a
/// client pulling it ([`parse_manifest`] adds what a runnable image needs)
/// or a registry accepting it (chapter 6 adds its own policy).
///
/// Refuses, in this order: more than [`MAX_MANIFEST_BYTES`] (before reading
/// any JSON); schema 1; media types that are not manifests; a body whose
/// `mediaType` contradicts the declared type, or that has both `manifests`
/// and `layers` (CVE-2021-41190); a `schemaVersion` other than 2; a
/// malformed digest anywhere.
pub fn check_manifest(media_type: &str, bytes: &[u8]) -> Result<CheckedManifest, OciError> {
    // 1. The size, before any JSON is parsed.
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(OciError::TooLarge {
            size: bytes.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    // 2. What it says it is. Content-Type may carry parameters:
    //    `...+json; charset=utf-8`.
    let declared = media_type.split(';').next().unwrap_or("").trim();
    let declared_kind = kind_of(declared)?;
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(OciError::Json)?;
    if value
        .get("schemaVersion")
        .and_then(serde_json::Value::as_i64)
        == Some(1)
    {
        return Err(OciError::Schema1);
    }
    let content_type = value.get("mediaType").and_then(serde_json::Value::as_str);
    let (kind, media_type) = which_kind(declared, declared_kind, content_type, &value)?;
    // 3. Its fields, and every digest in them.
    let manifest = match kind {
        Kind::Image => {
            let manifest: ImageManifest = serde_json::from_value(value).map_err(OciError::Json)?;
            check_image(&manifest)?;
            Manifest::Image(manifest)
        }
        Kind::Index => {
            let index: ImageIndex = serde_json::from_value(value).map_err(OciError::Json)?;
            check_index(&index)?;
            Manifest::Index(index)
        }
    };
    Ok(CheckedManifest {
        manifest,
        media_type,
    })
}
// ANCHOR_END: check_manifest

/// Whether a document is an image manifest or an index, from the declared
/// type, its `mediaType` and, when both are silent, its fields; and the
/// media type that said so.
fn which_kind(
    declared: &str,
    declared_kind: Option<Kind>,
    content_type: Option<&str>,
    value: &serde_json::Value,
) -> Result<(Kind, Option<String>), OciError> {
    let has_manifests = value.get("manifests").is_some();
    let has_layers = value.get("layers").is_some();
    if has_manifests && has_layers {
        return Err(OciError::Ambiguous);
    }
    let content_kind = match content_type {
        Some(t) => kind_of(t)?,
        None => None,
    };
    let content = || content_type.map(str::to_string);
    match (declared_kind, content_kind) {
        (Some(d), Some(c)) if d != c => Err(OciError::MediaTypeMismatch {
            declared: declared.to_string(),
            content: content_type.unwrap_or_default().to_string(),
        }),
        (Some(k), _) => Ok((k, Some(declared.to_string()))),
        (None, Some(k)) => Ok((k, content())),
        (None, None) if has_manifests => Ok((Kind::Index, None)),
        (None, None) if has_layers => Ok((Kind::Image, None)),
        (None, None) => Err(OciError::Unrecognized),
    }
}

/// Parses and checks a manifest fetched with Content-Type `media_type` (empty
/// if the registry gave none), for pulling and running: the structure
/// ([`check_manifest`]), then what an image to run needs, an image config
/// and layers that are OCI or Docker layers in the registry.
pub fn parse_manifest(media_type: &str, bytes: &[u8]) -> Result<Manifest, OciError> {
    let checked = check_manifest(media_type, bytes)?;
    if let Manifest::Image(manifest) = &checked.manifest {
        check_runnable(manifest)?;
    }
    Ok(checked.manifest)
}

/// The structure of an image manifest: schema version and digests.
fn check_image(manifest: &ImageManifest) -> Result<(), OciError> {
    if manifest.schema_version != 2 {
        return Err(OciError::SchemaVersion(manifest.schema_version));
    }
    check_digest("the config", &manifest.config.digest)?;
    for (i, layer) in manifest.layers.iter().enumerate() {
        check_digest(&format!("layer {i}"), &layer.digest)?;
    }
    if let Some(subject) = &manifest.subject {
        check_digest("the subject", &subject.digest)?;
    }
    Ok(())
}

/// Pull policy: an image config (not an artifact's), and layers we can
/// fetch and unpack.
fn check_runnable(manifest: &ImageManifest) -> Result<(), OciError> {
    if !matches!(
        manifest.config.media_type.as_str(),
        OCI_CONFIG | DOCKER_CONFIG
    ) {
        return Err(OciError::NotAnImage(manifest.config.media_type.clone()));
    }
    for layer in &manifest.layers {
        match layer.media_type.as_str() {
            OCI_LAYER_TAR | OCI_LAYER_TAR_GZIP | OCI_LAYER_TAR_ZSTD | DOCKER_LAYER_TAR_GZIP => {}
            t if is_foreign_layer(t) => {
                return Err(OciError::ForeignLayer {
                    digest: layer.digest.clone(),
                    media_type: t.to_string(),
                });
            }
            t => {
                return Err(OciError::UnknownLayerType {
                    digest: layer.digest.clone(),
                    media_type: t.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A layer whose content is, by design, not in the registry: Docker's
/// foreign layers and OCI's non-distributable ones.
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type == DOCKER_LAYER_FOREIGN || media_type.starts_with(OCI_LAYER_NONDISTRIBUTABLE_PREFIX)
}

fn check_index(index: &ImageIndex) -> Result<(), OciError> {
    if index.schema_version != 2 {
        return Err(OciError::SchemaVersion(index.schema_version));
    }
    for (i, entry) in index.manifests.iter().enumerate() {
        check_digest(&format!("manifest {i}"), &entry.digest)?;
    }
    if let Some(subject) = &index.subject {
        check_digest("the subject", &subject.digest)?;
    }
    Ok(())
}

/// The index entry for `wanted`: the first whose platform matches (see
/// [`Platform::matches`]). Entries without a platform, and Docker's
/// attestation entries (`unknown/unknown`), never match.
pub fn choose_platform<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
) -> Result<&'a Descriptor, OciError> {
    let platforms = || {
        index
            .manifests
            .iter()
            .filter_map(|d| Some((d, d.platform.as_ref()?)))
    };
    if let Some((descriptor, _)) = platforms().find(|(_, p)| wanted.matches(p)) {
        return Ok(descriptor);
    }
    let mut available: Vec<String> = platforms()
        .filter(|(_, p)| p.os != "unknown")
        .map(|(_, p)| p.to_string())
        .collect();
    available.dedup();
    let available = if available.is_empty() {
        "no platforms at all".to_string()
    } else {
        available.join(", ")
    };
    Err(OciError::NoMatchingPlatform {
        wanted: wanted.to_string(),
        available,
    })
}

/// The process to run, by Docker's rules: `cmd_override` (the arguments after
/// the image name) replaces the image's `Cmd`; a non-empty
/// `entrypoint_override` (`--entrypoint`) replaces its `Entrypoint` *and*
/// drops its `Cmd`; an empty one (`--entrypoint ""`) only clears the
/// `Entrypoint`, keeping `Cmd`, as Docker does. The result is entrypoint ++
/// cmd; empty means there is nothing to run, which the caller reports.
pub fn process_args(
    config: &ContainerConfig,
    cmd_override: &[String],
    entrypoint_override: Option<Vec<String>>,
) -> Vec<String> {
    let image_cmd = config.cmd.clone().unwrap_or_default();
    let (entrypoint, default_cmd) = match entrypoint_override {
        Some(entrypoint) if !entrypoint.is_empty() => (entrypoint, Vec::new()),
        Some(_) => (Vec::new(), image_cmd),
        None => (config.entrypoint.clone().unwrap_or_default(), image_cmd),
    };
    let cmd = if cmd_override.is_empty() {
        default_cmd
    } else {
        cmd_override.to_vec()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// (a) An OCI manifest with two gzip layers, as `crane manifest` prints one.
    const OCI_IMAGE_JSON: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
    "size": 7023
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
      "size": 32654
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 16724,
      "annotations": {
        "org.opencontainers.image.title": "app.tar.gz"
      }
    }
  ],
  "annotations": {
    "com.example.key1": "value1",
    "com.example.key2": "value2"
  }
}"#;

    /// (b) A Docker manifest list with linux/amd64 and linux/arm64/v8.
    const DOCKER_LIST_JSON: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "size": 7143,
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      }
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
      "size": 7682,
      "platform": {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "features": []
      }
    }
  ]
}"#;

    /// (c) An image config with a process and a build history.
    const CONFIG_JSON: &str = r#"{
  "created": "2024-05-01T10:00:00Z",
  "author": "Alyssa P. Hacker <alyspdev@example.com>",
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "User": "redis",
    "ExposedPorts": {
      "6379/tcp": {}
    },
    "Env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "REDIS_VERSION=4.0.14"
    ],
    "Entrypoint": [
      "docker-entrypoint.sh"
    ],
    "Cmd": [
      "redis-server"
    ],
    "Volumes": {
      "/data": {}
    },
    "WorkingDir": "/data",
    "Labels": {
      "com.example.project": "berth"
    },
    "StopSignal": "SIGTERM"
  },
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
      "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    ]
  },
  "history": [
    {
      "created": "2024-05-01T09:58:00Z",
      "created_by": "/bin/sh -c #(nop) ADD file:5a18b2 in / "
    },
    {
      "created": "2024-05-01T09:59:00Z",
      "created_by": "/bin/sh -c #(nop)  ENV REDIS_VERSION=4.0.14",
      "empty_layer": true
    },
    {
      "created": "2024-05-01T10:00:00Z",
      "author": "Alyssa P. Hacker <alyspdev@example.com>",
      "created_by": "/bin/sh -c apk add redis",
      "comment": "installs redis"
    }
  ]
}"#;

    fn json(text: &str) -> serde_json::Value {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("fixture is not JSON: {e}"),
        }
    }

    fn image(m: Manifest) -> ImageManifest {
        match m {
            Manifest::Image(m) => m,
            Manifest::Index(_) => panic!("expected an image manifest"),
        }
    }

    fn index(m: Manifest) -> ImageIndex {
        match m {
            Manifest::Index(i) => i,
            Manifest::Image(_) => panic!("expected an index"),
        }
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn oci_manifest_round_trips() {
        let m = image(parse_manifest(OCI_MANIFEST, OCI_IMAGE_JSON.as_bytes()).unwrap());
        assert_eq!(m.layers.len(), 2);
        assert_eq!(m.layers[1].size, 16724);
        assert_eq!(m.config.media_type, OCI_CONFIG);
        assert_eq!(serde_json::to_value(&m).unwrap(), json(OCI_IMAGE_JSON));
    }

    #[test]
    fn docker_list_round_trips() {
        let i = index(parse_manifest(DOCKER_MANIFEST_LIST, DOCKER_LIST_JSON.as_bytes()).unwrap());
        assert_eq!(i.manifests.len(), 2);
        let arm = i.manifests[1].platform.as_ref().unwrap();
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert_eq!(serde_json::to_value(&i).unwrap(), json(DOCKER_LIST_JSON));
    }

    #[test]
    fn config_round_trips() {
        let c: ImageConfig = serde_json::from_str(CONFIG_JSON).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.entrypoint, Some(strings(&["docker-entrypoint.sh"])));
        assert_eq!(cc.working_dir.as_deref(), Some("/data"));
        assert_eq!(cc.user.as_deref(), Some("redis"));
        assert_eq!(c.rootfs.kind, "layers");
        assert_eq!(c.history.as_ref().unwrap()[1].empty_layer, Some(true));
        assert_eq!(c.platform().to_string(), "linux/amd64");
        assert_eq!(serde_json::to_value(&c).unwrap(), json(CONFIG_JSON));
    }

    #[test]
    fn docker_nulls_read_as_absent() {
        let c: ContainerConfig =
            serde_json::from_str(r#"{"Cmd": null, "Entrypoint": null, "Env": ["A=1"]}"#).unwrap();
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint, None);
    }

    #[test]
    fn platforms_parse_as_docker_spells_them() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "arm64".parse().unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", None));
        for bad in ["", "linux/", "Linux/amd64", "a/b/c/d", "linux/amd 64"] {
            let err = bad.parse::<Platform>().unwrap_err();
            assert!(err.contains("os/architecture"), "{err}");
        }
    }

    #[test]
    fn media_type_sniffed_when_missing() {
        for declared in ["", "application/json"] {
            assert!(matches!(
                parse_manifest(declared, OCI_IMAGE_JSON.as_bytes()),
                Ok(Manifest::Image(_))
            ));
            assert!(matches!(
                parse_manifest(declared, DOCKER_LIST_JSON.as_bytes()),
                Ok(Manifest::Index(_))
            ));
        }
        // No mediaType in the body either: the shape decides.
        let mut bare = json(OCI_IMAGE_JSON);
        bare.as_object_mut().unwrap().remove("mediaType");
        let bytes = serde_json::to_vec(&bare).unwrap();
        assert!(matches!(parse_manifest("", &bytes), Ok(Manifest::Image(_))));
        // Content-Type parameters are ignored.
        let typed = format!("{OCI_MANIFEST}; charset=utf-8");
        assert!(parse_manifest(&typed, OCI_IMAGE_JSON.as_bytes()).is_ok());
    }

    #[test]
    fn contradictory_or_ambiguous_documents_refused() {
        assert!(matches!(
            parse_manifest(OCI_INDEX, OCI_IMAGE_JSON.as_bytes()),
            Err(OciError::MediaTypeMismatch { .. })
        ));
        let mut both = json(OCI_IMAGE_JSON);
        both.as_object_mut()
            .unwrap()
            .insert("manifests".into(), serde_json::json!([]));
        let bytes = serde_json::to_vec(&both).unwrap();
        assert!(matches!(
            parse_manifest("", &bytes),
            Err(OciError::Ambiguous)
        ));
        assert!(matches!(
            parse_manifest("", b"{}"),
            Err(OciError::Unrecognized)
        ));
        assert!(matches!(
            parse_manifest("text/html", OCI_IMAGE_JSON.as_bytes()),
            Err(OciError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn oversized_input_refused_before_parsing() {
        // Not JSON at all: a parse would fail with Json, so TooLarge proves
        // the check came first.
        let huge = vec![b'x'; 5 * 1024 * 1024];
        let err = parse_manifest(OCI_MANIFEST, &huge).unwrap_err();
        assert!(matches!(err, OciError::TooLarge { size, .. } if size == huge.len()));
        let exact = vec![b'x'; MAX_MANIFEST_BYTES];
        assert!(matches!(
            parse_manifest(OCI_MANIFEST, &exact),
            Err(OciError::Json(_))
        ));
    }

    #[test]
    fn schema1_refused() {
        for t in [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED] {
            let err = parse_manifest(t, b"{}").unwrap_err();
            assert!(matches!(err, OciError::Schema1));
            assert!(err.to_string().contains("pushed again"));
        }
        // Sniffed too, when the registry gives no type.
        let body = br#"{"schemaVersion": 1, "name": "library/redis", "fsLayers": []}"#;
        assert!(matches!(parse_manifest("", body), Err(OciError::Schema1)));
    }

    #[test]
    fn bad_digests_refused() {
        let bad = [
            "sha256:AAAAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ];
        for digest in bad {
            let text = OCI_IMAGE_JSON.replace(
                "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
                digest,
            );
            let err = parse_manifest(OCI_MANIFEST, text.as_bytes()).unwrap_err();
            assert!(matches!(err, OciError::BadDigest { .. }), "{digest}: {err}");
            assert!(
                err.to_string()
                    .starts_with("layer 0 has a malformed digest")
            );
        }
        assert!(check_digest("x", A).is_ok());
        assert!(check_digest("x", &format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(check_digest("x", &format!("sha512:{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn missing_size_and_wrong_schema_version_refused() {
        let text = OCI_IMAGE_JSON.replace("\"size\": 32654", "\"annotations\": {}");
        assert!(matches!(
            parse_manifest(OCI_MANIFEST, text.as_bytes()),
            Err(OciError::Json(_))
        ));
        let text = OCI_IMAGE_JSON.replace("\"schemaVersion\": 2", "\"schemaVersion\": 3");
        assert!(matches!(
            parse_manifest(OCI_MANIFEST, text.as_bytes()),
            Err(OciError::SchemaVersion(3))
        ));
    }

    #[test]
    fn layer_and_config_media_types_checked() {
        let layer = OCI_LAYER_TAR_GZIP;
        let with = |from: &str, to: &str| OCI_IMAGE_JSON.replacen(from, to, 1);
        for ok in [OCI_LAYER_TAR, OCI_LAYER_TAR_ZSTD, DOCKER_LAYER_TAR_GZIP] {
            assert!(parse_manifest(OCI_MANIFEST, with(layer, ok).as_bytes()).is_ok());
        }
        let foreign = [
            DOCKER_LAYER_FOREIGN,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ];
        for t in foreign {
            let err = parse_manifest(OCI_MANIFEST, with(layer, t).as_bytes()).unwrap_err();
            assert!(matches!(err, OciError::ForeignLayer { .. }), "{t}: {err}");
        }
        let err = parse_manifest(OCI_MANIFEST, with(layer, "application/x-helm").as_bytes());
        assert!(matches!(err, Err(OciError::UnknownLayerType { .. })));
        let err = parse_manifest(OCI_MANIFEST, with(OCI_CONFIG, OCI_EMPTY).as_bytes());
        assert!(matches!(err, Err(OciError::NotAnImage(_))));
    }

    #[test]
    fn host_platform_is_chosen() {
        let i = index(parse_manifest("", DOCKER_LIST_JSON.as_bytes()).unwrap());
        let amd64 = choose_platform(&i, &Platform::new("linux", "amd64", None)).unwrap();
        assert_eq!(amd64.size, 7143);
        // arm64 without a variant means arm64/v8.
        let arm64 = choose_platform(&i, &Platform::new("linux", "arm64", None)).unwrap();
        assert_eq!(arm64.size, 7682);
        let host = Platform::host();
        if matches!(host.architecture.as_str(), "amd64" | "arm64") && host.os == "linux" {
            let chosen = choose_platform(&i, &host).unwrap();
            assert_eq!(
                chosen.platform.as_ref().map(|p| &p.architecture),
                Some(&host.architecture)
            );
        }
    }

    #[test]
    fn missing_platform_lists_the_others() {
        let i = index(parse_manifest("", DOCKER_LIST_JSON.as_bytes()).unwrap());
        let err = choose_platform(&i, &Platform::new("linux", "riscv64", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no image for linux/riscv64 in this index; it has: linux/amd64, linux/arm64/v8"
        );
    }

    #[test]
    fn variants_match_sensibly() {
        let p = |arch: &str, v: Option<&str>| Platform::new("linux", arch, v);
        assert!(p("arm64", None).matches(&p("arm64", Some("v8"))));
        assert!(p("arm64", Some("")).matches(&p("arm64", Some("v8"))));
        assert!(p("arm", None).matches(&p("arm", Some("v7"))));
        assert!(!p("arm", Some("v6")).matches(&p("arm", Some("v7"))));
        assert!(!p("arm", Some("v6")).matches(&p("arm", None)));
        assert!(p("amd64", None).matches(&p("amd64", Some("v3"))));
        assert!(!p("amd64", None).matches(&p("arm64", None)));
        assert!(!p("amd64", None).matches(&Platform::new("windows", "amd64", None)));
        assert_eq!(
            Platform::host().os,
            std::env::consts::OS.replace("macos", "darwin")
        );
    }

    #[test]
    fn entrypoint_and_cmd_rules() {
        let config = |ep: Option<&[&str]>, cmd: Option<&[&str]>| ContainerConfig {
            entrypoint: ep.map(strings),
            cmd: cmd.map(strings),
            ..ContainerConfig::default()
        };
        let ep: &[&str] = &["exec_entry", "p1_entry"];
        let cmd: &[&str] = &["exec_cmd", "p1_cmd"];
        let shell: &[&str] = &["/bin/sh", "-c", "exec_entry p1_entry"];
        let none: &[&str] = &[];
        let args = strings(&["a", "b"]);
        #[allow(clippy::type_complexity)]
        let table: [(ContainerConfig, &[String], Option<Vec<String>>, &[&str]); 8] = [
            // Neither: nothing to run (the caller reports it).
            (config(None, None), &[], None, none),
            // CMD only.
            (config(None, Some(cmd)), &[], None, cmd),
            // ENTRYPOINT only.
            (config(Some(ep), None), &[], None, ep),
            // Both: CMD gives ENTRYPOINT's default arguments.
            (
                config(Some(ep), Some(cmd)),
                &[],
                None,
                &["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"],
            ),
            // Shell-form ENTRYPOINT: CMD is appended and sh ignores it.
            (
                config(Some(shell), Some(cmd)),
                &[],
                None,
                &["/bin/sh", "-c", "exec_entry p1_entry", "exec_cmd", "p1_cmd"],
            ),
            // `run IMAGE a b` replaces CMD.
            (
                config(Some(ep), Some(cmd)),
                &args,
                None,
                &["exec_entry", "p1_entry", "a", "b"],
            ),
            // `--entrypoint x` replaces ENTRYPOINT and drops CMD.
            (
                config(Some(ep), Some(cmd)),
                &[],
                Some(strings(&["x"])),
                &["x"],
            ),
            // `--entrypoint ""` clears ENTRYPOINT, CMD stays.
            (config(Some(ep), Some(cmd)), &[], Some(vec![]), cmd),
        ];
        for (i, (config, cmd_override, ep_override, want)) in table.into_iter().enumerate() {
            assert_eq!(
                process_args(&config, cmd_override, ep_override),
                strings(want),
                "row {i}"
            );
        }
    }
}
