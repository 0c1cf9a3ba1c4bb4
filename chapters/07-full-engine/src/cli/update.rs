//! `update`: docker's flags for changing a container's limits and restart
//! policy ([`crate::engine::update`]).

use clap::Args;

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::update::UpdateRequest;
use crate::monitor::restart::parse_policy;

/// The flags of `update`.
#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long, value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

fn size(text: &str) -> Result<i64, Failure> {
    if text == "-1" {
        return Ok(-1);
    }
    ch03_cgroups::parse_size(text)
        .map(|n| n as i64)
        .map_err(|e| Failure::new(format!("invalid size: {text:?}: {e}"), 1))
}

/// `update`: each container's name on success, as docker prints it.
pub fn update(engine: &Engine, args: &UpdateArgs) -> Outcome {
    let request = UpdateRequest {
        memory: args.memory.as_deref().map(size).transpose()?,
        memory_swap: args.memory_swap.as_deref().map(size).transpose()?,
        nano_cpus: args.cpus.map(|c| (c * 1e9) as i64),
        cpu_shares: args.cpu_shares,
        cpu_period: args.cpu_period,
        cpu_quota: args.cpu_quota,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids_limit: args.pids_limit,
        blkio_weight: args.blkio_weight,
        restart: args
            .restart
            .as_deref()
            .map(parse_policy)
            .transpose()
            .map_err(|m| Failure::new(m, 1))?,
    };
    if let Some(memory) = request.memory
        && (0..6 << 20).contains(&memory)
    {
        return Err(Failure::new("Minimum memory limit allowed is 6MB", 1));
    }
    let mut failed = None;
    for name in &args.containers {
        match engine.update(name, &request) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(());
            }
        }
    }
    match failed {
        Some(()) => Err(Failure::new("", 1)),
        None => Ok(0),
    }
}
