//! Reference solutions for the chapter 2 exercises.

pub mod ex1_own_hostname;
pub mod ex2_nsenter_uts;

use std::io::{Read, Write};

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe};

/// Run `step` in a forked child and return the text it produced: the
/// pattern both exercises share. The child's namespace changes die with it.
pub fn in_child(step: impl FnOnce() -> Result<String, Errno>) -> Result<String, Errno> {
    let (read_end, write_end) = pipe()?;
    // SAFETY: the checks call this from a test binary whose other threads
    // are idle, so the child may allocate.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(read_end);
            let code = match step() {
                Ok(text) => i32::from(
                    std::fs::File::from(write_end)
                        .write_all(text.as_bytes())
                        .is_err(),
                ),
                Err(errno) => errno as i32,
            };
            // SAFETY: leave at once, without the test harness's destructors.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            let read = std::fs::File::from(read_end).read_to_string(&mut text);
            match waitpid(child, None)? {
                WaitStatus::Exited(_, 0) => read.map(|_| text).map_err(|_| Errno::EIO),
                WaitStatus::Exited(_, errno) => Err(Errno::from_raw(errno)),
                _ => Err(Errno::ECHILD),
            }
        }
    }
}
