//! podman runs its containers with berth-runtime (`--runtime`), as it does
//! with runc or crun: conmon calls `create`, podman `start`, `exec`,
//! `pause`, `kill`, `delete`, with podman's own config.json (its cgroup
//! under `/libpod_parent`, no cgroup namespace on v1).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_test_support::{require_root, rootfs, skip};

/// podman with its storage in `dir`, driving berth-runtime.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime"])
            .arg(env!("CARGO_BIN_EXE_berth-runtime"))
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
    }
}

/// The flags every podman run needs here (no CAP_SYS_RESOURCE to raise
/// rlimits; no network).
const RUN: [&str; 6] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "none",
];

const IMAGE: &str = "localhost/berth-podman:1";

fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    common::cgroup_mounts()
        .into_iter()
        .map(|h| h.join("libpod_parent").join(name))
        .filter(|d| d.exists())
        .collect()
}

#[test]
fn podman_runs_its_containers_with_berth_runtime() {
    let test = "podman::runs_with_berth_runtime";
    if !require_root(test) {
        return;
    }
    if !common::have_on_path("podman") {
        skip(test, "podman is not installed (apt-get install podman)");
        return;
    }
    let podman = Podman::new();
    // An image of the test rootfs.
    let tar = podman.dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    podman.ok(&["import", tar.to_str().unwrap(), IMAGE]);
    // run --rm: create (by conmon), start, wait, delete.
    let mut args = vec!["run", "--rm"];
    args.extend(RUN);
    args.extend([IMAGE, "sh", "-c", "echo hello from berth-runtime; id -u"]);
    assert_eq!(podman.ok(&args), "hello from berth-runtime\n0\n");
    // run -d with a limit, then exec, pause, unpause, stop, rm.
    let mut args = vec!["run", "-d", "--memory", "64m"];
    args.extend(RUN);
    args.extend([IMAGE, "sleep", "600"]);
    let id = podman.ok(&args).trim().to_string();
    let cgroups = cgroup_dirs_named(&format!("libpod-{id}"));
    assert!(
        !cgroups.is_empty(),
        "the cgroup where podman's config.json says"
    );
    let limit = podman.ok(&[
        "exec", &id, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.trim(), "67108864");
    // Its /sys/fs/cgroup shows its own cgroup, not the host's tree.
    let seen = podman.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls /sys/fs/cgroup/memory /sys/fs/cgroup 2>/dev/null",
    ]);
    assert!(
        !seen.contains("libpod_parent") && !seen.contains("berth"),
        "{seen}"
    );
    // exec -t: conmon's console socket gets the terminal's master.
    let tty = podman.ok(&["exec", "-t", &id, "tty"]);
    assert!(tty.starts_with("/dev/pts/"), "{tty}");
    podman.ok(&["pause", &id]);
    assert_eq!(
        podman
            .ok(&["inspect", "-f", "{{.State.Status}}", &id])
            .trim(),
        "paused"
    );
    podman.ok(&["unpause", &id]);
    podman.ok(&["stop", "-t", "0", &id]);
    podman.ok(&["rm", &id]);
    // Nothing of it is left: cgroup, runtime state.
    assert!(
        cgroup_dirs_named(&format!("libpod-{id}")).is_empty(),
        "{cgroups:?}"
    );
    assert!(!Path::new("/run/berth-runtime").join(&id).exists());
}
