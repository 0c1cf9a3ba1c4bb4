//! The engine run by a normal user: its own store, a user namespace per
//! container in which the user's own ids are root's, layers copied (vfs)
//! because a user cannot mount overlay in the host's namespace, and plain
//! refusals for what needs root (a bridge, limits on a cgroup v1 host,
//! commit without an upper directory).
//!
//! As root, the engine is run as an unprivileged user (`berth-ci` where it
//! exists, as in CI, else `nobody`); as a normal user, as that user.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_test_support::{Run, command, rootfs};
use common::berth_bin;
use nix::unistd::{Gid, Uid, User};

/// Who runs the engine, and where its roots are.
struct Rootless {
    uid: Uid,
    gid: Gid,
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Rootless {
    fn new() -> Rootless {
        let (uid, gid) = if Uid::effective().is_root() {
            let user = User::from_name("berth-ci")
                .ok()
                .flatten()
                .or_else(|| User::from_name("nobody").ok().flatten())
                .expect("a user berth-ci or nobody");
            (user.uid, user.gid)
        } else {
            (Uid::effective(), Gid::effective())
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        // The user must be able to reach its home through the temp dir.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        nix::unistd::chown(&home, Some(uid), Some(gid)).unwrap();
        Rootless {
            uid,
            gid,
            _tmp: tmp,
            home,
        }
    }

    /// `berth ARGS` as the user, with roots in its home.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = command(&berth_bin());
        cmd.env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .arg("--root")
            .arg(self.home.join("root"))
            .arg("--run-root")
            .arg(self.home.join("run"))
            .args(args);
        if Uid::effective().is_root() {
            // std drops root's supplementary groups when it sets the uid.
            cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
        }
        cmd
    }

    fn berth(&self, args: &[&str]) -> Run {
        Run::capture(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.berth(args);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run.stdout()
    }

    /// The test rootfs, imported as `IMAGE` by the user.
    fn import(&self) {
        // As root the shared test rootfs; as a user, one of its own (the
        // shared one, made by root, may hold files only root can read).
        let own;
        let dir = if Uid::effective().is_root() {
            rootfs()
        } else {
            own = self.home.join("rootfs");
            let source = ch01_chroot::rootfs::Source::Auto;
            ch01_chroot::rootfs::mkrootfs(&own, source, Path::new("/")).expect("mkrootfs");
            &own
        };
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", dir).expect("tar the rootfs");
        let bytes = tar.into_inner().unwrap();
        let mut cmd = self.cmd(&["import", "-", IMAGE]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("berth import");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn containers(&self) -> usize {
        std::fs::read_dir(self.home.join("root/containers")).map_or(0, |d| d.count())
    }
}

const IMAGE: &str = "rootless:1";

fn have_user_namespaces(test: &str) -> bool {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        berth_test_support::skip(test, "user namespaces are disabled on this host");
        return false;
    }
    true
}

#[test]
fn a_normal_users_containers_run_as_root_of_their_own_user_namespace() {
    if !have_user_namespaces("rootless::user_namespace") {
        return;
    }
    let user = Rootless::new();
    user.import();
    // The container's root is the user: uid 0 inside, mapped to the
    // user's uid, one id only.
    let out = user.ok(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; hostname",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        map,
        ["0", &user.uid.to_string(), "1"],
        "uid_map of a rootless container: {out}"
    );
    // That root is no root on the host: a root-owned host file bound in
    // stays unwritable (the attack a user namespace exists to stop).
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("owned-by-root");
    std::fs::write(&file, "host\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let volume = format!("{}:/host-file", file.display());
    let run = user.berth(&[
        "run",
        "--rm",
        "-v",
        &volume,
        IMAGE,
        "sh",
        "-c",
        "echo pwned > /host-file && echo WROTE",
    ]);
    if Uid::effective().is_root() {
        // The container ran (the bind was made) and its root was refused.
        assert!(
            run.stderr().contains("Permission denied"),
            "{}",
            run.transcript()
        );
        assert!(!run.stdout().contains("WROTE"), "{}", run.transcript());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "host\n");
    }
    // Nothing left of the --rm containers.
    assert_eq!(user.containers(), 0);
}

#[test]
fn a_normal_users_detached_container_lives_and_goes_without_leftovers() {
    if !have_user_namespaces("rootless::detached") {
        return;
    }
    let user = Rootless::new();
    user.import();
    let id = user
        .ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            IMAGE,
            "sh",
            "-c",
            "echo started; sleep 60",
        ])
        .trim()
        .to_string();
    assert_eq!(user.ok(&["exec", "bg", "id", "-u"]).trim(), "0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !user.ok(&["logs", "bg"]).contains("started") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output in the logs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(user.ok(&["ps", "-q", "--no-trunc"]).contains(&id));
    user.ok(&["rm", "-f", "bg"]);
    assert_eq!(user.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(user.containers(), 0);
    // No monitor of this engine left.
    let run_root = user.home.join("run");
    assert!(
        common::monitors_of(&run_root).is_empty(),
        "monitors left under {}",
        run_root.display()
    );
}

#[test]
fn what_needs_root_is_refused_in_plain_words_and_leaves_nothing() {
    if !have_user_namespaces("rootless::refusals") {
        return;
    }
    let user = Rootless::new();
    user.import();
    // A bridge needs root.
    let run = user.berth(&["run", "--rm", "--network", "bridge", IMAGE, "true"]);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
    assert!(run.stderr().contains("need root"), "{}", run.transcript());
    assert_eq!(user.containers(), 0, "run --rm left its container");
    // Limits need a cgroup the user may write: only v2 delegates one.
    let v1 = ch03_cgroups::detect::detect(Path::new("/proc")).is_ok_and(|l| l.version() == 1);
    if v1 {
        let run = user.berth(&["run", "--rm", "--memory", "64m", IMAGE, "true"]);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(
            run.stderr().contains("cannot have limits"),
            "{}",
            run.transcript()
        );
        assert_eq!(user.containers(), 0, "run --rm left its container");
    }
    // commit needs overlay's upper directory.
    user.ok(&["create", "--name", "cc", IMAGE, "true"]);
    let run = user.berth(&["commit", "cc", "committed:1"]);
    assert_ne!(run.code(), Some(0), "{}", run.transcript());
    assert!(run.stderr().contains("overlay"), "{}", run.transcript());
    assert!(
        !user.ok(&["images"]).contains("committed"),
        "a refused commit made an image"
    );
    user.ok(&["rm", "cc"]);
    assert_eq!(user.containers(), 0);
}
