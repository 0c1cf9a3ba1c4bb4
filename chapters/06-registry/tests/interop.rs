//! Our registry against real clients: skopeo (containers/image, what podman
//! and buildah push and pull with) copies an image in and out, byte for
//! byte; chapter 5's pull fetches from it. Everything on 127.0.0.1.

mod common;

use berth_test_support::registry::{oci_ref, require_tool, skopeo_copy, skopeo_digest};
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Registry};
use ch05_images::store::Store;
use common::*;

/// The files of the test image: small ones, and one big enough to need
/// several reads and writes on each side.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/hello", b"hello from berth\n".to_vec()),
        ("usr/share/big.bin", pattern(3 * 1024 * 1024 + 17, 7)),
    ]
}

/// Every blob of an OCI layout, by name, with its bytes.
fn layout_blobs(layout: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn skopeo_copies_an_image_in_and_back_out_byte_for_byte() {
    if !require_tool(
        "skopeo_copies_an_image_in_and_back_out_byte_for_byte",
        "skopeo",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let files = files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let (layout, digest) = oci_layout(work.path(), &borrowed);
    let server = Server::start();

    // In: skopeo uploads with POST, PATCH (streamed) and PUT, then the manifest.
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("berth/test:1"),
    );
    assert_eq!(skopeo_digest(&server.skopeo_ref("berth/test:1")), digest);
    let log = server.log();
    for step in [
        "PATCH /v2/berth/test/blobs/uploads/",
        "PUT /v2/berth/test/manifests/1 201",
    ] {
        assert!(log.contains(step), "no {step:?} in the access log:\n{log}");
    }

    // Into a second repository: the blobs are mounted, not sent again.
    skopeo_copy(
        &[],
        &server.skopeo_ref("berth/test:1"),
        &server.skopeo_ref("other/copy:v2"),
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("POST /v2/other/copy/blobs/uploads/?")
                && l.contains("from=berth%2Ftest")
                && l.contains("mount=sha256%3A")
                && l.contains(" 201 ")),
        "the second push should mount from berth/test:\n{log}"
    );

    // Out again: the same bytes under the same digests.
    let out = work.path().join("out");
    skopeo_copy(
        &[],
        &server.skopeo_ref("other/copy:v2"),
        &oci_ref(&out, "1"),
    );
    assert_eq!(layout_blobs(&out), layout_blobs(&layout));

    // The catalog and the tags say what is there.
    let catalog = request("GET", &server.url("/v2/_catalog"), &[], None).json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["berth/test", "other/copy"])
    );
    let tags = request("GET", &server.url("/v2/other/copy/tags/list"), &[], None).json();
    assert_eq!(
        tags,
        serde_json::json!({"name": "other/copy", "tags": ["v2"]})
    );

    // The blob store holds each blob once for both repositories, and
    // nothing is left in tmp/ or uploads/.
    let files = server.files();
    let blobs = files.iter().filter(|f| f.starts_with("blobs/")).count();
    assert_eq!(blobs, layout_blobs(&layout).len(), "{files:#?}");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("tmp/") || f.starts_with("uploads/")),
        "{files:#?}"
    );
}

#[test]
fn chapter_5_pulls_from_our_registry() {
    if !require_tool("chapter_5_pulls_from_our_registry", "skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let files = files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let (layout, digest) = oci_layout(work.path(), &borrowed);
    let server = Server::start();
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("berth/pulled:1"),
    );

    let store = Store::open(work.path().join("pulled-store")).unwrap();
    let registry = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let reference = Reference::parse(&format!("{}/berth/pulled:1", server.addr)).unwrap();
    let pulled = pull(&store, &registry, &reference, &PullOptions::default()).unwrap();
    assert_eq!(pulled.digest, digest);
    assert_eq!(pulled.manifest_digest, digest);

    // The layer arrived intact: its files are in the unpacked layer.
    let image = ch05_images::image::load_image(&store, &reference).unwrap();
    let layers = ch05_images::image::unpack_layers(&store, &image).unwrap();
    for (path, bytes) in &files {
        assert_eq!(
            &std::fs::read(layers[0].join(path)).unwrap(),
            bytes,
            "{path}"
        );
    }

    // By digest too.
    let by_digest = Reference::parse(&format!("{}/berth/pulled@{digest}", server.addr)).unwrap();
    let again = Store::open(work.path().join("again")).unwrap();
    assert_eq!(
        pull(&again, &registry, &by_digest, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );
}
