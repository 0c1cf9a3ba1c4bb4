//! The cross-chapter attacks (tests/support's `attacks`) against chapter
//! 4's own `run`: the rootfs is the container's one read-only layer, under
//! its writable layer. Chapter 4 has no `exec`.

use std::path::Path;

use berth_test_support::attacks::{Chapter, Limits};
use berth_test_support::{bin_path, command};

fn chapter() -> Chapter {
    let binary = bin_path(env!("CARGO_BIN_EXE_ch04-overlay"));
    let run_binary = binary.clone();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_path_buf();
    Chapter {
        name: "ch04-overlay",
        binary,
        run: Box::new(move |rootfs: &Path, flags: &[&str], cmd: &[&str]| {
            let name = ch02_namespaces::cli::random_id();
            let mut c = command(&run_binary);
            c.arg("--root").arg(&root);
            c.args(["run", "--rm", "--name", &name, "--layer"])
                .arg(rootfs);
            c.args(flags).args(cmd);
            c
        }),
        exec: None,
        limits: Some(Limits::standard()),
        default_capabilities: ch02_namespaces::capabilities::docker_default().to_string(),
        state: Some(state),
    }
}

berth_test_support::attack_tests!(chapter);
