//! berth-runtime running real containers, side by side with runc: each
//! scenario runs against both, with the same assertions, on bundles made
//! from busybox (a rootfs of each test's own).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_test_support::{Run, bin_path, fresh_rootfs, require_root, skip};
use ch01_chroot::rootfs::Source;

/// The runtimes to compare: ours, and runc when installed.
fn runtimes(test: &str) -> Vec<PathBuf> {
    if !require_root(test) {
        return vec![];
    }
    let mut all = vec![bin_path(env!("CARGO_BIN_EXE_berth-runtime"))];
    let runc = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runc {
        all.push(PathBuf::from("runc"));
    } else {
        skip(&format!("{test} (runc)"), "runc is not installed");
    }
    all
}

fn name(runtime: &Path) -> String {
    runtime.file_name().unwrap().to_string_lossy().into_owned()
}

/// One container's world: a rootfs, a bundle, a state root, and a host
/// directory bind-mounted into the container at the same path (`out`).
struct Case {
    _tmp: tempfile::TempDir,
    _rootfs_tmp: tempfile::TempDir,
    runtime: PathBuf,
    root: PathBuf,
    bundle: PathBuf,
    out: PathBuf,
    id: String,
}

impl Case {
    fn new(runtime: &Path, test: &str, args: &[&str]) -> Case {
        Case::with(runtime, test, args, |_, _| {})
    }

    /// `{out}` in `args` stands for the `out` directory; `edit` changes
    /// the config, given that directory.
    fn with(
        runtime: &Path,
        test: &str,
        args: &[&str],
        edit: impl FnOnce(&mut serde_json::Value, &Path),
    ) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let (rootfs_tmp, rootfs) = fresh_rootfs(Source::Busybox);
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let bundle = tmp.path().join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let mut config = ch07_full_engine::runtime::spec::default_config();
        config["process"]["terminal"] = false.into();
        let out_text = out.display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{out}", &out_text)).collect();
        config["process"]["args"] = serde_json::json!(args);
        config["root"]["path"] = rootfs.display().to_string().into();
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": out, "type": "bind", "source": out, "options": ["rbind", "rw"]
            }));
        edit(&mut config, &out);
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        // Unique on the host: runc names its cgroups by id.
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let id = format!("{short}-{}-{}", name(runtime), std::process::id());
        Case {
            root: tmp.path().join("root"),
            _tmp: tmp,
            _rootfs_tmp: rootfs_tmp,
            runtime: runtime.to_path_buf(),
            bundle,
            out,
            id,
        }
    }

    fn rt(&self, args: &[&str]) -> Run {
        let mut all = vec!["--root".to_string(), self.root.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        Run::new(&self.runtime, all)
    }

    /// `create`: its exit code and stderr. Its stdio are files, not pipes:
    /// the container's init inherits them and outlives `create`, so a pipe
    /// would not see end-of-file until the container ends (as with runc).
    fn create(&self, extra: &[&str]) -> (Option<i32>, String) {
        let bundle = self.bundle.display().to_string();
        let mut args = vec!["create", "-b", &bundle];
        args.extend(extra);
        args.push(&self.id);
        let log = self.bundle.join("create.stderr");
        let status = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(self.bundle.join("create.stdout")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        (status.code(), std::fs::read_to_string(&log).unwrap())
    }

    fn run(&self) -> Run {
        let bundle = self.bundle.display().to_string();
        self.rt(&["run", "-b", &bundle, &self.id])
    }

    fn status(&self) -> String {
        let run = self.rt(&["state", &self.id]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let state: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
        state["status"].as_str().unwrap().to_string()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.rt(&["state", &self.id]).stdout()).unwrap()
    }

    /// Wait (at most 10 s) until `done`.
    fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{}: {what} did not happen",
                name(&self.runtime)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Nothing of the container is left: no state directory, no cgroup
    /// (under either runtime's naming), no mount of its bundle.
    fn assert_gone(&self) {
        let who = name(&self.runtime);
        assert!(
            !self.root.join(&self.id).exists(),
            "{who}: state directory left"
        );
        for controller in ["memory", "pids", "cpu", "devices", "freezer", "unified"] {
            for dir in [
                Path::new("/sys/fs/cgroup").join(controller).join(&self.id),
                Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join("berth")
                    .join(&self.id),
            ] {
                assert!(!dir.exists(), "{who}: cgroup {} left", dir.display());
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let tmp = self.bundle.parent().unwrap().display().to_string();
        assert!(!mounts.contains(&tmp), "{who}: a mount is left: {mounts}");
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
    }
}

#[test]
fn create_blocks_the_init_until_start_and_delete_leaves_nothing() {
    for runtime in runtimes("create_blocks_the_init_until_start_and_delete_leaves_nothing") {
        let who = name(&runtime);
        let script = "echo ran > {out}/ran; while [ ! -e {out}/go ]; do sleep 0.01; done";
        let case = Case::new(&runtime, "create-start", &["sh", "-c", script]);
        let pid_file = case.out.parent().unwrap().join("pid");
        let (code, stderr) = case.create(&["--pid-file", &pid_file.display().to_string()]);
        assert_eq!(code, Some(0), "{who}: {stderr}");

        // Created: the init exists, its pid is in the pid file, and it has
        // not become the user's program (it is still the runtime).
        assert_eq!(case.status(), "created", "{who}");
        let pid = case.state()["pid"].as_i64().unwrap();
        assert!(pid > 0, "{who}");
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap().trim(),
            pid.to_string(),
            "{who}: --pid-file"
        );
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            !exe.to_string_lossy().contains("busybox"),
            "{who}: the program ran before start: {}",
            exe.display()
        );
        assert!(
            !case.out.join("ran").exists(),
            "{who}: the program ran before start"
        );

        // Start: the program runs.
        let started = case.rt(&["start", &case.id]);
        assert_eq!(started.code(), Some(0), "{who}: {}", started.transcript());
        case.wait_for("the program's first line", || case.out.join("ran").exists());
        assert_eq!(case.status(), "running", "{who}");

        // It ends: stopped.
        std::fs::write(case.out.join("go"), "").unwrap();
        case.wait_for("the program's exit", || case.status() == "stopped");

        // Delete leaves nothing.
        let deleted = case.rt(&["delete", &case.id]);
        assert_eq!(deleted.code(), Some(0), "{who}: {}", deleted.transcript());
        case.assert_gone();
    }
}

#[test]
fn run_exits_with_the_programs_status_and_cleans_up() {
    for runtime in runtimes("run_exits_with_the_programs_status_and_cleans_up") {
        let who = name(&runtime);
        for code in [0, 7] {
            let case = Case::new(&runtime, "run-exit", &["sh", "-c", &format!("exit {code}")]);
            let run = case.run();
            assert_eq!(run.code(), Some(code), "{who}: {}", run.transcript());
            case.assert_gone();
        }
        // A program that is not there: an error, and nothing left.
        let case = Case::new(&runtime, "run-missing", &["/no/such/program"]);
        let run = case.run();
        assert_ne!(run.code(), Some(0), "{who}: {}", run.transcript());
        case.assert_gone();
    }
}

#[test]
fn hooks_run_at_the_specs_points_in_order() {
    for runtime in runtimes("hooks_run_at_the_specs_points_in_order") {
        let who = name(&runtime);
        let script = "echo program >> {out}/hooks.log; \
            (readlink /proc/self/ns/uts; readlink /proc/self/ns/net) > {out}/hooks.log.program";
        let case = Case::with(&runtime, "hooks", &["sh", "-c", script], |c, out| {
            let hook = |name: &str| {
                serde_json::json!([{
                    "path": "/bin/sh",
                    "args": ["sh", "-c", format!("echo {name} >> {}/hooks.log", out.display())]
                }])
            };
            // Where each runs: createRuntime in the runtime's namespaces,
            // createContainer and startContainer in the container's (UTS
            // and network namespaces, as the program sees them).
            let where_ = |name: &str| {
                let log = format!("{}/hooks.log", out.display());
                serde_json::json!([{
                    "path": "/bin/sh",
                    "args": ["sh", "-c", format!(
                        "echo {name} >> {log}; (readlink /proc/self/ns/uts; readlink /proc/self/ns/net) > {log}.{name}"
                    )],
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
                }])
            };
            c["hostname"] = "hooks-test".into();
            c["hooks"] = serde_json::json!({
                "createRuntime": where_("createRuntime"),
                "createContainer": where_("createContainer"),
                "startContainer": [{
                    "path": "/bin/sh",
                    "args": ["sh", "-c", format!(
                        "echo startContainer >> {log}; cat /proc/sys/kernel/hostname > {log}.hostname",
                        log = format!("{}/hooks.log", out.display())
                    )],
                }],
                "poststart": hook("poststart"),
                "poststop": hook("poststop"),
            });
        });
        // The same path inside and out: the log is in the bind-mounted dir.
        let log = case.out.join("hooks.log");
        let run = case.run();
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        let namespaces = |hook: &str| {
            std::fs::read_to_string(case.out.join(format!("hooks.log.{hook}"))).unwrap()
        };
        assert!(namespaces("program").starts_with("uts:["), "{who}");
        assert_eq!(
            namespaces("createContainer"),
            namespaces("program"),
            "{who}"
        );
        assert_ne!(namespaces("createRuntime"), namespaces("program"), "{who}");
        let lines = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<&str> = lines.lines().collect();
        // The program and poststart race (poststart runs once the program
        // has started): check the order of the hooks, and that it ran.
        let program = lines.iter().position(|l| *l == "program");
        assert!(program.is_some(), "{who}: {lines:?}");
        lines.retain(|l| *l != "program");
        // runc runs startContainer in the init once `start` has opened the
        // FIFO, while `start` runs poststart: those two race there. The
        // spec orders them (startContainer before the program, poststart
        // after it), and berth-runtime, which runs startContainer before it
        // opens the FIFO, always follows it.
        assert_eq!(lines.len(), 5, "{who}: {lines:?}");
        let mut middle = lines[2..4].to_vec();
        if who == "runc" {
            middle.sort_unstable();
        }
        let want = if who == "runc" {
            ["poststart", "startContainer"] // sorted
        } else {
            ["startContainer", "poststart"]
        };
        assert_eq!(middle, want, "{who}: {lines:?}");
        assert_eq!(
            [lines[0], lines[1], lines[4]],
            ["createRuntime", "createContainer", "poststop"],
            "{who}: {lines:?}"
        );
        case.assert_gone();
    }
}

#[test]
fn masked_paths_show_nothing_and_proc_sys_is_read_only() {
    for runtime in runtimes("masked_paths_show_nothing_and_proc_sys_is_read_only") {
        let who = name(&runtime);
        let script = "cat /proc/keys > {out}/keys 2>&1; echo $? > {out}/keys.code; \
             (echo x > /proc/sys/kernel/domainname) 2> {out}/sys.err; echo $? > {out}/sys.code; \
             ls /proc/acpi > {out}/acpi 2>&1";
        let case = Case::new(&runtime, "masks", &["sh", "-c", script]);
        let run = case.run();
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        let read = |f: &str| std::fs::read_to_string(case.out.join(f)).unwrap();
        // /proc/keys (masked by runc's default spec; this host's kernel has
        // no /proc/kcore): /dev/null over it, so it reads as empty.
        assert!(Path::new("/proc/keys").exists());
        assert_eq!(read("keys"), "", "{who}");
        assert_eq!(read("keys.code").trim(), "0", "{who}");
        // /proc/acpi (a directory): an empty read-only tmpfs over it.
        assert_eq!(read("acpi"), "", "{who}");
        // /proc/sys: read-only.
        assert_ne!(read("sys.code").trim(), "0", "{who}");
        assert!(
            read("sys.err").contains("Read-only file system"),
            "{who}: {}",
            read("sys.err")
        );
    }
}

#[test]
fn a_bad_config_is_one_error_line_exit_1_and_leaves_nothing() {
    for runtime in runtimes("a_bad_config_is_one_error_line_exit_1_and_leaves_nothing") {
        let who = name(&runtime);
        let case = Case::with(&runtime, "bad-config", &["true"], |c, _| {
            c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/data", "type": "bind", "source": "/nonexistent/berth-test",
                "options": ["rbind"]
            }));
        });
        let (code, stderr) = case.create(&[]);
        assert_eq!(code, Some(1), "{who}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{who}: one error line: {stderr}");
        assert!(
            lines[0].starts_with("time=\"") && lines[0].contains(" level=error msg=\""),
            "{who}: {stderr}"
        );
        assert!(
            lines[0].contains("/nonexistent/berth-test"),
            "{who}: {stderr}"
        );
        case.assert_gone();
    }
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroup() {
    for runtime in runtimes("exec_joins_the_containers_namespaces_and_cgroup") {
        let who = name(&runtime);
        let case = Case::with(&runtime, "exec", &["sleep", "60"], |c, _| {
            c["hostname"] = "exec-test".into();
        });
        let (code, stderr) = case.create(&[]);
        assert_eq!(code, Some(0), "{who}: {stderr}");
        let started = case.rt(&["start", &case.id]);
        assert_eq!(started.code(), Some(0), "{who}: {}", started.transcript());
        let pid = case.state()["pid"].as_i64().unwrap();
        let init_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();

        // argv form: its exit status, the container's hostname and cgroup.
        let script = "hostname; cat /proc/$$/cgroup; exit 4";
        let run = case.rt(&["exec", &case.id, "sh", "-c", script]);
        assert_eq!(run.code(), Some(4), "{who}: {}", run.transcript());
        let stdout = run.stdout();
        let (hostname, cgroup) = stdout.split_once('\n').unwrap();
        assert_eq!(hostname, "exec-test", "{who}");
        // The same cgroup as the init (the container's cgroup namespace
        // shows it at its root; runc makes none by default, so compare
        // what each runtime's own init sees from the host).
        let mine: Vec<&str> = cgroup.lines().filter(|l| l.contains(":memory:")).collect();
        let init: Vec<&str> = init_cgroup
            .lines()
            .filter(|l| l.contains(":memory:"))
            .collect();
        assert_eq!(mine, init, "{who}");

        // --process form: its cwd and env.
        let process = case.out.join("process.json");
        std::fs::write(
            &process,
            r#"{"args": ["sh", "-c", "echo $PWD $A"], "cwd": "/tmp", "env": ["A=b", "PATH=/bin"], "user": {"uid": 0, "gid": 0}}"#,
        )
        .unwrap();
        let run = case.rt(&["exec", "-p", &process.display().to_string(), &case.id]);
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        assert_eq!(run.stdout(), "/tmp b\n", "{who}");

        let deleted = case.rt(&["delete", "--force", &case.id]);
        assert_eq!(deleted.code(), Some(0), "{who}: {}", deleted.transcript());
        case.assert_gone();
    }
}

#[test]
fn preserve_fds_pass_descriptors_3_and_up_and_no_others() {
    for runtime in runtimes("preserve_fds_pass_descriptors_3_and_up_and_no_others") {
        let who = name(&runtime);
        let case = Case::new(
            &runtime,
            "preserve-fds",
            &["sh", "-c", "echo through-3 >&3; ls /proc/self/fd | wc -l"],
        );
        let file = case.out.join("fd3");
        // The caller's descriptor 3 (a file) and 5 (not passed on).
        let script =
            r#"exec "$0" --root "$1" run --preserve-fds 1 -b "$2" "$3" 3>"$4" 5</dev/null"#;
        let run = Run::capture({
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", script])
                .arg(&case.runtime)
                .arg(&case.root)
                .arg(&case.bundle)
                .arg(&case.id)
                .arg(&file);
            cmd
        });
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "through-3\n",
            "{who}"
        );
        // 0, 1, 2, 3, and ls's own: nothing else of the caller's.
        assert_eq!(run.stdout().trim(), "5", "{who}");
        case.assert_gone();
    }
}

#[test]
fn no_pivot_and_a_read_only_root() {
    for runtime in runtimes("no_pivot_and_a_read_only_root") {
        let who = name(&runtime);
        let script = "touch /x 2>/dev/null && echo wrote || echo read-only; echo hi > {out}/w && echo out-writable";
        for pivot in [true, false] {
            let case = Case::new(&runtime, "no-pivot", &["sh", "-c", script]);
            let bundle = case.bundle.display().to_string();
            let mut args = vec!["run", "-b", &bundle];
            if !pivot {
                args.push("--no-pivot");
            }
            args.push(&case.id);
            let run = case.rt(&args);
            assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
            // root.readonly (runc's default spec): / is read-only, the
            // bind-mounted directory is not.
            assert_eq!(
                run.stdout(),
                "read-only\nout-writable\n",
                "{who} pivot {pivot}"
            );
            case.assert_gone();
        }
    }
}

#[test]
fn process_fields_and_sysctls_reach_the_kernel() {
    for runtime in runtimes("process_fields_and_sysctls_reach_the_kernel") {
        let who = name(&runtime);
        let script = "ulimit -n; cat /proc/sys/net/ipv4/ip_forward; id -u; id -g; pwd; echo $FOO; \
                      cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status; \
                      grep CapEff /proc/self/status; hostname";
        let case = Case::with(&runtime, "process-fields", &["sh", "-c", script], |c, _| {
            c["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
            c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1001});
            c["process"]["cwd"] = "/tmp".into();
            c["process"]["env"] = serde_json::json!(["PATH=/bin:/usr/bin", "FOO=bar"]);
            c["process"]["oomScoreAdj"] = 500.into();
            c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
            c["hostname"] = "fields".into();
        });
        let run = case.run();
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        assert_eq!(
            run.stdout(),
            "100\n1\n1000\n1001\n/tmp\nbar\n500\nNoNewPrivs:\t1\nCapEff:\t0000000000000000\nfields\n",
            "{who}"
        );
        case.assert_gone();
    }
}

#[test]
fn a_user_namespace_maps_root_to_the_ids_given() {
    for runtime in runtimes("a_user_namespace_maps_root_to_the_ids_given") {
        let who = name(&runtime);
        let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; echo hi > {out}/x 2>/dev/null || echo denied";
        let case = Case::with(&runtime, "userns", &["sh", "-c", script], |c, _| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}));
            let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
            // berth-runtime refuses a cgroup mount in a user namespace on
            // cgroup v1 (chapter 3 mounts cgroupfs afresh, which needs the
            // host's user namespace there): leave it out for both.
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["type"] != "cgroup");
        });
        let run = case.run();
        assert_eq!(run.code(), Some(0), "{who}: {}", run.transcript());
        let words: Vec<String> = run
            .stdout()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        // Root inside is host uid 100000: it may not write the host's
        // root-owned directory.
        assert_eq!(
            words,
            ["0 100000 65536", "0 100000 65536", "0", "denied"],
            "{who}"
        );
        case.assert_gone();
    }
}
