//! Cross-chapter: can a root process inside the container reach a host file?
//!
//! Chapter 1 (chroot): yes — this test proves the escape works. Chapter 2
//! (mount namespace + pivot_root) adds the same check expecting "no".

use std::path::Path;

use berth_test_support::{require_root, rootfs};
use ch01_chroot::escape::break_out_of_chroot;
use ch01_chroot::{Process, run, run_with};

/// A process that copies `marker` (a host path) to `out` (a host path).
/// One test at a time: each starts a child that shares this process's
/// memory and runs the escape demonstration, which allocates. Were the
/// other test's thread inside malloc at the clone, the child would wait
/// forever on its lock (CI hung so, once).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn copy_marker(marker: &Path, out: &Path) -> Process {
    let script = format!("cat {} > {}", marker.display(), out.display());
    Process::new(vec!["/bin/sh".into(), "-c".into(), script], "berth", None)
}

#[test]
fn chroot_does_not_stop_a_root_process_from_getting_out() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn pivot_root_in_a_mount_namespace_stops_the_same_escape() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !require_root("pivot_root_in_a_mount_namespace_stops_the_same_escape") {
        return;
    }
    use ch02_namespaces::container::{ContainerConfig, Hooks, run_container_with};
    use ch02_namespaces::namespaces::parse_list;

    let host = tempfile::tempdir().unwrap();
    let marker = host.path().join("marker");
    std::fs::write(&marker, "host only\n").unwrap();
    let out = host.path().join("out");
    let config = ContainerConfig {
        rootfs: rootfs().to_path_buf(),
        process: copy_marker(&marker, &out),
        namespaces: parse_list("mnt,pid").unwrap(),
        hostname: "berth".into(),
        uid_mappings: vec![],
        gid_mappings: vec![],
        deny_setgroups: false,
        init: true,
        security: Default::default(),
        mounts: None,
        readonly_root: false,
        no_pivot: false,
        join: Vec::new(),
        gate: None,
        preserve_fds: 0,
    };
    // The very same breakout, run inside the container just before exec.
    let hooks = Hooks {
        before_exec: &break_out_of_chroot,
        ..Hooks::default()
    };
    let code = run_container_with(&config, &hooks).unwrap();
    assert_ne!(code, 0, "the climb must find no host tree to reach");
    assert!(!out.exists(), "the container wrote a host file");
}
