//! The container lifecycle end to end, with each runtime present: created,
//! running, paused, restarting, exited, removed; docker's exit codes; and
//! bad input answered with docker's message and nothing changed.

mod common;

use common::{IMAGE, envs};

/// A shell that exits 7 on SIGTERM, otherwise waits (at most ~60 s).
const TRAP: &str = "trap 'exit 7' TERM; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";

#[test]
fn run_gives_the_output_and_the_exit_code_of_the_container() {
    for env in envs("run_gives_the_output_and_the_exit_code_of_the_container") {
        let run = env.berth(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        assert_eq!(run.stdout(), "out\n");
        assert_eq!(run.stderr(), "err\n");
        // Killed by a signal (from outside: PID 1 ignores the signals it
        // has no handler for): 128 + N, for `wait` and the attached `run`.
        let id = env.run_d(&[IMAGE, "sleep", "60"]);
        env.ok(&["kill", &id]);
        assert_eq!(env.ok(&["wait", &id]), "137\n");
        env.ok(&["rm", &id]);
        // Not found: 127; not executable: 126; the container stays created.
        let run = env.berth(&["run", "--name", "nf", IMAGE, "/nonexistent"]);
        assert_eq!(run.code(), Some(127), "{}", run.transcript());
        assert!(run.stderr().starts_with("Error: "), "{}", run.transcript());
        assert_eq!(
            env.inspect("nf", "{{.State.Status}} {{.State.ExitCode}}"),
            "created 127"
        );
        let run = env.berth(&["run", "--rm", IMAGE, "/etc/passwd"]);
        assert_eq!(run.code(), Some(126), "{}", run.transcript());
        // --rm removed what it ran; nf stays.
        assert_eq!(env.ok(&["ps", "-aq", "--no-trunc"]).lines().count(), 1);
        env.ok(&["rm", "nf"]);
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    }
}

#[test]
fn a_detached_container_runs_stops_starts_pauses_and_goes() {
    for env in envs("a_detached_container_runs_stops_starts_pauses_and_goes") {
        let id = env.run_d(&["--name", "web", IMAGE, "sh", "-c", TRAP]);
        assert_eq!(id.len(), 64);
        assert_eq!(
            env.inspect("web", "{{.State.Status}} {{.State.Running}}"),
            "running true"
        );
        let pid: i32 = env.inspect("web", "{{.State.Pid}}").parse().unwrap();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        // The monitor, not the command, is the container's parent.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(common::monitors_of(&env.run), [ppid]);

        env.ok(&["pause", "web"]);
        assert_eq!(
            env.inspect("web", "{{.State.Status}} {{.State.Paused}}"),
            "paused true"
        );
        assert!(env.ok(&["ps"]).contains("(Paused)"));
        let again = env.berth(&["pause", "web"]);
        assert_eq!(again.code(), Some(1));
        assert!(
            again.stderr().contains("is already paused"),
            "{}",
            again.transcript()
        );
        env.ok(&["unpause", "web"]);

        // stop: the trap's exit code, the monitor gone, nothing mounted.
        assert_eq!(env.ok(&["stop", "web"]), "web\n");
        assert_eq!(
            env.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 7"
        );
        assert_eq!(
            env.leftovers(std::slice::from_ref(&id)),
            [format!("state dir {id}")]
        );

        // start again, then stop -t 0: SIGKILL at once.
        assert_eq!(env.ok(&["start", &id[..8]]), format!("{}\n", &id[..8]));
        assert_eq!(env.inspect("web", "{{.State.Status}}"), "running");
        env.ok(&["stop", "-t", "0", "web"]);
        assert_eq!(env.inspect("web", "{{.State.ExitCode}}"), "137");
        // restart; kill -s; wait prints the code.
        env.ok(&["restart", "web"]);
        assert_eq!(env.inspect("web", "{{.State.Status}}"), "running");
        env.ok(&["kill", "-s", "TERM", "web"]);
        assert_eq!(env.ok(&["wait", "web"]), "7\n");
        let kill = env.berth(&["kill", "web"]);
        assert_eq!(kill.code(), Some(1));
        assert!(
            kill.stderr().contains("is not running"),
            "{}",
            kill.transcript()
        );
        // rename, and the old name is free.
        env.ok(&["rename", "web", "site"]);
        assert_eq!(env.inspect("site", "{{.Name}}"), "/site");
        assert!(env.berth(&["inspect", "web"]).code() == Some(1));
        env.ok(&["rm", "site"]);
        assert_eq!(env.leftovers(&[id]), Vec::<String>::new());
    }
}

#[test]
fn bad_input_gets_dockers_message_and_changes_nothing() {
    for env in envs("bad_input_gets_dockers_message_and_changes_nothing") {
        let before = env.ok(&["ps", "-a"]);
        let run = env.berth(&["run", "--pull", "never", "nosuch"]);
        assert_eq!(run.code(), Some(125));
        assert_eq!(run.stderr(), "Error: No such image: nosuch:latest\n");
        let run = env.berth(&["run", "--rm", "--restart", "always", IMAGE, "true"]);
        assert_eq!(run.code(), Some(125));
        assert_eq!(
            run.stderr(),
            "Error: Conflicting options: --restart and --rm\n"
        );
        let run = env.berth(&["run", "--name", "-bad", IMAGE, "true"]);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert_eq!(env.ok(&["ps", "-a"]), before, "nothing was made");

        let id = env.run_d(&["--name", "taken", IMAGE, "sleep", "60"]);
        let run = env.berth(&["run", "--name", "taken", IMAGE, "true"]);
        assert_eq!(run.code(), Some(125));
        assert_eq!(
            run.stderr(),
            format!(
                "Error: Conflict. The container name \"/taken\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.\n"
            )
        );
        let rm = env.berth(&["rm", "taken"]);
        assert_eq!(rm.code(), Some(1));
        assert_eq!(
            rm.stderr(),
            "Error: cannot remove container \"/taken\": container is running: stop the container before removing or force remove\n"
        );
        assert_eq!(env.inspect("taken", "{{.State.Status}}"), "running");
        env.ok(&["stop", "-t", "0", "taken"]);
        let exec = env.berth(&["exec", "taken", "true"]);
        assert_eq!(exec.code(), Some(1));
        assert_eq!(
            exec.stderr(),
            format!("Error: container {id} is not running\n")
        );
        let missing = env.berth(&["rm", "nosuch"]);
        assert_eq!(missing.code(), Some(1));
        assert_eq!(missing.stderr(), "Error: No such container: nosuch\n");
        let flag = env.berth(&["ps", "--nope"]);
        assert_eq!(flag.code(), Some(125));
        env.ok(&["rm", "-f", "taken"]);
        assert_eq!(env.leftovers(&[id]), Vec::<String>::new());
    }
}

#[test]
fn containers_are_named_by_id_prefix_or_name_and_pruned() {
    for env in envs("containers_are_named_by_id_prefix_or_name_and_pruned") {
        let a = env.ok(&["create", IMAGE, "true"]).trim().to_string();
        let b = env
            .ok(&["create", "--name", "bee", IMAGE, "true"])
            .trim()
            .to_string();
        assert_eq!(env.inspect(&a, "{{.State.Status}}"), "created");
        // A made-up name: adjective_surname.
        let name = env.inspect(&a[..12], "{{.Name}}");
        assert!(name.starts_with('/') && name.contains('_'), "{name}");
        assert_eq!(env.inspect("bee", "{{.Id}}"), b);
        // Every container in one `ps -a`, newest first.
        assert_eq!(env.ok(&["ps", "-aq", "--no-trunc"]), format!("{b}\n{a}\n"));
        assert_eq!(env.ok(&["ps", "-q"]), "", "created is not running");
        let pruned = env.ok(&["container", "prune", "-f"]);
        assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
        assert!(pruned.contains(&a) && pruned.contains(&b), "{pruned}");
        assert_eq!(env.ok(&["ps", "-aq"]), "");
    }
}

#[test]
fn stop_sends_the_stop_signal_then_kills_after_the_timeout() {
    for env in envs("stop_sends_the_stop_signal_then_kills_after_the_timeout") {
        let usr1 = "trap 'exit 9' USR1; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
        // --stop-signal: what stop sends first.
        env.run_d(&[
            "--name",
            "one",
            "--stop-signal",
            "SIGUSR1",
            IMAGE,
            "sh",
            "-c",
            usr1,
        ]);
        env.ok(&["stop", "one"]);
        assert_eq!(env.inspect("one", "{{.State.ExitCode}}"), "9");
        // stop -s overrides it.
        env.run_d(&["--name", "two", IMAGE, "sh", "-c", usr1]);
        env.ok(&["stop", "-s", "USR1", "two"]);
        assert_eq!(env.inspect("two", "{{.State.ExitCode}}"), "9");
        // --stop-timeout: how long before SIGKILL (PID 1 ignores SIGTERM).
        env.run_d(&[
            "--name",
            "three",
            "--stop-timeout",
            "1",
            IMAGE,
            "sleep",
            "60",
        ]);
        let start = std::time::Instant::now();
        env.ok(&["stop", "three"]);
        let took = start.elapsed();
        assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
        assert_eq!(
            env.inspect("three", "{{.State.ExitCode}} {{.Config.StopTimeout}}"),
            "137 1"
        );
        // The events of a stop, as docker writes them.
        let events = std::fs::read_to_string(env.root.join("events.log")).unwrap();
        let actions: Vec<String> = events
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["Actor"]["Attributes"]["name"] == "three")
            .map(|e| e["Action"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(actions, ["create", "start", "kill", "kill", "die", "stop"]);
        env.ok(&["rm", "one", "two", "three"]);
    }
}

#[test]
fn run_pulls_as_the_pull_policy_says() {
    for env in envs("run_pulls_as_the_pull_policy_says") {
        let Some(registry) =
            berth_test_support::registry::TestRegistry::start("run_pulls_as_the_pull_policy_says")
        else {
            return;
        };
        // The test image, into the registry: saved as an OCI layout by
        // chapter 5, copied by skopeo.
        let store = ch05_images::store::Store::open(&env.root).unwrap();
        let layout = env.root.join("layout");
        let name = ch05_images::reference::Reference::parse(IMAGE).unwrap();
        ch05_images::archive::save_oci_layout(&store, std::slice::from_ref(&name), &layout)
            .unwrap();
        let remote = format!("{}/team/box:1", registry.addr);
        berth_test_support::registry::skopeo_copy(
            &[],
            &format!("oci:{}:{}", layout.display(), "latest"),
            &format!("docker://{remote}"),
        );
        // missing (the default): pulled once, with docker's lines on stderr.
        let run = env.berth(&["run", "--rm", &remote, "echo", "pulled"]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(run.stdout(), "pulled\n");
        let stderr = run.stderr();
        assert!(
            stderr.starts_with(&format!(
                "Unable to find image '{remote}' locally\n1: Pulling from "
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("Status: Downloaded newer image for {remote}\n")),
            "{stderr}"
        );
        let again = env.berth(&["run", "--rm", &remote, "true"]);
        assert_eq!(again.stderr(), "", "present: not pulled again");
        // always: asks the registry even so.
        let always = env.berth(&["run", "--rm", "--pull", "always", &remote, "true"]);
        assert!(
            always.stderr().contains("Status: Image is up to date"),
            "{}",
            always.transcript()
        );
        // never, for a name not in the store.
        let never = env.berth(&[
            "run",
            "--rm",
            "--pull",
            "never",
            &format!("{}/team/other:1", registry.addr),
            "true",
        ]);
        assert_eq!(never.code(), Some(125));
        assert!(
            never.stderr().starts_with("Error: No such image: "),
            "{}",
            never.transcript()
        );
        let bad = env.berth(&["run", "--pull", "sometimes", IMAGE, "true"]);
        assert_eq!(bad.code(), Some(125));
        assert_eq!(env.ok(&["ps", "-aq"]), "");
    }
}

#[test]
fn a_run_root_too_deep_for_a_socket_address_works() {
    for mut env in envs("a_run_root_too_deep_for_a_socket_address_works") {
        // sun_path holds 107 bytes; with a 64-digit id this is far past it.
        env.run = env.run.join("r".repeat(60)).join("u".repeat(60));
        let id = env.run_d(&[IMAGE, "sleep", "60"]);
        assert_eq!(env.ok(&["exec", &id, "echo", "in"]), "in\n");
        // exec -t: a terminal of the container's own devpts, relayed by the
        // runtime in the foreground; its exit code comes back.
        let tty = env.berth(&["exec", "-t", &id, "sh", "-c", "tty; exit 3"]);
        assert_eq!(tty.code(), Some(3), "{}", tty.transcript());
        assert!(
            tty.stdout().starts_with("/dev/pts/"),
            "{}",
            tty.transcript()
        );
        env.ok(&["stop", "-t", "0", &id]);
        // A terminal: the runtime's console socket, too.
        let run = env.berth(&["run", "--rm", "-t", IMAGE, "tty"]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(run.stdout(), "/dev/pts/0\r\n");
        env.ok(&["rm", &id]);
        assert_eq!(env.leftovers(&[id]), Vec::<String>::new());
    }
}

#[test]
fn a_detached_container_keeps_none_of_the_callers_descriptors() {
    for env in envs("a_detached_container_keeps_none_of_the_callers_descriptors") {
        // A pipe the caller leaves open across exec (as a shell's `$(...)`
        // does with its output pipe): once berth has exited and we close
        // our end, its reader must see the end, though the container runs.
        let (read, write) = nix::unistd::pipe().unwrap();
        let id = env.run_d(&[IMAGE, "sleep", "60"]);
        drop(write);
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1];
            let _ = done.send(nix::unistd::read(&read, &mut buf));
        });
        let got = result.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(got, Ok(Ok(0)), "someone still holds the caller's pipe");
        assert_eq!(env.inspect(&id, "{{.State.Status}}"), "running");
        env.ok(&["rm", "-f", &id]);
    }
}
