//! The probe's output format, checked on the host (as root or not).

use std::process::{Command, Output, Stdio};

const PROBE: &str = env!("CARGO_BIN_EXE_berth-probe");

fn probe(args: &[&str]) -> Output {
    Command::new(PROBE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth-probe")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("probe output is UTF-8")
}

/// The values of the lines labelled `label`.
fn values<'a>(out: &'a str, label: &str) -> Vec<&'a str> {
    let prefix = format!("{label}: ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect()
}

#[test]
fn pid_is_the_childs_pid() {
    let child = Command::new(PROBE)
        .args(["pid", "ppid"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn berth-probe");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for berth-probe");
    assert!(output.status.success());
    let out = stdout(&output);
    assert_eq!(values(&out, "pid"), [pid.to_string()]);
    assert_eq!(values(&out, "ppid"), [std::process::id().to_string()]);
    // Facts print in the order asked for, nothing else.
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn uid_and_uid_map_match_the_host() {
    let output = probe(&["uid", "gid", "uid_map"]);
    assert!(output.status.success());
    let out = stdout(&output);
    let uid = nix::unistd::getuid();
    let euid = nix::unistd::geteuid();
    assert_eq!(values(&out, "uid"), [format!("{uid}/{euid}")]);
    assert_eq!(values(&out, "gid").len(), 1);
    // The map, whitespace normalised, as the kernel has it.
    let expected: Vec<String> = std::fs::read_to_string("/proc/self/uid_map")
        .expect("read uid_map")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(values(&out, "uid_map"), expected);
    // In the initial user namespace (not inside some other container) the
    // map is the identity over every id.
    let init_user_ns = std::fs::read_link("/proc/self/ns/user")
        .is_ok_and(|l| l.to_string_lossy() == "user:[4026531837]");
    if init_user_ns {
        assert_eq!(values(&out, "uid_map"), ["0 0 4294967295"]);
    }
}

#[test]
fn lists_interfaces_processes_namespaces() {
    let output = probe(&["interfaces", "processes", "ns", "zombies", "limits", "caps"]);
    assert!(output.status.success());
    let out = stdout(&output);
    let interfaces = values(&out, "interface");
    assert!(
        interfaces.iter().any(|i| i.starts_with("lo ")),
        "no lo in {interfaces:?}"
    );
    assert!(
        interfaces
            .iter()
            .all(|i| i.ends_with(" up") || i.ends_with(" down")),
        "{interfaces:?}"
    );

    let processes: Vec<u32> = values(&out, "processes")[0]
        .split(' ')
        .map(|p| p.parse().expect("numeric pid"))
        .collect();
    assert!(processes.is_sorted());
    assert!(processes.contains(&std::process::id()));
    assert_eq!(values(&out, "process_count"), [processes.len().to_string()]);

    let ns = values(&out, "ns");
    let names: Vec<&str> = ns.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]);
    let own_uts = std::fs::read_link("/proc/self/ns/uts").expect("readlink ns/uts");
    assert_eq!(
        format!("uts:[{}]", ns[6].strip_prefix("uts ").unwrap()),
        own_uts.to_string_lossy(),
        "the probe shares the test's UTS namespace"
    );

    assert_eq!(values(&out, "zombies").len(), 1);
    let limits = values(&out, "limit");
    assert!(limits[0].starts_with("nofile "), "{limits:?}");
    assert!(limits[1].starts_with("nproc "), "{limits:?}");
    let caps = values(&out, "caps");
    assert!(
        caps[0].starts_with("eff=") && caps[0].len() == 4 + 16,
        "{caps:?}"
    );
}

#[test]
fn mounts_cwd_env_and_read() {
    let dir = std::env::temp_dir();
    let output = Command::new(PROBE)
        .args(["mounts", "cwd", "env", "read", "/proc/self/stat", "read"])
        .arg("/nonexistent/berth-probe")
        .current_dir(&dir)
        .env_clear()
        .env("B_VAR", "2")
        .env("A_VAR", "1")
        .output()
        .expect("run berth-probe");
    assert!(output.status.success());
    let out = stdout(&output);
    let mounts = values(&out, "mount");
    assert!(
        mounts.iter().any(|m| m.starts_with("/proc proc ")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().all(|m| m.split(' ').count() == 3),
        "{mounts:?}"
    );
    let cwd = dir.canonicalize().expect("canonicalize temp dir");
    assert_eq!(values(&out, "cwd"), [cwd.to_string_lossy()]);
    assert_eq!(values(&out, "env"), ["A_VAR=1", "B_VAR=2"]);
    let read = values(&out, "read /proc/self/stat");
    assert!(read[0].starts_with("ok "), "{read:?}");
    assert_eq!(values(&out, "read /nonexistent/berth-probe"), ["ENOENT"]);
}

#[test]
fn hostname_matches_uname() {
    let output = probe(&["hostname"]);
    let host = nix::unistd::gethostname().expect("gethostname");
    assert_eq!(
        stdout(&output),
        format!("hostname: {}\n", host.to_string_lossy())
    );
}

#[test]
fn unknown_fact_is_a_usage_error() {
    let output = probe(&["pid", "no_such_fact"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "nothing printed before the check");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no_such_fact"), "{err}");
    assert!(err.contains("known facts: pid ppid"), "{err}");

    let output = probe(&["read"]);
    assert_eq!(output.status.code(), Some(2));
    let output = probe(&[]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn pty_opens_both_ends_of_a_new_terminal() {
    let output = probe(&["pty"]);
    let out = stdout(&output);
    let pts = values(&out, "pty");
    assert_eq!(pts.len(), 1, "{out}");
    assert!(pts[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn capabilities_no_new_privs_and_fds() {
    let output = probe(&["capabilities", "no_new_privs", "fds"]);
    assert!(output.status.success());
    let out = stdout(&output);
    let sets = values(&out, "capabilities");
    let labels: Vec<&str> = sets.iter().map(|s| s.split(' ').next().unwrap()).collect();
    assert_eq!(labels, ["bnd", "prm", "eff", "inh", "amb"]);
    // The decoded effective set matches CapEff.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    let bits = u64::from_str_radix(eff.trim(), 16).unwrap();
    let names = sets[2].strip_prefix("eff ").unwrap();
    let count = if names == "none" {
        0
    } else {
        names.split(',').count()
    };
    assert_eq!(count, bits.count_ones() as usize, "{out}");
    assert_eq!(values(&out, "no_new_privs"), ["0"]);
    // Whatever the test harness leaked to it (cargo's jobserver pipes,
    // say) shows too, after stdin, stdout and stderr; the listing's own
    // descriptor does not.
    let fds = values(&out, "fds");
    assert!(fds[0] == "0 1 2" || fds[0].starts_with("0 1 2 "), "{out}");
}

#[test]
fn write_opens_without_writing_and_mount_reports_errno() {
    let file = std::env::temp_dir().join(format!("berth-probe-write-{}", std::process::id()));
    std::fs::write(&file, "kept\n").unwrap();
    let output = Command::new(PROBE)
        .arg("write")
        .arg(&file)
        .args([
            "write",
            "/nonexistent/berth-probe",
            "mount",
            "/nonexistent/berth-probe",
        ])
        .output()
        .expect("run berth-probe");
    let out = stdout(&output);
    assert_eq!(
        values(&out, &format!("write {}", file.display())),
        ["ok"],
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "kept\n",
        "nothing written"
    );
    std::fs::remove_file(&file).unwrap();
    assert_eq!(values(&out, "write /nonexistent/berth-probe"), ["ENOENT"]);
    let mount = values(&out, "mount /nonexistent/berth-probe");
    assert!(mount == ["ENOENT"] || mount == ["EPERM"], "{out}");
}
