//! `ch05-images images | head`: when standard output's reader has gone, the
//! binary ends as coreutils do, killed by SIGPIPE without a word, not with a
//! panic about a broken pipe (chapter 1's `sigpipe` module).

use std::os::unix::process::ExitStatusExt;

use berth_test_support::{bin_path, command, run_into_closed_pipe};
use nix::sys::signal::Signal;

#[test]
fn images_into_a_closed_pipe_ends_quietly() {
    let state = tempfile::tempdir().unwrap();
    // `images` refuses a root that holds no store (a mistyped --root).
    ch05_images::store::Store::open(state.path()).unwrap();
    let mut cmd = command(&bin_path(env!("CARGO_BIN_EXE_ch05-images")));
    // An empty store still prints the table's header.
    cmd.arg("--root").arg(state.path()).arg("images");
    let (status, stderr) = run_into_closed_pipe(cmd);
    assert_eq!(
        status.signal(),
        Some(Signal::SIGPIPE as i32),
        "{status}, stderr: {stderr}"
    );
    assert_eq!(stderr, "", "nothing on stderr");
}
