//! `top`: the container's processes.

use clap::Args;

use super::format::align;
use super::{Failure, Outcome};
use crate::engine::Engine;

/// The arguments of `top`.
#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    pub ps_args: Vec<String>,
}

/// `top`: columns at least 20 wide, as docker prints them.
pub fn top(engine: &Engine, args: &TopArgs) -> Outcome {
    let id = engine.resolve(&args.container)?;
    let top = engine
        .top(&id, &args.ps_args)
        .map_err(|e| Failure::new(e.to_string(), 1))?;
    let mut lines = vec![top.titles.join("\t")];
    lines.extend(top.processes.iter().map(|p| p.join("\t")));
    print!("{}", align(&lines, 20));
    Ok(0)
}
