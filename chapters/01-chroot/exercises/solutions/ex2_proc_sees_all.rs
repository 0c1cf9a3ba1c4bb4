//! Exercise 2, reference solution: what a chrooted process sees in /proc.

use std::io::{Read, Write};
use std::path::Path;

use ch01_chroot::chroot::chroot_into;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe};

/// The PIDs a process inside a chroot of `rootfs` sees in `/proc`.
pub fn pids_visible_in_chroot(rootfs: &Path) -> Result<Vec<i32>, Errno> {
    let rootfs_c =
        std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let (read_end, write_end) = pipe()?;
    // SAFETY: the check calls this from a test binary whose other threads
    // are idle, so the child may allocate (read_dir, the output buffer).
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(read_end);
            let code = match list_proc_inside(&rootfs_c) {
                Ok(pids) => {
                    let mut out = std::fs::File::from(write_end);
                    let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
                    if out.write_all(text.as_bytes()).is_ok() {
                        0
                    } else {
                        1
                    }
                }
                Err(errno) => errno as i32,
            };
            // SAFETY: leave the child at once, without running the parent's
            // atexit handlers or the test harness's destructors.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            let read = std::fs::File::from(read_end).read_to_string(&mut text);
            match waitpid(child, None)? {
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, errno) => return Err(Errno::from_raw(errno)),
                _ => return Err(Errno::ECHILD),
            }
            read.map_err(|_| Errno::EIO)?;
            Ok(text.lines().filter_map(|l| l.parse().ok()).collect())
        }
    }
}

/// In the child: chroot, mount proc, list it, unmount.
fn list_proc_inside(rootfs: &std::ffi::CStr) -> Result<Vec<i32>, Errno> {
    chroot_into(rootfs).map_err(|(_, e)| e)?;
    // Without a mount namespace this mount appears on the host too, at
    // ROOTFS/proc: it must be undone before we go.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    let pids = std::fs::read_dir("/proc").map(|entries| {
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    });
    umount2("/proc", MntFlags::empty())?;
    pids.map_err(|_| Errno::EIO)
}
