//! Chapter 1 exercises.
//!
//! Your code goes in `src/ex1_leaky_fd.rs` and `src/ex2_proc_sees_all.rs`.
//! Check it with one command (as root: Setting up explains the prefix), e.g.
//! `sudo -E env "PATH=$PATH" CARGO_TARGET_DIR=target/root cargo xtask exercise ch01/ex1_leaky_fd`.
//! The reference solutions are in `solutions/`: try first, then compare.
//!
//! The checks in `tests/` run your code when `BERTH_EXERCISE=mine` (what
//! `cargo xtask exercise` sets) and the reference solution otherwise, so the
//! project's own test run proves every check passes against its solution.

pub mod ex1_leaky_fd;
pub mod ex2_proc_sees_all;

/// The reference solutions.
#[path = "../solutions/mod.rs"]
pub mod solutions;

/// True when the checks should run the learner's code.
pub fn checking_mine() -> bool {
    std::env::var("BERTH_EXERCISE").is_ok_and(|v| v == "mine")
}
