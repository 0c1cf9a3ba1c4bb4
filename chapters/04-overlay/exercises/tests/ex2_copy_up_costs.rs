//! Check for exercise 2: a one-byte write copies up the whole file.

use std::hash::{DefaultHasher, Hasher};

use berth_test_support::require_root;
use ch04_exercises::{checking_mine, ex2_copy_up_costs, solutions};
use ch04_overlay::overlay::{OverlayDirs, mount_overlay};

const SIZE: u64 = 4 << 20;

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

#[test]
fn ex2_copy_up_costs() {
    if !require_root("ex2_copy_up_costs") {
        return;
    }
    let f = if checking_mine() {
        ex2_copy_up_costs::append_one_byte
    } else {
        solutions::ex2_copy_up_costs::append_one_byte
    };
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    std::fs::create_dir_all(base.join("data")).unwrap();
    let content: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(base.join("data/big.bin"), &content).unwrap();
    let before = hash(&content);
    let dirs = OverlayDirs {
        lower: vec![base.clone()],
        upper: root.path().join("upper"),
        work: root.path().join("work"),
        merged: root.path().join("merged"),
    };
    let mount = mount_overlay(&dirs).unwrap();
    let merged = mount.merged().to_path_buf();

    let copied = f(&merged, &dirs.upper, "data/big.bin").expect("append_one_byte failed");
    assert_eq!(
        std::fs::metadata(merged.join("data/big.bin"))
            .unwrap()
            .len(),
        SIZE + 1,
        "the merged view shows the appended byte"
    );
    mount.unmount().unwrap();

    assert_eq!(
        copied,
        SIZE + 1,
        "overlay copies up the whole 4 MiB file for a one-byte write"
    );
    let lower = std::fs::read(base.join("data/big.bin")).unwrap();
    assert_eq!(lower.len() as u64, SIZE, "the lower layer keeps its size");
    assert_eq!(hash(&lower), before, "the lower layer keeps its bytes");
}
