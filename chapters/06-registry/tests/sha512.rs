//! An image whose manifest names sha512 blobs (config, layer and diff_id),
//! end to end: stored in chapter 5's store, pushed to our registry with
//! `ch06-registry push`, pulled back by chapter 5's binary, inspected and
//! run. The OCI image-spec registers sha512 beside sha256; one digest type
//! (chapter 4's `digest`) serves every chapter, so nothing on the way may
//! assume sha256.

mod common;

use std::path::PathBuf;

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{Run, command, require_root, skip};
use ch04_overlay::commit::{CommitOptions, commit_layer};
use ch05_images::oci::{OCI_LAYER_TAR_GZIP, Platform};
use ch05_images::store::Store;
use common::*;

/// `ch05-images`, built beside `ch06-registry`; `None` after a skip.
fn ch05_binary(test: &str) -> Option<PathBuf> {
    let theirs = bin().with_file_name("ch05-images");
    if theirs.is_file() {
        return Some(theirs);
    }
    skip(
        test,
        &format!(
            "{} is not built: run `cargo build -p ch05-images` (or test the whole workspace)",
            theirs.display()
        ),
    );
    None
}

#[test]
fn an_image_of_sha512_blobs_is_pushed_pulled_inspected_and_run() {
    let test = "an_image_of_sha512_blobs_is_pushed_pulled_inspected_and_run";
    let Some(ch05) = ch05_binary(test) else {
        return;
    };
    // 1. The layer: the probe rootfs and a file to read back, as a tar
    //    (for its sha512 diff_id) and as the gzip blob the manifest names.
    let rootfs = probe_rootfs();
    std::fs::write(rootfs.path.join("etc/berth-sha512"), "named by sha512\n").unwrap();
    let commit = |gzip| {
        let mut out = Vec::new();
        let opts = CommitOptions {
            keep_times: false,
            gzip,
        };
        let digests = commit_layer(&rootfs.path, &mut out, &opts).unwrap();
        (out, digests.diff_id)
    };
    let (tar, plain_id) = commit(false);
    let (layer, gzip_id) = commit(true);
    assert_eq!(plain_id, gzip_id, "the gzip blob holds the same tar");
    let diff_id = sha512(&tar);

    // 2. The config and the manifest, every blob named by sha512.
    let host = Platform::host();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host.architecture,
        "os": host.os,
        "variant": host.variant,
        "config": {
            "Cmd": [PROBE_IN_CONTAINER, "read", "/etc/berth-sha512"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha512(&config), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_TAR_GZIP, "digest": sha512(&layer), "size": layer.len()}],
    }))
    .unwrap();
    // The manifest itself is named as a registry names one pushed by tag.
    let manifest_digest = sha256(&manifest);

    // 3. Into a chapter 5 store, under a name.
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    {
        let store = Store::open(&source).unwrap();
        let _lock = store.lock_shared().unwrap();
        for (digest, bytes) in [
            (sha512(&layer), &layer),
            (sha512(&config), &config),
            (manifest_digest.clone(), &manifest),
        ] {
            store
                .put_blob(&digest, Some(bytes.len() as u64), bytes.as_slice())
                .unwrap();
        }
        store
            .set_name("docker.io/berth/sha512:1", &manifest_digest)
            .unwrap();
        assert!(
            source
                .join("blobs/sha512")
                .join(&sha512(&layer)[7..])
                .is_file()
        );
    }

    // 4. Pushed to our registry, which keeps the blobs under their sha512.
    let server = Server::start();
    let image = format!("{}/berth/sha512:1", server.addr);
    let pushed = push_stdout(&push_cmd(&source, &["berth/sha512:1", &image], ""));
    assert!(
        pushed.ends_with(&format!(
            "1: digest: {manifest_digest} size: {}\n",
            manifest.len()
        )),
        "{pushed}"
    );
    let blob = request(
        "GET",
        &server.url(&format!("/v2/berth/sha512/blobs/{}", sha512(&layer))),
        &[],
        None,
    );
    assert_eq!(blob.status, 200, "{blob:?}");
    assert_eq!(blob.body, layer);

    // 5. Pulled by chapter 5 into a store of its own, and inspected.
    let state = work.path().join("state");
    let ch05_run = |args: &[&str]| {
        let mut cmd = command(&ch05);
        cmd.arg("--root").arg(&state).args(args);
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run
    };
    let pulled = ch05_run(&["pull", &image]).stdout();
    assert!(
        pulled.contains(&format!("Digest: {manifest_digest}")),
        "{pulled}"
    );
    assert!(
        state
            .join("blobs/sha512")
            .join(&sha512(&config)[7..])
            .is_file()
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ch05_run(&["inspect", &image]).stdout()).unwrap();
    assert_eq!(inspect["Digest"], manifest_digest.as_str());
    assert_eq!(
        inspect["Manifest"]["layers"][0]["digest"],
        sha512(&layer).as_str()
    );

    // 6. Run: the layer unpacked under its sha512 diff_id.
    if !require_root(test) {
        return;
    }
    let out = ch05_run(&["run", "--rm", &image]).stdout();
    assert!(out.contains("named by sha512"), "{out}");
    assert!(state.join("layers/sha512").join(&diff_id[7..]).is_dir());
}
