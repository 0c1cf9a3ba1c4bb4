//! `ch06-registry`: an OCI distribution registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ch04_overlay::state::default_root;
use ch06_registry::auth::Auth;
use ch06_registry::server::{ServeOptions, serve};
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

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { addr, root } => {
            let root = root.unwrap_or_else(|| default_root().join("registry"));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start the async runtime")?;
            runtime.block_on(serve(ServeOptions {
                addr,
                root,
                auth: Auth::open(),
            }))
        }
    }
}
