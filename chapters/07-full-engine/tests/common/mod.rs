//! What the engine's end-to-end tests share: a state root and run root of
//! each test's own, a busybox image imported into it with chapter 5, the
//! runtimes present on this machine, and `berth` run as a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_test_support::{Run, bin_path, command, require_root, rootfs, skip};
use ch05_images::image::import_rootfs;
use ch05_images::reference::Reference;
use ch05_images::store::Store;

pub fn berth_bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_berth"))
}

/// The image every test runs: the shared busybox rootfs, imported.
pub const IMAGE: &str = "busybox";

/// Whether `program` runs here.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The runtimes the engine's tests run with: those installed and able to
/// run containers here. `BERTH_TEST_RUNTIMES` (comma-separated) overrides.
/// runc is the reference, and berth-runtime (built beside berth, where the
/// engine finds it by name) runs every test too; crun needs this host's
/// empty cgroup2 controllers hidden (see [`crun`]).
pub fn runtimes() -> Vec<String> {
    if let Ok(list) = std::env::var("BERTH_TEST_RUNTIMES") {
        return list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|r| match r {
                "crun" => crun().unwrap_or_else(|| r.to_string()),
                _ => r.to_string(),
            })
            .collect();
    }
    let mut found: Vec<String> = ["runc"]
        .iter()
        .filter(|r| have(r))
        .map(|r| r.to_string())
        .collect();
    found.push("berth-runtime".to_string());
    found.extend(crun());
    found
}

/// crun, if installed. On a hybrid cgroup host (v1 controllers, and a v2
/// tree at /sys/fs/cgroup/unified), crun 1.8 refuses to run unless the v2
/// tree's `cgroup.controllers` reads empty; hiding it behind /dev/null in
/// a mount namespace of crun's own (a wrapper named `crun`, so the engine
/// still speaks crun's dialect) lets it.
pub fn crun() -> Option<String> {
    if !have("crun") {
        return None;
    }
    let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if !controllers.exists() {
        return Some("crun".into());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe
        .parent()?
        .parent()?
        .join("berth-fixtures")
        .join("crun-hidden");
    std::fs::create_dir_all(&dir).ok()?;
    let wrapper = dir.join("crun");
    let real = Command::new("sh")
        .args(["-c", "command -v crun"])
        .output()
        .ok()?;
    let real = String::from_utf8(real.stdout).ok()?;
    let script = format!(
        "#!/bin/sh\n# crun with this host's empty cgroup v2 controllers hidden.\nexec unshare -m sh -c 'mount --bind /dev/null {} && exec {} \"$@\"' crun \"$@\"\n",
        controllers.display(),
        real.trim()
    );
    let partial = dir.join(format!(".crun.{}", std::process::id()));
    std::fs::write(&partial, script).ok()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).ok()?;
    std::fs::rename(&partial, &wrapper).ok()?;
    Some(wrapper.display().to_string())
}

/// One test's engine: its own roots, the image imported, one runtime.
pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub run: PathBuf,
    pub runtime: String,
    /// The static berth-init for `--init` (see [`Env::use_init`]).
    pub init: Option<PathBuf>,
    /// The `--network` of `run`/`create` without one: `none`, so that no
    /// test touches the machine's network (tests/network.rs sets `bridge`).
    pub network: &'static str,
}

/// The environments for `test`, one per runtime, or none (the test is
/// skipped, saying why) without root or without any runtime.
pub fn envs(test: &str) -> Vec<Env> {
    if !require_root(test) {
        return vec![];
    }
    let runtimes = runtimes();
    if runtimes.is_empty() {
        skip(test, "no OCI runtime (runc) is installed");
        return vec![];
    }
    runtimes.into_iter().map(Env::new).collect()
}

impl Env {
    pub fn new(runtime: String) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let run = tmp.path().join("run");
        let store = Store::open(&root).expect("open the store");
        let name = Reference::parse(IMAGE).expect("a reference");
        import_rootfs(&store, rootfs(), &name, vec!["/bin/sh".into()]).expect("import the image");
        Env {
            _tmp: tmp,
            root,
            run,
            runtime,
            init: None,
            network: "none",
        }
    }

    /// Give `berth` a static berth-init (built once per test run).
    pub fn use_init(&mut self) {
        self.init = Some(berth_test_support::probe::init_binary().to_path_buf());
    }

    /// `berth --root R --run-root R ARGS`, prepared, with `--runtime`
    /// added after `run`/`create`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = command(&berth_bin());
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run);
        if let Some(init) = &self.init {
            cmd.env("BERTH_INIT", init);
        }
        let mut args = args.iter();
        if let Some(first) = args.next() {
            cmd.arg(first);
            if matches!(*first, "run" | "create") {
                cmd.arg("--runtime").arg(&self.runtime);
                // These tests run on the machine's own network: no bridge,
                // unless a test asks (tests/network.rs, in a namespace).
                if !args
                    .clone()
                    .any(|a| a.starts_with("--network") || a.starts_with("--net="))
                {
                    cmd.arg("--network").arg(self.network);
                }
            }
        }
        cmd.args(args);
        cmd
    }

    /// Run `berth ARGS` to its end.
    pub fn berth(&self, args: &[&str]) -> Run {
        Run::capture(self.cmd(args))
    }

    /// `berth ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.berth(args);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run.stdout()
    }

    /// `run -d ARGS`: the container's id.
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend(args);
        self.ok(&all).trim().to_string()
    }

    /// An inspect template's value for `container`.
    pub fn inspect(&self, container: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, container])
            .trim()
            .to_string()
    }

    /// Wait (at most 20 s) until `container`'s status is `status`.
    pub fn wait_status(&self, container: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.inspect(container, "{{.State.Status}}");
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{container} stays {now}, never {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What this engine left on the machine: mounts under its roots,
    /// cgroups of its containers, live monitors, run directories.
    pub fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.root.display().to_string();
        for line in mountinfo.lines() {
            if let Some(point) = line.split(' ').nth(4)
                && point.starts_with(&root)
            {
                found.push(format!("mount {point}"));
            }
        }
        for id in ids {
            for hierarchy in cgroup_mounts() {
                let dir = hierarchy.join("berth").join(id);
                if dir.exists() {
                    found.push(format!("cgroup {}", dir.display()));
                }
            }
            if self.run.join(id).exists() {
                found.push(format!("run dir {id}"));
            }
            if self.root.join("containers").join(id).exists() {
                found.push(format!("state dir {id}"));
            }
        }
        for monitor in monitors_of(&self.run) {
            found.push(format!("monitor {monitor}"));
        }
        found
    }
}

/// A test that fails part-way leaves containers running: remove them all
/// (and so their mounts, cgroups and monitors) before the directories go.
impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout();
        let ids: Vec<&str> = ids.lines().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.berth(&args);
        }
        // A monitor finishes its container's cleanup (the runtime's delete,
        // the cgroup) after `rm -f` has returned: the roots must outlive it,
        // or the cleanup fails half-way and leaves the cgroup behind (seen
        // in CI). Bounded, so a stuck monitor cannot hang the suite.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !monitors_of(&self.run).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Every cgroup hierarchy's mount point.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fs = right.split(' ').next()?;
            let point = left.split(' ').nth(4)?;
            (fs == "cgroup" || fs == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}

/// The pids of live berth-monitor processes whose config is under `run`.
pub fn monitors_of(run: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline);
        if text.contains("berth-monitor") && text.contains(&*run.to_string_lossy()) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `program` is on PATH.
pub fn have_on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
