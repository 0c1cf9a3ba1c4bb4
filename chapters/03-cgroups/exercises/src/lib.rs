//! Chapter 3 exercises.
//!
//! Your code goes in `src/ex1_pids_by_hand.rs` and `src/ex2_oom_detective.rs`.
//! Check it with one command (as root: Setting up explains the prefix), e.g.
//! `sudo -E env "PATH=$PATH" CARGO_TARGET_DIR=target/root cargo xtask exercise ch03/ex1_pids_by_hand`.
//! The reference solutions are in `solutions/`: try first, then compare.
//!
//! The checks in `tests/` run your code when `BERTH_EXERCISE=mine` (what
//! `cargo xtask exercise` sets) and the reference solution otherwise.

pub mod ex1_pids_by_hand;
pub mod ex2_oom_detective;

/// The reference solutions.
#[path = "../solutions/mod.rs"]
pub mod solutions;

/// True when the checks should run the learner's code.
pub fn checking_mine() -> bool {
    std::env::var("BERTH_EXERCISE").is_ok_and(|v| v == "mine")
}
