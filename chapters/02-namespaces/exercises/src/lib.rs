//! Chapter 2 exercises.
//!
//! Your code goes in `src/ex1_own_hostname.rs` and `src/ex2_nsenter_uts.rs`.
//! Check it with one command (as root: Setting up explains the prefix), e.g.
//! `sudo -E env "PATH=$PATH" CARGO_TARGET_DIR=target/root cargo xtask exercise ch02/ex1_own_hostname`.
//! The reference solutions are in `solutions/`: try first, then compare.
//!
//! The checks in `tests/` run your code when `BERTH_EXERCISE=mine` (what
//! `cargo xtask exercise` sets) and the reference solution otherwise.

pub mod ex1_own_hostname;
pub mod ex2_nsenter_uts;

/// The reference solutions.
#[path = "../solutions/mod.rs"]
pub mod solutions;

/// True when the checks should run the learner's code.
pub fn checking_mine() -> bool {
    std::env::var("BERTH_EXERCISE").is_ok_and(|v| v == "mine")
}
