//! What chapter 3's cgroups keep a container from doing, tried for real:
//! opening the host's disk through a device node it makes, writing its own
//! limits, and escaping its cgroup through `exec`. Runs here (cgroup v1)
//! and on a cgroup-v2 kernel through `cargo xtask cg2vm -p ch03-cgroups`,
//! where the device rules are a BPF program.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_test_support::attacks::host_disk;
use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{BackgroundEngine, ChildGuard, Run, bin_path, command, require_root};
use ch03_cgroups::Layout;

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch03-cgroups"))
}

fn ch03(args: &[&str]) -> Run {
    Run::new(&bin(), args)
}

fn layout() -> Layout {
    ch03_cgroups::detect(Path::new("/proc")).expect("detect the cgroup layout")
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    // The host's disk has a number of its own on each machine.
    s.add_filter(r"b \d+ \d+ ", "b [MAJOR] [MINOR] ");
    s
}

/// Lines of the container's stdout up to (not including) `ready`.
fn read_until_ready(engine: &mut BackgroundEngine) -> Vec<String> {
    let stdout = engine.child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the container's stdout");
        if line == "ready" {
            return lines;
        }
        lines.push(line);
    }
    panic!("the container ended before it was ready: {lines:?}");
}

/// `run ROOTFS sh -c SCRIPT` in the background, with `args` before ROOTFS.
fn start(rootfs: &Path, args: &[&str], script: &str) -> BackgroundEngine {
    let mut cmd = command(&bin());
    cmd.arg("run")
        .args(args)
        .arg(rootfs)
        .args(["sh", "-c", script]);
    BackgroundEngine::start(cmd)
}

// ANCHOR: devices_test
#[test]
fn a_device_node_of_the_hosts_disk_cannot_be_opened() {
    if !require_root("a_device_node_of_the_hosts_disk_cannot_be_opened") {
        return;
    }
    let r = probe_rootfs();
    let (major, minor, real) = host_disk();
    let script = format!(
        "rm -f /tmp/disk; mknod /tmp/disk b {major} {minor} && exec {PROBE_IN_CONTAINER} read /tmp/disk read /dev/null pty"
    );
    let rootfs = r.path.to_str().unwrap();
    let run = ch03(&["run", rootfs, "sh", "-c", &script]);
    assert_eq!(
        run.stdout(),
        "read /tmp/disk: EPERM\nread /dev/null: ok\npty: /dev/pts/0\n",
        "{}",
        run.transcript()
    );
    settings().bind(|| insta::assert_snapshot!("ch03_devices", run.transcript()));

    // The same, with the disk allowed: it is the devices cgroup, nothing
    // else, that said EPERM.
    let rule = format!("b {major}:{minor} r");
    let run = ch03(&[
        "run",
        "--device-cgroup-rule",
        &rule,
        rootfs,
        "sh",
        "-c",
        &script,
    ]);
    let read = run.stdout();
    let read = read.lines().next().unwrap_or_default();
    if real {
        assert!(
            read.starts_with("read /tmp/disk: ok"),
            "{}",
            run.transcript()
        );
    } else {
        assert!(!read.ends_with("EPERM"), "{}", run.transcript());
    }
}
// ANCHOR_END: devices_test

#[test]
fn the_device_rules_are_in_the_kernel_and_go_with_the_cgroup() {
    if !require_root("the_device_rules_are_in_the_kernel_and_go_with_the_cgroup") {
        return;
    }
    let r = probe_rootfs();
    let mut engine = start(&r.path, &[], "echo ready; exec sleep 30");
    read_until_ready(&mut engine);
    let id = engine.id.clone();
    let expected = ch03(&["devices", "--show", "v1"]).stdout();
    match layout() {
        Layout::V1 { controllers } => {
            // devices.list holds the exceptions, in the order they were written.
            let list = controllers["devices"]
                .join("berth")
                .join(&id)
                .join("devices.list");
            let list = std::fs::read_to_string(&list).unwrap();
            let allowed: String = expected
                .lines()
                .filter_map(|l| l.strip_prefix("devices.allow "))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(list, allowed);
            assert_eq!(engine.terminate(), Some(128 + 15));
            assert!(!controllers["devices"].join("berth").join(&id).exists());
        }
        Layout::V2 { mount } => {
            // One device filter, attached to the container's cgroup only.
            let dir = mount.join("berth").join(&id);
            let filters = ch03_cgroups::device_filter::attached_device_filters(&dir).unwrap();
            assert_eq!(filters.len(), 1, "{filters:?}");
            let parent = ch03_cgroups::device_filter::attached_device_filters(&mount.join("berth"));
            assert_eq!(parent.unwrap(), [] as [u32; 0]);
            assert!(ch03_cgroups::device_filter::program_exists(filters[0]).unwrap());
            // When the cgroup goes, so does the program: the engine kept no
            // descriptor of it, and the kernel frees it with the cgroup.
            assert_eq!(engine.terminate(), Some(128 + 15));
            assert!(!dir.exists());
            let mut gone = false;
            for _ in 0..250 {
                if !ch03_cgroups::device_filter::program_exists(filters[0]).unwrap() {
                    gone = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(gone, "BPF program {} outlived the cgroup", filters[0]);
        }
    }
    // A bad rule is refused before anything is made.
    let run = ch03(&[
        "run",
        "--device-cgroup-rule",
        "c 1:3 rx",
        "/nonexistent",
        "true",
    ]);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("the access is some of r (read), w (write) and m (mknod)"),
        "{}",
        run.transcript()
    );
}

/// The files of the memory and pids limits, as the container sees them.
fn limit_files(layout: &Layout) -> (&'static str, &'static str) {
    match layout {
        Layout::V1 { .. } => (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        ),
        Layout::V2 { .. } => ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"),
    }
}

// ANCHOR: read_only_test
#[test]
fn the_container_reads_its_limits_and_cannot_change_them() {
    if !require_root("the_container_reads_its_limits_and_cannot_change_them") {
        return;
    }
    let r = probe_rootfs();
    let layout = layout();
    let (memory, pids) = limit_files(&layout);
    // Read each limit, try to raise it, and try to add to the tree.
    let script = format!(
        "for f in {memory} {pids}; do read v < $f; echo \"$f: $v\"; \
         {{ echo 1073741824 > $f; }} 2>&1; done; \
         mkdir /sys/fs/cgroup/mine 2>&1; echo ready; exec sleep 30"
    );
    let mut engine = start(&r.path, &["--memory", "64m", "--pids-limit", "50"], &script);
    let lines = read_until_ready(&mut engine);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0], format!("{memory}: 67108864"));
    assert_eq!(lines[2], format!("{pids}: 50"));
    for refused in [&lines[1], &lines[3], &lines[4]] {
        assert!(refused.ends_with("Read-only file system"), "{lines:?}");
    }
    // Seen from the host, the limits are what the engine wrote.
    let cgroup = ch03_cgroups::Cgroup::open(&layout, Path::new("/proc"), &engine.id).unwrap();
    let host = |name: &str| {
        let file = Path::new(name).file_name().unwrap();
        let dir = cgroup
            .paths()
            .into_iter()
            .find(|d| d.join(file).exists())
            .unwrap();
        std::fs::read_to_string(dir.join(file)).unwrap()
    };
    assert_eq!(host(memory).trim(), "67108864");
    assert_eq!(host(pids).trim(), "50");
    assert_eq!(engine.terminate(), Some(128 + 15));
}
// ANCHOR_END: read_only_test

// ANCHOR: exec_test
#[test]
fn an_exec_process_is_in_the_containers_cgroup() {
    if !require_root("an_exec_process_is_in_the_containers_cgroup") {
        return;
    }
    let r = probe_rootfs();
    // Two tasks (init and sleep) under a limit of ten.
    let mut engine = start(
        &r.path,
        &["--pids-limit", "10"],
        "echo ready; exec sleep 30",
    );
    read_until_ready(&mut engine);
    let pid = engine.pid.to_string();
    let run = ch03(&["exec", &pid, PROBE_IN_CONTAINER, "fork", "20", "cgroup"]);
    let out = run.stdout();
    // The third task: room for seven more.
    assert!(
        out.starts_with("forked: 7 of 20 (stopped by EAGAIN)\n"),
        "{}",
        run.transcript()
    );
    // At the root of the container's cgroup namespace: in its cgroup.
    for line in out.lines().filter(|l| l.starts_with("cgroup: ")) {
        assert!(line.ends_with(":/"), "{}", run.transcript());
    }
    // And held to its device rules.
    let (major, minor, _) = host_disk();
    let script =
        format!("mknod /tmp/disk b {major} {minor} && exec {PROBE_IN_CONTAINER} read /tmp/disk");
    let run = ch03(&["exec", &pid, "sh", "-c", &script]);
    assert_eq!(
        run.stdout(),
        "read /tmp/disk: EPERM\n",
        "{}",
        run.transcript()
    );
    assert_eq!(engine.terminate(), Some(128 + 15));
}
// ANCHOR_END: exec_test

#[test]
fn pause_freezes_an_exec_process_and_exec_refuses_a_paused_container() {
    if !require_root("pause_freezes_an_exec_process_and_exec_refuses_a_paused_container") {
        return;
    }
    let r = probe_rootfs();
    let mut engine = start(&r.path, &[], "echo ready; exec sleep 30");
    read_until_ready(&mut engine);
    let (id, pid) = (engine.id.clone(), engine.pid.to_string());

    // A counter loop started with exec.
    let counter = r.path.join("tmp/n");
    let script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo $i > /tmp/n; done";
    let mut cmd = command(&bin());
    cmd.args(["exec", &pid, "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _exec = ChildGuard(cmd.spawn().expect("spawn exec"));
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    // Bounded by 30 s, not 5: under CI's load an exec can take seconds to
    // start (it failed once so); nothing here measures time.
    let wait_for_change = |from: Option<u64>| {
        (0..3000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            read().is_some() && read() != from
        })
    };
    assert!(wait_for_change(None), "the exec'd loop never started");
    // The container's stats count it: init, sleep and the loop.
    let stats = ch03(&["stats", &id]);
    assert!(
        stats.stdout().contains("\npids: 3\n"),
        "{}",
        stats.transcript()
    );

    // Thaw it whatever happens below: a container left frozen keeps its
    // processes (and its engine's SIGKILL waits for the thaw).
    struct Thaw<'a>(&'a str);
    impl Drop for Thaw<'_> {
        fn drop(&mut self) {
            let _ = ch03(&["unpause", self.0]);
        }
    }
    let _thaw = Thaw(&id);
    let pause = ch03(&["pause", &id]);
    assert_eq!(pause.code(), Some(0), "{}", pause.transcript());
    let frozen_at = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), frozen_at, "pause did not freeze the exec'd process");

    // Exec into the paused container is refused, with the way out.
    let refused = ch03(&["exec", &pid, "true"]);
    assert_eq!(refused.code(), Some(125), "{}", refused.transcript());
    let message = format!(
        "ch03-cgroups: container {id} is paused: unpause it first (`ch03-cgroups unpause {id}`)"
    );
    assert!(
        refused.stderr().starts_with(&message),
        "{}",
        refused.transcript()
    );
    settings().bind(|| {
        let mut s = insta::Settings::clone_current();
        s.add_filter(&format!(r"\b{id}\b"), "[ID]");
        s.add_filter(&format!(r"\bexec {pid}\b"), "exec [PID]");
        s.bind(|| insta::assert_snapshot!("ch03_exec_paused", refused.transcript()));
    });

    let unpause = ch03(&["unpause", &id]);
    assert_eq!(unpause.code(), Some(0), "{}", unpause.transcript());
    assert!(wait_for_change(frozen_at), "no progress after unpause");
    assert_eq!(engine.terminate(), Some(128 + 15));
}

#[test]
fn devices_shows_the_rules_and_what_the_kernel_gets() {
    for (name, show) in [
        ("ch03_devices_rules", "rules"),
        ("ch03_devices_v1", "v1"),
        ("ch03_devices_bpf", "bpf"),
    ] {
        let run = ch03(&["devices", "--show", show]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        settings().bind(|| insta::assert_snapshot!(name, run.transcript()));
    }
    // An extra rule shows in both forms (v1's exceptions are sorted).
    let run = ch03(&["devices", "--device-cgroup-rule", "b 8:* r", "--show", "v1"]);
    assert!(
        run.stdout().contains("\ndevices.allow b 8:* r\n"),
        "{}",
        run.transcript()
    );
    let run = ch03(&[
        "devices",
        "--device-cgroup-rule",
        "b 8:* r",
        "--show",
        "bpf",
    ]);
    assert!(
        run.stdout().contains("; allow b 8:* r\n"),
        "{}",
        run.transcript()
    );
    let run = ch03(&["devices", "--device-cgroup-rule", "b 8:*"]);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
}

#[test]
fn the_container_sees_its_memory_limit_read_only() {
    if !require_root("the_container_sees_its_memory_limit_read_only") {
        return;
    }
    let r = probe_rootfs();
    let script = "f=$(ls /sys/fs/cgroup/memory.max /sys/fs/cgroup/*/memory.limit_in_bytes 2>/dev/null); \
                  echo \"$f: $(cat $f)\"; echo 1073741824 > $f";
    let run = ch03(&[
        "run",
        "--memory",
        "64m",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stdout().ends_with(": 67108864\n"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr().contains("Read-only file system"),
        "{}",
        run.transcript()
    );
    let mut s = settings();
    // v1 and v2 name the file differently.
    s.add_filter(
        r"/sys/fs/cgroup/(memory/memory\.limit_in_bytes|memory\.max)",
        "[MEMORY LIMIT FILE]",
    );
    s.bind(|| insta::assert_snapshot!("ch03_cgroupfs_view", run.transcript()));
}
