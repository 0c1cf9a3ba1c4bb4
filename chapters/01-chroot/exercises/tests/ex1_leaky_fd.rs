//! Check for exercise 1: does the leaked fd get the process out of the chroot?

use std::os::fd::AsFd;
use std::path::Path;

use berth_test_support::{require_root, rootfs};
use ch01_chroot::{Process, run_with};
use ch01_exercises::{checking_mine, ex1_leaky_fd, solutions};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

#[test]
fn ex1_leaky_fd() {
    if !require_root("ex1_leaky_fd") {
        return;
    }
    let escape = if checking_mine() {
        ex1_leaky_fd::escape_through_leaked_fd
    } else {
        solutions::ex1_leaky_fd::escape_through_leaked_fd
    };

    // A host directory the container must never reach, with a secret in it.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "host only\n").unwrap();
    let out = host.path().join("out");

    // The careless engine: a directory fd opened WITHOUT O_CLOEXEC.
    let leaked = open(
        host.path(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();

    // Once out, the container's shell copies the secret to a host path.
    let script = format!("cat {}/secret > {}", host.path().display(), out.display());
    let process = Process::new(vec!["/bin/sh".into(), "-c".into(), script], "berth", None);
    let code = run_with(rootfs(), &process, &|| {
        escape(leaked.as_fd()).map_err(|errno| ("escape_through_leaked_fd", errno))
    });
    match code {
        Ok(0) => {}
        Ok(125) => panic!(
            "the container never started (exit 125): escape_through_leaked_fd panicked \
             (still a todo!?) — see its message above"
        ),
        Ok(code) => panic!(
            "the shell could not read {}/secret (exit {code}): the process is still inside the chroot",
            host.path().display()
        ),
        Err(err) => panic!("your escape_through_leaked_fd failed: {err}"),
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "host only\n");
    assert!(!Path::new(&rootfs().join("secret")).exists());
}
