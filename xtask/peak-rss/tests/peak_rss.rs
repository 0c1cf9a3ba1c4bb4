//! berth-peak-rss reports a command's own peak, whatever the size of the
//! process that starts it; a plain spawn and wait4 does not (the bug that
//! gave chroot(1), ch01-chroot and its dynamic build the same figure).

use std::process::Command;

/// This test process grows to 64 MiB resident before starting anything.
fn grow() -> Vec<u8> {
    let mut fat = vec![0u8; 64 << 20];
    // Touch every page, so it is resident, not only reserved.
    for page in fat.chunks_mut(4096) {
        page[0] = 1;
    }
    fat
}

/// `PEAK FLOOR` for `argv` run through berth-peak-rss.
fn through_tool(argv: &[&str]) -> (u64, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_berth-peak-rss"))
        .arg(out.path())
        .args(argv)
        .status()
        .unwrap();
    assert!(status.success(), "{argv:?}: {status}");
    let text = std::fs::read_to_string(out.path()).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

#[test]
fn the_figure_is_the_commands_own() {
    let fat = grow();
    // /bin/true is small: far below the 64 MiB of the process starting it.
    let (small, floor) = through_tool(&["/bin/true"]);
    assert!(small < 16 << 10, "true: {small} KiB (floor {floor} KiB)");
    assert!(floor < 16 << 10, "the tool's own peak: {floor} KiB");
    // dd with a 40 MiB buffer: at least 40 MiB, told apart from true.
    let (big, _) = through_tool(&["dd", "if=/dev/zero", "of=/dev/null", "bs=40M", "count=1"]);
    assert!(big >= 40 << 10, "dd bs=40M: {big} KiB");
    // Started by this process directly, true "peaks" at this process's size.
    // Reaped by wait4 below, which std's Child::wait cannot replace (no rusage).
    #[allow(clippy::zombie_processes)]
    let child = Command::new("/bin/true").spawn().unwrap();
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers for the call; our own child, not yet reaped.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        usage.ru_maxrss >= 64 << 10,
        "a direct child's figure includes its parent's: {} KiB",
        usage.ru_maxrss
    );
    assert!(fat.iter().step_by(4096).all(|b| *b == 1));
}

#[test]
fn exit_status_is_passed_on() {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_berth-peak-rss"))
        .arg(out.path())
        .args(["sh", "-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}
