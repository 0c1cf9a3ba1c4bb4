//! `commit`: a container's changes as a new image (see
//! [`crate::engine::commit`]).

use clap::Args;

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::commit::CommitRequest;

/// The flags of `commit`.
#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub name: Option<String>,
}

/// `commit`: prints the new image's ID.
pub fn commit(engine: &Engine, args: &CommitArgs) -> Outcome {
    let name = match &args.name {
        Some(text) => Some(
            ch05_images::reference::Reference::parse(text)
                .map_err(|_| Failure::new("invalid reference format", 1))?,
        ),
        None => None,
    };
    let request = CommitRequest {
        author: args.author.clone(),
        message: args.message.clone(),
        changes: args.changes.clone(),
        pause: args.pause,
        name,
    };
    let id = engine.commit(&args.container, &request)?;
    println!("{id}");
    Ok(0)
}
