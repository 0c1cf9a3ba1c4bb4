//! A multi-platform image as a file: `load` keeps the index and every
//! platform's image, the name points to the index, and everything that
//! reads an image by name (`run`, `inspect`, `images`, `save`, `tag`) gets
//! this host's entry. No root needed: images are only read, not run.

use std::path::{Path, PathBuf};

use ch05_images::archive::{self, ANNOTATION_IMAGE_NAME, load_path, save_oci_layout};
use ch05_images::digest::{Algorithm, Digest};
use ch05_images::image::{import_rootfs, load_image};
use ch05_images::oci::Platform;
use ch05_images::reference::Reference;
use ch05_images::store::Store;

const NAME: &str = "berth/multi:1";

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Writes `bytes` as a blob of `layout`; returns its digest and size.
fn put(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = Digest::of_bytes(Algorithm::Sha256, bytes).to_string();
    std::fs::write(blob(layout, &digest), bytes).unwrap();
    (digest, bytes.len())
}

/// The digests of a two-platform layout: the host's image, the arm64 one
/// (the same layer under a config saying linux/arm64/v8), and the index.
struct Multi {
    layout: PathBuf,
    host: String,
    arm: String,
    arm_config: String,
    index: String,
}

/// An image imported by chapter 5, saved as a layout, and made into a
/// two-platform one whose index.json entry is the index, named `NAME`.
fn two_platform_layout(work: &Path) -> Multi {
    let tree = work.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "multi\n").unwrap();
    let store = Store::open(work.join("source")).unwrap();
    let name = Reference::parse("berth/single:1").unwrap();
    let host = import_rootfs(&store, &tree, &name, vec!["/bin/sh".into()]).unwrap();
    let layout = work.join("multi");
    save_oci_layout(&store, &[name], &layout).unwrap();

    let two = berth_test_support::layout::two_platform_layout(
        &layout,
        &layout,
        serde_json::to_value(Platform::host()).unwrap(),
        serde_json::json!({ANNOTATION_IMAGE_NAME: NAME}),
    );
    assert_eq!(two.host, host);
    Multi {
        layout,
        host,
        arm: two.arm,
        arm_config: two.arm_config,
        index: two.index,
    }
}

fn full(name: &str) -> String {
    Reference::parse(name).unwrap().to_string()
}

#[test]
fn a_two_platform_layout_loads_whole_and_the_name_gives_the_host_image() {
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    let store = Store::open(work.path().join("store")).unwrap();

    let loaded = load_path(&store, &m.layout).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].digest, m.index, "the index is what is named");
    assert_eq!(store.resolve(&full(NAME)).unwrap(), Some(m.index.clone()));
    for digest in [&m.index, &m.host, &m.arm, &m.arm_config] {
        assert!(store.has_blob(digest).unwrap(), "{digest} kept");
    }

    // What run, inspect, images and save read: this host's entry.
    let image = load_image(&store, &Reference::parse(NAME).unwrap()).unwrap();
    assert_eq!(image.digest, m.host, "the host's image is chosen");
    assert_eq!(image.index.as_deref(), Some(m.index.as_str()));
    assert_eq!(image.named_digest(), m.index);
    assert_eq!(loaded[0].config, image.manifest.config.digest);

    // Saved, the index goes out whole; loaded again, it comes back whole.
    let saved = work.path().join("saved");
    save_oci_layout(&store, &[Reference::parse(NAME).unwrap()], &saved).unwrap();
    let index = json(&saved.join("index.json"));
    assert_eq!(index["manifests"][0]["digest"], m.index.as_str());
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let tar = work.path().join("saved.tar");
    archive::save_docker_archive_file(&store, &[Reference::parse(NAME).unwrap()], &tar).unwrap();
    for from in [&saved, &tar] {
        let again = Store::open(work.path().join("again").join(from.file_name().unwrap())).unwrap();
        let back = load_path(&again, from).unwrap();
        assert_eq!(back[0].digest, m.index, "{}", from.display());
        for digest in [&m.index, &m.host, &m.arm, &m.arm_config] {
            assert!(again.has_blob(digest).unwrap(), "{digest} in {from:?}");
        }
        let image = load_image(&again, &Reference::parse(NAME).unwrap()).unwrap();
        assert_eq!(image.digest, m.host);
    }
}

#[test]
fn a_layout_with_some_platforms_only_loads_the_host_image() {
    // As docker save from containerd's store writes them: the index lists
    // a platform whose manifest is not in the archive.
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    std::fs::remove_file(blob(&m.layout, &m.arm)).unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let loaded = load_path(&store, &m.layout).unwrap();
    assert_eq!(loaded[0].digest, m.host);
    assert_eq!(store.resolve(&full(NAME)).unwrap(), Some(m.host.clone()));
    assert!(
        !store.has_blob(&m.index).unwrap(),
        "no incomplete index kept"
    );
}

#[test]
fn a_platform_missing_a_blob_is_refused_and_nothing_named() {
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    std::fs::remove_file(blob(&m.layout, &m.arm_config)).unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let err = load_path(&store, &m.layout).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "the archive has no blobs/sha256/{} (the config of berth/multi:1 for linux/arm64/v8): it is incomplete",
            &m.arm_config[7..]
        )
    );
    assert!(store.names().unwrap().is_empty(), "nothing named");
}

#[test]
fn an_index_without_this_platform_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    // The index again, with only the arm64 entry.
    let top = json(&m.layout.join("index.json"));
    let mut index = json(&blob(&m.layout, &m.index));
    let arm = index["manifests"][1].clone();
    index["manifests"] = serde_json::json!([arm]);
    let (digest, size) = put(&m.layout, &serde_json::to_vec(&index).unwrap());
    let mut top = top;
    top["manifests"][0]["digest"] = digest.clone().into();
    top["manifests"][0]["size"] = size.into();
    std::fs::write(
        m.layout.join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let err = load_path(&store, &m.layout).unwrap_err().to_string();
    if Platform::host().matches(&Platform::new("linux", "arm64", Some("v8"))) {
        return; // this host is that platform: nothing to refuse
    }
    assert!(
        err.starts_with(&format!("blobs/sha256/{}: no image for ", &digest[7..])),
        "{err}"
    );
    assert!(
        err.ends_with("in this index; it has: linux/arm64/v8"),
        "{err}"
    );
    assert!(store.names().unwrap().is_empty());
}

#[test]
fn the_commands_read_a_multi_platform_name_as_the_host_image() {
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    let root = work.path().join("store");
    let bin = berth_test_support::bin_path(env!("CARGO_BIN_EXE_ch05-images"));
    let ch05 = |args: &[&str]| {
        let mut all = vec!["--root", root.to_str().unwrap()];
        all.extend(args);
        let run = berth_test_support::Run::new(&bin, all);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run.stdout()
    };
    assert_eq!(
        ch05(&["load", "-i", m.layout.to_str().unwrap()]),
        "Loaded image: berth/multi:1\n"
    );
    let inspect: serde_json::Value = serde_json::from_str(&ch05(&["inspect", NAME])).unwrap();
    assert_eq!(inspect["Digest"], m.host.as_str());
    assert_eq!(inspect["Index"], m.index.as_str());

    // tag names the index again, not the one platform.
    ch05(&["tag", NAME, "berth/multi:2"]);
    let store = Store::open(&root).unwrap();
    assert_eq!(
        store.resolve(&full("berth/multi:2")).unwrap(),
        Some(m.index.clone())
    );
    let images = ch05(&["images"]);
    assert_eq!(images.lines().count(), 3, "{images}");

    // The last name gone, the index and both platforms go.
    ch05(&["rmi", "berth/multi:2"]);
    let rmi = ch05(&["rmi", NAME]);
    for digest in [&m.index, &m.host, &m.arm] {
        assert!(
            rmi.contains(&format!("deleted: {digest}")),
            "{digest}:\n{rmi}"
        );
        assert!(!store.has_blob(digest).unwrap());
    }
}

#[test]
fn an_attestation_entry_is_kept_as_it_is() {
    // Docker's build attestations: an entry for unknown/unknown whose
    // layer is an in-toto statement, not a filesystem.
    let work = tempfile::tempdir().unwrap();
    let m = two_platform_layout(work.path());
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#;
    let (layer, layer_size) = put(&m.layout, statement);
    let config = br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (config, config_size) = put(&m.layout, config);
    let attestation = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": layer, "size": layer_size}],
    });
    let (att, att_size) = put(&m.layout, &serde_json::to_vec(&attestation).unwrap());
    let mut index = json(&blob(&m.layout, &m.index));
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": att,
            "size": att_size,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        }));
    let (index, size) = put(&m.layout, &serde_json::to_vec(&index).unwrap());
    let mut top = json(&m.layout.join("index.json"));
    top["manifests"][0]["digest"] = index.clone().into();
    top["manifests"][0]["size"] = size.into();
    std::fs::write(
        m.layout.join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();

    let store = Store::open(work.path().join("store")).unwrap();
    assert_eq!(load_path(&store, &m.layout).unwrap()[0].digest, index);
    for digest in [&index, &att, &config, &layer] {
        assert!(store.has_blob(digest).unwrap(), "{digest} kept");
    }
    let saved = work.path().join("saved");
    save_oci_layout(&store, &[Reference::parse(NAME).unwrap()], &saved).unwrap();
    assert_eq!(std::fs::read(blob(&saved, &layer)).unwrap(), statement);
}
