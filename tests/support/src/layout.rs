//! OCI image layouts for the tests: a one-image layout (as `ch05-images
//! save --format oci` writes it) turned into a two-platform one, whose
//! index.json entry is an image index of the host's image and the same
//! layer under a config that says linux/arm64/v8.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The digests of a two-platform layout.
#[derive(Debug, Clone)]
pub struct TwoPlatform {
    /// The layout directory.
    pub layout: PathBuf,
    /// The index's digest: what the layout's index.json entry names.
    pub index: String,
    /// The host image's manifest digest (the one-image layout's).
    pub host: String,
    /// The arm64 image's manifest digest.
    pub arm: String,
    /// The arm64 image's config digest.
    pub arm_config: String,
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read a layout file"))
        .expect("a layout file is JSON")
}

/// The file of blob `digest` in `layout`.
pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Write `bytes` as a blob of `layout`; its digest and size.
pub fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
    std::fs::write(blob(layout, &digest), bytes).expect("write a blob");
    (digest, bytes.len())
}

/// Make `out` (which may be `single` itself) a two-platform layout from the
/// one-image layout `single`. `host_platform` is this host's platform as
/// JSON (`serde_json::to_value(Platform::host())`); `annotations` go on the
/// index.json entry (the name: `org.opencontainers.image.ref.name`,
/// `io.containerd.image.name`).
pub fn two_platform_layout(
    single: &Path,
    out: &Path,
    host_platform: serde_json::Value,
    annotations: serde_json::Value,
) -> TwoPlatform {
    let entry = json(&single.join("index.json"))["manifests"][0].clone();
    let host = entry["digest"].as_str().expect("a digest").to_string();
    let manifest = json(&blob(single, &host));
    let mut config = json(&blob(
        single,
        manifest["config"]["digest"]
            .as_str()
            .expect("a config digest"),
    ));
    if out != single {
        std::fs::create_dir_all(out.join("blobs/sha256")).expect("mkdir blobs");
        for file in std::fs::read_dir(single.join("blobs/sha256")).expect("list blobs") {
            let file = file.expect("a blob");
            std::fs::copy(file.path(), out.join("blobs/sha256").join(file.file_name()))
                .expect("copy a blob");
        }
        std::fs::copy(single.join("oci-layout"), out.join("oci-layout")).expect("copy oci-layout");
    }
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let (arm_config, config_size) = put_blob(out, &serde_json::to_vec(&config).unwrap());
    let mut arm = manifest.clone();
    arm["config"]["digest"] = arm_config.clone().into();
    arm["config"]["size"] = config_size.into();
    let (arm_digest, arm_size) = put_blob(out, &serde_json::to_vec(&arm).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": host,
                "size": entry["size"],
                "platform": host_platform,
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm_digest,
                "size": arm_size,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            }
        ]
    });
    let (index_digest, index_size) = put_blob(out, &serde_json::to_vec(&index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_INDEX,
            "digest": index_digest,
            "size": index_size,
            "annotations": annotations,
        }]
    });
    std::fs::write(out.join("index.json"), serde_json::to_vec(&top).unwrap())
        .expect("write index.json");
    TwoPlatform {
        layout: out.to_path_buf(),
        index: index_digest,
        host,
        arm: arm_digest,
        arm_config,
    }
}
