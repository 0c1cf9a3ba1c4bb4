//! `stats`: docker's live table of what containers use
//! ([`crate::engine::stats`]), refreshed every second, or once with
//! `--no-stream`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use gotmpl::tmap;

use super::format::{Format, print_items};
use super::ps::human_size;
use super::system::bytes_size;
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::{Container, Status};
use crate::engine::stats::{Sample, Usage};

/// The flags of `stats`.
#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    pub containers: Vec<String>,
}

/// One row, as docker's stats templates see it.
fn row(c: &Container, usage: Option<&Usage>, no_trunc: bool) -> gotmpl::Value {
    let id = if no_trunc {
        c.id.clone()
    } else {
        c.id[..12].to_string()
    };
    let name = c.name().to_string();
    match usage {
        Some(u) => {
            let s = &u.sample;
            tmap! {
                "Container" => id.clone(), "ID" => id, "Name" => name,
                "CPUPerc" => format!("{:.2}%", u.cpu_percent),
                "MemUsage" => format!("{} / {}", bytes_size(s.memory), bytes_size(s.memory_limit)),
                "MemPerc" => format!("{:.2}%", u.memory_percent),
                "NetIO" => format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
                "BlockIO" => format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
                "PIDs" => s.pids.to_string(),
            }
        }
        None => tmap! {
            "Container" => id.clone(), "ID" => id, "Name" => name,
            "CPUPerc" => "0.00%", "MemUsage" => "0B / 0B", "MemPerc" => "0.00%",
            "NetIO" => "0B / 0B", "BlockIO" => "0B / 0B", "PIDs" => "0",
        },
    }
}

fn headers() -> gotmpl::Value {
    tmap! {
        "Container" => "CONTAINER", "ID" => "CONTAINER ID", "Name" => "NAME",
        "CPUPerc" => "CPU %", "MemUsage" => "MEM USAGE / LIMIT", "MemPerc" => "MEM %",
        "NetIO" => "NET I/O", "BlockIO" => "BLOCK I/O", "PIDs" => "PIDS",
    }
}

const DEFAULT: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// `stats`.
pub fn stats(engine: &Engine, args: &StatsArgs) -> Outcome {
    let format = Format::parse(args.format.as_deref());
    let terminal = std::io::stdout().is_terminal();
    loop {
        // Who: the named containers, else the running ones (all with -a).
        let containers: Vec<Container> = if args.containers.is_empty() {
            engine
                .containers()?
                .into_iter()
                .filter(|c| args.all || c.state.status == Status::Running)
                .collect()
        } else {
            args.containers
                .iter()
                .map(|name| engine.container(name))
                .collect::<Result<_, _>>()?
        };
        // Two samples of each, one second apart.
        let running = |c: &Container| c.state.status == Status::Running;
        let first: Vec<Option<Sample>> = containers
            .iter()
            .map(|c| running(c).then(|| engine.sample(c).ok()).flatten())
            .collect();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let rows: Vec<gotmpl::Value> = containers
            .iter()
            .zip(&first)
            .map(|(c, first)| {
                let usage = first.as_ref().and_then(|first| {
                    let second = engine.sample(c).ok()?;
                    Some(Usage::between(first, &second, start.elapsed()))
                });
                row(c, usage.as_ref(), args.no_trunc)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if terminal && !args.no_stream {
            // Clear the screen and go home, as docker redraws its table.
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        let printed = print_items(&mut out, &format, DEFAULT, &headers(), &rows)
            .and_then(|()| out.flush().map_err(|e| e.to_string()));
        if let Err(message) = printed {
            // `stats | head`: ends quietly, as coreutils do.
            ch01_chroot::sigpipe::die_if_stdout_closed();
            return Err(Failure::new(message, 1));
        }
        if args.no_stream {
            return Ok(0);
        }
    }
}
