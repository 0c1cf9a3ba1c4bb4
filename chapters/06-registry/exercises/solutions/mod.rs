//! Reference solutions for the chapter 6 exercises.

pub mod ex1_chunked_upload;
pub mod ex2_all_tags;
