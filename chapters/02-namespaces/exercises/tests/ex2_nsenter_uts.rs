//! Check for exercise 2: join a running container's UTS namespace.

use std::sync::mpsc;

use berth_test_support::{require_root, rootfs};
use ch01_chroot::Process;
use ch02_exercises::{checking_mine, ex2_nsenter_uts, solutions};
use ch02_namespaces::container::{ContainerConfig, Hooks, run_container_with};
use ch02_namespaces::namespaces::parse_list;

#[test]
fn ex2_nsenter_uts() {
    if !require_root("ex2_nsenter_uts") {
        return;
    }
    let f = if checking_mine() {
        ex2_nsenter_uts::hostname_of
    } else {
        solutions::ex2_nsenter_uts::hostname_of
    };
    // A container that sleeps while the check looks at it.
    let config = ContainerConfig {
        rootfs: rootfs().to_path_buf(),
        process: Process::new(vec!["sleep".into(), "5".into()], "quiz", None),
        namespaces: parse_list("mnt,uts,pid").unwrap(),
        hostname: "quiz".into(),
        uid_mappings: vec![],
        gid_mappings: vec![],
        deny_setgroups: false,
        init: true,
        security: Default::default(),
        mounts: None,
        readonly_root: false,
        no_pivot: false,
        join: Vec::new(),
        gate: None,
        preserve_fds: 0,
    };
    let (tx, rx) = mpsc::channel();
    let container = std::thread::spawn(move || {
        let on_start = move |pid| tx.send(pid).unwrap();
        let hooks = Hooks {
            on_start: &on_start,
            ..Hooks::default()
        };
        run_container_with(&config, &hooks)
    });
    let pid = rx.recv().unwrap();
    // The container is set up (hostname included) once init has started
    // the command: wait for init's first child to appear.
    let children = format!("/proc/{pid}/task/{pid}/children");
    for _ in 0..1000 {
        if std::fs::read_to_string(&children).is_ok_and(|c| !c.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let seen = f(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = container.join();
    assert_eq!(seen.expect("hostname_of failed").as_str(), "quiz");
}
