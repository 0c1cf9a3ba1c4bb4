//! Exercise 1, reference solution.

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::utsname::uname;
use nix::unistd::sethostname;

/// The hostname a child sees after `unshare(CLONE_NEWUTS)` and `sethostname(name)`.
pub fn hostname_in_new_uts(name: &str) -> Result<String, Errno> {
    super::in_child(|| {
        // unshare(2) moves the calling process itself into a new namespace;
        // only this child is affected, and the namespace dies with it.
        unshare(CloneFlags::CLONE_NEWUTS)?;
        sethostname(name)?;
        Ok(uname()?.nodename().to_string_lossy().into_owned())
    })
}
