//! `ch06-registry`: an OCI distribution registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ch04_overlay::state::default_root;
use ch05_images::cli::RegistryArgs;
use ch05_images::progress::Transfers;
use ch05_images::pull::short_id;
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Credentials, Registry};
use ch05_images::store::Store;
use ch06_registry::auth::{Auth, Htpasswd};
use ch06_registry::gc::{GcOptions, collect};
use ch06_registry::proxy::{ProxyOptions, parse_remote_url};
use ch06_registry::push::{BlobOutcome, Destination, Progress, PushOptions, push};
use ch06_registry::server::{ServeOptions, Timeouts, serve};
use ch06_registry::storage::Storage;
use ch06_registry::token::Tokens;
use clap::{Parser, Subcommand};
use indicatif::ProgressBar;

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
        /// Issue and require bearer tokens scoped per repository and action,
        /// as Docker Hub does; the token server is /token on this registry,
        /// and URL (default: http://ADDR/token) is where clients are sent
        /// for it. Users of --htpasswd may push; anyone may pull.
        #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
        token_realm: Option<String>,
        /// How long a token is good for.
        #[arg(long, value_name = "DURATION", default_value = "5m",
              value_parser = humantime::parse_duration, requires = "token_realm")]
        token_ttl: Duration,
        /// Tokens to pull only for users of --htpasswd, not for anyone.
        #[arg(long, requires = "token_realm")]
        no_anonymous_pull: bool,
        /// How long a request's headers may take to arrive, and a
        /// kept-alive connection may sit idle, before it is closed.
        #[arg(long, value_name = "DURATION", default_value = "30s",
              value_parser = humantime::parse_duration)]
        header_timeout: Duration,
        /// How long nothing may move on a connection during a request (a
        /// stalled upload, a client that stopped reading) before it is closed.
        #[arg(long, value_name = "DURATION", default_value = "5m",
              value_parser = humantime::parse_duration)]
        idle_timeout: Duration,
        /// Be a pull-through cache (a mirror) of the registry at URL
        /// (http://HOST:PORT or https://HOST): what is not here is fetched
        /// from there, stored and served; pushes are refused.
        #[arg(long, value_name = "URL")]
        proxy_remote_url: Option<String>,
        /// The user name for the remote registry.
        #[arg(
            long,
            value_name = "USER",
            requires = "proxy_remote_url",
            requires = "proxy_password_file"
        )]
        proxy_username: Option<String>,
        /// A file holding the password for the remote registry (its first
        /// line).
        #[arg(long, value_name = "FILE", requires = "proxy_username")]
        proxy_password_file: Option<PathBuf>,
        /// How long a cached tag is served before it is checked against the
        /// remote again (distribution's proxy uses 168h for blobs and
        /// manifests, and checks tags on every pull).
        #[arg(long, value_name = "DURATION", default_value = "5m",
              value_parser = humantime::parse_duration, requires = "proxy_remote_url")]
        proxy_ttl: Duration,
    },
    /// Push an image from the engine's store (chapter 5's) to a registry.
    Push {
        /// The engine's store (default: /var/lib/berth as root,
        /// $XDG_DATA_HOME/berth otherwise), as for ch05-images.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The image, by name (e.g. localhost:5000/app:1, or any name with
        /// DEST).
        image: String,
        /// Where to push it (default: IMAGE itself, whose name says the
        /// registry).
        dest: Option<String>,
        /// Upload in chunks of this many bytes (PATCH with Content-Range)
        /// instead of one PUT per blob.
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<u64>,
        /// Layers uploaded at once.
        #[arg(long, default_value_t = ch06_registry::push::DEFAULT_JOBS, value_name = "N")]
        jobs: usize,
        #[command(flatten)]
        registry: RegistryArgs,
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
    // `... | head`: end quietly when the reader goes, as coreutils do.
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
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
            token_realm,
            token_ttl,
            no_anonymous_pull,
            header_timeout,
            idle_timeout,
            proxy_remote_url,
            proxy_username,
            proxy_password_file,
            proxy_ttl,
        } => {
            let htpasswd = match htpasswd {
                Some(path) => Some(Htpasswd::load(&path)?),
                None => None,
            };
            if htpasswd.is_some() && !is_loopback(&addr) {
                eprintln!(
                    "ch06-registry: warning: Basic auth over plain HTTP on {addr} sends passwords \
                     in the clear: put TLS in front of the registry"
                );
            }
            let users = htpasswd.is_some();
            let mut auth = Auth::new(htpasswd, read_only);
            if let Some(realm) = token_realm {
                if token_ttl.as_secs() == 0 {
                    bail!("--token-ttl {token_ttl:?}: a token must be good for at least a second");
                }
                if !users {
                    eprintln!(
                        "ch06-registry: no --htpasswd: there are no users, so tokens grant pull only"
                    );
                }
                let tokens = Tokens::new(realm, token_ttl, !no_anonymous_pull)
                    .context("draw a random key to sign tokens with")?;
                auth = auth.with_tokens(tokens);
            }
            if header_timeout.is_zero() || idle_timeout.is_zero() {
                bail!("--header-timeout and --idle-timeout must be more than 0");
            }
            let proxy = match proxy_remote_url {
                Some(url) => Some(proxy_options(
                    url,
                    proxy_username,
                    proxy_password_file.as_deref(),
                    proxy_ttl,
                )?),
                None => None,
            };
            runtime()?.block_on(serve(ServeOptions {
                addr,
                root: registry_root(root),
                auth,
                timeouts: Timeouts {
                    header: header_timeout,
                    idle: idle_timeout,
                },
                proxy,
            }))
        }
        Command::Push {
            root,
            image,
            dest,
            chunk_size,
            jobs,
            registry,
        } => {
            let options = registry
                .client_options()
                .context("read the password from stdin")?;
            push_command(
                &root.unwrap_or_else(default_root),
                &image,
                dest.as_deref(),
                PushOptions {
                    chunk_size,
                    jobs,
                    mount_from: None,
                },
                &options,
            )
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

/// The proxy's options, checked before anything is bound or opened.
fn proxy_options(
    remote_url: String,
    username: Option<String>,
    password_file: Option<&Path>,
    ttl: Duration,
) -> anyhow::Result<ProxyOptions> {
    parse_remote_url(&remote_url)?;
    let credentials = match (username, password_file) {
        (Some(username), Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read --proxy-password-file {}", file.display()))?;
            let password = text.lines().next().unwrap_or("").to_string();
            if password.is_empty() {
                bail!(
                    "--proxy-password-file {}: the file is empty: put the password on its first line",
                    file.display()
                );
            }
            Some(Credentials { username, password })
        }
        _ => None,
    };
    Ok(ProxyOptions {
        remote_url,
        credentials,
        ttl,
    })
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

/// Progress as docker shows it: a bar per upload on a terminal, a line per
/// blob on stdout.
struct Bars {
    transfers: Transfers,
}

impl Progress for Bars {
    fn start(&self, digest: &str, size: u64) -> Option<ProgressBar> {
        Some(self.transfers.add(&short_id(digest), size, "Pushing"))
    }

    fn done(&self, digest: &str, outcome: &BlobOutcome) {
        self.transfers
            .println(&format!("{}: {outcome}", short_id(digest)));
    }
}

fn push_command(
    root: &Path,
    image: &str,
    dest: Option<&str>,
    mut push_options: PushOptions,
    options: &ClientOptions,
) -> anyhow::Result<()> {
    let source = Reference::parse(image)?;
    let dest = match dest {
        Some(d) => Reference::parse(d)?,
        None => source.clone(),
    };
    // push only reads the store: a mistyped --root must not make one.
    let store = Store::open_existing(root).context("open the store")?;
    // 1. What the name means here.
    let digest = match &source.digest {
        Some(d) => d.to_string(),
        None => store.resolve(&source.to_string())?.with_context(|| {
            format!(
                "no image {} in the store in {}: pull, load or import it first",
                source.familiar(),
                root.display()
            )
        })?,
    };
    let registry = Registry::new(&dest.registry, options)?;
    let destination = Destination {
        registry: &registry,
        repository: dest.api_repository(),
    };
    // Blobs of an image that came from another repository of the same
    // registry can be mounted from there.
    push_options.mount_from = (source.registry == dest.registry
        && source.repository != dest.repository)
        .then(|| source.repository.clone());
    println!("The push refers to repository [{}]", dest.familiar_name());
    let bars = Bars {
        transfers: Transfers::on_stderr(),
    };
    let pushed = push(
        &store,
        &digest,
        &destination,
        dest.tag.as_deref(),
        &push_options,
        &bars,
    )?;
    println!(
        "{}: digest: {} size: {}",
        dest.tag.as_deref().unwrap_or("(by digest)"),
        pushed.digest,
        pushed.size
    );
    Ok(())
}
