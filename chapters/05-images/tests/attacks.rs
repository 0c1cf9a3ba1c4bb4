//! The cross-chapter attacks (tests/support's `attacks`) against chapter
//! 5's own `run`: each rootfs is imported as an image first, then run from
//! the store. Chapter 5 has no `exec`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_test_support::attacks::{Chapter, Limits};
use berth_test_support::{Run, bin_path, command};

fn chapter() -> Chapter {
    let binary = bin_path(env!("CARGO_BIN_EXE_ch05-images"));
    let run_binary = binary.clone();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_path_buf();
    let images = AtomicUsize::new(0);
    Chapter {
        name: "ch05-images",
        binary,
        run: Box::new(move |rootfs: &Path, flags: &[&str], cmd: &[&str]| {
            let image = format!("berth/attack:{}", images.fetch_add(1, Ordering::SeqCst));
            let root_arg = root.to_str().unwrap();
            let import = Run::new(
                &run_binary,
                [
                    "--root",
                    root_arg,
                    "import",
                    rootfs.to_str().unwrap(),
                    &image,
                ],
            );
            assert_eq!(import.code(), Some(0), "{}", import.transcript());
            let mut c = command(&run_binary);
            c.args(["--root", root_arg, "run", "--rm"]);
            c.args(flags).arg(&image).args(cmd);
            c
        }),
        exec: None,
        limits: Some(Limits::standard()),
        default_capabilities: ch02_namespaces::capabilities::docker_default().to_string(),
        state: Some(state),
    }
}

berth_test_support::attack_tests!(chapter);
