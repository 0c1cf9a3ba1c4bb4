//! Only standard input, output and error reach the command.
//!
//! Kernel feature: a process inherits every open file descriptor of its
//! parent, across `fork(2)` and across `execve(2)`, unless the descriptor is
//! marked close-on-exec (`FD_CLOEXEC`). A descriptor is a capability: one that
//! names a host directory lets its holder open anything below it, chroot or
//! not (`openat(2)`, `fchdir(2)`, or simply `/proc/self/fd/N/...`). The engine
//! opens its own files with `O_CLOEXEC`, but it cannot vouch for what *its*
//! parent left open (a shell's `exec 7</some/dir`, a library, a test harness).
//! So just before the exec, the child marks every descriptor above 2
//! close-on-exec: `close_range(2)` with `CLOSE_RANGE_CLOEXEC` does it in one
//! call (Linux 5.11); older kernels get a loop of `fcntl(2)`.
//!
//! Marking, not closing: the start pipe must stay open until the exec itself
//! closes it, so that the parent still hears about a failed exec. runc does
//! the same (`CloseExecFrom`), for the same reason.
//!
//! Man pages: close_range(2), fcntl(2) ("F_SETFD"), execve(2) ("File
//! descriptors"), open(2) ("O_CLOEXEC").

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::libc;

/// The first descriptor the command must not inherit: 0, 1 and 2 are its
/// standard input, output and error.
pub const FIRST_INHERITED: libc::c_uint = 3;

/// Mark every descriptor from 3 up close-on-exec, so that the exec closes
/// them all. Allocation-free: safe in a child that shares the engine's memory.
// ANCHOR: close_inherited_fds
pub fn close_inherited_fds() -> Result<(), (&'static str, Errno)> {
    // SAFETY: close_range(2) only changes the flags of this process's own
    // descriptors; it takes no pointers.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            FIRST_INHERITED,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match Errno::result(marked) {
        Ok(_) => Ok(()),
        // A kernel older than 5.11 (ENOSYS), or one without the CLOEXEC flag
        // (EINVAL): mark them one by one.
        Err(Errno::ENOSYS | Errno::EINVAL) => mark_one_by_one(),
        Err(errno) => Err(("close_range (mark descriptors close-on-exec)", errno)),
    }
}
// ANCHOR_END: close_inherited_fds

/// Close every descriptor from `first` up but those in `keep`, now: for a
/// child that waits a long time before its exec (an OCI `create` blocks
/// at the exec FIFO until `start`), so that it holds nothing its parent's
/// parent waits to see closed (a pipe conmon or containerd's shim reads to
/// its end). `keep` is sorted here in place: no allocation, safe in a
/// child that shares the engine's memory.
pub fn close_all_but(first: RawFd, keep: &mut [RawFd]) -> Result<(), (&'static str, Errno)> {
    keep.sort_unstable();
    let mut from = first;
    for &fd in keep.iter().filter(|&&fd| fd >= first) {
        if fd > from {
            close_range(from, fd - 1)?;
        }
        from = fd + 1;
    }
    close_range(from, RawFd::MAX)
}

/// close_range(2) of `first..=last`.
fn close_range(first: RawFd, last: RawFd) -> Result<(), (&'static str, Errno)> {
    // SAFETY: close_range(2) closes only this process's own descriptors;
    // it takes no pointers.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    Errno::result(closed)
        .map(drop)
        .map_err(|e| ("close_range (close inherited descriptors)", e))
}

/// The fallback: `fcntl(fd, F_SETFD, FD_CLOEXEC)` on every descriptor number
/// below the process's descriptor limit (none can be at or above it).
fn mark_one_by_one() -> Result<(), (&'static str, Errno)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(("getrlimit RLIMIT_NOFILE", Errno::last()));
    }
    // The hard limit: the soft one may have been lowered after a descriptor
    // above it was opened. Capped to the largest descriptor number there is.
    let last = limit.rlim_max.min(libc::c_int::MAX as libc::rlim_t) as libc::c_int;
    for fd in FIRST_INHERITED as libc::c_int..last {
        // SAFETY: F_SETFD on a number that may not be open: EBADF at worst.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;

    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    use super::*;

    fn close_on_exec(fd: libc::c_int) -> bool {
        // SAFETY: F_GETFD reads the flags of one of our descriptors.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags & libc::FD_CLOEXEC != 0
    }

    /// In a forked child, run `mark` and say (by the exit status) whether a
    /// descriptor opened without O_CLOEXEC came out marked close-on-exec.
    fn marks_a_leaked_descriptor(mark: fn() -> Result<(), (&'static str, Errno)>) {
        // A descriptor opened without O_CLOEXEC, as a careless parent would.
        let leaked = std::fs::File::open("/").unwrap().into_raw_fd();
        // SAFETY: clear the mark std put on it: now it is really leaked.
        unsafe { libc::fcntl(leaked, libc::F_SETFD, 0) };
        assert!(!close_on_exec(leaked));
        // SAFETY: the child only makes system calls and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = mark().is_ok() && close_on_exec(leaked);
                // SAFETY: leave the forked test process at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
                // The parent's own descriptor is untouched.
                assert!(!close_on_exec(leaked));
                // SAFETY: closes the descriptor this test opened.
                unsafe { libc::close(leaked) };
            }
        }
    }

    #[test]
    fn every_descriptor_above_2_becomes_close_on_exec() {
        marks_a_leaked_descriptor(close_inherited_fds);
    }

    #[test]
    fn the_fallback_marks_them_too() {
        marks_a_leaked_descriptor(mark_one_by_one);
    }
}
