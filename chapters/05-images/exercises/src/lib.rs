//! Chapter 5 exercises.
//!
//! Your code goes in `src/ex1_two_digests.rs` and `src/ex2_manifest_by_hand.rs`.
//! Check it with one command, e.g. `cargo xtask exercise ch05/ex1_two_digests`.
//! The reference solutions are in `solutions/`: try first, then compare.
//!
//! The checks in `tests/` run your code when `BERTH_EXERCISE=mine` (what
//! `cargo xtask exercise` sets) and the reference solution otherwise.

pub mod ex1_two_digests;
pub mod ex2_manifest_by_hand;

/// The reference solutions.
#[path = "../solutions/mod.rs"]
pub mod solutions;

/// True when the checks should run the learner's code.
pub fn checking_mine() -> bool {
    std::env::var("BERTH_EXERCISE").is_ok_and(|v| v == "mine")
}
