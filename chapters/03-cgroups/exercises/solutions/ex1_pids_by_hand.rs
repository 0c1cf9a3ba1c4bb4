//! Exercise 1, reference solution.

use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pause};

/// How many processes a child in a fresh cgroup with `pids.max = max` can fork.
pub fn forks_allowed(pids_root: &Path, name: &str, max: u64) -> Result<u64, Errno> {
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio()));
    let dir = pids_root.join(name);
    // A cgroup is a directory: the kernel fills it with its files.
    std::fs::create_dir(&dir).map_err(io)?;
    let result = (|| {
        std::fs::write(dir.join("pids.max"), max.to_string()).map_err(io)?;
        // SAFETY: the check calls this from a test binary whose other
        // threads are idle, so the child may allocate.
        match unsafe { fork() }? {
            ForkResult::Child => {
                // "0" means "the process writing this".
                let joined = std::fs::write(dir.join("cgroup.procs"), "0").is_ok();
                let mut children: Vec<Pid> = Vec::new();
                while joined && children.len() < 10_000 {
                    // SAFETY: the grandchild only pauses until it is killed.
                    match unsafe { fork() } {
                        Ok(ForkResult::Child) => loop {
                            pause();
                        },
                        Ok(ForkResult::Parent { child }) => children.push(child),
                        Err(_) => break,
                    }
                }
                for child in &children {
                    let _ = kill(*child, Signal::SIGKILL);
                    let _ = waitpid(*child, None);
                }
                let code = if joined {
                    children.len().min(200) as i32
                } else {
                    255
                };
                // SAFETY: leave at once, without the test harness's destructors.
                unsafe { nix::libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None)? {
                WaitStatus::Exited(_, 255) => Err(Errno::EPERM),
                WaitStatus::Exited(_, n) => Ok(n as u64),
                _ => Err(Errno::ECHILD),
            },
        }
    })();
    // Empty now (everything was reaped): the directory can go.
    std::fs::remove_dir(&dir).map_err(io)?;
    result
}

fn libc_eio() -> i32 {
    nix::libc::EIO
}
