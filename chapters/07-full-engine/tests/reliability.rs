//! The engine after things go wrong: `berth` killed mid-command, a monitor
//! killed, a reboot; and many containers in a row and at once. Each time the
//! next command sees the truth, and nothing is left behind.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, IMAGE, envs};

/// Send SIGKILL to `pid`.
fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The container's ids, all of them.
fn all_ids(env: &Env) -> Vec<String> {
    env.ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect()
}

/// Remove every container, then nothing may be left.
fn remove_all_and_check(env: &Env, ids: &[String]) {
    let all = all_ids(env);
    if !all.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(all.iter().map(String::as_str));
        env.ok(&args);
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.leftovers(ids), Vec::<String>::new());
}

#[test]
fn berth_killed_during_run_or_rm_leaves_the_truth() {
    for env in envs("berth_killed_during_run_or_rm_leaves_the_truth") {
        // An attached run, killed once the container runs: the monitor
        // keeps it; it is running, and `rm -f` ends it cleanly.
        let mut child = env
            .cmd(&["run", "--name", "fg", IMAGE, "sleep", "60"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while env
            .berth(&["inspect", "-f", "{{.State.Status}}", "fg"])
            .stdout()
            .trim()
            != "running"
        {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        kill9(child.id() as i32);
        let _ = child.wait();
        assert_eq!(env.inspect("fg", "{{.State.Status}}"), "running");
        let id = env.inspect("fg", "{{.Id}}");
        remove_all_and_check(&env, &[id]);

        // `run -d` killed at every moment of its work, a few ms apart: each
        // time, whatever it got to is seen as it is, and removed cleanly.
        let mut ids = Vec::new();
        for delay_ms in (0..60).step_by(4) {
            let mut child = env
                .cmd(&["run", "-d", IMAGE, "sleep", "60"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            kill9(child.id() as i32);
            let _ = child.wait();
            // The next command sees a consistent state: every container
            // either has no process or runs.
            for line in env
                .ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}"])
                .lines()
            {
                let (id, state) = line.split_once(' ').unwrap();
                ids.push(id.to_string());
                assert!(matches!(state, "created" | "running" | "exited"), "{line}");
                if state == "running" {
                    let pid: i32 = env.inspect(id, "{{.State.Pid}}").parse().unwrap();
                    assert!(
                        std::path::Path::new(&format!("/proc/{pid}")).exists(),
                        "{line}"
                    );
                }
            }
            remove_all_and_check(&env, &ids);
        }

        // `rm -f` killed part-way: the next `rm -f` finishes the job.
        for delay_ms in [0u64, 5, 10, 20, 40] {
            let id = env.run_d(&[IMAGE, "sleep", "60"]);
            let mut child = env
                .cmd(&["rm", "-f", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            kill9(child.id() as i32);
            let _ = child.wait();
            let again = env.berth(&["rm", "-f", &id]);
            assert!(
                again.code() == Some(0) || again.stderr().contains("No such container"),
                "{}",
                again.transcript()
            );
            assert_eq!(env.leftovers(&[id]), Vec::<String>::new());
        }
    }
}

#[test]
fn a_killed_monitor_leaves_a_container_that_stops_and_starts_again() {
    for env in envs("a_killed_monitor_leaves_a_container_that_stops_and_starts_again") {
        let id = env.run_d(&["--name", "orphan", IMAGE, "sleep", "60"]);
        let monitors = common::monitors_of(&env.run);
        assert_eq!(monitors.len(), 1);
        kill9(monitors[0]);
        std::thread::sleep(Duration::from_millis(100));
        // Still running: its monitor died, not it.
        assert_eq!(env.inspect("orphan", "{{.State.Status}}"), "running");
        assert!(env.ok(&["ps"]).contains("orphan"));
        // stop reaches it through the runtime; the exit code is unknown.
        env.ok(&["stop", "-t", "1", "orphan"]);
        assert_eq!(
            env.inspect("orphan", "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 255"
        );
        assert_eq!(
            env.leftovers(std::slice::from_ref(&id)),
            [format!("state dir {id}")]
        );
        // It starts again, with a new monitor, and ends as usual.
        env.ok(&["start", "orphan"]);
        assert_eq!(common::monitors_of(&env.run).len(), 1);
        env.ok(&["kill", "orphan"]);
        assert_eq!(env.ok(&["wait", "orphan"]), "137\n");
        // A killed monitor whose container then exits by itself.
        env.run_d(&["--name", "brief", IMAGE, "sleep", "1"]);
        let monitors = common::monitors_of(&env.run);
        kill9(monitors[0]);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            env.inspect("brief", "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 255"
        );
        let brief = env.inspect("brief", "{{.Id}}");
        remove_all_and_check(&env, &[id, brief]);
    }
}

#[test]
fn after_a_reboot_the_engine_sees_the_truth_and_starts_again() {
    for env in envs("after_a_reboot_the_engine_sees_the_truth_and_starts_again") {
        let up = env.run_d(&["--name", "up", IMAGE, "sleep", "60"]);
        let gone = env.run_d(&["--name", "gone", "--rm", IMAGE, "sleep", "60"]);
        let done = env
            .ok(&["create", "--name", "done", IMAGE, "sh", "-c", "exit 4"])
            .trim()
            .to_string();
        // start -a: the container's exit code is berth's.
        assert_eq!(env.berth(&["start", "-a", "done"]).code(), Some(4));
        // The "reboot": every process of the containers and monitors dies,
        // and the run root (a tmpfs, in real life) is emptied. The monitors
        // go first: a monitor that outlived its container would record its
        // exit (137), which is the truth too, but not the case tested here.
        let containers: Vec<i32> = ["up", "gone"]
            .iter()
            .map(|n| env.inspect(n, "{{.State.Pid}}").parse().unwrap())
            .collect();
        for pid in common::monitors_of(&env.run).into_iter().chain(containers) {
            kill9(pid);
        }
        std::thread::sleep(Duration::from_millis(200));
        std::fs::remove_dir_all(&env.run).unwrap();
        // The truth: up exited (code unknown), gone removed (--rm), done
        // exited with the code it had.
        let ps = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
        let lines: Vec<&str> = ps.lines().collect();
        assert_eq!(lines.len(), 2, "{ps}");
        assert!(ps.contains("up Exited (255) "), "{ps}");
        assert!(ps.contains("done Exited (4) "), "{ps}");
        // Nothing of them is left but their directories: no mount, no
        // cgroup, no monitor.
        let ids = vec![up.clone(), gone.clone(), done.clone()];
        let mut left = env.leftovers(&ids);
        left.sort();
        let mut expected = vec![format!("state dir {up}"), format!("state dir {done}")];
        expected.sort();
        assert_eq!(left, expected);
        // start works again; rm works.
        env.ok(&["start", "up"]);
        assert_eq!(env.inspect("up", "{{.State.Status}}"), "running");
        assert_eq!(env.berth(&["start", "-a", "done"]).code(), Some(4));
        remove_all_and_check(&env, &ids);
    }
}

#[test]
fn three_hundred_runs_in_a_row_and_twenty_at_once_leak_nothing() {
    for env in envs("three_hundred_runs_in_a_row_and_twenty_at_once_leak_nothing") {
        for i in 0..300 {
            let run = env.berth(&["run", "--rm", IMAGE, "true"]);
            assert_eq!(run.code(), Some(0), "run {i}: {}", run.transcript());
        }
        assert_eq!(env.ok(&["ps", "-aq"]), "");
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
        let names = std::fs::read_dir(env.root.join("names")).unwrap().count();
        assert_eq!(names, 0, "every name released");

        let children: Vec<_> = (0..20)
            .map(|i| {
                env.cmd(&[
                    "run",
                    "--rm",
                    "--name",
                    &format!("c{i}"),
                    IMAGE,
                    "sh",
                    "-c",
                    &format!("echo {i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n"));
        }
        assert_eq!(env.ok(&["ps", "-aq"]), "");
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    }
}

#[test]
fn a_monitor_holds_the_same_descriptors_across_restarts() {
    for env in envs("a_monitor_holds_the_same_descriptors_across_restarts") {
        env.run_d(&[
            "--name",
            "again",
            "--restart",
            "always",
            IMAGE,
            "sh",
            "-c",
            "echo hi; sleep 0.2",
        ]);
        // The fewest descriptors the monitor holds while restarts `from` to
        // `to` happen (sampled: within a cycle it briefly holds more, the
        // runtime's pipes and the container's, so the fewest is what it
        // keeps; a leak raises it).
        let fewest_between = |monitor: i32, from: u32, to: u32| {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut fewest = usize::MAX;
            loop {
                let restarts: u32 = env.inspect("again", "{{.RestartCount}}").parse().unwrap();
                if restarts >= from {
                    let fds = std::fs::read_dir(format!("/proc/{monitor}/fd"))
                        .unwrap()
                        .count();
                    fewest = fewest.min(fds);
                }
                if restarts >= to {
                    return fewest;
                }
                assert!(Instant::now() < deadline, "stuck at {restarts} restarts");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let monitor = common::monitors_of(&env.run)[0];
        let early = fewest_between(monitor, 1, 3);
        let late = fewest_between(monitor, 6, 8);
        assert!(
            late <= early,
            "descriptors leaked: {early} at first, {late} after six restarts"
        );
        let ids = all_ids(&env);
        env.ok(&["rm", "-f", "again"]);
        assert_eq!(env.leftovers(&ids), Vec::<String>::new());
    }
}

#[test]
fn a_cleanup_that_never_ran_is_finished_by_the_next_command() {
    for env in envs("a_cleanup_that_never_ran_is_finished_by_the_next_command") {
        if !berth_test_support::registry::require_tool(
            "a_cleanup_that_never_ran_is_finished_by_the_next_command",
            "strace",
        ) {
            return;
        }
        // The monitor records the exit, then its cleanup command cannot
        // start (strace makes that execve fail): the container is exited,
        // its overlay still mounted, its runtime state and cgroup still
        // there, as after a monitor killed at that moment.
        let id = env.run_d(&[IMAGE, "sleep", "1"]);
        let monitor = common::monitors_of(&env.run)[0];
        let mut strace = std::process::Command::new("strace")
            .args([
                "-f",
                "-o",
                "/dev/null",
                "-e",
                "trace=execve",
                "-e",
                "inject=execve:error=ENOENT",
                "-p",
            ])
            .arg(monitor.to_string())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::path::Path::new(&format!("/proc/{monitor}")).exists() {
            assert!(Instant::now() < deadline, "the monitor never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = strace.wait();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mountinfo.contains(&id),
            "the cleanup did not run: still mounted"
        );
        // The next command sees it and finishes the cleanup.
        assert_eq!(
            env.inspect(&id, "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 0"
        );
        assert_eq!(
            env.leftovers(std::slice::from_ref(&id)),
            [format!("state dir {id}")]
        );
        env.ok(&["rm", &id]);
        assert_eq!(env.leftovers(&[id]), Vec::<String>::new());
    }
}
