//! `system df` and `system prune`: the engine's disk, by kind (images,
//! containers' writable layers, volumes, build cache), and what can go.

use std::collections::BTreeSet;
use std::io::Write;

use clap::{Args, Subcommand};
use gotmpl::tmap;

use super::format::{Format, print_items};
use super::ps::{dir_size, human_size};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::Status;

/// `berth system ...`.
#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Get real time events from the server
    Events(super::events::EventsArgs),
    /// Display system-wide information
    Info(super::system::FormatArgs),
}

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// `berth system ...`.
pub fn system(engine: &Engine, command: SystemCommand) -> Outcome {
    match command {
        SystemCommand::Df(args) => df(engine, &args),
        SystemCommand::Prune(args) => prune(engine, &args),
        SystemCommand::Events(args) => super::events::events(engine, &args),
        SystemCommand::Info(args) => super::system::info(engine, &args),
    }
}

/// `TOTAL`, `ACTIVE`, `SIZE`, `RECLAIMABLE` of one kind.
fn line(kind: &str, total: usize, active: usize, size: u64, reclaimable: u64) -> gotmpl::Value {
    let percent = (reclaimable * 100)
        .checked_div(size)
        .map(|p| format!(" ({p}%)"))
        .unwrap_or_default();
    tmap! {
        "Type" => kind, "TotalCount" => total.to_string(), "Active" => active.to_string(),
        "Size" => human_size(size),
        "Reclaimable" => format!("{}{percent}", human_size(reclaimable)),
    }
}

/// `system df`.
pub fn df(engine: &Engine, args: &DfArgs) -> Outcome {
    let containers = engine.containers()?;
    // Images: used if a container was made from one.
    let used: BTreeSet<String> = containers.iter().map(|c| c.image.clone()).collect();
    let store = engine.image_store()?;
    let mut seen = BTreeSet::new();
    let (mut images, mut active_images, mut image_bytes, mut unused_bytes) = (0, 0, 0, 0);
    for (_, image) in super::images::named_images(store)? {
        let id = image.manifest.config.digest.clone();
        if !seen.insert(id.clone()) {
            continue;
        }
        let size = super::images::image_size(store, &image);
        images += 1;
        image_bytes += size;
        if used.contains(&id) {
            active_images += 1;
        } else {
            unused_bytes += size;
        }
    }
    // Containers: their writable layers; reclaimable unless running.
    let (mut active_containers, mut layer_bytes, mut stopped_bytes) = (0, 0, 0);
    for c in &containers {
        let size = dir_size(&engine.dir(&c.id).0.join("upper"));
        layer_bytes += size;
        if matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            active_containers += 1;
        } else {
            stopped_bytes += size;
        }
    }
    // Volumes: reclaimable unless a container uses them.
    let volumes = engine.volumes();
    let (mut volume_count, mut active_volumes, mut volume_bytes, mut free_volume_bytes) =
        (0, 0, 0, 0);
    for v in volumes.list()? {
        let size = dir_size(&volumes.data(&v.name));
        volume_count += 1;
        volume_bytes += size;
        if engine.volume_users(&v.name)?.is_empty() {
            free_volume_bytes += size;
        } else {
            active_volumes += 1;
        }
    }
    let rows = vec![
        line("Images", images, active_images, image_bytes, unused_bytes),
        line(
            "Containers",
            containers.len(),
            active_containers,
            layer_bytes,
            stopped_bytes,
        ),
        line(
            "Local Volumes",
            volume_count,
            active_volumes,
            volume_bytes,
            free_volume_bytes,
        ),
        line("Build Cache", 0, 0, 0, 0),
    ];
    let headers = tmap! {
        "Type" => "TYPE", "TotalCount" => "TOTAL", "Active" => "ACTIVE",
        "Size" => "SIZE", "Reclaimable" => "RECLAIMABLE",
    };
    let mut out = std::io::stdout().lock();
    print_items(
        &mut out,
        &Format::parse(args.format.as_deref()),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &headers,
        &rows,
    )
    .map_err(|m| Failure::new(m, 1))?;
    Ok(0)
}

/// `system prune`: stopped containers, unused networks, dangling (or all
/// unused) images, and with `--volumes` unused anonymous volumes.
pub fn prune(engine: &Engine, args: &SystemPruneArgs) -> Outcome {
    if !args.force {
        let mut question = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container",
        );
        if args.volumes {
            question.push_str("\n  - all anonymous volumes not used by at least one container");
        }
        question.push_str(if args.all {
            "\n  - all images without at least one container associated to them"
        } else {
            "\n  - all dangling images"
        });
        question.push_str("\n  - unused build cache\n");
        if !super::confirm(&question) {
            return Ok(0);
        }
    }
    let mut out = std::io::stdout().lock();
    let (containers, mut freed) = super::containers::prune_containers(engine)?;
    super::print_deleted(&mut out, "Containers", &containers);
    // Networks exist only where the engine may make them (root).
    if nix::unistd::geteuid().is_root() {
        engine.reconcile_networks()?;
        let networks = engine
            .networks()?
            .prune()
            .map_err(|e| Failure::new(e.to_string(), 1))?;
        super::print_deleted(&mut out, "Networks", &networks);
    }
    if args.volumes {
        let (volumes, bytes) = super::volume::prune_volumes(engine, false)?;
        super::print_deleted(&mut out, "Volumes", &volumes);
        freed += bytes;
    }
    let (images, bytes) = super::images::prune_images(engine, args.all)?;
    super::print_deleted(&mut out, "Images", &images);
    freed += bytes;
    let _ = writeln!(out, "Total reclaimed space: {}", human_size(freed));
    Ok(0)
}
