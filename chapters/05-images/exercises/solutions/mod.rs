//! Reference solutions for the chapter 5 exercises.

pub mod ex1_two_digests;
pub mod ex2_manifest_by_hand;
