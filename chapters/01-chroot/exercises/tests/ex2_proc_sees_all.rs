//! Check for exercise 2: does a chrooted process see the host's processes?

use berth_test_support::{fresh_rootfs, require_root};
use ch01_chroot::rootfs::Source;
use ch01_exercises::{checking_mine, ex2_proc_sees_all, solutions};
use nix::mount::{MntFlags, umount2};

/// If a /proc mount is left behind, remove it before the temp dir goes.
struct UnmountOnDrop(std::path::PathBuf);
impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        while umount2(&self.0, MntFlags::MNT_DETACH).is_ok() {}
    }
}

fn is_mount_point(path: &std::path::Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(path))
}

#[test]
fn ex2_proc_sees_all() {
    if !require_root("ex2_proc_sees_all") {
        return;
    }
    let pids_visible = if checking_mine() {
        ex2_proc_sees_all::pids_visible_in_chroot
    } else {
        solutions::ex2_proc_sees_all::pids_visible_in_chroot
    };
    let (_tmp, rootfs) = fresh_rootfs(Source::Auto);
    let proc_dir = std::fs::canonicalize(rootfs.join("proc")).unwrap();
    let _cleanup = UnmountOnDrop(proc_dir.clone());

    let pids = pids_visible(&rootfs).expect("pids_visible_in_chroot failed");

    assert!(
        pids.contains(&1),
        "the host's init (PID 1) is visible: {pids:?}"
    );
    let me = std::process::id() as i32;
    assert!(
        pids.contains(&me),
        "this check's own host PID {me} is visible: {pids:?}"
    );
    assert!(
        !is_mount_point(&proc_dir),
        "{} is still mounted: unmount /proc before the child exits",
        proc_dir.display()
    );
}
