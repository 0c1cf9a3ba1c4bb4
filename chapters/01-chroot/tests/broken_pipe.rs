//! `ch01-chroot mkrootfs DIR | head -0`: when standard output's reader has
//! gone, the binary ends as coreutils do, killed by SIGPIPE without a word,
//! not with a panic about a broken pipe (see the `sigpipe` module).

use std::os::unix::process::ExitStatusExt;

use berth_test_support::{bin_path, command, run_into_closed_pipe};
use nix::sys::signal::Signal;

#[test]
fn a_closed_stdout_ends_the_binary_by_sigpipe_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin_path(env!("CARGO_BIN_EXE_ch01-chroot")));
    // mkrootfs runs without root and prints one line when done.
    cmd.arg("mkrootfs").arg(dir.path().join("rootfs"));
    let (status, stderr) = run_into_closed_pipe(cmd);
    assert_eq!(
        status.signal(),
        Some(Signal::SIGPIPE as i32),
        "{status}, stderr: {stderr}"
    );
    assert_eq!(stderr, "", "nothing on stderr");
}
