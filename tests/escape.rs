//! Cross-chapter: can a root process inside the container reach a host file?
//!
//! Chapter 1 (chroot): yes — this test proves the escape works. Chapter 2
//! (mount namespace + pivot_root) adds the same check expecting "no".

use std::path::Path;

use berth_test_support::{require_root, rootfs};
use ch01_chroot::escape::break_out_of_chroot;
use ch01_chroot::{Process, run, run_with};

/// A process that copies `marker` (a host path) to `out` (a host path).
fn copy_marker(marker: &Path, out: &Path) -> Process {
    let script = format!("cat {} > {}", marker.display(), out.display());
    Process::new(vec!["/bin/sh".into(), "-c".into(), script], "berth", None)
}

#[test]
fn chroot_does_not_stop_a_root_process_from_getting_out() {
    if !require_root("chroot_does_not_stop_a_root_process_from_getting_out") {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let marker = host.path().join("marker");
    std::fs::write(&marker, "host only\n").unwrap();
    let out = host.path().join("out");

    // Without the breakout, the host path does not exist in the chroot.
    let code = run(rootfs(), &copy_marker(&marker, &out)).unwrap();
    assert_ne!(code, 0);
    assert!(!out.exists());

    // With it, the same process reads the host file and writes a host file.
    let code = run_with(rootfs(), &copy_marker(&marker, &out), &break_out_of_chroot).unwrap();
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "host only\n");
}
