//! berth-runtime's command line, run as engines run it: errors as runc
//! writes them, `spec` against the installed runc's, bad bundles, and the
//! commands that act on a container's state (with a stand-in init process;
//! containers.rs runs real ones).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_test_support::{Run, bin_path, command, require_root, skip};
use ch07_full_engine::runtime::state::{EXEC_FIFO, Root, State, proc_stat};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_berth-runtime"))
}

/// Run berth-runtime with `--root ROOT` and `args`.
fn rt(root: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--root".to_string(), root.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Run::new(&bin(), all)
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The one stderr line, checked to be logrus's text format; its message.
fn error_line(run: &Run) -> String {
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("time=\""), "{line}");
    let rest = &line[line
        .find("\" level=error msg=\"")
        .expect("level=error msg=")
        + 19..];
    assert!(rest.ends_with('"'), "{line}");
    rest[..rest.len() - 1].replace("\\\"", "\"")
}

#[test]
fn errors_are_one_log_line_as_runc_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let run = rt(&root, &["state", "nosuch"]);
    assert_eq!(error_line(&run), "container nosuch does not exist");
    assert!(run.stdout().is_empty());

    // runc, asked the same, answers in the same shape.
    if have("runc") {
        let runc_root = dir.path().join("runc-root");
        let runc = Run::new(
            Path::new("runc"),
            [
                "--root",
                &runc_root.display().to_string(),
                "state",
                "nosuch",
            ],
        );
        assert_eq!(error_line(&runc), "container does not exist");
    } else {
        skip(
            "errors_are_one_log_line_as_runc_writes_them (runc part)",
            "runc is not installed",
        );
    }

    // JSON lines, as containerd and podman ask for them.
    let run = rt(&root, &["--log-format", "json", "state", "nosuch"]);
    assert_eq!(run.code(), Some(1));
    let line: serde_json::Value = serde_json::from_str(run.stderr().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container nosuch does not exist");
    assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());

    // --log FILE: the file holds exactly one JSON object (podman parses the
    // whole file as one); stderr gets the message plainly, as from runc.
    let log = dir.path().join("log.json");
    let run = rt(
        &root,
        &[
            "--log",
            &log.display().to_string(),
            "--log-format",
            "json",
            "kill",
            "nosuch",
            "KILL",
        ],
    );
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.stderr(), "container nosuch does not exist\n");
    let logged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(logged["msg"], "container nosuch does not exist");

    assert!(
        error_line(&rt(&root, &["state", "../etc"]))
            .starts_with("invalid container ID format: \"../etc\"")
    );
    assert!(
        error_line(&rt(&root, &["state"]))
            .starts_with("the following required arguments were not provided: <ID>")
    );
    assert!(
        error_line(&rt(&root, &["list", "-f", "yaml"]))
            .starts_with("invalid value 'yaml' for '--format <FORMAT>'")
    );
    assert!(
        error_line(&rt(&root, &["--systemd-cgroup", "list"])).starts_with(
            "--systemd-cgroup: berth-runtime manages cgroups through the cgroup filesystem only"
        )
    );
    // exec's own failures exit 255, as runc's, apart from the program's codes.
    let run = rt(&root, &["exec", "nosuch", "sh"]);
    assert_eq!(run.code(), Some(255), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("msg=\"exec failed: container nosuch does not exist\""),
        "{}",
        run.stderr()
    );
    let unknown = rt(&root, &["bogus"]);
    assert_eq!(unknown.code(), Some(3), "{}", unknown.transcript());
    // Nothing was made by any of it.
    assert!(!root.exists());

    let version = Run::new(&bin(), ["--version"]);
    assert_eq!(version.code(), Some(0));
    assert!(
        version.stdout().starts_with("berth-runtime version "),
        "{}",
        version.stdout()
    );
}

/// Our `spec` and runc's, as JSON values: equal but for the version and
/// the hostname.
fn compare_specs(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("runc"));
    std::fs::create_dir(&ours).unwrap();
    std::fs::create_dir(&theirs).unwrap();
    let mut args = vec!["spec", "-b"];
    let ours_s = ours.display().to_string();
    args.push(&ours_s);
    args.extend(extra);
    let run = Run::new(&bin(), &args);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let mut runc = command(Path::new("runc"));
    runc.arg("spec").arg("--bundle").arg(&theirs).args(extra);
    let run = Run::capture(runc);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let read = |d: &Path| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        let map = v.as_object_mut().unwrap();
        map.remove("ociVersion");
        map.remove("hostname");
        v
    };
    let (a, b) = (read(&ours), read(&theirs));
    // Field by field, so a difference names its place.
    for key in b.as_object().unwrap().keys() {
        assert_eq!(a[key], b[key], "{extra:?}: field {key} differs from runc's");
    }
    assert_eq!(a, b);
}

#[test]
fn spec_is_runcs_default_field_by_field() {
    if !have("runc") {
        skip(
            "spec_is_runcs_default_field_by_field",
            "runc is not installed",
        );
        return;
    }
    compare_specs(&[]);
    compare_specs(&["--rootless"]);
}

#[test]
fn spec_never_overwrites_and_names_a_missing_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().display().to_string();
    assert_eq!(Run::new(&bin(), ["spec", "-b", &bundle]).code(), Some(0));
    let before = std::fs::read(dir.path().join("config.json")).unwrap();
    let run = Run::new(&bin(), ["spec", "-b", &bundle, "--rootless"]);
    assert_eq!(
        error_line(&run),
        format!("{bundle}/config.json exists: remove it first")
    );
    assert_eq!(
        std::fs::read(dir.path().join("config.json")).unwrap(),
        before
    );
    let run = Run::new(&bin(), ["spec", "-b", "/nonexistent/bundle"]);
    assert_eq!(
        error_line(&run),
        "bundle /nonexistent/bundle: no such directory"
    );
}

/// A bundle with `config` (a function of the default config) and a rootfs.
fn bundle(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let mut config = ch07_full_engine::runtime::spec::default_config();
    config["process"]["terminal"] = false.into();
    edit(&mut config);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    bundle
}

/// A change to a bundle: its directory and its config.
type Edit = dyn Fn(&Path, &mut serde_json::Value);

#[test]
fn bad_bundles_are_one_line_naming_the_field_and_leave_nothing() {
    let cases: Vec<(&str, Box<Edit>, &str)> = vec![
        (
            "malformed json",
            Box::new(|b, _| {
                std::fs::write(b.join("config.json"), "{\"ociVersion\": \"1.2.0\",").unwrap();
            }),
            "config.json: malformed JSON: EOF while parsing a value at line 1 column 23",
        ),
        (
            "wrong type",
            Box::new(|_, c| c["process"]["user"]["uid"] = "root".into()),
            "config.json: process.user.uid: invalid type: string \"root\", expected u32",
        ),
        (
            "missing rootfs",
            Box::new(|b, _| std::fs::remove_dir(b.join("rootfs")).unwrap()),
            "config.json: root.path: ",
        ),
        (
            "relative destination",
            Box::new(|_, c| c["mounts"][0]["destination"] = "proc".into()),
            "config.json: mounts[0].destination: \"proc\" is not an absolute path",
        ),
        (
            "unknown namespace",
            Box::new(|_, c| c["linux"]["namespaces"][0]["type"] = "pidd".into()),
            "config.json: linux.namespaces[0].type: unknown variant `pidd`",
        ),
        (
            "not a namespace",
            Box::new(|_, c| c["linux"]["namespaces"][1]["path"] = "/proc/version".into()),
            "config.json: linux.namespaces[1].path: /proc/version: not a namespace",
        ),
        (
            "no config",
            Box::new(|b, _| std::fs::remove_file(b.join("config.json")).unwrap()),
            "read ",
        ),
        (
            "cgroups path",
            Box::new(|_, c| c["linux"]["cgroupsPath"] = "system.slice:berth:c1".into()),
            "config.json: linux.cgroupsPath: system.slice:berth:c1: a systemd path (slice:prefix:name) needs the systemd cgroup driver",
        ),
        (
            "refused field",
            Box::new(|_, c| c["linux"]["intelRdt"] = serde_json::json!({"closID": "x"})),
            "config.json: linux.intelRdt: not supported by berth-runtime",
        ),
        (
            "bad seccomp",
            Box::new(|_, c| {
                c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})
            }),
            "config.json: linux.seccomp.listenerPath: missing",
        ),
    ];
    for (what, edit, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let b = bundle(dir.path(), |_| {});
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
        edit(&b, &mut config);
        if b.join("config.json").exists() && what != "malformed json" {
            std::fs::write(b.join("config.json"), config.to_string()).unwrap();
        }
        let root = dir.path().join("root");
        let run = rt(&root, &["create", "-b", &b.display().to_string(), "c1"]);
        let msg = error_line(&run);
        assert!(msg.starts_with(want), "{what}: {msg}\nwant: {want}");
        assert!(!root.join("c1").exists(), "{what}: left a state directory");
    }
}

#[test]
fn a_duplicate_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), |_| {});
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("c1")).unwrap();
    let run = rt(&root, &["create", "-b", &b.display().to_string(), "c1"]);
    assert_eq!(error_line(&run), "container with id exists: c1");
}

/// A stand-in for a created container's init: blocked writing to
/// exec.fifo, then sleeping as "the user's program" once released.
struct FakeInit {
    child: Child,
    root: PathBuf,
    id: String,
}

impl FakeInit {
    fn start(root: &Path, id: &str, hooks: Option<serde_json::Value>) -> FakeInit {
        let dir = Root::new(root).create_dir(id).unwrap();
        let fifo = dir.path.join(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg("echo 0 > \"$0\"; exec sleep 60")
            .arg(&fifo)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = proc_stat(Path::new("/proc"), pid).unwrap().start_time;
        dir.write_state(&State {
            oci_version: "1.2.0".into(),
            id: id.into(),
            init_process_pid: pid,
            init_process_start: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: Default::default(),
            hooks: hooks.map(|h| serde_json::from_value(h).unwrap()),
            process: None,
            cgroups_path: None,
        })
        .unwrap();
        FakeInit {
            child,
            root: root.to_path_buf(),
            id: id.to_string(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn status(&self) -> String {
        let run = rt(&self.root, &["state", &self.id]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let state: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
        state["status"].as_str().unwrap().to_string()
    }
}

impl Drop for FakeInit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn state_start_kill_delete_follow_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = dir.path().join("poststop.json");
    let hooks = serde_json::json!({"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > \"$0\"", out]}]});
    let mut init = FakeInit::start(&root, "life", Some(hooks));
    let pid = init.pid();

    let run = rt(&root, &["state", "life"]);
    let state: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], "life");
    let list = rt(&root, &["list"]);
    let stdout = list.stdout();
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(
        rows[0].starts_with("ID          PID         STATUS"),
        "{}",
        list.stdout()
    );
    assert!(
        rows[1].starts_with(&format!("life        {pid:<12}created")),
        "{}",
        list.stdout()
    );
    assert_eq!(rt(&root, &["list", "-q"]).stdout(), "life\n");
    let json: serde_json::Value =
        serde_json::from_str(&rt(&root, &["list", "-f", "json"]).stdout()).unwrap();
    assert_eq!(json[0]["status"], "created");

    // start releases the init: it goes on to its program.
    let run = rt(&root, &["start", "life"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(init.status(), "running");
    assert!(!root.join("life").join(EXEC_FIFO).exists());
    assert_eq!(
        error_line(&rt(&root, &["start", "life"])),
        "cannot start container life: it is already running"
    );
    assert_eq!(
        error_line(&rt(&root, &["delete", "life"])),
        "cannot delete container life that is not stopped: running (stop it first, or use --force)"
    );

    let run = rt(&root, &["kill", "life"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let status = init.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    let run = rt(&root, &["state", "life"]);
    let state: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        (state["status"].as_str(), state["pid"].as_i64()),
        (Some("stopped"), Some(0))
    );
    assert_eq!(
        error_line(&rt(&root, &["kill", "life", "KILL"])),
        "cannot kill life: container not running"
    );
    assert_eq!(
        error_line(&rt(&root, &["start", "life"])),
        "cannot start container life: it has stopped"
    );

    let run = rt(&root, &["delete", "life"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(!root.join("life").exists());
    let seen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({"ociVersion": "1.2.0", "id": "life", "status": "stopped", "pid": 0, "bundle": "/b"})
    );
    assert_eq!(
        error_line(&rt(&root, &["state", "life"])),
        "container life does not exist"
    );
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut init = FakeInit::start(&root, "made", None);
    assert_eq!(init.status(), "created");
    let run = rt(&root, &["delete", "made"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // Its init was killed (a zombie until we, its parent, reap it).
    let status = init.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!root.join("made").exists());
}

#[test]
fn delete_force_cleans_up_after_a_killed_create() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // What a create killed before it wrote state.json leaves.
    std::fs::create_dir_all(root.join("half")).unwrap();
    assert_eq!(
        error_line(&rt(&root, &["delete", "half"])),
        "container half does not exist"
    );
    assert!(root.join("half").exists());
    let run = rt(&root, &["delete", "--force", "half"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(!root.join("half").exists());
    // Nothing at all: --force succeeds, as runc's does.
    assert_eq!(rt(&root, &["delete", "-f", "never"]).code(), Some(0));
    // A running one, forced.
    let mut init = FakeInit::start(&root, "busy", None);
    assert_eq!(rt(&root, &["start", "busy"]).code(), Some(0));
    assert_eq!(rt(&root, &["delete", "--force", "busy"]).code(), Some(0));
    assert!(init.child.wait().is_ok());
    assert!(!root.join("busy").exists());
}

#[test]
fn pause_resume_ps_and_events_use_the_cgroup() {
    if !require_root("pause_resume_ps_and_events_use_the_cgroup") {
        return;
    }
    use ch03_cgroups::{Cgroup, LinuxResources, detect};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let id = format!("berth-rt-test-{}", std::process::id());
    let layout = detect(Path::new("/proc")).unwrap();
    let cgroup =
        Cgroup::create(&layout, Path::new("/proc"), &id, &LinuxResources::default()).unwrap();
    let init = FakeInit::start(&root, &id, None);
    cgroup
        .add_process(nix::unistd::Pid::from_raw(init.pid()))
        .unwrap();
    assert_eq!(rt(&root, &["start", &id]).code(), Some(0));

    let run = rt(&root, &["ps", "-f", "json", &id]);
    assert_eq!(run.stdout().trim(), format!("[{}]", init.pid()));
    let run = rt(&root, &["ps", &id]);
    let lines: Vec<String> = run.stdout().lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout());
    assert!(lines[0].contains("PID"));
    assert!(
        lines[1].contains(&init.pid().to_string()) && lines[1].contains("sleep"),
        "{}",
        lines[1]
    );
    let run = rt(&root, &["ps", &id, "-o", "pid,comm"]);
    assert_eq!(
        run.stdout()
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [init.pid().to_string().as_str(), "sleep"]
    );

    assert_eq!(rt(&root, &["pause", &id]).code(), Some(0));
    assert_eq!(init.status(), "paused");
    let stat = proc_stat(Path::new("/proc"), init.pid()).unwrap();
    assert!(matches!(stat.state, 'S' | 'D'), "{stat:?}");
    assert!(error_line(&rt(&root, &["pause", &id])).contains("container not running (paused)"));
    assert_eq!(rt(&root, &["resume", &id]).code(), Some(0));
    assert_eq!(init.status(), "running");
    assert!(error_line(&rt(&root, &["resume", &id])).contains("container not paused (running)"));

    let run = rt(&root, &["events", "--stats", &id]);
    let event: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["data"]["pids"]["current"], 1);
    assert!(event["data"]["memory"]["usage"]["usage"].as_u64().is_some());

    // kill --all reaches every process in the cgroup.
    let mut second = Command::new("sleep").arg("60").spawn().unwrap();
    cgroup
        .add_process(nix::unistd::Pid::from_raw(second.id() as i32))
        .unwrap();
    assert_eq!(rt(&root, &["kill", "--all", &id, "TERM"]).code(), Some(0));
    let status = second.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    drop(init);
    assert_eq!(rt(&root, &["delete", &id]).code(), Some(0));
    assert!(
        cgroup.paths().iter().all(|p| !p.exists()),
        "the cgroup is left"
    );
}
