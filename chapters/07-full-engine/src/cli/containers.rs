//! `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`, `wait`, `rename`,
//! `container prune`: each takes one or more containers, prints each as
//! typed once done (docker's habit, so `berth rm $(berth ps -aq)` shows
//! what went), reports the ones that failed, and exits 1 if any did.

use std::io::Write;

use clap::Args;

use super::{Failure, Outcome};
use crate::engine::control::parse_signal;
use crate::engine::{Engine, Result};

/// Containers, by id, prefix or name.
#[derive(Args, Debug, Clone)]
pub struct Targets {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Run `action` on each container, docker's way.
fn each(
    engine: &Engine,
    names: &[String],
    mut action: impl FnMut(&str) -> Result<Option<String>>,
) -> Outcome {
    let mut failed = false;
    for name in names {
        match engine.resolve(name).and_then(|id| action(&id)) {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => println!("{name}"),
            Err(err) => {
                eprintln!("Error: {err}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Failure::new("", 1))
    } else {
        Ok(0)
    }
}

/// The flags of `stop` and `restart`.
#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        alias = "time",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub timeout: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

impl StopArgs {
    fn signal(&self) -> Result<Option<i32>, Failure> {
        self.signal
            .as_deref()
            .map(parse_signal)
            .transpose()
            .map_err(|e| Failure::new(e.to_string(), 1))
    }
}

pub fn stop(engine: &Engine, args: &StopArgs) -> Outcome {
    let signal = args.signal()?;
    each(engine, &args.containers, |id| {
        engine.stop(id, args.timeout, signal).map(|()| None)
    })
}

pub fn restart(engine: &Engine, args: &StopArgs) -> Outcome {
    let signal = args.signal()?;
    each(engine, &args.containers, |id| {
        engine.restart(id, args.timeout, signal).map(|()| None)
    })
}

/// The flags of `kill`.
#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string", default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn kill(engine: &Engine, args: &KillArgs) -> Outcome {
    let signal = parse_signal(&args.signal).map_err(|e| Failure::new(e.to_string(), 1))?;
    each(engine, &args.containers, |id| {
        engine.kill(id, signal).map(|()| None)
    })
}

pub fn pause(engine: &Engine, args: &Targets) -> Outcome {
    each(engine, &args.containers, |id| {
        engine.pause(id).map(|()| None)
    })
}

pub fn unpause(engine: &Engine, args: &Targets) -> Outcome {
    each(engine, &args.containers, |id| {
        engine.unpause(id).map(|()| None)
    })
}

/// The flags of `rm`.
#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn rm(engine: &Engine, args: &RmArgs) -> Outcome {
    if args.link {
        return Err(Failure::new(
            "links are not supported: berth has no legacy links",
            1,
        ));
    }
    each(engine, &args.containers, |id| {
        // -v: the anonymous volumes too, read before the record goes.
        let mounts = match args.volumes {
            true => engine.container(id).map(|c| c.mounts).unwrap_or_default(),
            false => vec![],
        };
        engine.remove(id, args.force)?;
        engine.remove_anonymous_volumes(&mounts);
        Ok(None)
    })
}

/// `wait`: each container's exit code, once it stops.
pub fn wait(engine: &Engine, args: &Targets) -> Outcome {
    each(engine, &args.containers, |id| {
        engine.wait(id).map(|code| Some(code.to_string()))
    })
}

/// The arguments of `rename`.
#[derive(Args, Debug, Clone)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

pub fn rename(engine: &Engine, args: &RenameArgs) -> Outcome {
    let id = engine.resolve(&args.container)?;
    engine
        .rename(&id, &args.new_name)
        .map_err(|e| Failure::new(e.to_string(), 1))?;
    Ok(0)
}

/// The flags of `container prune`.
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn prune(engine: &Engine, args: &PruneArgs) -> Outcome {
    if !args.force && !super::confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let (removed, freed) = prune_containers(engine)?;
    let mut out = std::io::stdout().lock();
    super::print_deleted(&mut out, "Containers", &removed);
    let _ = writeln!(
        out,
        "Total reclaimed space: {}",
        super::ps::human_size(freed)
    );
    Ok(0)
}

/// Remove every container that is not running: their ids, and the bytes
/// their writable layers held.
pub fn prune_containers(engine: &Engine) -> Result<(Vec<String>, u64), Failure> {
    let sizes: Vec<(String, u64)> = engine
        .containers()?
        .into_iter()
        .map(|c| {
            let upper = engine.dir(&c.id).0.join("upper");
            (c.id, super::ps::dir_size(&upper))
        })
        .collect();
    let removed = engine.prune()?;
    let freed = sizes
        .iter()
        .filter(|(id, _)| removed.contains(id))
        .map(|(_, size)| size)
        .sum();
    Ok((removed, freed))
}
