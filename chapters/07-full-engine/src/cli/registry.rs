//! `pull`, `push`, `login`, `logout`: images to and from a registry, with
//! chapter 5's client and chapter 6's push, and the credentials in docker's
//! `~/.docker/config.json` (the file chapters 5 and 6 read).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ch05_images::pull::short_id;
use ch05_images::reference::{DEFAULT_REGISTRY, Reference};
use ch05_images::registry::{Call, ClientOptions, Credentials, Registry, docker_config_dir};
use ch06_registry::push::{BlobOutcome, Destination, Progress, PushOptions};
use clap::Args;

use super::{Failure, Outcome};
use crate::engine::Engine;

/// The key `docker login` files Docker Hub under in config.json.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// The repository login's token request names. docker asks a token server
/// for a token with no scope; chapter 5's client always names one, and a
/// pull scope proves the credentials just as well: the token server checks
/// them before it looks at scopes, and refuses wrong ones (401).
const LOGIN_PROBE_REPOSITORY: &str = "library/berth-login-probe";

/// The flags of `pull`.
#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

/// The flags of `push`.
#[derive(Args, Debug, Clone)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// The flags of `login`.
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long, value_name = "string")]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long, value_name = "string")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// The arguments of `logout`.
#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn parse(text: &str) -> Result<Reference, Failure> {
    Reference::parse(text).map_err(|_| Failure::new("invalid reference format", 1))
}

/// `pull`: chapter 5's pull; progress on stderr, the full name on stdout.
pub fn pull(engine: &Engine, args: &PullArgs) -> Outcome {
    let reference = parse(&args.image)?;
    let mut progress: Box<dyn Write> = if args.quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    engine.pull(&reference, args.platform.as_deref(), &mut progress)?;
    println!("{reference}");
    Ok(0)
}

/// Push progress as docker prints it: a line per blob.
struct Lines {
    quiet: bool,
    /// Blobs docker does not list (the config).
    unlisted: Vec<String>,
}

impl Progress for Lines {
    fn start(&self, _digest: &str, _size: u64) -> Option<indicatif::ProgressBar> {
        None
    }

    fn done(&self, digest: &str, outcome: &BlobOutcome) {
        if self.quiet || self.unlisted.iter().any(|d| d == digest) {
            return;
        }
        println!("{}: {outcome}", short_id(digest));
    }
}

/// `push`: chapter 6's push of the image the name points to, under its
/// tag, with the credentials `login` stored.
pub fn push(engine: &Engine, args: &PushArgs) -> Outcome {
    let dest = parse(&args.image)?;
    let store = engine.image_store()?;
    let digest = match &dest.digest {
        Some(d) => d.to_string(),
        None => store
            .resolve(&dest.to_string())
            .map_err(|e| Failure::new(e.to_string(), 1))?
            .ok_or_else(|| {
                Failure::new(
                    format!(
                        "An image does not exist locally with the tag: {}",
                        dest.familiar_name()
                    ),
                    1,
                )
            })?,
    };
    let registry = Registry::new(&dest.registry, &ClientOptions::default())
        .map_err(|e| Failure::new(e.to_string(), 1))?;
    let destination = Destination {
        registry: &registry,
        repository: dest.api_repository(),
    };
    // Layers the registry holds in another repository of this image's
    // family (the one sharing the most layers, as pushed or pulled from
    // there) are mounted rather than uploaded, as docker does.
    let image = super::images::named_images(store)?
        .into_iter()
        .find(|(_, i)| i.named_digest() == digest || i.digest == digest)
        .map(|(_, i)| i);
    let ours: Vec<String> = image
        .iter()
        .flat_map(|i| i.manifest.layers.iter().map(|l| l.digest.clone()))
        .collect();
    let unlisted: Vec<String> = image
        .iter()
        .map(|i| i.manifest.config.digest.clone())
        .collect();
    let mount_from = super::images::named_images(store)?
        .into_iter()
        .filter(|(r, _)| r.registry == dest.registry && r.repository != dest.repository)
        .map(|(r, i)| {
            let shared = i
                .manifest
                .layers
                .iter()
                .filter(|l| ours.contains(&l.digest))
                .count();
            (shared, r.repository)
        })
        .filter(|(shared, _)| *shared > 0)
        .max_by_key(|(shared, _)| *shared)
        .map(|(_, repository)| repository);
    let options = PushOptions {
        mount_from,
        ..PushOptions::default()
    };
    if !args.quiet {
        println!("The push refers to repository [{}]", dest.familiar_name());
    }
    let pushed = ch06_registry::push::push(
        store,
        &digest,
        &destination,
        dest.tag.as_deref(),
        &options,
        &Lines {
            quiet: args.quiet,
            unlisted,
        },
    )
    .map_err(|e| Failure::new(e.to_string(), 1))?;
    if args.quiet {
        println!("{dest}");
    } else {
        println!(
            "{}: digest: {} size: {}",
            dest.tag.as_deref().unwrap_or("latest"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(0)
}

/// The key `server` has in config.json's `auths`, as docker files it.
fn config_key(server: Option<&str>) -> String {
    match server {
        None => DOCKER_HUB_CONFIG_KEY.to_string(),
        Some(s) => {
            let host = s
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let host = host.strip_suffix("/v2").unwrap_or(host);
            if host == DEFAULT_REGISTRY || host == "index.docker.io" {
                DOCKER_HUB_CONFIG_KEY.to_string()
            } else {
                host.to_string()
            }
        }
    }
}

fn config_path() -> Result<PathBuf, Failure> {
    docker_config_dir()
        .map(|d| d.join("config.json"))
        .ok_or_else(|| Failure::new("neither DOCKER_CONFIG nor HOME is set", 1))
}

fn read_config(path: &Path) -> Result<serde_json::Value, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(serde_json::json!({})),
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Failure::new(format!("loading config file {}: {e}", path.display()), 1)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(Failure::new(format!("read {}: {e}", path.display()), 1)),
    }
}

/// Replace config.json whole: a temp file (mode 0600, it holds
/// passwords) renamed over it.
fn write_config(path: &Path, config: &serde_json::Value) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail =
        |what: &str, e: std::io::Error| Failure::new(format!("{what} {}: {e}", path.display()), 1);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

/// `login`: check the credentials against the registry's `/v2/`, then
/// store them in config.json.
pub fn login(_engine: &Engine, args: &LoginArgs) -> Outcome {
    let key = config_key(args.server.as_deref());
    let registry_name = if key == DOCKER_HUB_CONFIG_KEY {
        DEFAULT_REGISTRY.to_string()
    } else {
        key.clone()
    };
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let mut username = args.username.clone().filter(|u| !u.is_empty());
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(Failure::new(
                "--password and --password-stdin are mutually exclusive",
                1,
            ));
        }
        (Some(p), false) => p.clone(),
        (None, true) => {
            if username.is_none() {
                return Err(Failure::new(
                    "Must provide --username with --password-stdin",
                    1,
                ));
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::new(format!("read the password from stdin: {e}"), 1))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::new(
                    "Cannot perform an interactive login from a non TTY device",
                    1,
                ));
            }
            if username.is_none() {
                username = Some(prompt("Username: ", true)?);
            }
            prompt("Password: ", false)?
        }
    };
    let Some(username) = username.filter(|u| !u.is_empty()) else {
        return Err(Failure::new("Username is required", 1));
    };
    if password.is_empty() {
        return Err(Failure::new("Password is required", 1));
    }
    // 1. The registry must accept them.
    let registry = Registry::new(
        &registry_name,
        &ClientOptions {
            credentials: Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            ..ClientOptions::default()
        },
    )
    .map_err(|e| Failure::new(e.to_string(), 1))?;
    let url = registry.url("/v2/");
    let response = registry
        .send(&Call::new("GET", url.clone(), LOGIN_PROBE_REPOSITORY))
        .map_err(|e| Failure::new(format!("Get \"{url}\": {e}"), 1))?;
    let status = response.status().as_u16();
    if status == 401 {
        return Err(Failure::new(
            format!("Get \"{url}\": unauthorized: incorrect username or password"),
            1,
        ));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::new(
            format!("Get \"{url}\": the registry answered {status}"),
            1,
        ));
    }
    // 2. Stored as docker stores them.
    let path = config_path()?;
    let mut config = read_config(&path)?;
    if !config.is_object() {
        config = serde_json::json!({});
    }
    if !config["auths"].is_object() {
        config["auths"] = serde_json::json!({});
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    config["auths"][&key] = serde_json::json!({ "auth": auth });
    write_config(&path, &config)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

/// Ask on the terminal, as docker does; without echo for a password
/// (termios ECHO off, restored whatever happens).
fn prompt(question: &str, echo: bool) -> Result<String, Failure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    // Echo off before the question: what is typed after it never shows.
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
        println!();
    }
    read.map_err(|e| Failure::new(format!("read the answer: {e}"), 1))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `logout`: the server's entry out of config.json.
pub fn logout(_engine: &Engine, args: &LogoutArgs) -> Outcome {
    let key = config_key(args.server.as_deref());
    let path = config_path()?;
    let mut config = read_config(&path)?;
    let removed = config
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .and_then(|a| a.remove(&key));
    if removed.is_none() {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    println!("Removing login credentials for {key}");
    write_config(&path, &config)?;
    Ok(0)
}
