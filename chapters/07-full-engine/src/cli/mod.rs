//! `berth`: docker's command line over the engine.
//!
//! The commands and flags are docker's (`docker run --help` is the
//! reference), and so are the outputs that scripts read: tables, the
//! inspect document, error messages, exit codes. Errors print as
//! `Error: MESSAGE` (docker's CLI says `Error response from daemon:`; there
//! is no daemon here) and exit with docker's codes: 125 when `run` or
//! `create` fails in the engine, 126 when the program cannot be executed,
//! 127 when it is not found, the container's own code otherwise; 1 for the
//! other commands.
//!
//! One file per group of commands:
//!
//! - [`run`] — `run`, `create`, `start`: the flags of `docker run`;
//! - [`containers`] — `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`,
//!   `wait`, `rename`, `container prune`, `container cleanup`;
//! - [`ps`], [`inspect`], [`logs`], [`exec`], [`top`] — looking at them;
//! - [`attach`] — a terminal or pipes on a container's streams;
//! - [`network`] — `network ...`, `port`;
//! - [`system`] — `info`, `version`;
//! - [`images`], [`registry`], [`archive`], [`commit`] — images: list,
//!   inspect, tag, remove; pull, push, login; save, load, import; commit;
//! - [`build`] — `build`: an image from a Dockerfile;
//! - [`format`] — `--format` templates and docker's tables.

pub mod archive;
pub mod attach;
pub mod build;
pub mod commit;
pub mod containers;
pub mod cp;
pub mod disk;
pub mod events;
pub mod exec;
pub mod filesystem;
pub mod format;
pub mod images;
pub mod inspect;
pub mod logs;
pub mod network;
pub mod ps;
pub mod registry;
pub mod run;
pub mod stats;
pub mod system;
pub mod top;
pub mod update;
pub mod volume;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{Engine, EngineError, EngineOptions};

/// A daemonless container engine with docker's command line: Berth's
/// chapter 7.
#[derive(Parser)]
#[command(name = "berth", version, about, long_about = None, disable_help_subcommand = true)]
pub struct Cli {
    /// Where images and containers are kept (default: /var/lib/berth as
    /// root, $XDG_DATA_HOME/berth otherwise).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Where running containers' state is kept, emptied by a reboot
    /// (default: /run/berth as root, $XDG_RUNTIME_DIR/berth otherwise;
    /// or $BERTH_RUN_ROOT).
    #[arg(long, global = true, value_name = "DIR")]
    pub run_root: Option<PathBuf>,
    /// The settings file, docker's daemon.json (default:
    /// /etc/berth/daemon.json as root, $XDG_CONFIG_HOME/berth/daemon.json
    /// otherwise).
    #[arg(long, global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create and run a new container from an image
    Run(Box<run::RunArgs>),
    /// Create a new container
    Create(Box<run::RunArgs>),
    /// Start one or more stopped containers
    Start(run::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers
    Pause(containers::Targets),
    /// Unpause all processes within one or more containers
    Unpause(containers::Targets),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::Targets),
    /// Return low-level information on containers
    Inspect(inspect::InspectArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(filesystem::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(filesystem::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Display system-wide information
    Info(system::FormatArgs),
    /// Show the Berth version information
    Version(system::FormatArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Manage Berth: disk usage, pruning, events, information
    #[command(subcommand)]
    System(disk::SystemCommand),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(archive::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(archive::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(archive::ImportArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
}

/// `berth container ...`: the same commands, grouped as docker groups them.
#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<run::RunArgs>),
    /// Create a new container
    Create(Box<run::RunArgs>),
    /// Start one or more stopped containers
    Start(run::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers
    Pause(containers::Targets),
    /// Unpause all processes within one or more containers
    Unpause(containers::Targets),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::Targets),
    /// Display detailed information on one or more containers
    Inspect(inspect::InspectArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(filesystem::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(filesystem::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Remove all stopped containers
    Prune(containers::PruneArgs),
    /// One side of a copy, in the container's root (run by cp)
    #[command(hide = true, subcommand)]
    CpHelper(cp::CpHelper),
    /// Release a stopped container's resources (run by its monitor)
    #[command(hide = true)]
    Cleanup { id: String },
}

impl From<ContainerCommand> for Command {
    fn from(command: ContainerCommand) -> Command {
        use ContainerCommand as C;
        match command {
            C::Run(a) => Command::Run(a),
            C::Create(a) => Command::Create(a),
            C::Start(a) => Command::Start(a),
            C::Stop(a) => Command::Stop(a),
            C::Restart(a) => Command::Restart(a),
            C::Kill(a) => Command::Kill(a),
            C::Pause(a) => Command::Pause(a),
            C::Unpause(a) => Command::Unpause(a),
            C::Rm(a) => Command::Rm(a),
            C::Ls(a) => Command::Ps(a),
            C::Logs(a) => Command::Logs(a),
            C::Attach(a) => Command::Attach(a),
            C::Exec(a) => Command::Exec(a),
            C::Diff(a) => Command::Diff(a),
            C::Cp(a) => Command::Cp(a),
            C::Export(a) => Command::Export(a),
            C::Wait(a) => Command::Wait(a),
            C::Inspect(a) => Command::Inspect(a),
            C::Top(a) => Command::Top(a),
            C::Rename(a) => Command::Rename(a),
            C::Commit(a) => Command::Commit(a),
            C::Prune(_) | C::Cleanup { .. } | C::CpHelper(_) => unreachable!("handled before"),
        }
    }
}

/// A command's failure: docker's message and exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    pub fn new(message: impl Into<String>, code: i32) -> Failure {
        Failure {
            message: message.into(),
            code,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Failure {
        Failure::new(err.to_string(), 1)
    }
}

/// What a command returns: its exit code, or a failure to print.
pub type Outcome = Result<i32, Failure>;

/// Ask docker's question (on stdout, as docker's CLI does); true on `y`.
pub fn confirm(question: &str) -> bool {
    use std::io::{BufRead, Write};
    print!("{question}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// docker's `Deleted THINGS:` block (nothing when `names` is empty).
pub fn print_deleted(out: &mut dyn std::io::Write, what: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let _ = writeln!(out, "Deleted {what}:");
    for name in names {
        let _ = writeln!(out, "{name}");
    }
    let _ = writeln!(out);
}

/// Print `failure` as docker does and return its code.
pub fn report(failure: &Failure) -> i32 {
    if !failure.message.is_empty() {
        eprintln!("Error: {}", failure.message);
    }
    failure.code
}

/// `berth`'s whole life: parse, run, its exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // docker exits 125 on a flag it does not know, for run too.
                _ => 125,
            };
            let _ = err.print();
            return code;
        }
    };
    let settings = match crate::engine::settings::load(cli.config_file.as_deref()) {
        Ok(settings) => settings,
        Err(err) => return report(&Failure::new(err.to_string(), 1)),
    };
    let engine = Engine::open(EngineOptions {
        root: cli.root.or_else(|| settings.data_root.clone()),
        run_root: cli.run_root,
        settings,
    });
    let command = match cli.command {
        Command::Container(ContainerCommand::Prune(args)) => {
            return done(containers::prune(&engine, &args));
        }
        Command::Container(ContainerCommand::CpHelper(helper)) => {
            return cp::cp_helper(&helper);
        }
        Command::Container(ContainerCommand::Cleanup { id }) => {
            return match engine.cleanup(&id) {
                Ok(()) => 0,
                Err(err) => report(&Failure::new(err.to_string(), 1)),
            };
        }
        Command::Container(command) => Command::from(command),
        command => command,
    };
    done(dispatch(&engine, command))
}

fn done(outcome: Outcome) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(failure) => report(&failure),
    }
}

fn dispatch(engine: &Engine, command: Command) -> Outcome {
    match command {
        Command::Run(args) => run::run(engine, *args),
        Command::Create(args) => run::create(engine, *args),
        Command::Start(args) => run::start(engine, &args),
        Command::Stop(args) => containers::stop(engine, &args),
        Command::Restart(args) => containers::restart(engine, &args),
        Command::Kill(args) => containers::kill(engine, &args),
        Command::Pause(args) => containers::pause(engine, &args),
        Command::Unpause(args) => containers::unpause(engine, &args),
        Command::Rm(args) => containers::rm(engine, &args),
        Command::Ps(args) => ps::ps(engine, &args),
        Command::Logs(args) => logs::logs(engine, &args),
        Command::Attach(args) => attach::attach(engine, &args),
        Command::Exec(args) => exec::exec(engine, args),
        Command::Wait(args) => containers::wait(engine, &args),
        Command::Inspect(args) => inspect::inspect(engine, &args),
        Command::Top(args) => top::top(engine, &args),
        Command::Rename(args) => containers::rename(engine, &args),
        Command::Info(args) => system::info(engine, &args),
        Command::Version(args) => system::version(engine, &args),
        Command::Network(command) => network::network(engine, command),
        Command::Port(args) => network::port(engine, &args),
        Command::Volume(command) => volume::volume(engine, command),
        Command::Events(args) => events::events(engine, &args),
        Command::Stats(args) => stats::stats(engine, &args),
        Command::Update(args) => update::update(engine, &args),
        Command::System(command) => disk::system(engine, command),
        Command::Diff(args) => filesystem::diff(engine, &args),
        Command::Export(args) => filesystem::export(engine, &args),
        Command::Cp(args) => cp::cp(engine, &args),
        Command::Container(_) => unreachable!("unwrapped in main"),
        Command::Images(args) => images::images(engine, &args),
        Command::Image(command) => images::image_command(engine, command),
        Command::History(args) => images::history(engine, &args),
        Command::Tag(args) => images::tag(engine, &args),
        Command::Rmi(args) => images::rmi(engine, &args),
        Command::Pull(args) => registry::pull(engine, &args),
        Command::Push(args) => registry::push(engine, &args),
        Command::Login(args) => registry::login(engine, &args),
        Command::Logout(args) => registry::logout(engine, &args),
        Command::Save(args) => archive::save(engine, &args),
        Command::Load(args) => archive::load(engine, &args),
        Command::Import(args) => archive::import(engine, &args),
        Command::Commit(args) => commit::commit(engine, &args),
        Command::Build(args) => build::build(engine, &args),
    }
}
