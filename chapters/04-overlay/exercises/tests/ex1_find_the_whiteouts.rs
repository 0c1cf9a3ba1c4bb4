//! Check for exercise 1: the whiteouts in an overlay's upper directory.

use std::path::Path;

use berth_test_support::require_root;
use ch04_exercises::{checking_mine, ex1_find_the_whiteouts, solutions};
use ch04_overlay::overlay::{OverlayDirs, mount_overlay};

fn deleted_paths() -> fn(&Path) -> std::io::Result<Vec<String>> {
    if checking_mine() {
        ex1_find_the_whiteouts::deleted_paths
    } else {
        solutions::ex1_find_the_whiteouts::deleted_paths
    }
}

#[test]
fn ex1_find_the_whiteouts_without_whiteouts() {
    // An upper directory with plain files only: nothing was deleted.
    let upper = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(upper.path().join("etc")).unwrap();
    std::fs::write(upper.path().join("etc/hostname"), "box\n").unwrap();
    std::fs::write(upper.path().join("new"), "added\n").unwrap();
    assert_eq!(
        deleted_paths()(upper.path()).unwrap(),
        Vec::<String>::new(),
        "plain files are additions or changes, not deletions"
    );
}

#[test]
fn ex1_find_the_whiteouts_on_the_real_kernel() {
    if !require_root("ex1_find_the_whiteouts_on_the_real_kernel") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::create_dir_all(base.join("var/cache/apk")).unwrap();
    std::fs::write(base.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(base.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(base.join("etc/hostname"), "base\n").unwrap();
    std::fs::write(base.join("README"), "lower\n").unwrap();
    std::fs::write(base.join("var/cache/apk/index"), "lower\n").unwrap();
    let dirs = OverlayDirs {
        lower: vec![base.clone()],
        upper: root.path().join("upper"),
        work: root.path().join("work"),
        merged: root.path().join("merged"),
    };
    let mount = mount_overlay(&dirs).unwrap();
    let merged = mount.merged().to_path_buf();
    std::fs::remove_file(merged.join("etc/group")).unwrap();
    std::fs::remove_file(merged.join("README")).unwrap();
    std::fs::remove_dir_all(merged.join("var/cache")).unwrap();
    std::fs::write(merged.join("etc/motd"), "added\n").unwrap();
    mount.unmount().unwrap();

    assert_eq!(
        deleted_paths()(&dirs.upper).unwrap(),
        ["/README", "/etc/group", "/var/cache"],
        "the three deletions, as container paths, sorted; not the added /etc/motd"
    );
}
