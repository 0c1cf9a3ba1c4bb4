//! mkrootfs: deterministic, complete, and clean on failure.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ch01_chroot::rootfs::{RootfsError, Source, mkrootfs};

/// Everything about a tree that "byte for byte" covers: for each path, its
/// type, mode, owner, times, and contents or link target.
fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = path.symlink_metadata().unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_string()
        } else {
            format!("file {:?}", std::fs::read(&path).unwrap().len())
                + &format!(" {:x}", simple_hash(&std::fs::read(&path).unwrap()))
        };
        let line = format!(
            "{what} mode={:o} uid={} gid={} mtime={}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime()
        );
        out.insert(rel, line);
    }
    out
}

/// FNV-1a: enough to tell two files apart in a test.
fn simple_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

fn same_tree_twice(source: Source) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let ra = mkrootfs(&a, source, Path::new("/")).unwrap();
    let rb = mkrootfs(&b, source, Path::new("/")).unwrap();
    assert_eq!(ra, rb);
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    assert!(fa.len() > 10, "a real tree: {fa:?}");
    assert_eq!(fa, fb);
    // The skeleton every chapter relies on.
    for dir in ["proc", "dev", "sys", "tmp", "etc", "root"] {
        assert!(a.join(dir).is_dir(), "{dir}");
    }
    assert_eq!(
        std::fs::metadata(a.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_to_string(a.join("etc/hostname")).unwrap(),
        "berth\n"
    );
    assert!(
        std::fs::read_to_string(a.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0:")
    );
    assert!(a.join("etc/group").is_file());
    assert!(a.join("bin/sh").symlink_metadata().is_ok(), "a shell");
    assert_eq!(fa[""].split(" mtime=").nth(1), Some("0"), "fixed times");
}

#[test]
fn busybox_rootfs_is_the_same_tree_every_time() {
    if !berth_test_support::host_has_busybox() {
        berth_test_support::skip(
            "busybox_rootfs_is_the_same_tree_every_time",
            "no static busybox on this host (apt-get install busybox-static)",
        );
        return;
    }
    same_tree_twice(Source::Busybox);
}

#[test]
fn host_rootfs_is_the_same_tree_every_time_and_has_its_libraries() {
    same_tree_twice(Source::Host);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let report = mkrootfs(&dir, Source::Host, Path::new("/")).unwrap();
    assert_eq!(report.source, Source::Host);
    // Every ELF file in the tree has its loader and libraries in the tree.
    let dirs = ch01_chroot::elf::loader_dirs(&dir);
    for program in ["bin/sh", "bin/ls", "bin/cat"] {
        let real = std::fs::canonicalize(dir.join(program)).unwrap();
        let inside = format!(
            "/{}",
            real.strip_prefix(std::fs::canonicalize(&dir).unwrap())
                .unwrap()
                .display()
        );
        let needs = ch01_chroot::elf::read_needs(&dir, &inside).unwrap();
        if let Some(interp) = &needs.interpreter {
            assert!(
                dir.join(interp.trim_start_matches('/')).exists(),
                "{program} needs {interp}"
            );
        }
        for lib in &needs.needed {
            assert!(
                ch01_chroot::elf::find_library(&dir, lib, &needs, &dirs).is_some(),
                "{program} needs {lib}"
            );
        }
    }
}

/// A fake host: a directory tree with only what the test puts in it.
fn fake_host(files: &[&str]) -> tempfile::TempDir {
    let host = tempfile::tempdir().unwrap();
    for f in files {
        let p = host.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "not a program").unwrap();
    }
    host
}

#[test]
fn asking_for_busybox_on_a_host_without_it_fails_and_leaves_nothing() {
    let host = fake_host(&["bin/sh"]);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("rootfs");
    let err = mkrootfs(&target, Source::Busybox, host.path()).unwrap_err();
    assert!(matches!(err, RootfsError::NoBusybox(_)), "{err}");
    assert!(err.to_string().contains("install busybox-static"), "{err}");
    assert!(!target.exists(), "the half-built rootfs is removed");
}

#[test]
fn a_host_without_a_shell_fails_and_an_existing_empty_target_stays_empty() {
    let host = fake_host(&["usr/bin/ls"]);
    let target = tempfile::tempdir().unwrap();
    let err = mkrootfs(target.path(), Source::Host, host.path()).unwrap_err();
    assert!(matches!(err, RootfsError::NoShell), "{err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
}

#[test]
fn a_program_that_is_not_elf_is_an_error_that_names_it() {
    let host = fake_host(&["bin/sh"]);
    let target = tempfile::tempdir().unwrap();
    let err = mkrootfs(&target.path().join("r"), Source::Host, host.path()).unwrap_err();
    assert!(err.to_string().contains("bin/sh: not an ELF file"), "{err}");
    assert!(!target.path().join("r").exists());
}
