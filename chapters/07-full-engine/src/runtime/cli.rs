//! runc's command line, so berth-runtime can stand where runc is expected.
//!
//! Engines drive a runtime by running it: podman (through conmon) and
//! containerd (through its shim) call `create`, `start`, `state`, `kill`,
//! `delete`, `exec`, `ps`, `pause`, `resume`, `update` and `features` with
//! runc's flags, and read its JSON and its log. The names, short forms and
//! defaults below are runc's (`runc --help`, `runc COMMAND --help`); the
//! defaults that name runc are ours (`/run/berth-runtime`).
//!
//! Errors follow runc: one log line (see [`super::log`]) and exit status 1;
//! 255 when `exec` fails; 3 for an unknown command. A usage error is one
//! line too, not a page of help.
//!
//! Man pages: runc(8), runc-create(8), runc-exec(8), and the others.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::log::{LogFormat, Logger};

/// The OCI runtime of the Berth workshop, with runc's command line.
#[derive(Debug, Parser)]
#[command(
    name = "berth-runtime",
    disable_version_flag = true,
    about = "berth-runtime: an OCI runtime (runc's command line) built on the Berth workshop's chapters 2 to 4"
)]
pub struct Cli {
    /// Enable debug logging.
    #[arg(long)]
    pub debug: bool,
    /// Write logs to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Root directory of the containers' state (a tmpfs, such as /run):
    /// /run/berth-runtime, or $XDG_RUNTIME_DIR/berth-runtime for a user.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Accepted for runc compatibility (checkpoint/restore is not supported).
    #[arg(long, value_name = "PATH", global = true, hide = true)]
    pub criu: Option<String>,
    /// Use systemd's cgroup manager: not supported (refused).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Ignore cgroup permission errors: true, false or auto.
    #[arg(long, value_enum, default_value = "auto")]
    pub rootless: Rootless,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--rootless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rootless {
    Auto,
    True,
    False,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: its init waits before the user's program until `start`.
    Create(CreateArgs),
    /// Run the user's program in a created container.
    Start(IdArg),
    /// Create and start a container.
    Run(RunArgs),
    /// Print the state of a container as JSON.
    State(IdArg),
    /// List the containers under --root.
    List(ListArgs),
    /// Send a signal (default SIGTERM) to the container's init.
    Kill(KillArgs),
    /// Delete a stopped container (--force: any).
    Delete(DeleteArgs),
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// Show the processes in a container.
    Ps(PsArgs),
    /// Freeze every process in a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Show a container's statistics and events (OOM kills).
    Events(EventsArgs),
    /// Write a default config.json.
    Spec(SpecArgs),
    /// Show what this runtime supports, as JSON.
    Features,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The container's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the bundle directory (default: the current directory).
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// AF_UNIX socket that receives the pty master of the console.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init PID to this file.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot-like MS_MOVE instead of pivot_root (for a rootfs on a ramdisk).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N more file descriptors (3 to 3+N-1) to the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs, instead of waiting for it.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Do not become a subreaper for the container's orphans.
    #[arg(long)]
    pub no_subreaper: bool,
}

/// `list`'s and `ps`'s `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,
    /// Only the containers' ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    pub id: String,
    /// A signal name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Send it to every process in the container.
    #[arg(long, short = 'a')]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill the container first if it still runs (SIGKILL).
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (unless --process gives them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// AF_UNIX socket that receives the pty master of the console.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set an environment variable (NAME=VALUE); repeatable.
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Allocate a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// The user: UID[:GID].
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// An additional group id; repeatable.
    #[arg(long, short = 'g', value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// A process.json with the process to run (the spec's `process`).
    #[arg(long, short = 'p', value_name = "PATH")]
    pub process: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Write the process's PID to this file.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label of the process.
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile of the process.
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to the process's sets; repeatable.
    #[arg(long, short = 'c', value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N more file descriptors to the process.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run in an existing sub-cgroup: [CONTROLLER:]PATH.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container.
    #[arg(long)]
    pub ignore_paused: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    pub id: String,
    /// Output format: table or json.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: String,
    /// A file with the new linux.resources as JSON, or '-' for stdin; the
    /// other flags are then ignored.
    #[arg(long, short = 'r', value_name = "PATH")]
    pub resources: Option<PathBuf>,
    /// Block IO weight, 10 to 1000.
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CFS period, µs.
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CFS quota, µs per period (-1: none).
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Real-time period, µs.
    #[arg(long, value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// Real-time runtime, µs.
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use, like 0-3.
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes (-1: none).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory reservation (soft limit) in bytes.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes (-1: unlimited swap).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Maximum number of tasks (-1: none).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema.
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema.
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    pub id: String,
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print statistics.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(long, short = 'b', value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// A configuration for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

/// What the binary runs: parse, log as runc does, dispatch, exit status.
// ANCHOR: main
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let logger = match Logger::new(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(logger) => logger,
        Err(err) => {
            let path = cli.log.as_deref().unwrap_or(std::path::Path::new("?"));
            Logger::stderr().error(&format!(
                "open the log file {}: {}",
                path.display(),
                super::config::io_reason(&err)
            ));
            return 1;
        }
    };
    match super::commands::run(&cli, &logger) {
        Ok(code) => code,
        Err(err) => {
            logger.error(&format!("{err:#}"));
            super::commands::exit_code(&err)
        }
    }
}
// ANCHOR_END: main

/// A usage error: help and version to stdout (status 0), anything else one
/// error line, status 1 (3 for an unknown command, as runc).
fn usage_error(err: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            0
        }
        kind => {
            // clap's message, up to its usage text, on one line.
            let text = err.to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("tip:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let line = message.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            Logger::stderr().error(&format!("{line} (see berth-runtime --help)"));
            if kind == ErrorKind::InvalidSubcommand {
                3
            } else {
                1
            }
        }
    }
}
