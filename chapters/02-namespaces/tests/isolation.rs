//! Chapter 2 end to end: what each namespace hides, checked with the probe
//! inside real containers. Most tests need no root: run as a normal user,
//! the engine goes rootless (a user namespace maps the caller to root), and
//! the same assertions hold — CI runs this file both ways.

use std::os::unix::process::CommandExt;
use std::path::Path;

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{
    BackgroundEngine, Run, TRAP_TERM_SCRIPT, command, require_root, sigterm_round_trip, skip,
};

const BIN: &str = env!("CARGO_BIN_EXE_ch02-namespaces");

fn ch02(args: &[&str]) -> Run {
    Run::new(Path::new(BIN), args)
}

/// `run --hostname box ROOTFS berth-probe FACTS...` as root.
fn probe(rootfs: &Path, extra: &[&str], facts: &[&str]) -> Run {
    let mut args = vec!["run", "--hostname", "box"];
    args.extend(extra);
    args.push(rootfs.to_str().unwrap());
    args.push(PROBE_IN_CONTAINER);
    args.extend(facts);
    ch02(&args)
}

fn settings() -> insta::Settings {
    berth_test_support::container_snapshot_settings()
}

macro_rules! snapshot {
    ($name:expr, $run:expr) => {
        settings().bind(|| insta::assert_snapshot!($name, $run.transcript()))
    };
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
}

#[test]
fn uts_pid_and_net_namespaces_hide_the_host() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let run = probe(
        &r.path,
        &[],
        &["hostname", "pid", "processes", "interfaces"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout();
    assert_eq!(line(&out, "hostname:"), "hostname: box");
    assert_ne!(nix::unistd::gethostname().unwrap().to_str(), Some("box"));
    // init is PID 1, the probe its child: no host process is visible.
    assert_eq!(line(&out, "pid:"), "pid: 2");
    assert_eq!(line(&out, "processes:"), "processes: 1 2");
    assert_eq!(line(&out, "interface:"), "interface: lo up");
    assert_eq!(out.matches("interface:").count(), 1, "only lo: {out}");
    snapshot!("ch02_run_probe", run);
}

#[test]
fn without_init_the_command_is_pid_1() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let run = probe(&r.path, &["--no-init"], &["pid", "processes"]);
    assert_eq!(
        run.stdout(),
        "pid: 1\nprocesses: 1\nprocess_count: 1\n",
        "{}",
        run.transcript()
    );
}

#[test]
fn each_namespace_alone_shows_its_own_effect() {
    if !require_root("each_namespace_alone_shows_its_own_effect") {
        return;
    }
    let r = probe_rootfs();
    let host = Run::new(berth_test_support::probe::probe_binary(), ["ns"]).stdout();
    // Each kind together with mnt, which the probe needs for its /proc.
    for ns in ["uts", "ipc", "pid", "net", "cgroup", "mnt"] {
        let run = probe(&r.path, &["--ns", &format!("mnt,{ns}")], &["ns"]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let inside = run.stdout();
        for kind in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
            let (a, b) = (
                line(&inside, &format!("ns: {kind} ")),
                line(&host, &format!("ns: {kind} ")),
            );
            assert_eq!(
                a != b,
                kind == ns || kind == "mnt",
                "--ns mnt,{ns}: {kind} namespace: inside {a}, host {b}"
            );
        }
    }
}

#[test]
fn sysv_ipc_of_the_host_is_invisible() {
    // As root, and rootless in a user namespace when run as a normal user.
    // A segment on the host, removed when the test ends.
    // SAFETY: plain System V IPC calls with constant arguments.
    let id =
        unsafe { nix::libc::shmget(nix::libc::IPC_PRIVATE, 4096, 0o600 | nix::libc::IPC_CREAT) };
    assert!(id >= 0, "shmget");
    struct Remove(i32);
    impl Drop for Remove {
        fn drop(&mut self) {
            // SAFETY: removes the segment this test created.
            unsafe { nix::libc::shmctl(self.0, nix::libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    let _remove = Remove(id);
    let host = Run::new(berth_test_support::probe::probe_binary(), ["sysv_shm"]).stdout();
    assert_ne!(host, "sysv_shm: 0\n");
    let r = probe_rootfs();
    let run = probe(&r.path, &[], &["sysv_shm"]);
    assert_eq!(run.stdout(), "sysv_shm: 0\n", "{}", run.transcript());
    let shared = probe(&r.path, &["--ns", "mnt,pid"], &["sysv_shm"]);
    assert_eq!(
        shared.stdout(),
        host,
        "without an IPC namespace the host's segments show"
    );
}

#[test]
fn a_mount_made_inside_is_invisible_on_the_host() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let script = "mount -t tmpfs scratch /tmp && touch /tmp/made-inside && grep -c scratch /proc/self/mounts";
    // Mounting needs CAP_SYS_ADMIN, which a container lacks by default.
    let run = ch02(&[
        "run",
        "--cap-add",
        "SYS_ADMIN",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(run.stdout(), "1\n", "{}", run.transcript());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(r.path.to_str().unwrap()),
        "a container mount leaked to the host:\n{mounts}"
    );
    assert!(
        !r.path.join("tmp/made-inside").exists(),
        "the file went to the tmpfs, not the rootfs"
    );
}

#[test]
fn chapter_1s_escape_no_longer_gets_out() {
    // As root, and rootless in a user namespace when run as a normal user.
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("host-secret");
    std::fs::write(&marker, "only on the host\n").unwrap();
    let r = probe_rootfs();
    let run = ch02(&[
        "escape",
        r.path.to_str().unwrap(),
        "cat",
        marker.to_str().unwrap(),
    ]);
    assert_ne!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        !run.stdout().contains("only on the host"),
        "{}",
        run.transcript()
    );
}

#[test]
fn rootless_maps_the_caller_to_root() {
    let r = probe_rootfs();
    let mut cmd = command(Path::new(BIN));
    cmd.args([
        "run",
        "--hostname",
        "box",
        r.path.to_str().unwrap(),
        PROBE_IN_CONTAINER,
    ])
    .args(["uid", "uid_map", "gid_map", "hostname", "pid", "interfaces"]);
    let outside = if nix::unistd::Uid::effective().is_root() {
        // Drop to an unprivileged user for this run: a real rootless start.
        cmd.uid(65534).gid(65534).current_dir("/");
        65534
    } else {
        nix::unistd::Uid::effective().as_raw()
    };
    let run = Run::capture(cmd);
    if run.stderr().contains("user namespaces are disabled") {
        skip(
            "rootless_maps_the_caller_to_root",
            "unprivileged user namespaces are disabled here",
        );
        return;
    }
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout();
    assert_eq!(line(&out, "uid:"), "uid: 0/0");
    assert_eq!(line(&out, "uid_map:"), format!("uid_map: 0 {outside} 1"));
    assert_eq!(line(&out, "hostname:"), "hostname: box");
    assert_eq!(line(&out, "pid:"), "pid: 2");
    assert_eq!(line(&out, "interface:"), "interface: lo up");
}

#[test]
fn root_in_a_user_namespace_maps_to_an_unprivileged_range() {
    if !require_root("root_in_a_user_namespace_maps_to_an_unprivileged_range") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(
        &r.path,
        &["--userns", "--uidmap", "0:200000:65536"],
        &["uid", "uid_map", "gid_map"],
    );
    assert_eq!(
        run.stdout(),
        "uid: 0/0\nuid_map: 0 200000 65536\ngid_map: 0 200000 65536\n",
        "{}",
        run.transcript()
    );
}

#[test]
fn orphaned_zombies_are_reaped_by_init() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    // The subshell exits at once, orphaning `true`, which becomes a zombie
    // for PID 1 to reap. The sleeps give init time to do so.
    let script = format!("(true &); sleep 0.3; {PROBE_IN_CONTAINER} zombies");
    let run = ch02(&["run", r.path.to_str().unwrap(), "sh", "-c", &script]);
    assert_eq!(run.stdout(), "zombies: 0\n", "{}", run.transcript());
}

/// The PID 1 problem, part 1: orphans become zombies unless PID 1 reaps them.
/// An orphan (`sleep 0.1`) outlives its parent; PID 1 is then either our init
/// or, with --no-init, the shell after it exec'd `sleep 2`, which never waits.
#[test]
fn zombies_pile_up_without_init() {
    let r = probe_rootfs();
    let script = format!("(sleep 0.1 &); (sleep 1; {PROBE_IN_CONTAINER} zombies) & exec sleep 2");
    let rootfs = r.path.to_str().unwrap();
    let with_init = ch02(&["run", "--hostname", "box", rootfs, "sh", "-c", &script]);
    assert_eq!(
        with_init.stdout(),
        "zombies: 0\n",
        "{}",
        with_init.transcript()
    );
    snapshot!("ch02_zombies_with_init", with_init);
    let without = ch02(&[
        "run",
        "--hostname",
        "box",
        "--no-init",
        rootfs,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(without.stdout(), "zombies: 1\n", "{}", without.transcript());
    snapshot!("ch02_zombies_without_init", without);
}

/// The PID 1 problem, part 2: a PID 1 with no handler ignores SIGTERM.
/// `sleep` installs none: as PID 1 it sleeps on; under init it dies.
#[test]
fn sigterm_is_lost_on_a_pid_1_without_handlers() {
    let r = probe_rootfs();
    let rootfs = r.path.to_str().unwrap();
    for (name, extra, want) in [
        ("ch02_sigterm_with_init", &[][..], 128 + 15),
        ("ch02_sigterm_without_init", &["--no-init"][..], 0),
    ] {
        let mut args = vec!["run", "--hostname", "box"];
        args.extend(extra);
        args.extend([rootfs, "sleep", "1"]);
        let mut cmd = command(Path::new(BIN));
        cmd.args(&args);
        // Once the container exists, signal the engine.
        let mut engine = BackgroundEngine::start(cmd);
        let started = format!("container {} started, pid {}", engine.id, engine.pid);
        let code = engine.terminate();
        assert_eq!(code, Some(want), "{name}");
        let transcript = format!(
            "$ ch02-namespaces {}\n[stderr] ch02-namespaces: {started}\n$ kill -TERM $ENGINE_PID\n[exit {}]\n",
            args.join(" "),
            code.unwrap()
        );
        settings().bind(|| insta::assert_snapshot!(name, transcript));
    }
}

#[test]
fn a_signal_sent_to_the_engine_reaches_the_command_through_init() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let mut engine = command(Path::new(BIN));
    engine.args([
        "run",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
        TRAP_TERM_SCRIPT,
    ]);
    // Engine -> init (PID 1) -> the shell, and the status back the same way.
    let (after, code) = sigterm_round_trip(engine);
    assert_eq!(after, "got TERM\n");
    assert_eq!(code, Some(7));
}

#[test]
fn exec_joins_the_running_container() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let mut cmd = command(Path::new(BIN));
    // Runs until the test kills it (bounded, in case the test dies first).
    cmd.args([
        "run",
        "--hostname",
        "execbox",
        "--cap-add",
        "SYS_ADMIN",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
    ])
    .args(["mkdir -p /tmp/inside && mount -t tmpfs only-inside /tmp/inside && echo up; sleep 20"]);
    let mut engine = BackgroundEngine::start(cmd);
    engine.expect_stdout(b"up\n");
    let pid = engine.pid;

    let exec = ch02(&[
        "exec",
        &pid.to_string(),
        PROBE_IN_CONTAINER,
        "hostname",
        "processes",
        "root",
        "mounts",
        "cwd",
    ]);
    assert_eq!(exec.code(), Some(0), "{}", exec.transcript());
    let out = exec.stdout();
    assert_eq!(line(&out, "hostname:"), "hostname: execbox");
    // init (1), sh (2), sleep, and the probe: a handful, not the host's.
    let count: usize = line(&out, "process_count:")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=5).contains(&count), "{out}");
    assert!(
        out.contains("mount: /tmp/inside tmpfs"),
        "exec must see the container's mounts:\n{out}"
    );
    assert_eq!(line(&out, "cwd:"), "cwd: /");
    let host_root = Run::new(berth_test_support::probe::probe_binary(), ["root"]).stdout();
    assert_ne!(
        line(&out, "root:"),
        host_root.trim(),
        "exec must see the container's root"
    );

    // Dropping the engine kills its process group: the container with it.
    drop(engine);
}

#[test]
fn errors_name_what_is_wrong() {
    let missing = ch02(&["run", "/nonexistent/rootfs", "true"]);
    assert_eq!(missing.code(), Some(125));
    snapshot!("ch02_error_rootfs_missing", missing);
    let bad_ns = ch02(&["run", "--ns", "uts,time", "/", "true"]);
    assert_eq!(bad_ns.code(), Some(2));
    assert!(
        bad_ns.stderr().contains("unknown namespace \"time\""),
        "{}",
        bad_ns.transcript()
    );
    let bad_map = ch02(&["run", "--userns", "--uidmap", "0:1", "/", "true"]);
    assert_eq!(bad_map.code(), Some(2));
    assert!(
        bad_map.stderr().contains("CONTAINER_ID:HOST_ID:SIZE"),
        "{}",
        bad_map.transcript()
    );
    let no_process = ch02(&["exec", "999999999", "true"]);
    assert_eq!(no_process.code(), Some(125));
    assert!(
        no_process.stderr().contains("no process 999999999"),
        "{}",
        no_process.transcript()
    );
}

#[test]
fn not_found_and_not_executable_keep_chapter_1s_codes() {
    // As root, and rootless in a user namespace when run as a normal user.
    let r = probe_rootfs();
    let rootfs = r.path.to_str().unwrap();
    let not_found = ch02(&["run", rootfs, "no-such-command"]);
    assert_eq!(not_found.code(), Some(127), "{}", not_found.transcript());
    let not_exec = ch02(&["run", rootfs, "/etc/passwd"]);
    assert_eq!(not_exec.code(), Some(126), "{}", not_exec.transcript());
}

#[test]
fn every_command_has_help() {
    for (name, args) in [
        ("ch02_help", &["--help"][..]),
        ("ch02_help_run", &["run", "--help"]),
        ("ch02_help_exec", &["exec", "--help"]),
    ] {
        let run = ch02(args);
        assert_eq!(run.code(), Some(0));
        snapshot!(name, run);
    }
}

#[test]
fn dev_holds_the_standard_devices_open_to_everyone() {
    // As root they are made with mknod(2); rootless, bind-mounted from the
    // host. Either way: the right device numbers, mode 666.
    let r = probe_rootfs();
    let script = "stat -c '%A %t,%T %n' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; ls /dev";
    let run = ch02(&[
        "run",
        "--hostname",
        "box",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stdout().starts_with("crw-rw-rw- 1,3 /dev/null\n"),
        "{}",
        run.transcript()
    );
    snapshot!("ch02_dev", run);
}

#[test]
fn exec_into_a_user_namespace_is_root_there() {
    if !require_root("exec_into_a_user_namespace_is_root_there") {
        return;
    }
    let r = probe_rootfs();
    let mut cmd = command(Path::new(BIN));
    cmd.args([
        "run",
        "--userns",
        "--uidmap",
        "0:300000:65536",
        r.path.to_str().unwrap(),
        "sh",
        "-c",
        "echo up; sleep 20",
    ]);
    let mut engine = BackgroundEngine::start(cmd);
    engine.expect_stdout(b"up\n");
    let pid = engine.pid.to_string();
    let exec = ch02(&["exec", &pid, PROBE_IN_CONTAINER, "uid", "uid_map"]);
    drop(engine);
    assert_eq!(
        exec.stdout(),
        "uid: 0/0\nuid_map: 0 300000 65536\n",
        "{}",
        exec.transcript()
    );
}

#[test]
fn workdir_and_user_apply_to_the_command() {
    let r = probe_rootfs();
    let rootfs = r.path.to_str().unwrap();
    let run = ch02(&[
        "run",
        "--hostname",
        "box",
        "-w",
        "/etc",
        "-u",
        "0:0",
        rootfs,
        PROBE_IN_CONTAINER,
        "cwd",
        "uid",
        "gid",
    ]);
    assert_eq!(
        run.stdout(),
        "cwd: /etc\nuid: 0/0\ngid: 0/0\n",
        "{}",
        run.transcript()
    );
    let missing = ch02(&[
        "run",
        "--hostname",
        "box",
        "-w",
        "/no/such/dir",
        rootfs,
        "true",
    ]);
    assert_eq!(missing.code(), Some(125), "{}", missing.transcript());
    snapshot!("ch02_error_workdir_missing", missing);
    if !require_root("workdir_and_user_apply_to_the_command (as nobody)") {
        return;
    }
    let nobody = ch02(&[
        "run",
        "--hostname",
        "box",
        "-u",
        "65534:65534",
        rootfs,
        PROBE_IN_CONTAINER,
        "uid",
        "gid",
    ]);
    assert_eq!(
        nobody.stdout(),
        "uid: 65534/65534\ngid: 65534/65534\n",
        "{}",
        nobody.transcript()
    );
}

/// The probe's answer for root in a container: capabilities, no_new_privs,
/// a mount and a /proc/sys file opened for writing (nothing is written).
const RESTRICTIONS: [&str; 6] = [
    "capabilities",
    "no_new_privs",
    "mount",
    "/tmp",
    "write",
    "/proc/sys/kernel/core_pattern",
];

#[test]
fn root_in_a_container_is_not_root_on_the_host() {
    if !require_root("root_in_a_container_is_not_root_on_the_host") {
        return;
    }
    let r = probe_rootfs();
    let default = probe(&r.path, &[], &RESTRICTIONS);
    assert_eq!(default.code(), Some(0), "{}", default.transcript());
    let out = default.stdout();
    let want = ch02_namespaces::capabilities::without_devices_cgroup().to_string();
    assert_eq!(
        line(&out, "capabilities: eff"),
        format!("capabilities: eff {want}")
    );
    assert_eq!(line(&out, "mount /tmp:"), "mount /tmp: EPERM");
    assert_eq!(
        line(&out, "write /proc/sys/kernel/core_pattern:"),
        "write /proc/sys/kernel/core_pattern: EROFS"
    );
    snapshot!("ch02_restricted", default);

    // --privileged: every capability the engine holds (named below as the
    // filter does), no no_new_privs, mounts and /proc/sys writable.
    let privileged = probe(&r.path, &["--privileged"], &RESTRICTIONS);
    assert_eq!(privileged.code(), Some(0), "{}", privileged.transcript());
    let host = Run::new(berth_test_support::probe::probe_binary(), ["capabilities"]).stdout();
    let held = line(&host, "capabilities: prm ").trim_start_matches("capabilities: prm ");
    let out = privileged.stdout();
    assert_eq!(
        line(&out, "capabilities: eff"),
        format!("capabilities: eff {held}")
    );
    assert_eq!(line(&out, "mount /tmp:"), "mount /tmp: ok");
    let mut s = settings();
    s.add_filter(
        &berth_test_support::regex_escape(held),
        "[EVERY CAPABILITY THE ENGINE HOLDS]",
    );
    s.bind(|| insta::assert_snapshot!("ch02_privileged", privileged.transcript()));

    // docker's --cap-add and --cap-drop, with or without CAP_.
    let tweaked = probe(
        &r.path,
        &[
            "--cap-drop",
            "ALL",
            "--cap-add",
            "cap_net_bind_service",
            "--cap-add",
            "KILL",
        ],
        &["capabilities"],
    );
    assert_eq!(
        line(&tweaked.stdout(), "capabilities: eff"),
        "capabilities: eff KILL,NET_BIND_SERVICE",
        "{}",
        tweaked.transcript()
    );
    let bad = ch02(&["run", "--cap-add", "SYS_WIZARD", "/", "true"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.transcript());
    assert!(
        bad.stderr().contains("\"SYS_WIZARD\": not a capability"),
        "{}",
        bad.transcript()
    );
}

#[test]
fn a_scratch_image_without_proc_dev_or_sys_runs() {
    if !require_root("a_scratch_image_without_proc_dev_or_sys_runs") {
        return;
    }
    // One static binary, nothing else: the mount points are made, as runc
    // makes them.
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    berth_test_support::probe::install_probe(&rootfs);
    let run = probe(
        &rootfs,
        &[],
        &["pid", "read", "/proc/self/comm", "read", "/dev/null"],
    );
    assert_eq!(
        run.stdout(),
        "pid: 2\nread /proc/self/comm: ok berth-probe\nread /dev/null: ok\n",
        "{}",
        run.transcript()
    );
    for dir in ["proc", "dev", "sys"] {
        assert!(rootfs.join(dir).is_dir(), "{dir} was made");
    }
}

#[test]
fn mount_points_that_are_symlinks_to_the_host_are_refused() {
    if !require_root("mount_points_that_are_symlinks_to_the_host_are_refused") {
        return;
    }
    // The image points /proc (then /dev, /sys) at a host directory, by an
    // absolute link and by one that climbs out with "..".
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("host-dir");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "host file\n").unwrap();
    let climb = format!("../../../../../../../..{}", target.display());
    for (dir, link) in [
        ("proc", target.to_str().unwrap()),
        ("dev", target.to_str().unwrap()),
        ("sys", climb.as_str()),
    ] {
        let r = probe_rootfs();
        let path = r.path.join(dir);
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink(link, &path).unwrap();
        let run = probe(&r.path, &[], &["pid"]);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(
            run.stderr()
                .contains(&format!("mount /{dir}: find /{dir} in the rootfs"))
                && run.stderr().contains("ELOOP"),
            "{}",
            run.transcript()
        );
        assert!(
            run.stdout().is_empty(),
            "the container ran: {}",
            run.transcript()
        );
        if dir == "proc" {
            snapshot!("ch02_error_proc_symlink", run);
        }
        // The host directory is as it was, with nothing mounted on it.
        let entries: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(entries, ["keep"]);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(target.to_str().unwrap()), "{mounts}");
    }
}
