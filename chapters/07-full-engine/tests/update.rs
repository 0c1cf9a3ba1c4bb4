//! `update`: limits changed under a running container (through the
//! runtime's `update`, with berth-runtime and runc), kept for the next
//! start, and a restart policy that holds from the next exit on.

mod common;

use std::time::{Duration, Instant};

use common::{IMAGE, envs};

/// How many of `n` background sleeps the container could start.
const FORK_N: &str =
    "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 >/dev/null 2>&1 & done; echo started";

#[test]
fn a_running_containers_pids_limit_changes_under_it() {
    for env in envs("update::running") {
        let id = env.run_d(&["--pids-limit", "100", IMAGE, "sleep", "600"]);
        // Ten more processes fit under 100.
        let run = env.berth(&["exec", &id, "sh", "-c", FORK_N]);
        assert!(run.stdout().contains("started"), "{}", run.transcript());
        assert!(!run.stderr().contains("can't fork"), "{}", run.transcript());
        // Down to 5 (below the dozen there now): the kernel refuses a fork.
        assert_eq!(
            env.ok(&["update", "--pids-limit", "5", "--memory", "96m", &id]),
            format!("{id}\n")
        );
        assert_eq!(
            env.inspect(&id, "{{.HostConfig.PidsLimit}} {{.HostConfig.Memory}}"),
            "5 100663296"
        );
        let run = env.berth(&["exec", &id, "sh", "-c", FORK_N]);
        assert!(
            run.stderr().contains("can't fork") && !run.stdout().contains("started"),
            "ten processes under a limit of five: {}",
            run.transcript()
        );
        env.ok(&["rm", "-f", &id]);
    }
}

#[test]
fn a_stopped_containers_update_holds_at_its_next_start() {
    for env in envs("update::stopped") {
        env.ok(&["create", "--name", "later", IMAGE, "sh", "-c", FORK_N]);
        env.ok(&["update", "--pids-limit", "4", "later"]);
        let run = env.berth(&["start", "-a", "later"]);
        assert!(
            run.stderr().contains("can't fork") && !run.stdout().contains("started"),
            "the limit set while stopped holds: {}",
            run.transcript()
        );
        // Bad input: docker's words, the record unchanged.
        let run = env.berth(&["update", "--memory", "1m", "later"]);
        assert_eq!(run.code(), Some(1));
        assert!(
            run.stderr().contains("Minimum memory limit allowed is 6MB"),
            "{}",
            run.transcript()
        );
        let run = env.berth(&["update", "--pids-limit", "4", "nosuch"]);
        assert_eq!(run.code(), Some(1));
        assert!(
            run.stderr().contains("No such container: nosuch"),
            "{}",
            run.transcript()
        );
        assert_eq!(env.inspect("later", "{{.HostConfig.PidsLimit}}"), "4");
        env.ok(&["rm", "later"]);
    }
}

#[test]
fn a_new_restart_policy_holds_from_the_next_exit() {
    for env in envs("update::restart") {
        // Fails after a moment, with no restart policy...
        let id = env.run_d(&[IMAGE, "sh", "-c", "sleep 1; exit 3"]);
        // ... given one before it exits.
        env.ok(&["update", "--restart", "on-failure:2", &id]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = env.inspect(&id, "{{.State.Status}} {{.RestartCount}}");
            if state == "exited 2" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still {state}: the new policy was not used"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(env.inspect(&id, "{{.State.ExitCode}}"), "3");
        env.ok(&["rm", &id]);
    }
}
