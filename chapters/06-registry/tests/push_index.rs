//! `ch06-registry push` of a multi-platform image: a two-platform OCI
//! layout loaded by chapter 5 keeps its index, and push sends both
//! platforms' images and then the index, byte for byte, into our registry
//! and into Debian's docker-registry; skopeo reads the same index back, and
//! chapter 5 pulls each platform from it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_test_support::registry::{TestRegistry, require_tool};
use ch05_images::archive::{ANNOTATION_IMAGE_NAME, load_path};
use ch05_images::oci::Platform;
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Registry};
use ch05_images::store::Store;
use common::*;

/// A store holding `berth/multi:1`, an index of two images: the host's,
/// and the same layer under a config saying linux/arm64/v8. Returns the
/// store's directory and the digests of the host image, the arm64 image and
/// the index.
fn two_platform_store(work: &Path) -> (PathBuf, String, String, String) {
    let (layout, host) = oci_layout(work, &[("etc/motd", b"two platforms\n")]);
    let two = berth_test_support::layout::two_platform_layout(
        &layout,
        &layout,
        serde_json::to_value(Platform::host()).unwrap(),
        serde_json::json!({ANNOTATION_IMAGE_NAME: "berth/multi:1"}),
    );
    let (arm_digest, index_digest) = (two.arm, two.index);

    let root = work.join("multi-store");
    let store = Store::open(&root).unwrap();
    let loaded = load_path(&store, &layout).unwrap();
    assert_eq!(loaded[0].digest, index_digest, "load names the index");
    (root, host, arm_digest, index_digest)
}

/// `skopeo inspect --raw`: the manifest's bytes as the registry serves them.
fn skopeo_raw(image: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
        ])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Pulls `image` with chapter 5 into a fresh store, for `platform` (or
/// this host's); returns the digest the tag named and the image manifest's.
fn pull_platform(work: &Path, image: &str, platform: Option<Platform>) -> (String, String) {
    let reference = Reference::parse(image).unwrap();
    let store = tempfile::tempdir_in(work).unwrap();
    let store = Store::open(store.path()).unwrap();
    let registry = Registry::new(&reference.registry, &ClientOptions::default()).unwrap();
    let options = PullOptions {
        platform_given: platform.is_some(),
        platform: platform.unwrap_or_else(Platform::host),
        ..PullOptions::default()
    };
    let pulled = pull(&store, &registry, &reference, &options).unwrap();
    (pulled.digest, pulled.manifest_digest)
}

#[test]
fn a_two_platform_index_is_pushed_whole_to_both_registries() {
    let test = "a_two_platform_index_is_pushed_whole_to_both_registries";
    if !require_tool(test, "skopeo") {
        return;
    }
    let Some(theirs) = TestRegistry::start(test) else {
        return;
    };
    let ours = Server::start();
    let work = tempfile::tempdir().unwrap();
    let (store, host, arm, index) = two_platform_store(work.path());
    let index_bytes =
        std::fs::read(Store::open(&store).unwrap().blob_path(&index).unwrap()).unwrap();

    for addr in [&ours.addr, &theirs.addr] {
        let dest = format!("{addr}/berth/multi:1");
        let out = push_stdout(&push_cmd(&store, &["berth/multi:1", &dest], ""));
        // Both configs and the layer once; the arm64 image's layer is the
        // host image's, already there.
        assert_eq!(out.matches(": Pushed\n").count(), 3, "{dest}:\n{out}");
        assert_eq!(
            out.matches(": Layer already exists\n").count(),
            1,
            "{dest}:\n{out}"
        );
        assert!(
            out.ends_with(&format!("1: digest: {index} size: {}\n", index_bytes.len())),
            "{dest}:\n{out}"
        );

        let raw = skopeo_raw(&dest);
        assert_eq!(sha256(&raw), index, "{dest}: the index's digest");
        assert_eq!(raw, index_bytes, "{dest}: the index byte for byte");

        assert_eq!(
            pull_platform(work.path(), &dest, None),
            (index.clone(), host.clone()),
            "{dest}: this host's image"
        );
        let arm64 = Platform::new("linux", "arm64", None);
        if arm64.matches(&Platform::host()) {
            continue; // both entries are this host's: the first is chosen
        }
        assert_eq!(
            pull_platform(work.path(), &dest, Some(arm64)),
            (index.clone(), arm.clone()),
            "{dest}: --platform linux/arm64"
        );
    }
}
