//! Chapter 4 end to end: containers on shared layers, with the real kernel's
//! overlayfs (and the copy driver), their diffs and their layer tarballs.

use std::path::{Path, PathBuf};

use berth_test_support::probe::probe_rootfs;
use berth_test_support::{Run, bin_path, require_root};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch04-overlay"))
}

/// A state root of the test's own, and the probe rootfs as the base layer.
struct Setup {
    state: tempfile::TempDir,
    base: berth_test_support::probe::ProbeRootfs,
}

fn setup() -> Setup {
    Setup {
        state: tempfile::tempdir().unwrap(),
        base: probe_rootfs(),
    }
}

impl Setup {
    fn ch04(&self, args: &[&str]) -> Run {
        let mut all = vec!["--root", self.state.path().to_str().unwrap()];
        all.extend(args);
        Run::new(&bin(), all)
    }
    fn run(&self, name: &str, extra: &[&str], script: &str) -> Run {
        let base = self.base.path.to_str().unwrap();
        let mut args = vec!["run", "--name", name, "--layer", base];
        args.extend(extra);
        args.extend(["sh", "-c", script]);
        self.ch04(&args)
    }
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(r"--root /tmp/\.tmp[A-Za-z0-9]+ ", "--root [STATE] ");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s
}

/// Everything under `root` as "path kind contents" lines, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&path).unwrap().display()
                ));
            } else {
                out.push(format!("{rel} = {:?}", std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

const CHANGES: &str = "echo hi > /newfile; echo more >> /etc/hostname; rm /etc/group; rm -rf /usr/local/bin; mkdir /usr/local/bin; echo new > /usr/local/bin/tool";

#[test]
fn changes_go_to_the_writable_layer_and_diff_lists_them() {
    if !require_root("changes_go_to_the_writable_layer_and_diff_lists_them") {
        return;
    }
    let s = setup();
    let before = tree(&s.base.path);
    let run = s.run("c1", &[], CHANGES);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(tree(&s.base.path), before, "a layer must never change");
    let diff = s.ch04(&["diff", "c1"]);
    assert_eq!(
        diff.stdout(),
        "C /etc\nD /etc/group\nC /etc/hostname\nA /newfile\nC /usr\nC /usr/local\nC /usr/local/bin\nA /usr/local/bin/tool\n",
        "{}",
        diff.transcript()
    );
    settings().bind(|| insta::assert_snapshot!("ch04_diff", diff.transcript()));
    let rm = s.ch04(&["rm", "c1"]);
    assert_eq!(rm.code(), Some(0), "{}", rm.transcript());
    assert!(!s.state.path().join("containers/c1").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(s.state.path().to_str().unwrap()),
        "rm left a mount"
    );
}

#[test]
fn two_containers_on_the_same_layer_do_not_see_each_others_writes() {
    if !require_root("two_containers_on_the_same_layer_do_not_see_each_others_writes") {
        return;
    }
    let s = setup();
    assert_eq!(s.run("a", &[], "echo a > /mine").code(), Some(0));
    let b = s.run("b", &[], "cat /mine 2>&1; test ! -e /mine");
    assert_eq!(b.code(), Some(0), "b saw a's file: {}", b.transcript());
    let ps = s.ch04(&["ps"]);
    assert_eq!(ps.stdout().lines().count(), 3, "{}", ps.transcript());
}

#[test]
fn commit_is_deterministic_and_a_name_is_taken_once() {
    if !require_root("commit_is_deterministic_and_a_name_is_taken_once") {
        return;
    }
    let s = setup();
    let out = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for name in ["one", "two"] {
        assert_eq!(s.run(name, &[], CHANGES).code(), Some(0));
        let tar = out.path().join(format!("{name}.tar"));
        let commit = s.ch04(&["commit", name, tar.to_str().unwrap()]);
        assert_eq!(commit.code(), Some(0), "{}", commit.transcript());
        digests.push(commit.stdout());
    }
    assert_eq!(
        digests[0], digests[1],
        "the same changes give the same layer"
    );
    // What the layer holds, entry by entry, as tar records it.
    let mut listing = String::new();
    let mut archive = tar::Archive::new(std::fs::File::open(out.path().join("one.tar")).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        listing.push_str(&format!(
            "{:?} {:o} {}:{} mtime={} size={} {}\n",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.size().unwrap(),
            entry.path().unwrap().display()
        ));
    }
    settings().bind(|| insta::assert_snapshot!("ch04_commit_entries", listing));
    assert_eq!(
        std::fs::read(out.path().join("one.tar")).unwrap(),
        std::fs::read(out.path().join("two.tar")).unwrap()
    );
    let again = s.run("one", &[], "true");
    assert_eq!(again.code(), Some(125), "{}", again.transcript());
    assert!(
        again.stderr().contains("container one already exists"),
        "{}",
        again.transcript()
    );
}

#[test]
fn the_vfs_driver_copies_and_still_isolates() {
    if !require_root("the_vfs_driver_copies_and_still_isolates") {
        return;
    }
    let s = setup();
    let before = tree(&s.base.path);
    let run = s.run(
        "v",
        &["--storage-driver", "vfs"],
        "echo v > /etc/hostname; cat /etc/hostname",
    );
    assert_eq!(run.stdout(), "v\n", "{}", run.transcript());
    assert_eq!(tree(&s.base.path), before);
    let diff = s.ch04(&["diff", "v"]);
    assert_eq!(diff.code(), Some(125));
    assert!(
        diff.stderr().contains("vfs driver"),
        "{}",
        diff.transcript()
    );
}

#[test]
fn bad_layers_and_names_are_refused_and_leave_nothing() {
    let s = setup();
    let missing = s.ch04(&[
        "run",
        "--name",
        "x",
        "--layer",
        "/nonexistent/layer",
        "true",
    ]);
    assert_eq!(missing.code(), Some(125));
    assert!(
        missing
            .stderr()
            .contains("/nonexistent/layer: no such directory"),
        "{}",
        missing.transcript()
    );
    let bad = s.ch04(&[
        "run",
        "--name",
        "../up",
        "--layer",
        s.base.path.to_str().unwrap(),
        "true",
    ]);
    assert_eq!(bad.code(), Some(125), "{}", bad.transcript());
    assert!(
        bad.stderr().contains("not a container name"),
        "{}",
        bad.transcript()
    );
    let nothing = s.ch04(&["diff", "nope"]);
    assert!(
        nothing.stderr().contains("no container nope"),
        "{}",
        nothing.transcript()
    );
    assert!(!s.state.path().join("containers/x").exists());
}

#[test]
fn commit_then_apply_reproduces_the_containers_view() {
    if !require_root("commit_then_apply_reproduces_the_containers_view") {
        return;
    }
    use ch04_overlay::apply::{ApplyOptions, WhiteoutMode, apply_layer};
    use ch04_overlay::overlay::{OverlayDirs, mount_overlay};
    let s = setup();
    assert_eq!(s.run("c", &[], CHANGES).code(), Some(0));
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("c.tar");
    assert_eq!(
        s.ch04(&["commit", "c", tar.to_str().unwrap()]).code(),
        Some(0)
    );

    // The container's view: the base with its writable layer on top.
    let upper = s.state.path().join("containers/c/upper");
    let view = OverlayDirs {
        lower: vec![s.base.path.clone(), upper],
        upper: out.path().join("u"),
        work: out.path().join("w"),
        merged: out.path().join("view"),
    };
    let mount = mount_overlay(&view).unwrap();
    let expected = tree(mount.merged());
    mount.unmount().unwrap();

    // The same from a plain copy of the base and the tarball.
    let copy = out.path().join("copy");
    ch04_overlay::vfs::copy_layers(std::slice::from_ref(&s.base.path), &copy).unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Delete,
        preserve_owners: true,
        allow_devices: true,
    };
    apply_layer(std::fs::File::open(&tar).unwrap(), &copy, &opts).unwrap();
    assert_eq!(tree(&copy), expected);
}

/// Rootless: the overlay is mounted inside the container's user namespace
/// (Linux 5.11+, `userxattr`). The layer belongs to the user, as a rootless
/// user's own layers do, so root inside may change what it sees.
#[test]
fn rootless_overlay_in_a_user_namespace() {
    if !require_root("rootless_overlay_in_a_user_namespace") {
        return;
    }
    use std::os::unix::process::CommandExt;
    if !ch04_overlay::overlay::rootless_overlay_supported(Path::new("/proc")) {
        // Older kernels: the engine falls back to vfs; nothing to test here.
        berth_test_support::skip(
            "rootless_overlay_in_a_user_namespace",
            "kernel older than 5.11",
        );
        return;
    }
    let s = setup();
    // Hand the layer and the state directory to nobody.
    let chown_tree = |root: &Path| {
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).unwrap();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            }
        }
    };
    chown_tree(&s.base.path);
    chown_tree(s.state.path());
    let before = tree(&s.base.path);
    let as_nobody = |args: &[&str]| {
        let mut cmd = berth_test_support::command(&bin());
        cmd.arg("--root")
            .arg(s.state.path())
            .args(args)
            .uid(65534)
            .gid(65534)
            .current_dir("/");
        Run::capture(cmd)
    };
    let base = s.base.path.to_str().unwrap();
    let run = as_nobody(&[
        "run",
        "--no-cgroups",
        "--name",
        "r",
        "--layer",
        base,
        "sh",
        "-c",
        CHANGES,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(tree(&s.base.path), before, "a layer must never change");
    let diff = as_nobody(&["diff", "r"]);
    assert_eq!(
        diff.stdout(),
        "C /etc\nD /etc/group\nC /etc/hostname\nA /newfile\nC /usr\nC /usr/local\nC /usr/local/bin\nA /usr/local/bin/tool\n",
        "{}",
        diff.transcript()
    );
    let rm = as_nobody(&["rm", "r"]);
    assert_eq!(rm.code(), Some(0), "{}", rm.transcript());
}

#[test]
fn every_command_has_help() {
    for (name, args) in [
        ("ch04_help", &["--help"][..]),
        ("ch04_help_run", &["run", "--help"]),
        ("ch04_help_commit", &["commit", "--help"]),
    ] {
        let run = Run::new(&bin(), args);
        assert_eq!(run.code(), Some(0));
        settings().bind(|| insta::assert_snapshot!(name, run.transcript()));
    }
}
