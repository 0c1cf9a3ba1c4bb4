//! `ch06-registry`: an OCI distribution registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ch04_overlay::state::default_root;
use ch06_registry::auth::{Auth, Htpasswd};
use ch06_registry::gc::{GcOptions, collect};
use ch06_registry::server::{ServeOptions, serve};
use ch06_registry::storage::Storage;
use clap::{Parser, Subcommand};

/// Chapter 6 of Berth: a registry that stores and serves images over the
/// OCI distribution API.
#[derive(Parser)]
#[command(name = "ch06-registry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        /// The address to listen on (port 0: any free port; the bound address
        /// is printed on stderr).
        #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
        addr: String,
        /// Where blobs, manifests and tags are kept (default: /var/lib/berth/registry
        /// as root, $XDG_DATA_HOME/berth/registry otherwise).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Require HTTP Basic auth against this file of USER:BCRYPT-HASH
        /// lines (as `htpasswd -B` writes them).
        #[arg(long, value_name = "FILE")]
        htpasswd: Option<PathBuf>,
        /// Refuse pushes and deletes (403 DENIED).
        #[arg(long)]
        read_only: bool,
    },
    /// Remove blobs no manifest names, abandoned uploads and temporary
    /// files. The registry must be stopped.
    Gc {
        /// The registry's storage (as for serve).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Remove upload sessions untouched for this long (e.g. 24h, 30m, 0s).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
        upload_max_age: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ch06-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Whether `addr` (`HOST:PORT`) is a loopback address.
fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr.starts_with("localhost:"),
    }
}

/// The storage root: `--root`, or the engine's root's `registry/`.
fn registry_root(root: Option<PathBuf>) -> PathBuf {
    root.unwrap_or_else(|| default_root().join("registry"))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            addr,
            root,
            htpasswd,
            read_only,
        } => {
            let htpasswd = match htpasswd {
                Some(path) => Some(Htpasswd::load(&path)?),
                None => None,
            };
            if htpasswd.is_some() && !is_loopback(&addr) {
                eprintln!(
                    "ch06-registry: warning: Basic auth over plain HTTP on {addr} sends passwords                      in the clear: put TLS in front of the registry"
                );
            }
            runtime()?.block_on(serve(ServeOptions {
                addr,
                root: registry_root(root),
                auth: Auth::new(htpasswd, read_only),
            }))
        }
        Command::Gc {
            root,
            dry_run,
            upload_max_age,
        } => {
            let root = registry_root(root);
            runtime()?.block_on(gc(&root, dry_run, upload_max_age))
        }
    }
}

async fn gc(root: &Path, dry_run: bool, upload_max_age: Duration) -> anyhow::Result<()> {
    if !root.join("blobs").is_dir() {
        bail!(
            "{} is not a registry's storage (no blobs/ in it): give the --root the registry serves",
            root.display()
        );
    }
    let storage = Storage::open(root)
        .await
        .with_context(|| format!("open the registry storage in {}", root.display()))?;
    let options = GcOptions {
        dry_run,
        upload_max_age,
    };
    let report = collect(&storage, &options).await?;
    for warning in &report.warnings {
        eprintln!("ch06-registry gc: warning: {warning}");
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for (digest, size) in &report.blobs {
        println!("{verb} blob {digest} ({size} bytes)");
    }
    for link in &report.links {
        println!("{verb} link {link}");
    }
    let freed: u64 = report.blobs.iter().map(|(_, size)| size).sum();
    println!(
        "{} blobs ({freed} bytes), {} links, {} upload sessions, {} temporary files {}",
        report.blobs.len(),
        report.links.len(),
        report.uploads.len(),
        report.temp_files,
        if dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    Ok(())
}
