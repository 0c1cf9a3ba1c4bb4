//! Watching containers: `stats` reads the kernel's counters of a running
//! container, `events` replays and streams the engine's events log.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{IMAGE, envs};

#[test]
fn stats_shows_a_busy_containers_cpu_memory_limit_and_processes() {
    for env in envs("observe::stats") {
        let id = env.run_d(&[
            "--name",
            "busy",
            "--memory",
            "64m",
            IMAGE,
            "sh",
            "-c",
            "while :; do :; done & while :; do :; done & sleep 600",
        ]);
        let out = env.ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
            "busy",
        ]);
        let fields: Vec<&str> = out.trim().split('|').collect();
        assert_eq!(fields[0], "busy", "{out}");
        let cpu: f64 = fields[1].trim_end_matches('%').parse().unwrap();
        assert!(cpu > 1.0, "two busy loops use CPU: {out}");
        assert!(
            fields[2].ends_with(" / 64MiB"),
            "the limit is the cgroup's: {out}"
        );
        let pids: u64 = fields[3].parse().unwrap();
        assert!(
            pids >= 3,
            "sh, two loops and sleep are in the cgroup: {out}"
        );
        // The default table, and a stopped container left out unless -a.
        let table = env.ok(&["stats", "--no-stream"]);
        assert!(table.starts_with("CONTAINER ID   NAME"), "{table}");
        assert!(table.contains(&id[..12]));
        env.ok(&["stop", "-t", "0", "busy"]);
        assert!(!env.ok(&["stats", "--no-stream"]).contains(&id[..12]));
        assert!(env.ok(&["stats", "--no-stream", "-a"]).contains(&id[..12]));
        env.ok(&["rm", "busy"]);
    }
}

#[test]
fn events_replay_the_past_and_stream_what_happens() {
    for env in envs("observe::events") {
        let run = env.berth(&["run", "--rm", "--name", "once", IMAGE, "sh", "-c", "exit 3"]);
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        // The past, filtered, in docker's line format.
        let past = env.ok(&[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            "container=once",
        ]);
        let actions: Vec<&str> = past
            .lines()
            .map(|l| l.split(' ').nth(2).unwrap_or_default())
            .collect();
        assert_eq!(actions, ["create", "start", "die", "destroy"], "{past}");
        assert!(
            past.contains("exitCode=3") && past.contains("name=once"),
            "{past}"
        );
        let die = env.ok(&[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
        ]);
        assert_eq!(die, "once 3\n");
        // The stream, from now on (--since now: no race with its start).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let since = format!("{now:.6}");
        let mut cmd = env.cmd(&[
            "events",
            "--since",
            &since,
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ]);
        let mut events = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
        env.ok(&["run", "--rm", "--name", "twice", IMAGE, "true"]);
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("destroy twice") {
            seen.push(lines.next().expect("the stream ended").unwrap());
        }
        let _ = events.kill();
        let _ = events.wait();
        assert_eq!(
            seen,
            ["create twice", "start twice", "die twice", "destroy twice"]
        );
        // A bad time or filter is refused.
        let run = env.berth(&["events", "--since", "yesterday"]);
        assert_eq!(run.code(), Some(1));
        assert!(
            run.stderr().contains("invalid value for timestamp"),
            "{}",
            run.transcript()
        );
        let run = env.berth(&["events", "--filter", "colour=red", "--until", "0s"]);
        assert!(
            run.stderr().contains("invalid filter 'colour'"),
            "{}",
            run.transcript()
        );
    }
}
