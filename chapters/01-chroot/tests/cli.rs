//! Chapter 1 end to end: the `ch01-chroot` binary against the real kernel and
//! the mkrootfs rootfs. The transcripts are the book's sample output.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use berth_test_support::{
    Run, TRAP_TERM_SCRIPT, command, require_root, rootfs, sigterm_round_trip, snapshot_settings,
};

const BIN: &str = env!("CARGO_BIN_EXE_ch01-chroot");

fn ch01(args: &[&str]) -> Run {
    Run::new(Path::new(BIN), args)
}

/// `run ROOTFS ARGS...` on the shared rootfs.
fn run_in_rootfs(args: &[&str]) -> Run {
    let mut all = vec!["run", rootfs().to_str().unwrap()];
    all.extend(args);
    ch01(&all)
}

macro_rules! snapshot {
    ($name:expr, $run:expr) => {
        snapshot_settings().bind(|| insta::assert_snapshot!($name, $run.transcript()))
    };
}

#[test]
fn commands_see_the_rootfs_as_root() {
    if !require_root("commands_see_the_rootfs_as_root") {
        return;
    }
    let ls = run_in_rootfs(&["ls", "/"]);
    assert_eq!(ls.code(), Some(0), "{}", ls.transcript());
    assert!(
        ls.stdout().lines().any(|l| l == "etc"),
        "{}",
        ls.transcript()
    );
    // The listing the book shows is the busybox rootfs's.
    if berth_test_support::host_has_busybox() {
        snapshot!("ch01_run_ls_root", ls);
    } else {
        berth_test_support::skip(
            "ch01_run_ls_root snapshot",
            "the book's listing is of a busybox rootfs: apt-get install busybox-static",
        );
    }

    let hostname = run_in_rootfs(&["cat", "/etc/hostname"]);
    assert_eq!(
        hostname.stdout(),
        "berth\n",
        "the rootfs's file, not the host's"
    );
    snapshot!("ch01_run_cat_hostname", hostname);

    let pwd = run_in_rootfs(&["pwd"]);
    assert_eq!(pwd.stdout(), "/\n", "chroot_into must chdir to the new /");
    snapshot!("ch01_run_pwd", pwd);

    snapshot!(
        "ch01_run_echo_path",
        run_in_rootfs(&["sh", "-c", "echo $PATH"])
    );
    snapshot!("ch01_run_env", run_in_rootfs(&["env"]));
}

#[test]
fn exit_statuses_follow_the_shell_rules() {
    if !require_root("exit_statuses_follow_the_shell_rules") {
        return;
    }
    let cases: [(&str, &[&str], i32); 4] = [
        ("ch01_exit_zero", &["true"], 0),
        ("ch01_exit_nonzero", &["sh", "-c", "exit 3"], 3),
        ("ch01_exit_signal", &["sh", "-c", "kill -KILL $$"], 128 + 9),
        ("ch01_exit_not_executable", &["/etc/passwd"], 126),
    ];
    for (name, args, code) in cases {
        let run = run_in_rootfs(args);
        assert_eq!(run.code(), Some(code), "{}", run.transcript());
        snapshot!(name, run);
    }
    let not_found = run_in_rootfs(&["no-such-command"]);
    assert_eq!(not_found.code(), Some(127), "{}", not_found.transcript());
    snapshot!("ch01_exit_not_found", not_found);
}

#[test]
fn a_missing_loader_is_named_as_such() {
    if !require_root("a_missing_loader_is_named_as_such") {
        return;
    }
    // A dynamically linked host program in a rootfs that lacks its loader:
    // execve says ENOENT although the file is there.
    let (_tmp, rootfs) = berth_test_support::fresh_rootfs(ch01_chroot::rootfs::Source::Auto);
    let host_true = std::fs::canonicalize("/bin/true").unwrap();
    let needs = ch01_chroot::elf::read_needs(Path::new("/"), host_true.to_str().unwrap()).unwrap();
    assert!(
        !ch01_chroot::elf::is_static(&needs),
        "host /bin/true is dynamic"
    );
    std::fs::copy(&host_true, rootfs.join("host-true")).unwrap();
    if rootfs.join("lib64").exists() {
        return; // a host-made rootfs has the loader: nothing to show
    }
    let run = ch01(&["run", rootfs.to_str().unwrap(), "/host-true"]);
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert!(
        run.stderr().contains("/host-true: exists in"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("interpreter"), "{}", run.stderr());
}

#[test]
fn a_bad_rootfs_is_refused_before_anything_runs() {
    let missing = ch01(&["run", "/nonexistent/rootfs", "ls"]);
    assert_eq!(missing.code(), Some(125));
    snapshot!("ch01_error_rootfs_missing", missing);

    let file = ch01(&["run", "/etc/hostname", "ls"]);
    assert_eq!(file.code(), Some(125));
    snapshot!("ch01_error_rootfs_not_a_directory", file);
}

#[test]
fn without_cap_sys_chroot_the_error_says_run_as_root() {
    // As root, drop to nobody for this one run; as a normal user, we already
    // are one. Either way chroot(2) fails with EPERM.
    let mut cmd = command(Path::new(BIN));
    cmd.args(["run", rootfs().to_str().unwrap(), "ls"]);
    if nix::unistd::Uid::effective().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(125), "{}", run.transcript());
    assert!(run.stderr().contains("CAP_SYS_CHROOT"), "{}", run.stderr());
    snapshot!("ch01_error_not_root", run);
}

#[test]
fn stdin_and_stdout_pass_straight_through() {
    if !require_root("stdin_and_stdout_pass_straight_through") {
        return;
    }
    // An "interactive" shell fed from a pipe: it reads commands from stdin.
    let mut cmd = command(Path::new(BIN));
    cmd.args(["run", rootfs().to_str().unwrap(), "/bin/sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo $((6 * 7)) from $(cat /etc/hostname)\nexit 5\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42 from berth\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn a_signal_sent_to_the_engine_reaches_the_container() {
    if !require_root("a_signal_sent_to_the_engine_reaches_the_container") {
        return;
    }
    let mut engine = command(Path::new(BIN));
    engine.args([
        "run",
        rootfs().to_str().unwrap(),
        "sh",
        "-c",
        TRAP_TERM_SCRIPT,
    ]);
    // Signal the engine, not the shell: the engine must pass it on.
    let (after, code) = sigterm_round_trip(engine);
    assert_eq!(after, "got TERM\n");
    assert_eq!(
        code,
        Some(7),
        "the engine exits with the container's status"
    );
}

#[test]
fn the_escape_demo_reaches_a_host_file_that_run_cannot() {
    if !require_root("the_escape_demo_reaches_a_host_file_that_run_cannot") {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("host-secret");
    std::fs::write(&marker, "only on the host\n").unwrap();
    let marker = marker.to_str().unwrap();
    assert!(!rootfs().join(marker.trim_start_matches('/')).exists());

    let inside = run_in_rootfs(&["cat", marker]);
    assert_ne!(
        inside.code(),
        Some(0),
        "run must not see the host file: {}",
        inside.transcript()
    );

    let escaped = ch01(&["escape", rootfs().to_str().unwrap(), "cat", marker]);
    assert_eq!(escaped.code(), Some(0), "{}", escaped.transcript());
    assert_eq!(escaped.stdout(), "only on the host\n");
}

#[test]
fn no_descriptor_above_2_reaches_the_command() {
    if !require_root("no_descriptor_above_2_reaches_the_command") {
        return;
    }
    // The engine's parent left a host file open at fd 7 (`exec 7<file`).
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("host-secret");
    std::fs::write(&secret, "only on the host\n").unwrap();
    let mut cmd = command(Path::new(BIN));
    cmd.args(["run", rootfs().to_str().unwrap(), "sh", "-c"])
        .arg("cat <&7 && echo inherited");
    berth_test_support::leak_fd(&mut cmd, std::fs::File::open(&secret).unwrap());
    let run = Run::capture(cmd);
    assert!(
        !run.stdout().contains("only on the host"),
        "the command read a descriptor it inherited: {}",
        run.transcript()
    );
    assert_ne!(run.code(), Some(0), "{}", run.transcript());
    // fds 0, 1 and 2 do pass: the same shell writes to its stdout.
    let echo = run_in_rootfs(&["sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(
        (echo.stdout(), echo.stderr()),
        ("out\n".into(), "err\n".into())
    );
}

#[test]
fn mkrootfs_refuses_a_non_empty_directory_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep-me"), "data").unwrap();
    let run = ch01(&["mkrootfs", dir.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(125));
    snapshot!("ch01_error_mkrootfs_not_empty", run);
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, ["keep-me"]);
    assert_eq!(std::fs::read(dir.path().join("keep-me")).unwrap(), b"data");
}

#[test]
fn every_command_has_help() {
    for (name, args) in [
        ("ch01_help", &["--help"][..]),
        ("ch01_help_run", &["run", "--help"]),
        ("ch01_help_mkrootfs", &["mkrootfs", "--help"]),
        ("ch01_help_escape", &["escape", "--help"]),
    ] {
        let run = ch01(args);
        assert_eq!(run.code(), Some(0));
        snapshot!(name, run);
    }
    let usage = ch01(&["run"]);
    assert_eq!(
        usage.code(),
        Some(2),
        "a usage error exits 2, like clap and docker"
    );
}
