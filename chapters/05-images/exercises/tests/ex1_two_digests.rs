//! Check for exercise 1: the digest and diff_id of a real layer, as the
//! store made it, and of a tampered copy.

use std::path::Path;

use ch05_exercises::{checking_mine, ex1_two_digests, solutions};
use ch05_images::image::{import_rootfs, load_image};
use ch05_images::reference::Reference;
use ch05_images::store::Store;

fn layer_digests() -> fn(&Path) -> std::io::Result<(String, String)> {
    if checking_mine() {
        ex1_two_digests::layer_digests
    } else {
        solutions::ex1_two_digests::layer_digests
    }
}

#[test]
fn ex1_two_digests_of_an_imported_layer() {
    // A small tree, imported as a one-layer image: the store names the
    // layer blob by its digest, and the config lists its diff_id.
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("etc")).unwrap();
    std::fs::write(tree.path().join("etc/motd"), "two digests\n").unwrap();
    std::fs::write(tree.path().join("big"), vec![b'x'; 300_000]).unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let name = Reference::parse("exercise/layer:1").unwrap();
    import_rootfs(&store, tree.path(), &name, vec!["/bin/sh".into()]).unwrap();
    let image = load_image(&store, &name).unwrap();
    let digest = &image.manifest.layers[0].digest;
    let diff_id = &image.config.rootfs.diff_ids[0];
    let blob = store.blob_path(digest).unwrap();

    let (got_digest, got_diff_id) = layer_digests()(&blob).unwrap();
    assert_eq!(
        &got_digest, digest,
        "the first is the blob's digest (the manifest's)"
    );
    assert_eq!(
        &got_diff_id, diff_id,
        "the second is the uncompressed tar's (the config's)"
    );
    assert_ne!(got_digest, got_diff_id);

    // One byte of file content changed inside the tar: both names change.
    let tampered = root.path().join("tampered.tar.gz");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&blob).unwrap()),
        &mut tar,
    )
    .unwrap();
    let at = tar
        .windows(11)
        .position(|w| w == b"two digests")
        .expect("the motd is in the tar");
    tar[at] = b'T';
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    std::fs::write(&tampered, gz.finish().unwrap()).unwrap();
    let (d2, i2) = layer_digests()(&tampered).unwrap();
    assert_ne!(&d2, digest);
    assert_ne!(&i2, diff_id);
    assert!(
        d2.starts_with("sha256:") && d2.len() == 71,
        "sha256:<64 hex>: {d2}"
    );

    // Not gzip at all: an error, not a digest.
    let plain = root.path().join("plain");
    std::fs::write(&plain, b"not a gzip stream").unwrap();
    assert!(
        layer_digests()(&plain).is_err(),
        "a non-gzip blob is an error"
    );
}
