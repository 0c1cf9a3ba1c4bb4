//! Check for exercise 2: read the diff_ids of an image in a real registry
//! (Debian's docker-registry on loopback, filled by skopeo), compare them
//! with what skopeo reads, and refuse a manifest that lies.

use ch05_exercises::{checking_mine, ex2_manifest_by_hand, solutions};
use ch05_images::archive::save_oci_layout;
use ch05_images::image::{import_rootfs, load_image};
use ch05_images::reference::Reference;
use ch05_images::store::Store;

use berth_test_support::registry::{TestRegistry, oci_ref, require_tool, skopeo_copy};

fn fetch_diff_ids() -> fn(&str, &str, &str) -> Result<Vec<String>, String> {
    if checking_mine() {
        ex2_manifest_by_hand::fetch_diff_ids
    } else {
        solutions::ex2_manifest_by_hand::fetch_diff_ids
    }
}

#[test]
fn ex2_manifest_by_hand_against_a_real_registry() {
    let test = "ex2_manifest_by_hand_against_a_real_registry";
    if !require_tool(test, "skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start(test) else {
        return;
    };
    // An image of two files, put in the registry as class/app:1.
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("hello"), "by hand\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().join("store")).unwrap();
    let name = Reference::parse("class/app:1").unwrap();
    import_rootfs(&store, tree.path(), &name, vec!["/hello".into()]).unwrap();
    let expected = load_image(&store, &name).unwrap().config.rootfs.diff_ids;
    let layout = root.path().join("layout");
    save_oci_layout(&store, std::slice::from_ref(&name), &layout).unwrap();
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &registry.skopeo_ref("class/app:1"),
    );

    let got = fetch_diff_ids()(&registry.addr, "class/app", "1");
    assert_eq!(
        got,
        Ok(expected),
        "the diff_ids of the config the manifest names"
    );

    let missing = fetch_diff_ids()(&registry.addr, "class/app", "2");
    assert!(missing.is_err(), "an unknown tag is an error: {missing:?}");

    // The registry's storage is changed behind its back: the tag now
    // points to a manifest whose bytes do not match the digest the
    // registry states. The answer must be refused.
    let tag_link = registry
        .storage()
        .join("repositories/class/app/_manifests/tags/1/current/link");
    let link = std::fs::read_to_string(&tag_link).unwrap();
    let data = registry.blob_data(link.trim());
    let mut bytes = std::fs::read(&data).unwrap();
    // One hex digit of the layer's digest, same length, still valid JSON:
    // only the digest check can tell.
    let layers = bytes.windows(8).position(|w| w == b"\"layers\"").unwrap();
    let hex = layers
        + bytes[layers..]
            .windows(7)
            .position(|w| w == b"sha256:")
            .unwrap()
        + 7;
    bytes[hex] = if bytes[hex] == b'a' { b'b' } else { b'a' };
    std::fs::write(&data, bytes).unwrap();
    let lied = fetch_diff_ids()(&registry.addr, "class/app", "1");
    assert!(
        lied.is_err(),
        "a manifest that does not hash to its digest is refused: {lied:?}"
    );
}
