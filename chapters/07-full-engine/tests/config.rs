//! `run`'s flags, seen from inside the container: what the bundle's
//! config.json made the runtime do.

mod common;

use common::{IMAGE, envs};

/// Run `script` in a fresh container with `flags`; its stdout (and it must
/// exit 0).
fn inside(env: &common::Env, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend([IMAGE, "sh", "-c", script]);
    env.ok(&args)
}

#[test]
fn the_process_gets_dockers_environment_user_workdir_and_names() {
    for env in envs("the_process_gets_dockers_environment_user_workdir_and_names") {
        // PID 1's environment, as execve(2) gave it (a shell reorders its own).
        let out = inside(
            &env,
            &["-e", "FOO=bar", "-h", "myhost"],
            "cat /proc/1/environ | tr '\\0' '\\n'",
        );
        let lines: Vec<&str> = out.lines().collect();
        // docker's order: PATH (the image's), HOSTNAME, the user's, HOME.
        assert!(lines[0].starts_with("PATH="), "{out}");
        assert_eq!(lines[1], "HOSTNAME=myhost");
        assert_eq!(lines[2..], ["FOO=bar", "HOME=/root"], "{out}");
        assert_eq!(
            inside(&env, &["-h", "myhost"], "hostname; cat /etc/hostname"),
            "myhost\nmyhost\n"
        );
        // The default hostname: the short id.
        let id = env.ok(&["create", IMAGE, "hostname"]).trim().to_string();
        env.ok(&["start", "-a", &id]);
        assert_eq!(env.ok(&["logs", &id]), format!("{}\n", &id[..12]));
        env.ok(&["rm", &id]);
        // -u by name, through the image's /etc/passwd.
        assert_eq!(
            inside(&env, &["-u", "nobody"], "id -u; id -g; echo $HOME"),
            "65534\n65534\n/nonexistent\n"
        );
        assert_eq!(
            inside(&env, &["-u", "1234:55"], "id -u; id -g"),
            "1234\n55\n"
        );
        let bad = env.berth(&["run", "--rm", "-u", "nosuchuser", IMAGE, "true"]);
        assert_eq!(bad.code(), Some(125), "{}", bad.transcript());
        assert!(
            bad.stderr().contains("unable to find user nosuchuser"),
            "{}",
            bad.transcript()
        );
        // -w: made if the image lacks it.
        assert_eq!(inside(&env, &["-w", "/srv/app"], "pwd"), "/srv/app\n");
        // --entrypoint, and an env file.
        let file = env.root.join("vars");
        std::fs::write(&file, "# a comment\nX=from-file\n").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            env.ok(&[
                "run",
                "--rm",
                "--env-file",
                f,
                "--entrypoint",
                "sh",
                IMAGE,
                "-c",
                "echo $X"
            ]),
            "from-file\n"
        );
        // The engine's /etc files are mounted in.
        let hosts = inside(
            &env,
            &["-h", "box"],
            "cat /etc/hosts; grep -c nameserver /etc/resolv.conf",
        );
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
        assert!(hosts.contains("127.0.0.1\tbox\n"), "{hosts}");
        // --network none: only lo; host: the host's interfaces.
        let none = inside(&env, &[], "ls /sys/class/net");
        assert_eq!(none, "lo\n");
        let host = inside(&env, &["--network", "host"], "ls /sys/class/net | wc -l");
        let host_count = std::fs::read_dir("/sys/class/net").unwrap().count();
        assert_eq!(host.trim(), host_count.to_string());
    }
}

#[test]
fn limits_and_ulimits_reach_the_kernel() {
    for env in envs("limits_and_ulimits_reach_the_kernel") {
        let id = env.run_d(&[
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            IMAGE,
            "sleep",
            "60",
        ]);
        let read = |controller: &str, file: &str| {
            let path = common::cgroup_mounts()
                .into_iter()
                .find(|m| m.ends_with(controller))
                .map(|m| m.join("berth").join(&id).join(file))
                .unwrap_or_else(|| {
                    std::path::PathBuf::from("/sys/fs/cgroup")
                        .join("berth")
                        .join(&id)
                        .join(file)
                });
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
            assert_eq!(
                read("memory", "memory.limit_in_bytes").trim(),
                (64 << 20).to_string()
            );
            assert_eq!(read("pids", "pids.max").trim(), "50");
            assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
        } else {
            assert_eq!(read("", "memory.max").trim(), (64 << 20).to_string());
            assert_eq!(read("", "pids.max").trim(), "50");
        }
        env.ok(&["rm", "-f", &id]);
        assert_eq!(
            inside(
                &env,
                &["--ulimit", "nofile=512:1024"],
                "ulimit -n; ulimit -Hn"
            ),
            "512\n1024\n"
        );
        // OOM: killed by the kernel, and said so.
        let run = env.berth(&[
            "run",
            "--name",
            "hog",
            "--memory",
            "8m",
            "--memory-swap",
            "8m",
            IMAGE,
            "sh",
            "-c",
            "x=a; while true; do x=$x$x; done",
        ]);
        assert_eq!(run.code(), Some(137), "{}", run.transcript());
        assert_eq!(
            env.inspect("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
            "true 137"
        );
        env.ok(&["rm", "hog"]);
    }
}

#[test]
fn containers_get_dockers_protections_and_the_flags_that_change_them() {
    for env in envs("containers_get_dockers_protections_and_the_flags_that_change_them") {
        let caps = |flags: &[&str]| {
            inside(&env, flags, "grep CapEff /proc/self/status")
                .split_whitespace()
                .last()
                .map(|hex| u64::from_str_radix(hex, 16).unwrap())
                .unwrap()
        };
        // docker's 14: chown, dac_override, fowner, fsetid, kill, setgid,
        // setuid, setpcap, net_bind_service, net_raw, sys_chroot, mknod,
        // audit_write, setfcap.
        let docker: u64 = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
            .iter()
            .map(|bit| 1u64 << bit)
            .sum();
        assert_eq!(caps(&[]), docker);
        assert_eq!(
            caps(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
            1 << 12
        );
        assert_eq!(caps(&["--cap-drop", "chown"]), docker & !1);
        assert!(caps(&["--privileged"]).count_ones() > 30);

        // seccomp: root may make a user namespace (no capability needed)
        // unless the profile forbids unshare(2), as docker's does.
        let attack = "unshare -U true && echo made || echo refused";
        assert_eq!(inside(&env, &[], attack), "refused\n");
        assert_eq!(
            inside(&env, &["--security-opt", "seccomp=unconfined"], attack),
            "made\n"
        );
        // ...and a profile of one's own.
        let profile = env.root.join("deny-mkdir.json");
        std::fs::write(
            &profile,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let opt = format!("seccomp={}", profile.display());
        assert_eq!(
            inside(
                &env,
                &["--security-opt", &opt],
                "mkdir /x 2>/dev/null && echo made || echo refused"
            ),
            "refused\n"
        );

        // Masked and read-only paths, and their absence with --privileged.
        let probe = "wc -c < /proc/interrupts; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo wrote || echo read-only";
        assert_eq!(inside(&env, &[], probe), "0\nread-only\n");
        let privileged = inside(
            &env,
            &["--privileged"],
            "wc -c < /proc/interrupts; grep -c Seccomp:.0 /proc/self/status; ls /dev | wc -l",
        );
        let mut lines = privileged.lines();
        assert_ne!(lines.next(), Some("0"), "nothing masked: {privileged}");
        assert_eq!(lines.next(), Some("1"), "no seccomp filter: {privileged}");
        assert!(
            lines.next().unwrap().parse::<u32>().unwrap() > 20,
            "the host's devices"
        );
        // --read-only, no-new-privileges.
        assert_eq!(
            inside(
                &env,
                &["--read-only"],
                "touch /x 2>/dev/null && echo wrote || echo read-only"
            ),
            "read-only\n"
        );
        assert_eq!(
            inside(
                &env,
                &["--read-only"],
                "touch /tmp/x 2>/dev/null && echo wrote || echo read-only"
            ),
            "read-only\n"
        );
        assert_eq!(
            inside(
                &env,
                &["--security-opt", "no-new-privileges"],
                "grep NoNewPrivs /proc/self/status"
            ),
            "NoNewPrivs:\t1\n"
        );
        assert_eq!(
            inside(&env, &[], "grep NoNewPrivs /proc/self/status"),
            "NoNewPrivs:\t0\n"
        );
        // The device cgroup: a node the image makes (mknod is allowed) of a
        // device docker's rules do not list (the host's loop0) cannot be
        // opened.
        let attack = "mknod /tmp/loop0 b 7 0 && (head -c 0 /tmp/loop0 2>/dev/null && echo opened || echo refused)";
        assert_eq!(inside(&env, &[], attack), "refused\n");
        assert_eq!(inside(&env, &["--privileged"], attack), "opened\n");
        // No file descriptor of the engine reaches the container.
        assert_eq!(
            inside(&env, &[], "ls /proc/self/fd | wc -l"),
            "4\n",
            "0, 1, 2 and ls's own"
        );
    }
}
