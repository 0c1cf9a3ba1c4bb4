//! The cross-chapter attacks (tests/support's `attacks`) against
//! berth-runtime itself, as containerd or podman would drive it: a bundle
//! made from runc's default config.json (`berth-runtime spec`), `run` in
//! the foreground and `exec` into it. Root in the container tries to reach
//! the host: mount, devices, /proc/sys, its cgroup's limits, inherited
//! descriptors, masked paths, and the runtime's own binary (CVE-2019-5736).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_test_support::attacks::{Chapter, Limits};
use berth_test_support::{bin_path, command};
use ch02_namespaces::capabilities::{CapabilitySet, parse_capability};
use serde_json::{Value, json};

/// runc's default capabilities (`spec`), as the probe prints a set.
fn default_capabilities() -> String {
    let caps: Vec<_> = ["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"]
        .iter()
        .map(|c| parse_capability(c).unwrap())
        .collect();
    CapabilitySet::of(&caps).to_string()
}

/// The runtime's default config.json (what `spec` writes), turned into
/// one for `rootfs` running `cmd`, with the engine flags the attacks use
/// (`--privileged`, the standard limits) said the OCI way.
fn config(binary: &Path, rootfs: &Path, flags: &[&str], cmd: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let spec = command(binary)
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        spec.status.success(),
        "{}",
        String::from_utf8_lossy(&spec.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let mut c: Value = serde_json::from_str(&text).unwrap();
    c["root"] = json!({"path": rootfs, "readonly": false});
    // The paths docker masks and makes read-only (the engine's lists): the
    // runtime must hide what the config names.
    let masked = ch07_full_engine::engine::security::default_masked_paths();
    let readonly = ch07_full_engine::engine::security::default_readonly_paths();
    c["linux"]["maskedPaths"] = json!(masked);
    c["linux"]["readonlyPaths"] = json!(readonly);
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = json!(cmd);
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match *flag {
            "--privileged" => {
                // Everything the runtime holds, nothing masked, every device.
                // What we hold (an engine gives what it has: no more).
                let held = caps::read(None, caps::CapSet::Permitted).unwrap();
                let mut all: Vec<String> = held.into_iter().map(|c| c.to_string()).collect();
                all.sort();
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set] = json!(all);
                }
                c["process"]["noNewPrivileges"] = false.into();
                c["linux"]["maskedPaths"] = json!([]);
                c["linux"]["readonlyPaths"] = json!([]);
                c["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
                if let Some(mounts) = c["mounts"].as_array_mut() {
                    for m in mounts.iter_mut() {
                        if let Some(options) = m["options"].as_array_mut() {
                            options.retain(|o| o != "ro");
                        }
                    }
                }
            }
            "--memory" => {
                let size = flags.next().unwrap();
                let bytes = ch03_cgroups::parse_size(size).unwrap();
                c["linux"]["resources"]["memory"] = json!({"limit": bytes});
            }
            "--pids-limit" => {
                let n: i64 = flags.next().unwrap().parse().unwrap();
                c["linux"]["resources"]["pids"] = json!({"limit": n});
            }
            "-u" => {
                let user = flags.next().unwrap();
                let (uid, gid) = user.split_once(':').unwrap_or((user, user));
                let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());
                c["process"]["user"] = json!({"uid": uid, "gid": gid});
            }
            other => panic!("the runtime's attack chapter does not know the flag {other}"),
        }
    }
    c
}

fn chapter() -> Chapter {
    let binary = bin_path(env!("CARGO_BIN_EXE_berth-runtime"));
    let run_binary = binary.clone();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().join("runtime");
    let bundles = state.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    let exec_root = root.clone();
    // Whatever a test leaves (a run killed before its delete) goes when
    // the chapter does: the guard lives in the run closure.
    let cleanup = DeleteAll {
        binary: run_binary.clone(),
        root: root.clone(),
    };
    Chapter {
        name: "berth-runtime",
        binary,
        run: Box::new(move |rootfs: &Path, flags: &[&str], cmd: &[&str]| {
            let _ = &cleanup;
            // Unique across the tests, which run at once, each with its
            // own chapter.
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let id = format!("attack-{}-{n}", std::process::id());
            let bundle = bundles.join(&id);
            std::fs::create_dir_all(&bundle).unwrap();
            let c = config(&run_binary, rootfs, flags, cmd);
            std::fs::write(bundle.join("config.json"), c.to_string()).unwrap();
            // create, say it started (as the engines' first stderr line),
            // start, wait until stopped, delete: as conmon or a shim would.
            let mut r = command(Path::new("/bin/sh"));
            r.arg("-c").arg(RUN_SCRIPT).arg("sh");
            r.arg(&run_binary).arg(&root).arg(&bundle).arg(&id);
            r
        }),
        exec: Some(Box::new(move |binary: &Path, pid: i32, cmd: &[&str]| {
            // The container whose init is `pid` (from the started line).
            let id = container_of(&exec_root, pid);
            let mut c = command(binary);
            c.arg("--root")
                .arg(&exec_root)
                .arg("exec")
                .arg(id)
                .args(cmd);
            c
        })),
        limits: Some(Limits::standard()),
        default_capabilities: default_capabilities(),
        state: Some(state),
    }
}

/// `delete --force` of every container under `root`, when dropped.
struct DeleteAll {
    binary: PathBuf,
    root: PathBuf,
}

impl Drop for DeleteAll {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = command(&self.binary)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force"])
                .arg(entry.file_name())
                .output();
        }
    }
}

/// A runtime's life of one container, in the foreground: its output on
/// our stdout, the engines' "started" line on stderr first.
const RUN_SCRIPT: &str = r#"rt=$1 root=$2 bundle=$3 id=$4
trap '"$rt" --root "$root" delete --force "$id" >/dev/null 2>&1; exit 143' TERM INT HUP
set -e
"$rt" --root "$root" create --bundle "$bundle" --pid-file "$bundle/pid" "$id"
echo "berth-runtime: container $id started, pid $(cat "$bundle/pid")" >&2
"$rt" --root "$root" start "$id"
while ! "$rt" --root "$root" state "$id" | grep -q '"status": "stopped"'; do sleep 0.02; done
"$rt" --root "$root" delete "$id"
"#;

/// The id of the container in `root` whose init is `pid`.
fn container_of(root: &Path, pid: i32) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let state: PathBuf = entry.path().join("state.json");
            let Ok(text) = std::fs::read_to_string(state) else {
                continue;
            };
            let state: Value = serde_json::from_str(&text).unwrap_or_default();
            if state["initProcessPid"].as_i64() == Some(pid as i64) {
                return entry.file_name().to_string_lossy().into_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no container with init {pid} in {}",
            root.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

use berth_test_support::attacks;

#[test]
fn capabilities_are_the_default_set() {
    attacks::capabilities_are_the_default_set(&chapter());
}

#[test]
fn privileged_is_root_on_the_host() {
    attacks::privileged_is_root_on_the_host(&chapter());
}

#[test]
fn mounts_are_refused() {
    attacks::mounts_are_refused(&chapter());
}

#[test]
fn core_pattern_is_not_writable() {
    attacks::core_pattern_is_not_writable(&chapter());
}

#[test]
fn readonly_paths_cannot_be_written() {
    attacks::readonly_paths_cannot_be_written(&chapter());
}

#[test]
fn host_disk_is_out_of_reach() {
    attacks::host_disk_is_out_of_reach(&chapter());
}

#[test]
fn cgroup_limits_cannot_be_raised() {
    attacks::cgroup_limits_cannot_be_raised(&chapter());
}

#[test]
fn inherited_descriptors_reach_nothing() {
    attacks::inherited_descriptors_reach_nothing(&chapter());
}

#[test]
fn masked_paths_show_nothing() {
    attacks::masked_paths_show_nothing(&chapter());
}

/// CVE-2019-5736 through `exec` (`#!/proc/self/exe`): the runtime runs
/// from a read-only clone of itself, so the container's handle is useless.
/// (The attack's `run` variant targets an engine's own init as PID 1; a
/// runtime has none: its PID 1 is the user's program.)
#[test]
fn engine_binary_cannot_be_rewritten_through_exec() {
    attacks::engine_binary_cannot_be_rewritten_through_exec(&chapter());
}
