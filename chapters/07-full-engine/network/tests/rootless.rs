//! Rootless networking with pasta, as a normal user, in a throwaway test
//! host: the user's container (a user and network namespace of its own)
//! gets outbound traffic and published ports through pasta, which the
//! library starts and stops as that user.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_test_support::test_host::in_test_host;
use ch07_network::rootless::PASTA_DNS;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const TOOLS: &[&str] = &[
    "busybox", "nsenter", "ip", "timeout", "unshare", "runuser", "pasta", "mount",
];

/// The normal user the test runs the rootless side as: CI's `berth-ci`,
/// made as .ci/run makes it if this machine has none yet.
const USER: &str = "berth-ci";

fn ensure_user() -> (u32, u32) {
    if !run(Command::new("id").arg(USER)).status.success() {
        sh(&["useradd", "--create-home", "--shell", "/bin/bash", USER]);
    }
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(&run(Command::new("id").args([flag, USER])).stdout)
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

fn as_user(args: &[&str]) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", USER, "--"]).args(args);
    cmd
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rootless_container_gets_outbound_and_published_ports_through_pasta() {
    let test = "a_rootless_container_gets_outbound_and_published_ports_through_pasta";
    if !in_test_host(test) || !have_tools(test, TOOLS) {
        return;
    }
    let (uid, gid) = ensure_user();
    // pasta opens /dev/net/tun as the user: a machine without udev may
    // leave it root's only (start_pasta then says so; checked below).
    let tun = ch07_network::rootless::TUN_DEVICE;
    if !run(&mut as_user(&["test", "-r", tun, "-a", "-w", tun]))
        .status
        .success()
    {
        berth_test_support::skip(
            test,
            &format!("{tun} is not open to users (as root: chmod 0666 {tun}, as udev does)"),
        );
        return;
    }
    let mut host = Host::new();
    host.uplink();
    // pasta reads the host's resolv.conf: in this test host (a private
    // mount namespace) it names the outside's DNS, not the machine's.
    sh(&[
        "mount",
        "--bind",
        host.networks.host().resolv.path.to_str().unwrap(),
        "/etc/resolv.conf",
    ]);

    let dir: PathBuf = host.tmp.path().join("user");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "rootless says hello\n").unwrap();
    for path in [
        host.tmp.path(),
        &dir,
        &dir.join("www"),
        &dir.join("www/index.html"),
    ] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    // The user's container: a user namespace (root inside, the user
    // outside) and a network namespace, running busybox httpd.
    let script = format!(
        "ip link set lo up && echo $$ > {0}/pid && exec busybox httpd -f -p 80 -h {0}/www",
        dir.display()
    );
    let container = as_user(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "sh",
        "-c",
        &script,
    ])
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    host.keep(container);
    let pid: i32 = wait_for_file(&dir.join("pid")).trim().parse().unwrap();
    let netns = format!("/proc/{pid}/ns/net");
    let userns = format!("/proc/{pid}/ns/user");

    // pasta, started by the library as the user.
    let pidfile = dir.join("pasta.pid");
    let out = run(&mut as_user(&[
        bin().to_str().unwrap(),
        "pasta-start",
        "--netns",
        &netns,
        "--userns",
        &userns,
        "--pidfile",
        pidfile.to_str().unwrap(),
        "-p",
        "8080:80",
        "-p",
        "80",
    ]));
    assert!(
        out.status.success(),
        "pasta-start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let pasta_pid: i32 = stdout.lines().next().unwrap().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pasta_pid}/status")).unwrap();
    let owner = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        owner.split_whitespace().nth(1) == Some(&uid.to_string()),
        "pasta runs as {owner}"
    );
    let auto: u16 = stdout
        .lines()
        .find(|l| !l.ends_with(":8080") && l.contains("->"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap()
        .parse()
        .unwrap();

    // -p: on the host's loopback and on its address, and from outside.
    for url in [
        "http://127.0.0.1:8080/".to_string(),
        format!("http://{HOST_UPLINK}:8080/"),
        format!("http://127.0.0.1:{auto}/"),
    ] {
        // Up to three tries: pasta's path for the host's own non-loopback
        // address goes through the container's tap device, and on a loaded
        // machine its first connection was seen to go unanswered for 5 s.
        let got = (0..3)
            .map(|_| wget(None, &url))
            .find(|r| r.is_ok())
            .unwrap_or_else(|| wget(None, &url));
        assert_eq!(got.as_deref(), Ok("rootless says hello\n"), "{url}");
    }
    let outside = host.outside.clone().unwrap();
    assert_eq!(
        wget(Some(&outside), &format!("http://{HOST_UPLINK}:8080/")).as_deref(),
        Ok("rootless says hello\n")
    );
    // Outbound: the outside host sees the host's address.
    assert_eq!(
        wget(Some(Path::new(&netns)), &format!("http://{FAR_AWAY}/")).as_deref(),
        Ok("outside says hello\n")
    );
    let log = host.outside_log();
    assert!(log.contains(&format!("{HOST_UPLINK}")), "{log}");
    // DNS through pasta's forwarder.
    assert_eq!(
        dns_query(
            Path::new(&netns),
            PASTA_DNS,
            "outside.example.",
            RecordType::A
        ),
        Some((ResponseCode::NoError, vec![FAR_AWAY]))
    );

    // Stopped with the container: the process and its ports go.
    let out = run(&mut as_user(&[
        bin().to_str().unwrap(),
        "pasta-stop",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "pasta-stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !Path::new(&format!("/proc/{pasta_pid}")).exists() || {
            let stat =
                std::fs::read_to_string(format!("/proc/{pasta_pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        }
    );
    assert!(!pidfile.exists());
    assert!(wget(None, "http://127.0.0.1:8080/").is_err());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
