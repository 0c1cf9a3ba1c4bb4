//! `volume create|ls|inspect|rm|prune`: docker's volume commands over the
//! engine's volumes ([`crate::engine::volumes`]).

use std::collections::BTreeMap;
use std::io::Write;

use clap::{Args, Subcommand};
use gotmpl::tmap;

use super::format::{Format, print_items};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::volumes::Volume;

/// `berth volume ...`.
#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string")]
    pub name_flag: Option<String>,
    pub name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    pub filters: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn fail(e: impl ToString) -> Failure {
    Failure::new(e.to_string(), 1)
}

/// `berth volume ...`.
pub fn volume(engine: &Engine, command: VolumeCommand) -> Outcome {
    let mut out = std::io::stdout().lock();
    let volumes = engine.volumes();
    match command {
        VolumeCommand::Create(args) => {
            if args.driver != "local" {
                return Err(fail(format!(
                    "error looking up volume plugin {}: plugin \"{}\" not found: berth has the local driver only",
                    args.driver, args.driver
                )));
            }
            let labels: BTreeMap<String, String> = args
                .labels
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let name = args.name.or(args.name_flag);
            let volume = match name {
                Some(name) => volumes.create(Some(&name), labels)?,
                // A volume created without a name is named, not anonymous:
                // docker gives it a random name and keeps it on prune.
                None => volumes.create(Some(&crate::engine::ids::new_id()), labels)?,
            };
            let _ = writeln!(out, "{}", volume.name);
        }
        VolumeCommand::Ls(args) => {
            let mut list = volumes.list()?;
            for filter in &args.filters {
                let (key, value) = filter.split_once('=').unwrap_or((filter, ""));
                let used = |v: &Volume| engine.volume_users(&v.name).is_ok_and(|u| !u.is_empty());
                list.retain(|v| match key {
                    "dangling" => (value == "true" || value == "1") != used(v),
                    "name" => v.name.contains(value),
                    "label" => match value.split_once('=') {
                        Some((k, want)) => v.labels.get(k).is_some_and(|have| have == want),
                        None => v.labels.contains_key(value),
                    },
                    "driver" => v.driver == value,
                    _ => true,
                });
                if !matches!(key, "dangling" | "name" | "label" | "driver") {
                    return Err(fail(format!("invalid filter '{key}'")));
                }
            }
            if args.quiet {
                for v in &list {
                    let _ = writeln!(out, "{}", v.name);
                }
                return Ok(0);
            }
            let items: Vec<gotmpl::Value> = list
                .iter()
                .map(|v| {
                    tmap! { "Driver" => v.driver.clone(), "Name" => v.name.clone(),
                    "Mountpoint" => v.mountpoint.clone(), "Scope" => v.scope.clone() }
                })
                .collect();
            let headers = tmap! { "Driver" => "DRIVER", "Name" => "VOLUME NAME",
            "Mountpoint" => "MOUNTPOINT", "Scope" => "SCOPE" };
            print_items(
                &mut out,
                &Format::parse(args.format.as_deref()),
                "{{.Driver}}\t{{.Name}}",
                &headers,
                &items,
            )
            .map_err(fail)?;
        }
        VolumeCommand::Inspect(args) => {
            let mut docs = Vec::new();
            for name in &args.volumes {
                docs.push(volumes.get(name).map_err(fail)?);
            }
            match args.format.as_deref() {
                Some(text) if text != "json" => {
                    let template = super::format::template(text).map_err(fail)?;
                    for doc in &docs {
                        let value = gotmpl::ser::to_value(doc).map_err(fail)?;
                        let _ = writeln!(
                            out,
                            "{}",
                            super::format::render(&template, &value).map_err(fail)?
                        );
                    }
                }
                _ => {
                    let _ = writeln!(out, "{}", super::inspect::to_json_4(&docs));
                }
            }
        }
        VolumeCommand::Rm(args) => {
            let mut failed = None;
            for name in &args.volumes {
                let result = volumes.get(name).and_then(|_| {
                    let users = engine.volume_users(name)?;
                    if !users.is_empty() {
                        return Err(crate::engine::EngineError::msg(format!(
                            "remove {name}: volume is in use - [{}]",
                            users.join(", ")
                        )));
                    }
                    volumes.remove(name)
                });
                match result {
                    Ok(()) => {
                        let _ = writeln!(out, "{name}");
                    }
                    // -f: a missing volume is no error (docker's rule).
                    Err(_) if args.force && volumes.get(name).is_err() => {}
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            if let Some(message) = failed {
                return Err(fail(message));
            }
        }
        VolumeCommand::Prune(args) => {
            if !args.force {
                let question = if args.all {
                    "WARNING! This will remove all local volumes not used by at least one container."
                } else {
                    "WARNING! This will remove anonymous local volumes not used by at least one container."
                };
                if !super::confirm(question) {
                    return Ok(0);
                }
            }
            let (removed, freed) = prune_volumes(engine, args.all)?;
            super::print_deleted(&mut out, "Volumes", &removed);
            let _ = writeln!(
                out,
                "Total reclaimed space: {}",
                super::ps::human_size(freed)
            );
        }
    }
    Ok(0)
}

/// Remove the anonymous volumes no container uses (every unused one with
/// `all`): their names, and the bytes freed.
pub fn prune_volumes(engine: &Engine, all: bool) -> Result<(Vec<String>, u64), Failure> {
    let volumes = engine.volumes();
    let (mut removed, mut freed) = (Vec::new(), 0);
    for v in volumes.list()? {
        if !(all || v.is_anonymous()) || !engine.volume_users(&v.name)?.is_empty() {
            continue;
        }
        freed += super::ps::dir_size(&volumes.data(&v.name));
        volumes.remove(&v.name)?;
        removed.push(v.name);
    }
    Ok((removed, freed))
}
