//! `ch01-chroot`: run a command in a root filesystem with chroot(2), build
//! that root filesystem, and show how a root process escapes it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ch01_chroot::error::EXIT_ENGINE;
use ch01_chroot::rootfs::{self, Source};
use ch01_chroot::{Process, StartError, escape, run_with};
use clap::{Parser, Subcommand};

/// Chapter 1 of Berth: a container is a process with a different root.
#[derive(Parser)]
#[command(name = "ch01-chroot", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD with ROOTFS as its root directory (fork, chroot, exec, wait).
    ///
    /// Exits with CMD's status, or 128+N if signal N killed it; 125 if the
    /// engine failed, 126 if CMD cannot be executed, 127 if it was not found.
    /// Needs root (CAP_SYS_CHROOT).
    Run {
        /// The directory to use as /, e.g. one made by `mkrootfs`.
        rootfs: PathBuf,
        /// The command and its arguments, looked up on PATH inside ROOTFS.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Make a minimal root filesystem in DIR from this host's files (no network).
    Mkrootfs {
        /// Where to take the programs from.
        #[arg(long, value_enum, default_value_t = Source::Auto)]
        from: Source,
        /// The directory to create (it may exist, but must be empty).
        dir: PathBuf,
    },
    /// Show that chroot is not isolation: chroot into ROOTFS like `run`, then
    /// break out to the host's real / and run CMD there (default: ls /).
    Escape {
        /// The directory to chroot into first.
        rootfs: PathBuf,
        /// What to run once outside, from the host's real root.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

fn main() -> ExitCode {
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch01-chroot: {err:#}");
            let code = err
                .downcast_ref::<StartError>()
                .map_or(EXIT_ENGINE, StartError::exit_code);
            ExitCode::from(code as u8)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run { rootfs, cmd } => Ok(run_with(&rootfs, &container_process(cmd), &|| Ok(()))?),
        Command::Escape { rootfs, cmd } => {
            let cmd = if cmd.is_empty() {
                vec!["ls".into(), "/".into()]
            } else {
                cmd
            };
            // Inside the chroot, after chroot_into and before exec: break out.
            Ok(run_with(
                &rootfs,
                &container_process(cmd),
                &escape::break_out_of_chroot,
            )?)
        }
        Command::Mkrootfs { from, dir } => {
            let report = rootfs::mkrootfs(&dir, from, "/".as_ref()).context("mkrootfs")?;
            for note in report.notes() {
                eprintln!("ch01-chroot: {note}");
            }
            println!("{}", report.summary(&dir));
            Ok(0)
        }
    }
}

/// The process a container runs: CMD with the minimal environment. Without a
/// UTS namespace (chapter 2) the hostname is still the host's.
fn container_process(cmd: Vec<String>) -> Process {
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    Process::new(cmd, &hostname, std::env::var("TERM").ok().as_deref())
}
