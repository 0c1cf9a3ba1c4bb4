//! `ch04-overlay`: chapter 3's engine on a filesystem of layers.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use ch01_chroot::launch::ChildStep;
use ch01_chroot::rootfs::Source;
use ch02_namespaces::cli::{self, NamespaceArgs, ProcessArgs, container_config};
use ch03_cgroups::cli::{LimitArgs, run_limited_with};
use ch04_overlay::commit::{CommitOptions, commit_layer, diff};
use ch04_overlay::overlay::{OverlayDirs, choose_driver, mount_overlay, rootless_overlay_step};
use ch04_overlay::state::{self, ContainerState, StorageDriver, default_root};
use ch04_overlay::vfs::copy_layers;
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
    Mkrootfs {
        /// Where to take the programs from.
        #[arg(long, value_enum, default_value_t = Source::Auto)]
        from: Source,
        /// The directory to create (it may exist, but must be empty).
        dir: PathBuf,
    },
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
        Command::Run(cmd) => run(root, *cmd),
        Command::Diff { name } => {
            let (dir, state) = state::load(root, &name)?;
            if state.driver != StorageDriver::Overlay {
                bail!(
                    "{name} uses the vfs driver, which keeps no separate writable layer: diff needs overlay"
                );
            }
            let lowers: Vec<PathBuf> = state.layers.iter().rev().cloned().collect();
            for change in diff(&dir.upper(), &lowers)? {
                println!("{change}");
            }
            Ok(0)
        }
        Command::Commit {
            name,
            out,
            gzip,
            keep_times,
        } => {
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
            let (dir, _) = state::load(root, &name)?;
            // A container whose engine died may still have its overlay mounted.
            let _ = nix::mount::umount2(&dir.merged(), nix::mount::MntFlags::MNT_DETACH);
            remove_container_dir(&dir.0)?;
            println!("{name}: removed");
            Ok(0)
        }
        Command::Ps => {
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
        Command::Mkrootfs { from, dir } => cli::mkrootfs_command(from, &dir),
    }
}

/// Chapter 3's run, on a filesystem made of layers.
// ANCHOR: run
fn run(root: &Path, cmd: RunCmd) -> anyhow::Result<i32> {
    // 1. The layers must exist; their absolute paths go in the state.
    let mut layers = Vec::new();
    for layer in &cmd.layers {
        let path = std::fs::canonicalize(layer)
            .ok()
            .filter(|p| p.is_dir())
            .with_context(|| {
                format!(
                    "layer {}: no such directory: give an existing directory as --layer",
                    layer.display()
                )
            })?;
        layers.push(path);
    }
    let driver = cmd.storage_driver.unwrap_or_else(auto_driver);
    // 2. The container's state directory: refuses a name already taken.
    let state = ContainerState {
        name: cmd.name.clone(),
        layers: layers.clone(),
        driver,
    };
    let dir = state::create(root, &state)?;
    // 3. Its root filesystem: an overlay, or a copy. On failure, the state
    //    goes too: nothing half-made stays behind.
    //    Rootless, the overlay is mounted by the container's child, inside
    //    its user namespace (chapter 2's before_rootfs hook).
    let rootless = !nix::unistd::Uid::effective().is_root();
    let dirs = OverlayDirs {
        lower: layers.clone(),
        upper: dir.upper(),
        work: dir.work(),
        merged: dir.merged(),
    };
    let made = (|| -> anyhow::Result<_> {
        match driver {
            StorageDriver::Overlay if rootless => Ok((None, Some(rootless_overlay_step(&dirs)?))),
            StorageDriver::Overlay => Ok((Some(mount_overlay(&dirs)?), None)),
            StorageDriver::Vfs => {
                copy_layers(&layers, &dir.merged())?;
                Ok((None, None))
            }
        }
    })();
    let (mount, in_child) = match made {
        Ok(made) => made,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&dir.0);
            return Err(err);
        }
    };
    let no_step = || Ok(());
    let before_rootfs: ChildStep = match &in_child {
        Some(step) => step,
        None => &no_step,
    };
    // 4. Chapter 3's run on it.
    let mut namespaces = cmd.namespaces;
    namespaces.hostname.get_or_insert_with(|| cmd.name.clone());
    let result =
        container_config(namespaces, cmd.process, dir.merged(), cmd.cmd).and_then(|config| {
            run_limited_with(
                "ch04-overlay",
                &cmd.name,
                &config,
                &cmd.limits,
                before_rootfs,
            )
        });
    // 5. Unmount; the writable layer stays for diff and commit, unless --rm.
    if let Some(mount) = mount {
        mount.unmount()?;
    }
    if cmd.rm {
        remove_container_dir(&dir.0)?;
    }
    result
}
// ANCHOR_END: run

/// overlay when the kernel has it and lets us mount it, else vfs, with a notice.
fn auto_driver() -> StorageDriver {
    let rootless = !nix::unistd::Uid::effective().is_root();
    let (driver, notice) = choose_driver(Path::new("/proc"), rootless);
    if let Some(notice) = notice {
        eprintln!("ch04-overlay: note: {notice}");
    }
    driver
}

/// Remove a container's directory. overlay leaves its `work/work` with mode
/// 000; root ignores that, a rootless user must first give it back the
/// owner's permissions (it is the user's own directory).
fn remove_container_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let mode = meta.permissions().mode() | 0o700;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
            stack.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))
}
