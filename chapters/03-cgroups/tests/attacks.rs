//! The cross-chapter attacks (tests/support's `attacks`) against chapter
//! 3's own `run` (with memory and pids limits) and `exec`.

use std::path::Path;

use berth_test_support::attacks::{Chapter, Limits};
use berth_test_support::{bin_path, command};

fn chapter() -> Chapter {
    let binary = bin_path(env!("CARGO_BIN_EXE_ch03-cgroups"));
    let run_binary = binary.clone();
    Chapter {
        name: "ch03-cgroups",
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
        limits: Some(Limits::standard()),
        // Docker's whole set: chapter 3's devices cgroup guards device nodes,
        // so CAP_MKNOD is back.
        default_capabilities: ch02_namespaces::capabilities::docker_default().to_string(),
        state: None,
    }
}

berth_test_support::attack_tests!(chapter);
