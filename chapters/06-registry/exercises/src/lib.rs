//! Chapter 6 exercises.
//!
//! Your code goes in `src/ex1_chunked_upload.rs` and `src/ex2_all_tags.rs`.
//! Check it with one command, e.g. `cargo xtask exercise ch06/ex1_chunked_upload`.
//! The reference solutions are in `solutions/`: try first, then compare.
//!
//! The checks in `tests/` start chapter 6's registry (`src/bin/`, the same
//! server as `ch06-registry serve`), run your code against it, and look at
//! the requests it sent on the way. They run your code when
//! `BERTH_EXERCISE=mine` (what `cargo xtask exercise` sets) and the
//! reference solution otherwise.

pub mod ex1_chunked_upload;
pub mod ex2_all_tags;

/// The reference solutions.
#[path = "../solutions/mod.rs"]
pub mod solutions;

/// True when the checks should run the learner's code.
pub fn checking_mine() -> bool {
    std::env::var("BERTH_EXERCISE").is_ok_and(|v| v == "mine")
}
