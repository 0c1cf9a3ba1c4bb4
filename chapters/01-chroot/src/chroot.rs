//! The confinement step of this chapter: change the process's root directory.
//!
//! Kernel feature: every process has a *root directory*, the place where path
//! lookup starts for absolute paths and where `..` stops climbing.
//! `chroot(2)` changes it for the calling process and its future children.
//! It needs `CAP_SYS_CHROOT`, and it changes nothing else: not the current
//! directory, not the process list, not the network, not the hostname.
//!
//! Man pages: chroot(2), chdir(2), path_resolution(7).

use std::ffi::CStr;

use nix::errno::Errno;
use nix::unistd::{chdir, chroot};

/// Make `rootfs` the process's `/`, then step into it.
///
/// Returns the name of the step that failed with its errno, because this runs
/// in a freshly forked child that reports errors over the start pipe.
// ANCHOR: chroot_into
pub fn chroot_into(rootfs: &CStr) -> Result<(), (&'static str, Errno)> {
    // Step 1: from now on, "/" means `rootfs` for this process.
    chroot(rootfs).map_err(|e| ("chroot", e))?;
    // Step 2: chroot(2) does not move the current directory. Left alone, the
    // process would still sit in a host directory, outside its new root — the
    // very hole the escape demo (escape.rs) climbs through.
    chdir("/").map_err(|e| ("chdir /", e))?;
    Ok(())
}
// ANCHOR_END: chroot_into
