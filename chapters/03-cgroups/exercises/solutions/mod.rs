//! Reference solutions for the chapter 3 exercises.

pub mod ex1_pids_by_hand;
pub mod ex2_oom_detective;
