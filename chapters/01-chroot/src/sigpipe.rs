//! A closed standard output: `ch05-images images | head` ends quietly, as
//! `ls | head` does.
//!
//! When every reader of a pipe has gone, the kernel answers the writer's
//! next `write(2)` with the signal SIGPIPE, whose default action ends the
//! process without a word: that is how `ls` stops when `head` has read
//! enough (`pipe(7)`, `signal(7)`). Rust's runtime ignores SIGPIPE before
//! `main` runs, so the write fails with `EPIPE` instead, and `println!`
//! turns that into a panic: `failed printing to stdout: Broken pipe`.
//!
//! Giving SIGPIPE back its default action for the whole engine would be
//! wrong: the engine writes to pipes of its own (chapter 2 releases its
//! child with one byte on a pipe), and a child that died early must be an
//! error the engine cleans up after, not a signal that kills the engine with
//! its mounts and cgroups left behind. So every chapter's binary calls
//! [`die_quietly_when_stdout_closes`] first. It changes nothing until a
//! `println!` fails because standard output's reader is gone; then the
//! process ends the way coreutils do: killed by SIGPIPE, no message.

use std::any::Any;
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, Signal, raise, signal};

// ANCHOR: die_quietly
/// Install the panic hook described above, keeping the default hook for
/// every other panic.
pub fn die_quietly_when_stdout_closes() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_print_to_stdout(info.payload()) && stdout_reader_gone() {
            // SAFETY: installs the default action; no handler code runs.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let _ = raise(Signal::SIGPIPE);
        }
        default_hook(info);
    }));
}
// ANCHOR_END: die_quietly

/// For a command that writes to stdout without `println!` (a tar stream)
/// and got `EPIPE`: end as [`die_quietly_when_stdout_closes`] does, if
/// standard output's reader is gone; return otherwise.
pub fn die_if_stdout_closed() {
    if stdout_reader_gone() {
        // SAFETY: installs the default action; no handler code runs.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        let _ = raise(Signal::SIGPIPE);
    }
}

/// `print!` and `println!` panic with `failed printing to stdout: ...`.
fn is_print_to_stdout(payload: &(dyn Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    message.is_some_and(|m| m.starts_with("failed printing to stdout"))
}

/// `poll(2)` reports POLLERR on the write end of a pipe (or a socket) whose
/// readers are all gone: the cause is the reader, not our own bug.
fn stdout_reader_gone() -> bool {
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|events| events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_print_to_stdout_counts() {
        let print: Box<dyn Any + Send> =
            Box::new("failed printing to stdout: Broken pipe (os error 32)".to_string());
        assert!(is_print_to_stdout(print.as_ref()));
        let other: Box<dyn Any + Send> = Box::new("index out of bounds");
        assert!(!is_print_to_stdout(other.as_ref()));
        let stderr: Box<dyn Any + Send> = Box::new("failed printing to stderr: x".to_string());
        assert!(!is_print_to_stdout(stderr.as_ref()));
    }
}
