//! `berth-peak-rss OUT CMD [ARGS...]`: run CMD, wait for it, write its peak
//! resident set to the file OUT as `PEAK_KIB FLOOR_KIB`, and exit as CMD did.
//!
//! Why a program of its own: the `ru_maxrss` that `wait4(2)` reports for a
//! child is not only the child's. At `execve(2)` the kernel folds the
//! high-water mark of the memory the process had *before* the exec into the
//! figure, and a child started with vfork or posix_spawn (as Rust's std
//! starts them) shares its parent's memory until it execs. So every command
//! the benchmark started itself reported at least the benchmark's own peak,
//! and `chroot(1)`, `ch01-chroot` and its dynamic build all showed the same
//! few MiB. Started from this small static program instead, a command's
//! figure starts from this program's peak (the floor), which is written
//! too: a figure at the floor means "at most this much".

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: berth-peak-rss OUT CMD [ARGS...]");
        return ExitCode::from(2);
    };
    // The floor: this process's own peak, which the command inherits at exec.
    let floor = own_peak_kib();
    let child = match Command::new(&program).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("berth-peak-rss: cannot start {}: {err}", program.display());
            return ExitCode::from(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid and writable for the call;
        // `pid` is our own child, not yet reaped (std's Child is never waited).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            eprintln!("berth-peak-rss: wait4: {err}");
            return ExitCode::from(125);
        }
    }
    if let Err(err) = std::fs::write(&out, format!("{} {floor}\n", usage.ru_maxrss)) {
        eprintln!("berth-peak-rss: write {}: {err}", out.display());
        return ExitCode::from(125);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}

/// `VmHWM` of /proc/self/status, in KiB (0 if unreadable).
fn own_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
