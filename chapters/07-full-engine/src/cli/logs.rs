//! `logs`: what a container wrote, from its json-file log.

use std::time::SystemTime;

use clap::Args;

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::logs::{LogOptions, parse_time_filter};

/// The flags of `logs`.
#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `logs`.
pub fn logs(engine: &Engine, args: &LogsArgs) -> Outcome {
    let now = SystemTime::now();
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_time_filter(t, now))
            .transpose()
            .map_err(|m| Failure::new(m, 1))
    };
    let tail = match args.tail.as_str() {
        "all" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(Failure::new(
                    format!("invalid value for \"tail\": {n}: give a number or all"),
                    1,
                ));
            }
        },
    };
    let options = LogOptions {
        follow: args.follow,
        tail,
        timestamps: args.timestamps,
        since: time(&args.since)?,
        until: time(&args.until)?,
    };
    let id = engine.resolve(&args.container)?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    engine.logs(&id, &options, &mut out, &mut err)?;
    Ok(0)
}
