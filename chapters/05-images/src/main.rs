//! `ch05-images`: chapter 4's engine, running images from a content store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use ch02_namespaces::cli::{self, NamespaceArgs, ProcessArgs, container_config, random_id};
use ch03_cgroups::cli::{LimitArgs, default_capabilities};
use ch04_overlay::cli::{LayerRun, run_on_layers};
use ch04_overlay::state::{StorageDriver, default_root};
use ch05_images::archive::{self, ArchiveFormat};
use ch05_images::cli::RegistryArgs;
use ch05_images::gc;
use ch05_images::image::{import_rootfs, load_image, unpack_layers};
use ch05_images::mirrors::pull_with_mirrors;
use ch05_images::oci;
use ch05_images::process::{Overrides, image_process};
use ch05_images::pull::PullOptions;
use ch05_images::reference::Reference;
use ch05_images::registry::ClientOptions;
use ch05_images::store::{Store, StoreLock};
use ch05_images::user::ExecUser;
use clap::{Args, Parser, Subcommand};

/// Chapter 5 of Berth: a container runs an image, a stack of layers and a
/// config named by digests, kept in a content store.
#[derive(Parser)]
#[command(name = "ch05-images", version, about, long_about = None)]
struct Cli {
    /// Where images and containers are kept (default: /var/lib/berth as
    /// root, $XDG_DATA_HOME/berth otherwise).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a single-layer image from a root filesystem: a directory, or a
    /// tarball of one (as `docker import`).
    Import {
        /// The directory, or a tar file (plain, gzip or zstd), or - for a
        /// tar on stdin.
        #[arg(value_name = "DIR|TARBALL|-")]
        dir: PathBuf,
        /// The image's name, e.g. myimage or localhost:5000/me/app:1.
        name: String,
        #[command(flatten)]
        config: ImportConfig,
    },
    /// Write images to a file: a docker archive (what `docker load` and
    /// skopeo's docker-archive: read, with an OCI image layout inside) or an
    /// OCI image layout directory.
    Save {
        /// docker: one tar file; oci: an OCI image layout directory.
        #[arg(long, value_enum, default_value = "docker")]
        format: ArchiveFormat,
        /// The file (docker; - for stdout) or the new directory (oci).
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        /// The images, by name.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Load images from a docker archive or an OCI image layout (a
    /// directory, or a tar file, maybe gzip or zstd compressed).
    Load {
        /// The archive; - (the default) reads a tar from stdin.
        #[arg(short, long, value_name = "PATH", default_value = "-")]
        input: PathBuf,
    },
    /// Download an image from a registry: its manifest (for this platform),
    /// config and layers, each checked against its digest.
    Pull(PullCmd),
    /// List the images in the store.
    Images,
    /// Print an image's manifest and config.
    Inspect {
        /// The image's name.
        image: String,
    },
    /// Give an image another name.
    Tag {
        /// An existing image name.
        source: String,
        /// The new name.
        target: String,
    },
    /// Remove an image name; with the image's last name, delete the image
    /// and the content no other image or container uses.
    Rmi {
        /// NAME[:TAG], NAME@DIGEST, or an image ID (as `images` shows).
        image: String,
        /// By ID, remove the names in every repository.
        #[arg(short, long)]
        force: bool,
    },
    /// Delete every blob and unpacked layer no image name or container
    /// uses (garbage collection).
    Prune,
    /// List the containers and the images they were made from.
    Ps,
    /// Delete a container: its writable layer and state.
    Rm {
        /// The container's name.
        name: String,
    },
    /// Run a container from an image: its layers under an overlay, its
    /// config (Entrypoint, Cmd, Env, WorkingDir, User) applied.
    Run(Box<RunCmd>),
    /// Make a minimal root filesystem in DIR (chapter 1's mkrootfs).
    Mkrootfs(cli::MkrootfsArgs),
}

/// What an imported image runs, as `docker import --change` sets it.
#[derive(Args)]
struct ImportConfig {
    /// The command the image runs by default (Cmd).
    #[arg(long, default_value = "/bin/sh", num_args = 1.., value_name = "ARG")]
    cmd: Vec<String>,
    /// The program the Cmd is given to (Entrypoint).
    #[arg(long, num_args = 1.., value_name = "ARG")]
    entrypoint: Option<Vec<String>>,
    /// An environment variable, NAME=VALUE (Env; repeat the flag for more).
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The working directory (WorkingDir).
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// The user: a name, uid, name:group or uid:gid (User).
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
}

impl ImportConfig {
    fn container_config(self) -> anyhow::Result<oci::ContainerConfig> {
        if let Some(bad) = self.env.iter().find(|kv| !kv.contains('=')) {
            bail!("--env {bad}: write NAME=VALUE");
        }
        Ok(oci::ContainerConfig {
            entrypoint: self.entrypoint,
            env: (!self.env.is_empty()).then_some(self.env),
            working_dir: self.workdir,
            user: self.user,
            ..oci::ContainerConfig::from(self.cmd)
        })
    }
}

#[derive(Args)]
struct PullCmd {
    /// The image: NAME[:TAG] or NAME@DIGEST (e.g. alpine,
    /// localhost:5000/team/app:1).
    image: String,
    /// Pick this platform from a multi-platform image (os/arch[/variant],
    /// e.g. linux/arm64).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<oci::Platform>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Try this mirror of Docker Hub first, for Docker Hub images
    /// (http://HOST:PORT or https://HOST; repeat for several, tried in
    /// order, Docker Hub last), as docker's registry-mirrors.
    #[arg(long, value_name = "URL")]
    registry_mirror: Vec<String>,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = ch05_images::pull::DEFAULT_JOBS, value_name = "N")]
    jobs: usize,
    /// Print only the image's name.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
struct RunCmd {
    /// The container's name (default: a random id).
    #[arg(long)]
    name: Option<String>,
    /// overlay (the default) or vfs.
    #[arg(long, value_enum)]
    storage_driver: Option<StorageDriver>,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    namespaces: NamespaceArgs,
    /// The working directory inside the container (default: the image's
    /// WorkingDir, else /).
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// Run as USER[:GROUP], names or numbers, looked up in the image's
    /// /etc/passwd and /etc/group (default: the image's User, else root).
    #[arg(long, short = 'u', value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The image to run.
    image: String,
    /// A command instead of the image's Cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

fn main() -> ExitCode {
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let cli = Cli::parse();
    let root = cli.root.unwrap_or_else(default_root);
    // `run` exits as docker run does (125 when the engine fails, else the
    // container's status); every other command exits 1 on failure.
    let is_run = matches!(cli.command, Command::Run(_));
    match dispatch(&root, cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("ch05-images: {err:#}");
            let code = if is_run { cli::exit_code(&err) } else { 1 };
            ExitCode::from(code as u8)
        }
    }
}

fn reference(text: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(text)?)
}

fn dispatch(root: &Path, command: Command) -> anyhow::Result<i32> {
    // pull, load and import make a store; every other command needs one.
    let store =
        || Store::open(root).with_context(|| format!("open the store in {}", root.display()));
    let existing = || Store::open_existing(root).context("open the store");
    match command {
        Command::Import { dir, name, config } => import(&store()?, &dir, &name, config),
        Command::Save {
            format,
            output,
            images,
        } => save(&existing()?, format, &output, &images),
        Command::Load { input } => load(&store()?, &input),
        Command::Pull(cmd) => pull(&store()?, &cmd),
        Command::Images => images(&existing()?),
        Command::Inspect { image } => inspect(&existing()?, &image),
        Command::Tag { source, target } => tag(&existing()?, &source, &target),
        Command::Rmi { image, force } => rmi(&existing()?, &image, force),
        Command::Prune => {
            let store = existing()?;
            let lock = lock_exclusive(&store)?;
            for line in gc::collect_garbage(&store, &lock)?.lines() {
                println!("{line}");
            }
            Ok(0)
        }
        Command::Ps => ps(root),
        Command::Rm { name } => {
            ch04_overlay::cli::remove_container(root, &name)?;
            println!("{name}: removed");
            Ok(0)
        }
        Command::Run(cmd) => {
            // Before a container exists: run from a binary it cannot write.
            ch02_namespaces::sealed_exe::ensure_sealed()?;
            run(root, *cmd)
        }
        Command::Mkrootfs(args) => cli::mkrootfs_command(&args),
    }
}

/// `import DIR|TARBALL|- NAME`: a directory or a root filesystem tarball
/// as a one-layer image.
fn import(store: &Store, dir: &Path, name: &str, config: ImportConfig) -> anyhow::Result<i32> {
    let name = reference(name)?;
    let cmd = config.container_config()?;
    // Blobs first, the name last: garbage collection waits meanwhile.
    let _lock = store.lock_shared()?;
    let digest = if dir.as_os_str() == "-" {
        archive::import_tarball(store, std::io::stdin().lock(), &name, cmd)?
    } else if dir.is_dir() {
        import_rootfs(store, dir, &name, cmd)?
    } else {
        let file = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
        archive::import_tarball(store, file, &name, cmd)
            .with_context(|| format!("import {}", dir.display()))?
    };
    println!("{}: {digest}", name.familiar());
    Ok(0)
}

/// `images`: one line per name, as docker prints them.
fn images(store: &Store) -> anyhow::Result<i32> {
    println!("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE");
    let now = std::time::SystemTime::now();
    for name in store.names()?.keys() {
        let reference = reference(name)?;
        let image = load_image(store, &reference)?;
        let id = image.manifest.config.digest.trim_start_matches("sha256:");
        let size: u64 = image.manifest.layers.iter().map(|l| l.size).sum();
        let repository = reference.familiar_name();
        let tag = reference.tag.as_deref().unwrap_or("<none>");
        println!(
            "{repository}\t{tag}\t{}\t{}\t{}",
            &id[..12.min(id.len())],
            ch05_images::image::created_ago(image.config.created.as_deref(), now),
            ch03_cgroups::format_size(size)
        );
    }
    Ok(0)
}

/// `inspect IMAGE`: digest, manifest and config (and index) as JSON.
fn inspect(store: &Store, image: &str) -> anyhow::Result<i32> {
    let image = load_image(store, &reference(image)?)?;
    let mut both = serde_json::json!({
        "Digest": image.digest,
        "Manifest": image.manifest,
        "Config": image.config,
    });
    // A multi-platform name: the index it points to, too.
    if let Some(index) = &image.index {
        both["Index"] = index.clone().into();
    }
    println!("{}", serde_json::to_string_pretty(&both)?);
    Ok(0)
}

/// `tag SOURCE TARGET`: another name for the same image.
fn tag(store: &Store, source: &str, target: &str) -> anyhow::Result<i32> {
    // No collection between reading the digest and naming it again.
    let _lock = store.lock_shared()?;
    let source = reference(source)?;
    let image = load_image(store, &source)?;
    store.set_name(&reference(target)?.to_string(), image.named_digest())?;
    Ok(0)
}

/// `rmi [--force] IMAGE`: the name, and what no other name or container
/// needs.
fn rmi(store: &Store, image: &str, force: bool) -> anyhow::Result<i32> {
    let lock = lock_exclusive(store)?;
    let removal = gc::remove_image(store, &lock, image, force)?;
    for (name, digest) in &removal.untagged {
        println!("untagged: {}: {digest}", gc::familiar(name));
    }
    for line in removal.deleted.iter().flat_map(|report| report.lines()) {
        println!("{line}");
    }
    Ok(0)
}

/// `ps`: the containers and their images.
fn ps(root: &Path) -> anyhow::Result<i32> {
    // Containers of chapter 4's run may live in a root with no image
    // store: then no image has a name.
    ch04_overlay::state::check_root(root)?;
    let names = match Store::open_existing(root) {
        Ok(store) => store.names()?,
        Err(_) => Default::default(),
    };
    println!("NAME\tIMAGE");
    for c in gc::container_uses(root)? {
        let image = match &c.image {
            Some(digest) => match names.iter().find(|(_, d)| *d == digest) {
                Some((name, _)) => gc::familiar(name),
                None => digest.chars().take("sha256:".len() + 12).collect(),
            },
            None => "-".to_string(),
        };
        println!("{}\t{image}", c.name);
    }
    Ok(0)
}

// ANCHOR: pull_command
/// `pull`, printing what docker prints: the layers in order, the digest
/// the tag named, and whether anything changed.
fn pull(store: &Store, cmd: &PullCmd) -> anyhow::Result<i32> {
    let name = reference(&cmd.image)?;
    let options = ClientOptions {
        trace: std::env::var_os("BERTH_TRACE_HTTP").is_some_and(|v| v == "1"),
        ..cmd
            .registry
            .client_options()
            .context("read the password from stdin")?
    };
    let client = options;
    let options = PullOptions {
        platform: cmd.platform.clone().unwrap_or_else(oci::Platform::host),
        platform_given: cmd.platform.is_some(),
        jobs: cmd.jobs,
    };
    let what = match (&name.tag, &name.digest) {
        (_, Some(digest)) => digest.to_string(),
        (Some(tag), None) => tag.clone(),
        (None, None) => "latest".into(),
    };
    if !cmd.quiet {
        println!("{what}: Pulling from {}", name.repository);
    }
    let mirrors = &cmd.registry_mirror;
    for mirror in mirrors {
        ch05_images::mirrors::parse_mirror(mirror)?;
    }
    let pulled = pull_with_mirrors(store, &name, mirrors, &client, &options)
        .with_context(|| format!("pull {}", name.familiar()))?
        .pulled;
    if cmd.quiet {
        println!("{name}");
        return Ok(0);
    }
    for (id, outcome) in &pulled.layers {
        println!("{id}: {outcome}");
    }
    println!("Digest: {}", pulled.digest);
    if pulled.up_to_date {
        println!("Status: Image is up to date for {}", name.familiar());
    } else {
        println!("Status: Downloaded newer image for {}", name.familiar());
    }
    println!("{name}");
    Ok(0)
}
// ANCHOR_END: pull_command

/// Chapter 4's run on the image's layers, with the image's config applied.
// ANCHOR: run_image
fn run(root: &Path, cmd: RunCmd) -> anyhow::Result<i32> {
    // 1. The store lock, shared, until the container has recorded its
    //    image (step 5): garbage collection cannot delete the layers
    //    between their unpacking and the container's start.
    let store = Store::open(root)?;
    let lock = store.lock_shared()?;
    // 2. The image: manifest and config from the store, layers unpacked
    //    once each (shared by every image that has them).
    let image = load_image(&store, &reference(&cmd.image)?)?;
    let layers = unpack_layers(&store, &image)?;
    // 3. What to run, where and as whom: the image's config, with the
    //    command line's overrides (docker run's rules).
    let overrides = Overrides {
        cmd: cmd.cmd,
        workdir: cmd.workdir,
        user: cmd.user,
    };
    let config = image.config.config.clone().unwrap_or_default();
    let image_process = image_process(&cmd.image, &config, &layers, &overrides)?;
    let process = ProcessArgs {
        workdir: image_process.workdir.clone(),
        user: image_process.user.as_ref().map(ExecUser::user),
    };
    let spec = LayerRun {
        name: cmd.name.clone().unwrap_or_else(random_id),
        layers,
        driver: cmd.storage_driver,
        rm: cmd.rm,
    };
    let (mut namespaces, limits) = (cmd.namespaces, cmd.limits);
    namespaces.security.defaults = Some(default_capabilities(&limits));
    // 4. Chapter 4's run.
    run_on_layers(
        "ch05-images",
        root,
        &spec,
        &limits,
        move |merged, hostname| {
            // 5. The container's directory (ROOT/containers/NAME, the parent of
            //    merged/) exists: record its image there, so that rmi refuses
            //    to delete the image while the container exists; then garbage
            //    collection may run again.
            let dir = merged.parent().context("the container's directory")?;
            gc::record_image(dir, image.named_digest())?;
            drop(lock);
            let mut namespaces = namespaces;
            namespaces.hostname.get_or_insert(hostname);
            let args = image_process.args.clone();
            let mut container = container_config(namespaces, process, merged, args)?;
            // 6. The image's Env over the minimal environment, and the user's
            //    home as HOME unless the image sets one.
            image_process.apply_env(&mut container.process.env);
            Ok(container)
        },
    )
}
// ANCHOR_END: run_image

/// The store lock exclusive, for rmi and prune, saying why when a writer
/// makes us wait.
fn lock_exclusive(store: &Store) -> anyhow::Result<StoreLock> {
    if let Some(lock) = store.try_lock_exclusive()? {
        return Ok(lock);
    }
    eprintln!("ch05-images: waiting for a pull, load, import or run to finish with the store");
    Ok(store.lock_exclusive()?)
}

/// `save`: the archive to a file, a directory, or stdout.
fn save(
    store: &Store,
    format: ArchiveFormat,
    output: &Path,
    images: &[String],
) -> anyhow::Result<i32> {
    let refs = images
        .iter()
        .map(|i| reference(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let to_stdout = output.as_os_str() == "-";
    match format {
        ArchiveFormat::Docker if to_stdout => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!(
                    "refusing to write an archive to a terminal: give -o FILE or redirect stdout"
                );
            }
            let out = archive::save_docker_archive(store, &refs, std::io::stdout().lock())?;
            drop(out);
        }
        ArchiveFormat::Docker => archive::save_docker_archive_file(store, &refs, output)
            .with_context(|| format!("save to {}", output.display()))?,
        ArchiveFormat::Oci if to_stdout => {
            bail!("an OCI image layout is a directory: give -o DIR (or --format docker for stdout)")
        }
        ArchiveFormat::Oci => archive::save_oci_layout(store, &refs, output)
            .with_context(|| format!("save to {}", output.display()))?,
    }
    Ok(0)
}

/// `load`, printing what docker prints: `Loaded image: NAME` for each name,
/// `Loaded image ID: ID` for an image that has none.
fn load(store: &Store, input: &Path) -> anyhow::Result<i32> {
    let loaded = if input.as_os_str() == "-" {
        archive::load_reader(store, std::io::stdin().lock(), "stdin")?
    } else {
        archive::load_path(store, input).with_context(|| format!("load {}", input.display()))?
    };
    for image in loaded {
        for name in &image.names {
            println!("Loaded image: {}", name.familiar());
        }
        if image.names.is_empty() {
            println!("Loaded image ID: {}", image.config);
            let why = match &image.bare_tag {
                Some(tag) => format!("the archive gives only the tag {tag:?}, no repository"),
                None => "the archive gives it no name".to_string(),
            };
            eprintln!(
                "ch05-images: note: image {} is not named: {why}",
                image.digest
            );
        }
    }
    Ok(0)
}
