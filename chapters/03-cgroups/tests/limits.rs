//! Chapter 3 end to end: limits enforced by the real kernel, read back from
//! the real cgroup files. The same file runs here (cgroup v1) and on a
//! cgroup-v2 kernel through `cargo xtask cg2vm -p ch03-cgroups`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{BackgroundEngine, Run, bin_path, command, require_root};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch03-cgroups"))
}

fn ch03(args: &[&str]) -> Run {
    Run::new(&bin(), args)
}

/// `run --hostname box LIMITS... ROOTFS berth-probe ARGS...`
fn probe(rootfs: &Path, limits: &[&str], probe_args: &[&str]) -> Run {
    let mut args = vec!["run", "--hostname", "box"];
    args.extend(limits);
    args.push(rootfs.to_str().unwrap());
    args.push(PROBE_IN_CONTAINER);
    args.extend(probe_args);
    ch03(&args)
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    // Usage varies from run to run and host to host: the lines stay, the
    // numbers go.
    s.add_filter(
        r"memory: [0-9.]+ ([KMG]i)?B \(peak ([0-9.]+ ([KMG]i)?B|unknown)\)",
        "memory: [SIZE] (peak [SIZE])",
    );
    // Without a CPU limit, v1 counts 0 throttled periods and v2 may not have
    // the counter at all.
    s.add_filter(
        r"throttled periods: (0|unknown)\n",
        "throttled periods: [0 or unknown]\n",
    );
    s.add_filter(r"cpu: [0-9.]+ s", "cpu: [SECONDS] s");
    s.add_filter(
        r"throttled periods: [1-9][0-9]*",
        "throttled periods: [N > 0]",
    );
    s.add_filter(r"allows only [0-9,-]+", "allows only [CPUS]");
    s.add_filter(
        r"(?:\d+-)?\d+ not available here",
        "[CPUS] not available here",
    );
    // v1 names the parent's cpuset.cpus, v2 its cpuset.cpus.effective.
    s.add_filter(
        r"/sys/fs/cgroup/\S*cpuset\.cpus(\.effective)?",
        "[PARENT CPUSET FILE]",
    );
    s
}

macro_rules! snapshot {
    ($name:expr, $run:expr) => {
        settings().bind(|| insta::assert_snapshot!($name, $run.transcript()))
    };
}

/// The id `run` printed on stderr.
fn container_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("ch03-cgroups: container ")?
                .split(' ')
                .next()
        })
        .unwrap_or_else(|| panic!("no 'container ID started' line in:\n{stderr}"))
        .to_string()
}

/// True if container `id` still has a cgroup anywhere.
fn cgroup_exists(id: &str) -> bool {
    let layout = ch03_cgroups::detect(Path::new("/proc")).unwrap();
    ch03_cgroups::Cgroup::open(&layout, Path::new("/proc"), id).is_ok()
}

#[test]
fn an_oom_kill_is_reported_as_one() {
    if !require_root("an_oom_kill_is_reported_as_one") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(&r.path, &["--memory", "16m"], &["hog", "64"]);
    assert_eq!(run.code(), Some(137), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("killed: out of memory (limit 16 MiB)"),
        "{}",
        run.transcript()
    );
    snapshot!("ch03_oom", run);
    assert!(!cgroup_exists(&container_id(&run.stderr())));
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    if !require_root("a_fork_bomb_stops_at_the_pids_limit") {
        return;
    }
    let r = probe_rootfs();
    // Ten at most: init and the probe, and eight children.
    let run = probe(&r.path, &["--pids-limit", "10"], &["fork", "50"]);
    assert_eq!(
        run.stdout(),
        "forked: 8 of 50 (stopped by EAGAIN)\n",
        "{}",
        run.transcript()
    );
    snapshot!("ch03_pids_limit", run);
}

#[test]
fn a_cpu_quota_throttles() {
    if !require_root("a_cpu_quota_throttles") {
        return;
    }
    let r = probe_rootfs();
    // 100 ms of CPU time under a quota of 10 ms per 100 ms period: the
    // kernel must throttle it in several periods (no clock is asserted).
    let run = probe(&r.path, &["--cpus", "0.1", "--stats"], &["spin", "100"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let throttled: u64 = run
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("ch03-cgroups: throttled periods: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", run.transcript()));
    assert!(throttled > 0, "{}", run.transcript());
    snapshot!("ch03_throttled", run);
}

#[test]
fn cpuset_pins_the_container() {
    if !require_root("cpuset_pins_the_container") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(&r.path, &["--cpuset-cpus", "0"], &["cpus"]);
    assert_eq!(run.stdout(), "cpus: 0\n", "{}", run.transcript());
    snapshot!("ch03_cpuset", run);
}

#[test]
fn stats_report_real_numbers() {
    if !require_root("stats_report_real_numbers") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(
        &r.path,
        &["--memory", "64m", "--stats"],
        &["hog", "8", "spin", "20"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let err = run.stderr();
    let memory = err
        .lines()
        .find_map(|l| l.strip_prefix("ch03-cgroups: memory: "))
        .unwrap();
    // "1.2 MiB (peak 8.6 MiB)" — the peak holds the 8 MiB the probe touched.
    if let Some(peak) = memory
        .split("(peak ")
        .nth(1)
        .and_then(|p| p.strip_suffix(" MiB)"))
    {
        assert!(peak.parse::<f64>().unwrap() >= 8.0, "{memory}");
    }
    let cpu: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("ch03-cgroups: cpu: ")?.strip_suffix(" s"))
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(cpu >= 0.02, "at least the 20 ms it spun: {err}");
    snapshot!("ch03_stats", run);
}

#[test]
fn the_container_sees_itself_at_the_root_of_the_cgroup_tree() {
    if !require_root("the_container_sees_itself_at_the_root_of_the_cgroup_tree") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(&r.path, &[], &["cgroup"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    for line in run.stdout().lines() {
        assert!(
            line.ends_with(":/"),
            "{line}: the cgroup namespace should hide the path"
        );
    }
}

#[test]
fn pause_stops_progress_and_unpause_resumes_it() {
    if !require_root("pause_stops_progress_and_unpause_resumes_it") {
        return;
    }
    let r = probe_rootfs();
    let counter = r.path.join("tmp/n");
    let script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo $i > /tmp/n; done";
    let mut cmd = command(&bin());
    cmd.args(["run", r.path.to_str().unwrap(), "sh", "-c", script]);
    let mut engine = BackgroundEngine::start(cmd);
    let id = engine.id.clone();
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let wait_for_change = |from: Option<u64>| {
        for _ in 0..500 {
            if read().is_some() && read() != from {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    };
    assert!(wait_for_change(None), "the loop never started");

    let stats = ch03(&["stats", &id]);
    assert_eq!(stats.code(), Some(0), "{}", stats.transcript());
    assert!(stats.stdout().contains("pids: "), "{}", stats.transcript());

    let pause = ch03(&["pause", &id]);
    assert_eq!(
        pause.stdout(),
        format!("{id}: paused\n"),
        "{}",
        pause.transcript()
    );
    let frozen_at = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), frozen_at, "a frozen container made progress");

    let unpause = ch03(&["unpause", &id]);
    assert_eq!(
        unpause.stdout(),
        format!("{id}: running\n"),
        "{}",
        unpause.transcript()
    );
    assert!(wait_for_change(frozen_at), "no progress after unpause");
    // Stop it the way a user would: the engine passes SIGTERM on, the shell
    // dies, and the engine removes the cgroup.
    assert_eq!(engine.terminate(), Some(128 + 15));
    assert!(!cgroup_exists(&id), "the engine left its cgroup behind");
}

#[test]
fn a_hundred_runs_leave_no_cgroup_behind() {
    if !require_root("a_hundred_runs_leave_no_cgroup_behind") {
        return;
    }
    let r = probe_rootfs();
    let rootfs = r.path.to_str().unwrap();
    let mut ids = Vec::new();
    for i in 0..100 {
        // Every kind of end: success, failure, a signal, a command not found.
        let cmd: &[&str] = match i % 4 {
            0 => &["true"],
            1 => &["false"],
            2 => &["sh", "-c", "kill -9 $$"],
            _ => &["no-such-command"],
        };
        let mut args = vec!["run", "--memory", "32m", "--pids-limit", "20", rootfs];
        args.extend(cmd);
        let run = ch03(&args);
        assert!(run.code().is_some(), "{}", run.transcript());
        ids.push(container_id(&run.stderr()));
    }
    let left: Vec<&String> = ids.iter().filter(|id| cgroup_exists(id)).collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn limits_the_host_cannot_apply_fail_before_the_container_starts() {
    if !require_root("limits_the_host_cannot_apply_fail_before_the_container_starts") {
        return;
    }
    let r = probe_rootfs();
    let run = probe(&r.path, &["--cpuset-cpus", "0-255"], &["pid"]);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
    assert!(
        run.stderr().contains("not available here"),
        "{}",
        run.transcript()
    );
    snapshot!("ch03_error_cpuset_outside", run);
    assert!(
        !run.stderr().contains("started"),
        "it must fail before the start: {}",
        run.transcript()
    );
}

#[test]
fn bad_limits_are_refused_with_the_rule_they_break() {
    for (name, args) in [
        ("ch03_error_bad_size", &["--memory", "12q"][..]),
        ("ch03_error_too_little_memory", &["--memory", "4m"]),
        (
            "ch03_error_swap_below_memory",
            &["--memory", "32m", "--memory-swap", "16m"],
        ),
    ] {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(["/nonexistent", "true"]);
        let run = ch03(&all);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        snapshot!(name, run);
    }
    let both = ch03(&[
        "run",
        "--no-cgroups",
        "--memory",
        "32m",
        "/nonexistent",
        "true",
    ]);
    assert_eq!(both.code(), Some(125), "{}", both.transcript());
    assert!(
        both.stderr().contains("a limit needs a cgroup"),
        "{}",
        both.transcript()
    );
}

#[test]
fn without_delegation_a_limit_is_an_error_that_says_why() {
    let r = probe_rootfs();
    let mut cmd = command(&bin());
    cmd.args([
        "run",
        "--memory",
        "32m",
        r.path.to_str().unwrap(),
        PROBE_IN_CONTAINER,
        "pid",
    ]);
    if nix::unistd::Uid::effective().is_root() {
        cmd.uid(65534).gid(65534).current_dir("/");
    }
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
    let err = run.stderr();
    assert!(
        err.contains("delegat"),
        "the error must explain delegation: {err}"
    );

    // --no-cgroups runs it, without limits, because the user asked.
    let mut cmd = command(&bin());
    cmd.args([
        "run",
        "--no-cgroups",
        r.path.to_str().unwrap(),
        PROBE_IN_CONTAINER,
        "pid",
    ]);
    if nix::unistd::Uid::effective().is_root() {
        cmd.uid(65534).gid(65534).current_dir("/");
    }
    let run = Run::capture(cmd);
    assert_eq!(run.stdout(), "pid: 2\n", "{}", run.transcript());
}

#[test]
fn every_command_has_help() {
    for (name, args) in [
        ("ch03_help", &["--help"][..]),
        ("ch03_help_run", &["run", "--help"]),
        ("ch03_help_pause", &["pause", "--help"]),
    ] {
        let run = ch03(args);
        assert_eq!(run.code(), Some(0));
        snapshot!(name, run);
    }
}

/// Rootless with a delegated cgroup v2 subtree (what systemd gives a user
/// with Delegate=yes): limits work without root. On cgroup v1 there is no
/// safe delegation, and the error says so.
#[test]
fn rootless_limits_work_in_a_delegated_subtree() {
    if !require_root("rootless_limits_work_in_a_delegated_subtree") {
        return;
    }
    let r = probe_rootfs();
    let layout = ch03_cgroups::detect(Path::new("/proc")).unwrap();
    let ch03_cgroups::Layout::V2 { mount } = layout else {
        let mut cmd = command(&bin());
        cmd.args([
            "run",
            "--pids-limit",
            "10",
            r.path.to_str().unwrap(),
            PROBE_IN_CONTAINER,
            "pid",
        ]);
        cmd.uid(65534).gid(65534).current_dir("/");
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(
            run.stderr().contains("cgroup v1 cannot be delegated"),
            "{}",
            run.transcript()
        );
        return;
    };
    // Delegate a subtree to nobody, as systemd does: the directory and its
    // cgroup.procs, cgroup.subtree_control and cgroup.threads.
    let delegated = mount.join(format!("berth-delegation-test-{}", std::process::id()));
    std::fs::create_dir(&delegated).unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            for _ in 0..100 {
                let leftovers: Vec<_> = std::fs::read_dir(&self.0)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .collect();
                for dir in leftovers {
                    let _ = std::fs::remove_dir(dir.path().join("berth"))
                        .or_else(|_| std::fs::remove_dir(dir.path()));
                }
                if std::fs::remove_dir(&self.0).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _remove = Remove(delegated.clone());
    for file in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        std::os::unix::fs::chown(delegated.join(file), Some(65534), Some(65534)).unwrap();
    }
    let procs = std::ffi::CString::new(
        delegated
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let mut cmd = command(&bin());
    cmd.args([
        "run",
        "--pids-limit",
        "10",
        r.path.to_str().unwrap(),
        PROBE_IN_CONTAINER,
        "fork",
        "50",
        "cgroup",
    ])
    .current_dir("/");
    // SAFETY: only async-signal-safe calls: open/write/close and set*id.
    unsafe {
        cmd.pre_exec(move || {
            // As root: move into the delegated cgroup; then become nobody.
            let fd = nix::fcntl::open(
                procs.as_c_str(),
                nix::fcntl::OFlag::O_WRONLY,
                nix::sys::stat::Mode::empty(),
            )?;
            nix::unistd::write(&fd, b"0")?;
            drop(fd);
            nix::unistd::setgroups(&[])?;
            let nobody_g = nix::unistd::Gid::from_raw(65534);
            let nobody_u = nix::unistd::Uid::from_raw(65534);
            nix::unistd::setresgid(nobody_g, nobody_g, nobody_g)?;
            nix::unistd::setresuid(nobody_u, nobody_u, nobody_u)?;
            Ok(())
        });
    }
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stdout()
            .starts_with("forked: 8 of 50 (stopped by EAGAIN)\n"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout().contains("cgroup: 0::/\n"),
        "{}",
        run.transcript()
    );
}
