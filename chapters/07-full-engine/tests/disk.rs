//! `system df` counts the engine's disk by kind; `system prune` and
//! `container prune` remove what is unused and say how much they freed.

mod common;

use common::{IMAGE, envs};

/// `system df --format` as `TYPE TOTAL ACTIVE` lines.
fn counts(env: &common::Env) -> Vec<String> {
    env.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ])
    .lines()
    .map(String::from)
    .collect()
}

#[test]
fn system_df_counts_images_containers_and_volumes() {
    for env in envs("disk::df") {
        let running = env.run_d(&["-v", "used:/data", IMAGE, "sleep", "60"]);
        env.ok(&[
            "run",
            "--name",
            "stopped",
            IMAGE,
            "sh",
            "-c",
            "head -c 300000 /dev/zero > /blob",
        ]);
        env.ok(&["volume", "create", "spare"]);
        assert_eq!(
            counts(&env),
            [
                "Images 1 1",
                "Containers 2 1",
                "Local Volumes 2 1",
                "Build Cache 0 0"
            ]
        );
        // The stopped container's 300 kB are reclaimable, the running one's not.
        let table = env.ok(&["system", "df"]);
        assert!(
            table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
            "{table}"
        );
        let containers = table.lines().find(|l| l.starts_with("Containers")).unwrap();
        assert!(containers.contains("300kB (100%)"), "{table}");
        env.ok(&["rm", "-f", &running, "stopped"]);
    }
}

#[test]
fn prune_removes_the_unused_and_counts_what_it_freed() {
    for env in envs("disk::prune") {
        let running = env.run_d(&["-v", "keep:/data", IMAGE, "sleep", "60"]);
        let stopped = env.ok(&["create", "-v", "/anon", IMAGE, "sh", "-c", "true"]);
        env.ok(&["start", "-a", stopped.trim()]);
        env.ok(&[
            "run",
            "--name",
            "writer",
            IMAGE,
            "sh",
            "-c",
            "head -c 200000 /dev/zero > /blob",
        ]);
        // container prune: the two stopped ones, and the 200 kB counted.
        let out = env.ok(&["container", "prune", "-f"]);
        assert!(out.starts_with("Deleted Containers:\n"), "{out}");
        assert_eq!(out.lines().filter(|l| l.len() == 64).count(), 2, "{out}");
        assert!(out.ends_with("Total reclaimed space: 200kB\n"), "{out}");
        assert_eq!(env.ok(&["ps", "-aq", "--no-trunc"]).trim(), running);
        // The prompt: anything but y keeps everything.
        let mut cmd = env.cmd(&["system", "prune", "--volumes"]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdin.take());
        let answer = child.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&answer.stdout)
                .contains("Are you sure you want to continue? [y/N]")
        );
        let volumes = env.ok(&["volume", "ls", "-q"]);
        assert_eq!(
            volumes.lines().count(),
            2,
            "the anonymous volume and keep: {volumes}"
        );
        // system prune --volumes -f: the unused anonymous volume goes, the
        // one a running container uses stays.
        let out = env.ok(&["system", "prune", "-f", "--volumes"]);
        assert!(out.contains("Deleted Volumes:\n"), "{out}");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "keep\n");
        // -a: the image a container uses stays.
        env.ok(&["system", "prune", "-f", "-a"]);
        assert!(
            env.ok(&["images", "-q"]).trim().len() >= 12,
            "the used image stays"
        );
        env.ok(&["rm", "-f", &running]);
        env.ok(&["system", "prune", "-f", "-a", "--volumes"]);
        assert_eq!(env.ok(&["images", "-q"]), "");
        assert_eq!(
            env.ok(&["volume", "ls", "-q"]),
            "keep\n",
            "named volumes stay without -a on volume prune"
        );
    }
}
