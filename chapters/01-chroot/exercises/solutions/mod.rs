//! Reference solutions for the chapter 1 exercises.

pub mod ex1_leaky_fd;
pub mod ex2_proc_sees_all;
