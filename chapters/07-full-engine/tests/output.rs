//! What `berth` prints, as docker prints it: `ps`'s table and templates,
//! the inspect document, logs with their options, info and version.

mod common;

use std::time::Duration;

use common::{IMAGE, envs};

#[test]
fn ps_prints_dockers_table_and_templates() {
    for env in envs("ps_prints_dockers_table_and_templates") {
        let id = env.run_d(&[
            "--name",
            "web",
            "-l",
            "tier=front",
            IMAGE,
            "sh",
            "-c",
            "while true; do sleep 1; done",
        ]);
        let done = env.berth(&["run", "--name", "done", IMAGE, "sh", "-c", "exit 2"]);
        assert_eq!(done.code(), Some(2));
        let table = env.ok(&["ps"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS                  PORTS     NAMES"
        );
        assert_eq!(lines.len(), 2, "{table}");
        assert!(
            lines[1].starts_with(&format!(
                "{}   busybox   \"sh -c while true; d…\"   ",
                &id[..12]
            )),
            "{table}"
        );
        assert!(lines[1].ends_with("web"), "{table}");
        assert!(lines[1].contains("Up "), "{table}");
        let all = env.ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}\t{{.Status}}\t{{.State}}",
        ]);
        let all: Vec<&str> = all.lines().collect();
        assert!(all[0].starts_with("done\tExited (2) "), "{all:?}");
        assert!(all[0].ends_with("\texited"), "{all:?}");
        assert!(all[1].starts_with("web\tUp "), "{all:?}");
        // table with a template: docker's header names, aligned.
        let t = env.ok(&["ps", "-a", "--format", "table {{.ID}}\t{{.Names}}"]);
        assert_eq!(
            t,
            format!(
                "CONTAINER ID   NAMES\n{}   done\n{}   web\n",
                &env.inspect("done", "{{.Id}}")[..12],
                &id[..12]
            )
        );
        // json: one object per line, docker's keys.
        let json = env.ok(&["ps", "--format", "json"]);
        let item: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(item["Names"], "web");
        assert_eq!(item["Labels"], "tier=front");
        assert_eq!(item["ID"], &id[..12]);
        // Filters: keys and'ed, values or'ed.
        assert_eq!(
            env.ok(&["ps", "-a", "-q", "-f", "status=exited"])
                .trim()
                .len(),
            12
        );
        assert_eq!(
            env.ok(&["ps", "-aq", "--no-trunc", "-f", "label=tier=front"])
                .trim(),
            id
        );
        assert_eq!(
            env.ok(&["ps", "-aq", "-f", "exited=2", "-f", "name=web"]),
            ""
        );
        assert_eq!(
            env.ok(&["ps", "-aq", "-f", "exited=2", "-f", "name=do"])
                .lines()
                .count(),
            1
        );
        let bad = env.berth(&["ps", "-f", "color=red"]);
        assert_eq!(bad.code(), Some(1));
        assert_eq!(bad.stderr(), "Error: invalid filter 'color'\n");
        // -n and -l: the newest.
        assert_eq!(env.ok(&["ps", "-l", "--format", "{{.Names}}"]), "done\n");
        // -s: the writable layer's size.
        let sized = env.ok(&["ps", "-s", "--format", "{{.Size}}", "-f", "name=web"]);
        assert!(sized.contains("(virtual "), "{sized}");
        env.ok(&["rm", "-f", "web", "done"]);
    }
}

#[test]
fn inspect_prints_dockers_document() {
    for env in envs("inspect_prints_dockers_document") {
        let id = env.run_d(&[
            "--name",
            "doc",
            "-e",
            "A=1",
            "--memory",
            "64m",
            "--restart",
            "on-failure:3",
            "--stop-signal",
            "SIGINT",
            IMAGE,
            "sleep",
            "60",
        ]);
        let text = env.ok(&["inspect", "doc"]);
        assert!(text.starts_with("[\n    {\n        \"Id\": \""), "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c = &doc[0];
        assert_eq!(c["Id"], id.as_str());
        assert_eq!(c["Name"], "/doc");
        assert_eq!(c["Path"], "sleep");
        assert_eq!(c["Args"], serde_json::json!(["60"]));
        assert_eq!(c["State"]["Status"], "running");
        assert!(c["State"]["Pid"].as_i64().unwrap() > 0);
        assert_eq!(c["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(c["Config"]["Image"], "busybox");
        // The user's first, then the image's.
        assert_eq!(c["Config"]["Env"][0], "A=1");
        assert!(c["Config"]["Env"][1].as_str().unwrap().starts_with("PATH="));
        assert_eq!(c["Config"]["StopSignal"], "SIGINT");
        assert_eq!(c["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
        assert_eq!(c["HostConfig"]["LogConfig"]["Type"], "json-file");
        assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
        assert!(
            c["LogPath"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{id}-json.log"))
        );
        assert!(c.get("Berth").is_none());
        // docker's key order.
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(&keys[..5], ["Id", "Created", "Path", "Args", "State"]);
        assert_eq!(keys.last(), Some(&"NetworkSettings"));
        // Templates, and docker's json function.
        assert_eq!(env.inspect("doc", "{{index .Config.Env 0}}"), "A=1");
        assert_eq!(
            env.inspect("doc", "{{json .Config.Cmd}}"),
            "[\"sleep\",\"60\"]"
        );
        let missing = env.berth(&["inspect", "doc", "nosuch"]);
        assert_eq!(missing.code(), Some(1));
        assert_eq!(missing.stderr(), "Error: No such object: nosuch\n");
        assert!(missing.stdout().starts_with("[\n"));
        env.ok(&["rm", "-f", "doc"]);
    }
}

#[test]
fn logs_keep_both_streams_with_times_tails_follows_and_rotation() {
    for env in envs("logs_keep_both_streams_with_times_tails_follows_and_rotation") {
        env.ok(&[
            "run",
            "--name",
            "talk",
            IMAGE,
            "sh",
            "-c",
            "echo one; echo two >&2; printf three",
        ]);
        let logs = env.berth(&["logs", "talk"]);
        assert_eq!(logs.stdout(), "one\nthree");
        assert_eq!(logs.stderr(), "two\n");
        let tail = env.berth(&["logs", "--tail", "1", "talk"]);
        assert_eq!(
            (tail.stdout().as_str(), tail.stderr().as_str()),
            ("three", "")
        );
        let stamped = env.ok(&["logs", "-t", "talk"]);
        let (time, rest) = stamped.split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{stamped}");
        assert!(rest.starts_with("one\n"));
        assert_eq!(env.ok(&["logs", "--since", "1h", "talk"]), "one\nthree");
        assert_eq!(env.ok(&["logs", "--until", "1h", "talk"]), "");
        // The file is docker's json-file.
        let path = env.inspect("talk", "{{.LogPath}}");
        let first = std::fs::read_to_string(&path).unwrap();
        let entry: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        assert_eq!(entry["log"], "one\n");
        assert_eq!(entry["stream"], "stdout");

        // -f follows until the container stops.
        env.run_d(&[
            "--name",
            "slow",
            IMAGE,
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.3; done",
        ]);
        let follow = env.berth(&["logs", "-f", "slow"]);
        assert_eq!(follow.stdout(), "1\n2\n3\n");

        // Rotation: at most max-file files of about max-size each, the
        // newest lines kept.
        env.ok(&[
            "run",
            "--name",
            "rot",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=3",
            IMAGE,
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
        ]);
        let path = std::path::PathBuf::from(env.inspect("rot", "{{.LogPath}}"));
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists());
        for p in [path.clone(), path.with_extension("log.1")] {
            assert!(
                std::fs::metadata(&p).unwrap().len() <= 1024,
                "{}",
                p.display()
            );
        }
        let logs = env.ok(&["logs", "rot"]);
        assert!(logs.ends_with("line-199\n"), "{logs}");
        let numbers: Vec<u32> = logs.lines().map(|l| l[5..].parse().unwrap()).collect();
        assert!(
            numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "no line lost between files"
        );
        let bad = env.berth(&["run", "--log-opt", "max-file=2", IMAGE, "true"]);
        assert_eq!(bad.code(), Some(125));
        assert_eq!(
            bad.stderr(),
            "Error: max-file cannot be set without max-size\n"
        );
        std::thread::sleep(Duration::from_millis(10));
        env.ok(&["rm", "talk", "slow", "rot"]);
    }
}

#[test]
fn info_and_version_answer_with_docker_fields() {
    for env in envs("info_and_version_answer_with_docker_fields") {
        env.run_d(&["--name", "one", IMAGE, "sleep", "60"]);
        env.ok(&["create", IMAGE, "true"]);
        let counts = env.ok(&["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}} {{.LoggingDriver}}"]);
        assert_eq!(counts, "2 1 1 1 json-file\n");
        let info = env.ok(&["info"]);
        assert!(
            info.contains("\n Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n"),
            "{info}"
        );
        assert!(
            info.contains(&format!(" Docker Root Dir: {}\n", env.root.display())),
            "{info}"
        );
        let version = env.ok(&["version", "--format", "{{.Client.Version}}"]);
        assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
        assert!(env.ok(&["version"]).starts_with("Client:\n Version:"));
        env.ok(&["rm", "-f", "one"]);
    }
}
