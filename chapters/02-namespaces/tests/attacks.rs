//! The cross-chapter attacks (tests/support's `attacks`) against chapter
//! 2's own `run` and `exec`: root in the container tries to reach the host.

use std::path::Path;

use berth_test_support::attacks::Chapter;
use berth_test_support::{bin_path, command};

fn chapter() -> Chapter {
    let binary = bin_path(env!("CARGO_BIN_EXE_ch02-namespaces"));
    let run_binary = binary.clone();
    Chapter {
        name: "ch02-namespaces",
        binary,
        run: Box::new(move |rootfs: &Path, flags: &[&str], cmd: &[&str]| {
            let mut c = command(&run_binary);
            c.arg("run").args(flags).arg(rootfs).args(cmd);
            c
        }),
        exec: Some(Box::new(|binary: &Path, pid: i32, cmd: &[&str]| {
            let mut c = command(binary);
            c.arg("exec").arg(pid.to_string()).args(cmd);
            c
        })),
        limits: None,
        default_capabilities: ch02_namespaces::capabilities::without_devices_cgroup().to_string(),
        state: None,
    }
}

berth_test_support::attack_tests!(chapter);
