//! Ctrl-C during a build: noted, not fatal on the spot, so that the
//! builder can remove the RUN step's container (and its mounts, cgroup,
//! veth) and its temporary files before it exits, as docker's daemon
//! does when its client goes away.
//!
//! Man pages: sigaction(2), signal-safety(7).

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The last signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Note SIGINT, SIGTERM and SIGHUP from now on instead of dying of them.
pub fn catch() -> nix::Result<()> {
    let action = SigAction::new(SigHandler::Handler(note), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (signal-safety(7)).
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// The signal that asked the build to stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// An error if a signal asked the build to stop.
pub fn check() -> Result<(), String> {
    match received() {
        Some(n) => Err(format!(
            "interrupted by {}",
            Signal::try_from(n).map_or_else(|_| n.to_string(), |s| s.as_str().to_string())
        )),
        None => Ok(()),
    }
}
