//! `exec`: a command in a running container.

use clap::Args;

use super::run::{parse_env, terminal_size};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::exec::ExecRequest;

/// The flags of `exec`.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The container, then the command and its arguments.
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    pub container_and_command: Vec<String>,
}

/// `exec`.
pub fn exec(engine: &Engine, args: ExecArgs) -> Outcome {
    let env = parse_env(&args.env, &args.env_file).map_err(|m| Failure::new(m, 1))?;
    let id = engine.resolve(&args.container_and_command[0])?;
    let request = ExecRequest {
        cmd: args.container_and_command[1..].to_vec(),
        env,
        user: args.user,
        workdir: args.workdir,
        tty: args.tty,
        interactive: args.interactive,
        detach: args.detach,
        privileged: args.privileged,
        console_size: if args.tty { terminal_size() } else { None },
    };
    engine.exec(&id, &request).map_err(|e| match e {
        crate::engine::EngineError::Start { code, message } => Failure::new(message, code),
        other => Failure::new(other.to_string(), 1),
    })
}
