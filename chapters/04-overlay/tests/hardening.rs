//! Chapter 4 against what goes wrong: an engine killed mid-run, two stores
//! with the same container name, bad limits, trees nested thousands deep
//! under a small descriptor limit, names that are terminal escapes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_test_support::probe::probe_rootfs;
use berth_test_support::{
    BackgroundEngine, Run, bin_path, cgroup_dirs, command, limit_descriptors, process_alive,
    require_root,
};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch04-overlay"))
}

fn ch04(root: &Path, args: &[&str]) -> Run {
    let mut cmd = command(&bin());
    cmd.arg("--root").arg(root).args(args);
    Run::capture(cmd)
}

/// The lines of /proc/self/mountinfo that mention `path`.
fn mounts_under(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    text.lines()
        .filter(|l| l.contains(path))
        .map(str::to_string)
        .collect()
}

/// Everything under `root`, as sorted relative paths.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Wait (up to a generous bound) for `pid` to be gone.
fn gone(pid: i32) -> bool {
    let start = Instant::now();
    while process_alive(pid) {
        if start.elapsed() > Duration::from_secs(20) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn start_sleeper(root: &Path, name: &str, layer: &Path) -> BackgroundEngine {
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(root)
        .args(["run", "--name", name, "--layer"]);
    cmd.arg(layer).args(["sh", "-c", "echo up; exec sleep 300"]);
    // Back once the command runs: the "started" line comes before the
    // setup ends, and an engine killed then takes its half-made child
    // with it.
    let mut engine = BackgroundEngine::start(cmd);
    engine.expect_stdout(b"up\n");
    engine
}

#[test]
fn rm_after_the_engine_was_killed_stops_and_frees_everything() {
    if !require_root("rm_after_the_engine_was_killed_stops_and_frees_everything") {
        return;
    }
    let base = probe_rootfs();
    let state = tempfile::tempdir().unwrap();
    let root = state.path();
    let mut engine = start_sleeper(root, "k9", &base.path);
    let (cgroup, pid) = (engine.id.clone(), engine.pid);
    assert!(cgroup.starts_with("k9-"), "{cgroup}");

    // While the engine lives, rm refuses.
    let rm = ch04(root, &["rm", "k9"]);
    assert_eq!(rm.code(), Some(125), "{}", rm.transcript());
    assert!(rm.stderr().contains("is running"), "{}", rm.transcript());
    assert!(process_alive(pid));

    // kill -9 the engine alone: the container goes on, and everything stays.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engine.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    engine.child.wait().unwrap();
    assert!(
        process_alive(pid),
        "the container should outlive its engine"
    );
    assert!(!mounts_under(root).is_empty());
    assert!(!cgroup_dirs(&cgroup).is_empty());

    // rm stops the container and frees its mount, cgroups and state.
    let rm = ch04(root, &["rm", "k9"]);
    assert_eq!(rm.code(), Some(0), "{}", rm.transcript());
    assert!(gone(pid), "rm left the container's process running");
    assert_eq!(mounts_under(root), Vec::<String>::new());
    assert_eq!(cgroup_dirs(&cgroup), Vec::<PathBuf>::new());
    assert!(!root.join("containers/k9").exists());

    // The name is free again.
    let again = ch04(
        root,
        &[
            "run",
            "--rm",
            "--name",
            "k9",
            "--layer",
            base.path.to_str().unwrap(),
            "true",
        ],
    );
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
}

#[test]
fn the_same_name_runs_in_two_stores_at_once() {
    if !require_root("the_same_name_runs_in_two_stores_at_once") {
        return;
    }
    let base = probe_rootfs();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = start_sleeper(a.path(), "web", &base.path);
    let mut second = start_sleeper(b.path(), "web", &base.path);
    assert_ne!(first.id, second.id, "one cgroup name for two containers");
    assert!(first.id.starts_with("web-") && second.id.starts_with("web-"));
    assert!(process_alive(first.pid) && process_alive(second.pid));
    first.terminate();
    second.terminate();
    for (root, id) in [(a.path(), &first.id), (b.path(), &second.id)] {
        assert!(cgroup_dirs(id).is_empty());
        assert_eq!(ch04(root, &["rm", "web"]).code(), Some(0));
    }
}

#[test]
fn bad_limits_are_refused_before_anything_is_made() {
    if !require_root("bad_limits_are_refused_before_anything_is_made") {
        return;
    }
    let base = probe_rootfs();
    let state = tempfile::tempdir().unwrap();
    let root = state.path();
    // A store that exists already, so "unchanged" means something.
    let ok = ch04(
        root,
        &[
            "run",
            "--name",
            "kept",
            "--layer",
            base.path.to_str().unwrap(),
            "true",
        ],
    );
    assert_eq!(ok.code(), Some(0), "{}", ok.transcript());
    let before = listing(root);
    for (flag, value, says) in [
        ("--memory", "lots", "not a size"),
        ("--pids-limit", "0", "--pids-limit 0"),
        ("--cpuset-cpus", "4095", "not available here"),
    ] {
        let run = ch04(
            root,
            &[
                "run",
                "--name",
                "bad",
                flag,
                value,
                "--layer",
                base.path.to_str().unwrap(),
                "true",
            ],
        );
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(run.stderr().contains(says), "{}", run.transcript());
        assert_eq!(listing(root), before, "{flag} {value} left something");
        let id = ch04_overlay::state::cgroup_id(root, "bad");
        assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "{flag} {value}");
    }
}

#[test]
fn read_only_commands_make_no_store() {
    let state = tempfile::tempdir().unwrap();
    let typo = state.path().join("typo");
    for args in [&["ps"][..], &["diff", "x"], &["rm", "x"]] {
        let run = ch04(&typo, args);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(run.stderr().contains("no store at"), "{}", run.transcript());
        assert!(!typo.exists(), "{args:?} made {}", typo.display());
    }
}

/// A script that nests `depth` directories `d/d/...` and puts a file at the
/// bottom, one `mkdir` and `cd` at a time (no path gets long).
fn nest_script(depth: usize) -> String {
    format!(
        "i=0; while [ $i -lt {depth} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo x > leaf"
    )
}

#[test]
fn a_deeply_nested_writable_layer_is_diffed_committed_and_removed_with_few_descriptors() {
    if !require_root(
        "a_deeply_nested_writable_layer_is_diffed_committed_and_removed_with_few_descriptors",
    ) {
        return;
    }
    let base = probe_rootfs();
    let state = tempfile::tempdir().unwrap();
    let root = state.path();
    let limited = |args: &[&str]| {
        let mut cmd = command(&bin());
        cmd.arg("--root").arg(root).args(args);
        limit_descriptors(&mut cmd, 256);
        Run::capture(cmd)
    };
    let script = nest_script(2047);
    let layer = base.path.to_str().unwrap();
    let run = limited(&[
        "run", "--name", "deep", "--layer", layer, "sh", "-c", &script,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());

    let diff = limited(&["diff", "deep"]);
    assert_eq!(diff.code(), Some(0), "{}", diff.stderr());
    let stdout = diff.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    let bottom = format!("A /{}/leaf", vec!["d"; 2047].join("/"));
    assert_eq!(lines.len(), 2048);
    assert_eq!(lines.last().copied(), Some(bottom.as_str()));

    let out = state.path().join("deep.tar");
    let commit = limited(&["commit", "deep", out.to_str().unwrap()]);
    assert_eq!(commit.code(), Some(0), "{}", commit.transcript());
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    assert_eq!(archive.entries().unwrap().count(), 2048);

    let rm = limited(&["rm", "deep"]);
    assert_eq!(rm.code(), Some(0), "{}", rm.transcript());
    assert!(!root.join("containers/deep").exists());

    // --rm removes it itself, under the same limit.
    let run = limited(&[
        "run", "--rm", "--name", "deep2", "--layer", layer, "sh", "-c", &script,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(!root.join("containers/deep2").exists());
}

#[test]
fn diff_prints_a_containers_names_escaped() {
    if !require_root("diff_prints_a_containers_names_escaped") {
        return;
    }
    let base = probe_rootfs();
    let state = tempfile::tempdir().unwrap();
    let root = state.path();
    let run = ch04(
        root,
        &[
            "run",
            "--name",
            "esc",
            "--layer",
            base.path.to_str().unwrap(),
            "sh",
            "-c",
            r#"touch "/$(printf 'x\033]0;pwned\007\nA y')""#,
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let diff = ch04(root, &["diff", "esc"]);
    assert_eq!(diff.code(), Some(0), "{}", diff.transcript());
    assert_eq!(diff.stdout(), "A /x\\x1b]0;pwned\\x07\\nA y\n");
}
