//! `ch04-overlay`: chapter 3's engine on a filesystem of layers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use ch02_namespaces::cli::{self, NamespaceArgs, ProcessArgs, container_config};
use ch03_cgroups::cli::{LimitArgs, default_capabilities};
use ch04_overlay::cli::{LayerRun, run_on_layers};
use ch04_overlay::commit::{CommitOptions, commit_layer, diff_each};
use ch04_overlay::state::{self, StorageDriver, default_root};
use clap::{Args, Parser, Subcommand};

/// Chapter 4 of Berth: a container's filesystem is shared read-only layers
/// plus a private writable layer.
#[derive(Parser)]
#[command(name = "ch04-overlay", version, about, long_about = None)]
struct Cli {
    /// Where containers are kept (default: /var/lib/berth as root,
    /// $XDG_DATA_HOME/berth otherwise).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD on an overlay of the layers, with a writable layer of its own.
    ///
    /// The layers are never modified; the container's changes stay in its
    /// writable layer after it exits, for `diff` and `commit`, until `rm`.
    Run(Box<RunCmd>),
    /// List a container's changes: A (added), C (changed), D (deleted).
    Diff {
        /// The container's name.
        name: String,
    },
    /// Write a container's changes as an OCI layer tarball.
    Commit {
        /// The container's name.
        name: String,
        /// The tarball to write.
        out: PathBuf,
        /// Compress it with gzip (and print the compressed blob's digest too).
        #[arg(long)]
        gzip: bool,
        /// Keep the files' modification times (default: all 0, so the same
        /// changes always give the same digest).
        #[arg(long)]
        keep_times: bool,
    },
    /// Delete a container: its writable layer and state. The layers stay.
    Rm {
        /// The container's name.
        name: String,
    },
    /// List the containers and their layers.
    Ps,
    /// Make a minimal root filesystem in DIR (chapter 1's mkrootfs).
    Mkrootfs(cli::MkrootfsArgs),
}

#[derive(Args)]
struct RunCmd {
    /// The container's name (also its hostname and cgroup name).
    #[arg(long)]
    name: String,
    /// A read-only layer (a directory); repeat it, the last one on top.
    #[arg(long = "layer", value_name = "DIR", required = true)]
    layers: Vec<PathBuf>,
    /// overlay (the default) or vfs (a full copy per container).
    #[arg(long, value_enum)]
    storage_driver: Option<StorageDriver>,
    /// Remove the container (its writable layer and state) when it exits.
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    namespaces: NamespaceArgs,
    #[command(flatten)]
    process: ProcessArgs,
    /// The command and its arguments, looked up on PATH inside the layers.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

fn main() -> ExitCode {
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let cli = Cli::parse();
    let root = cli.root.unwrap_or_else(default_root);
    match dispatch(&root, cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch04-overlay: {err:#}");
            ExitCode::from(cli::exit_code(&err) as u8)
        }
    }
}

fn dispatch(root: &Path, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(cmd) => {
            // Before a container exists: run from a binary it cannot write.
            ch02_namespaces::sealed_exe::ensure_sealed()?;
            run(root, *cmd)
        }
        Command::Diff { name } => {
            state::check_root(root)?;
            let (dir, state) = state::load(root, &name)?;
            if state.driver != StorageDriver::Overlay {
                bail!(
                    "{name} uses the vfs driver, which keeps no separate writable layer: diff needs overlay"
                );
            }
            let lowers: Vec<PathBuf> = state.layers.iter().rev().cloned().collect();
            // Printed as found: a deep tree's list is long.
            let mut out = std::io::stdout().lock();
            let mut written = Ok(());
            diff_each(&dir.upper(), &lowers, |change| {
                if written.is_ok() {
                    written = writeln!(out, "{change}");
                }
            })?;
            written.context("write to stdout")?;
            Ok(0)
        }
        Command::Commit {
            name,
            out,
            gzip,
            keep_times,
        } => {
            state::check_root(root)?;
            let (dir, state) = state::load(root, &name)?;
            if state.driver != StorageDriver::Overlay {
                bail!(
                    "{name} uses the vfs driver, which keeps no separate writable layer: commit needs overlay"
                );
            }
            // Write next to OUT and rename: never a half-written tarball.
            let partial = out.with_extension("partial");
            let file =
                File::create(&partial).with_context(|| format!("create {}", partial.display()))?;
            let written = commit_layer(
                &dir.upper(),
                BufWriter::new(file),
                &CommitOptions { keep_times, gzip },
            );
            let digests = match written {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
            };
            std::fs::rename(&partial, &out)
                .with_context(|| format!("rename to {}", out.display()))?;
            println!("diff_id: {}", digests.diff_id);
            if let Some(digest) = digests.digest {
                println!("digest: {digest}");
            }
            Ok(0)
        }
        Command::Rm { name } => {
            ch04_overlay::cli::remove_container(root, &name)?;
            println!("{name}: removed");
            Ok(0)
        }
        Command::Ps => {
            state::check_root(root)?;
            println!("NAME\tDRIVER\tLAYERS");
            for c in state::list(root)? {
                let layers: Vec<String> =
                    c.layers.iter().map(|l| l.display().to_string()).collect();
                let driver = match c.driver {
                    StorageDriver::Overlay => "overlay",
                    StorageDriver::Vfs => "vfs",
                };
                println!("{}\t{driver}\t{}", c.name, layers.join(":"));
            }
            Ok(0)
        }
        Command::Mkrootfs(args) => cli::mkrootfs_command(&args),
    }
}

/// `run`: the layers from the command line, the container named by --name.
fn run(root: &Path, cmd: RunCmd) -> anyhow::Result<i32> {
    let spec = LayerRun {
        name: cmd.name.clone(),
        layers: cmd.layers,
        driver: cmd.storage_driver,
        rm: cmd.rm,
    };
    let (mut namespaces, process, args) = (cmd.namespaces, cmd.process, cmd.cmd);
    // Docker's whole capability set when chapter 3's devices cgroup guards
    // the device nodes.
    namespaces.security.defaults = Some(default_capabilities(&cmd.limits));
    run_on_layers(
        "ch04-overlay",
        root,
        &spec,
        &cmd.limits,
        |merged, hostname| {
            let mut namespaces = namespaces;
            namespaces.hostname.get_or_insert(hostname);
            container_config(namespaces, process, merged, args)
        },
    )
}
