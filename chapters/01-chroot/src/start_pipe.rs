//! How a child reports a failed setup step to its parent.
//!
//! Kernel feature: a pipe whose ends are marked close-on-exec (`O_CLOEXEC`).
//! The parent forks and reads from the pipe. The child runs its setup steps;
//! if one fails it writes the step's name and `errno` into the pipe and exits.
//! If every step succeeds, the final `execve(2)` closes the child's end, so
//! the parent reads end-of-file: that *is* the message "the command started".
//! This is how `std::process::Command`, runc and crun all do it.
//!
//! The child writes one fixed-size record with a single `write(2)` (smaller
//! than `PIPE_BUF`, so it arrives whole) and allocates nothing.
//!
//! Man pages: pipe(2), pipe(7), execve(2) ("close-on-exec").

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::unistd::{pipe2, read, write};

/// The size of one failure record: 4 bytes of errno, then the step's text.
const RECORD: usize = 256;

/// Both ends of the start pipe, before the fork decides who keeps which.
#[derive(Debug)]
pub struct StartPipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// The child's end: report a failure, or exec and let the pipe close.
#[derive(Debug)]
pub struct ChildReporter<'a>(BorrowedFd<'a>);

/// The parent's end: wait for the exec or a failure record.
#[derive(Debug)]
pub struct ParentListener(OwnedFd);

/// A failure the child reported: which step, and the errno it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFailure {
    pub step: String,
    pub errno: Errno,
}

impl StartPipe {
    pub fn new() -> nix::Result<Self> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        Ok(StartPipe { read, write })
    }

    /// The child's end. Borrowed, because the child may share our memory
    /// (`CLONE_VM`) and must not free what the parent owns; both ends are
    /// close-on-exec, so the child's copies vanish when it execs.
    pub fn child_end(&self) -> ChildReporter<'_> {
        ChildReporter(self.write.as_fd())
    }

    /// Call in the parent after fork: closes the write end, so that the
    /// child's exec (or exit) is the last writer to go and we see EOF.
    pub fn into_parent(self) -> ParentListener {
        ParentListener(self.read)
    }
}

impl ChildReporter<'_> {
    /// The pipe's file descriptor, for a child that must close its copy
    /// without exec'ing (chapter 2's init keeps running as PID 1).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// Send "`step` `detail`: `errno`" to the parent and exit with status 125.
    /// `detail` is usually a path; both are copied into a fixed buffer.
    // ANCHOR: fail
    pub fn fail(&self, step: &str, detail: &[u8], errno: Errno) -> ! {
        let mut record = [0u8; RECORD];
        record[..4].copy_from_slice(&(errno as i32).to_le_bytes());
        let mut len = 4;
        for part in [step.as_bytes(), b" ", detail] {
            let n = part.len().min(RECORD - len);
            record[len..len + n].copy_from_slice(&part[..n]);
            len += n;
        }
        // Nothing useful can be done if the parent is gone: ignore the result.
        let _ = write(self.0, &record[..len]);
        // SAFETY: _exit(2) ends the process at once, without running atexit
        // handlers or flushing stdio buffers that belong to the parent.
        unsafe { libc::_exit(crate::error::EXIT_ENGINE) }
    }
    // ANCHOR_END: fail
}

impl ParentListener {
    /// Block until the child has exec'd (`Ok`) or reported a failure.
    // ANCHOR: wait_for_exec
    pub fn wait_for_exec(self) -> Result<(), ChildFailure> {
        let mut record = [0u8; RECORD];
        let mut len = 0;
        loop {
            match read(&self.0, &mut record[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(ChildFailure {
                        step: "read start pipe".into(),
                        errno,
                    });
                }
            }
            if len == RECORD {
                break;
            }
        }
        if len < 4 {
            return Ok(());
        }
        let errno = i32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let step = String::from_utf8_lossy(&record[4..len])
            .trim_end()
            .to_string();
        Err(ChildFailure {
            step,
            errno: Errno::from_raw(errno),
        })
    }
    // ANCHOR_END: wait_for_exec
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    #[test]
    fn a_failure_record_crosses_the_fork() {
        let pipe = StartPipe::new().unwrap();
        // SAFETY: the child only calls `fail`, which makes system calls and
        // exits; it allocates nothing, so the test harness's threads are safe.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => pipe.child_end().fail("mount", b"/proc", Errno::EPERM),
            ForkResult::Parent { child } => {
                let got = pipe.into_parent().wait_for_exec();
                assert_eq!(
                    waitpid(child, None).unwrap(),
                    WaitStatus::Exited(child, 125)
                );
                assert_eq!(
                    got,
                    Err(ChildFailure {
                        step: "mount /proc".into(),
                        errno: Errno::EPERM
                    })
                );
            }
        }
    }
}
