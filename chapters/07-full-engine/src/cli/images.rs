//! `images`, `image inspect`, `history`, `tag`, `rmi`, `image prune`: the
//! local images, as docker shows them, over chapter 5's store.
//!
//! ```text
//! REPOSITORY   TAG       IMAGE ID       CREATED        SIZE
//! web          v0.1      5e1c06e7a1b2   2 minutes ago  4.86MB
//! ```
//!
//! An image's ID is its config's digest (as docker's); a name points to a
//! manifest (chapter 5's index). Removing an image's last name deletes it
//! through chapter 5's garbage collection, which keeps whatever a
//! container still uses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use ch05_images::gc;
use ch05_images::image::{Image, load_image};
use ch05_images::reference::Reference;
use ch05_images::store::{Store, StoreLock};
use clap::{Args, Subcommand};
use gotmpl::Value;

use super::format::{Format, print_items, render, template};
use super::inspect::to_json_4;
use super::ps::{human_duration, human_size};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::commit::{dangling_name, is_dangling};

/// `berth image ...`: the image commands, grouped as docker groups them.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(super::registry::PullArgs),
    /// Upload an image to a registry
    Push(super::registry::PushArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(super::archive::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(super::archive::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(super::archive::ImportArgs),
}

/// `berth image SUBCOMMAND`.
pub fn image_command(engine: &Engine, command: ImageCommand) -> Outcome {
    match command {
        ImageCommand::Ls(args) => images(engine, &args),
        ImageCommand::Inspect(args) => inspect(engine, &args),
        ImageCommand::History(args) => history(engine, &args),
        ImageCommand::Tag(args) => tag(engine, &args),
        ImageCommand::Rm(args) => rmi(engine, &args),
        ImageCommand::Prune(args) => prune(engine, &args),
        ImageCommand::Pull(args) => super::registry::pull(engine, &args),
        ImageCommand::Push(args) => super::registry::push(engine, &args),
        ImageCommand::Save(args) => super::archive::save(engine, &args),
        ImageCommand::Load(args) => super::archive::load(engine, &args),
        ImageCommand::Import(args) => super::archive::import(engine, &args),
    }
}

/// The flags of `images`.
#[derive(Args, Debug, Clone)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling=true|false,
    /// reference=PATTERN)
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// The flags of `image inspect`.
#[derive(Args, Debug, Clone)]
pub struct ImageInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// The flags of `history`.
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

/// The arguments of `tag`.
#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// The flags of `rmi`.
#[derive(Args, Debug, Clone)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// The flags of `image prune`.
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

fn store_failure(err: impl std::fmt::Display) -> Failure {
    Failure::new(err.to_string(), 1)
}

/// The config digest, without `sha256:`, cut to docker's 12 digits unless
/// `full`.
fn image_id(image: &Image, full: bool) -> String {
    let id = &image.manifest.config.digest;
    if full {
        return id.clone();
    }
    let hex = id.trim_start_matches("sha256:");
    hex[..12.min(hex.len())].to_string()
}

/// Leave out the intermediate images of builds, as docker's `images`
/// does without `-a`: a dangling image that another image builds on (its
/// history is the start of the other's), or a build's empty `scratch`.
fn hide_intermediate(all: &mut Vec<(Reference, Image)>) {
    let histories: Vec<(String, Vec<ch05_images::oci::History>)> = all
        .iter()
        .map(|(_, i)| {
            let history = i.config.history.clone().unwrap_or_default();
            (i.manifest.config.digest.clone(), history)
        })
        .collect();
    all.retain(|(r, i)| {
        if !is_dangling(r) {
            return true;
        }
        let Some(mine) = &i.config.history else {
            return true;
        };
        if mine.is_empty() {
            return !i.manifest.layers.is_empty();
        }
        !histories.iter().any(|(digest, other)| {
            *digest != i.manifest.config.digest
                && other.len() > mine.len()
                && other[..mine.len()] == mine[..]
        })
    });
}

/// Every name in the store with its image, the names of one image
/// together.
pub fn named_images(store: &Store) -> Result<Vec<(Reference, Image)>, Failure> {
    let mut all = Vec::new();
    for name in store.names().map_err(store_failure)?.keys() {
        let Ok(reference) = Reference::parse(name) else {
            continue;
        };
        // A name whose content is gone (a crash between steps) is not an
        // image: `images` does not show it.
        if let Ok(image) = load_image(store, &reference) {
            all.push((reference, image));
        }
    }
    Ok(all)
}

/// What the user typed (a name, `NAME@DIGEST`, an ID or its prefix): the
/// image and its names.
pub fn find_image(store: &Store, text: &str) -> Result<(Image, Vec<Reference>), Failure> {
    let no_such = || Failure::new(format!("No such image: {text}"), 1);
    let all = named_images(store)?;
    let by_name = Reference::parse(text).ok().and_then(|wanted| {
        all.iter()
            .find(|(r, i)| {
                r.to_string() == wanted.to_string()
                    || (wanted.digest.is_some()
                        && r.registry == wanted.registry
                        && r.repository == wanted.repository
                        && wanted.digest.as_ref().map(|d| d.to_string()).as_deref()
                            == Some(i.named_digest()))
            })
            .map(|(_, i)| i.clone())
    });
    let image = match by_name {
        Some(image) => image,
        None => {
            let hex = text.strip_prefix("sha256:").unwrap_or(text);
            let is_hex =
                !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !is_hex {
                return Err(no_such());
            }
            let mut ids: Vec<&Image> = all
                .iter()
                .map(|(_, i)| i)
                .filter(|i| {
                    i.manifest
                        .config
                        .digest
                        .trim_start_matches("sha256:")
                        .starts_with(hex)
                })
                .collect();
            ids.dedup_by(|a, b| a.manifest.config.digest == b.manifest.config.digest);
            match ids.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(no_such()),
                _ => {
                    return Err(Failure::new(
                        format!("{text}: ambiguous image ID prefix: give more digits"),
                        1,
                    ));
                }
            }
        }
    };
    let names = all
        .into_iter()
        .filter(|(_, i)| i.manifest.config.digest == image.manifest.config.digest)
        .map(|(r, _)| r)
        .collect();
    Ok((image, names))
}

/// The size of a directory tree's files, as `du --apparent-size` counts.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += tree_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// One layer's unpacked size (what docker's SIZE adds up), or its
/// compressed size when it is not unpacked.
fn layer_size(store: &Store, image: &Image, i: usize) -> u64 {
    let diff_id = &image.config.rootfs.diff_ids[i];
    match store.layer_path(diff_id) {
        Ok(path) if path.is_dir() => tree_size(&path),
        _ => image.manifest.layers[i].size,
    }
}

/// The image's size: its layers unpacked.
pub fn image_size(store: &Store, image: &Image) -> u64 {
    (0..image.manifest.layers.len())
        .map(|i| layer_size(store, image, i))
        .sum()
}

fn created_since(created: Option<&str>, now: SystemTime) -> String {
    match created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) {
        Some(then) => {
            let age = now.duration_since(then).unwrap_or_default();
            format!("{} ago", human_duration(age.as_secs_f64()))
        }
        None => "N/A".into(),
    }
}

/// `images` / `image ls`.
pub fn images(engine: &Engine, args: &ImagesArgs) -> Outcome {
    let store = engine.image_store()?;
    let mut all = named_images(store)?;
    if let Some(filter) = &args.repository {
        let wanted =
            Reference::parse(filter).map_err(|_| Failure::new("invalid reference format", 1))?;
        let tag_given = filter
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        all.retain(|(r, _)| {
            r.registry == wanted.registry
                && r.repository == wanted.repository
                && (!tag_given || r.tag == wanted.tag)
        });
    }
    // An image with a name shows no dangling one.
    let named: Vec<String> = all
        .iter()
        .filter(|(r, _)| !is_dangling(r))
        .map(|(_, i)| i.manifest.config.digest.clone())
        .collect();
    all.retain(|(r, i)| !is_dangling(r) || !named.contains(&i.manifest.config.digest));
    if !args.all {
        hide_intermediate(&mut all);
    }
    for filter in &args.filter {
        let Some((key, value)) = filter.split_once('=') else {
            return Err(Failure::new(
                format!("bad format of filter (expected name=value): {filter}"),
                1,
            ));
        };
        match key {
            "dangling" => {
                let want = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(Failure::new(
                            format!("invalid filter 'dangling={value}'"),
                            1,
                        ));
                    }
                };
                all.retain(|(r, _)| is_dangling(r) == want);
            }
            "reference" => all.retain(|(r, _)| {
                !is_dangling(r) && (glob(value, &r.familiar_name()) || glob(value, &r.familiar()))
            }),
            _ => return Err(Failure::new(format!("invalid filter '{key}'"), 1)),
        }
    }
    // Newest first, as docker lists them; names of one image together.
    all.sort_by(|(ra, a), (rb, b)| {
        (b.config
            .created
            .as_deref()
            .cmp(&a.config.created.as_deref()))
        .then_with(|| a.manifest.config.digest.cmp(&b.manifest.config.digest))
        .then_with(|| ra.to_string().cmp(&rb.to_string()))
    });
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for (_, image) in &all {
            let id = image_id(image, args.no_trunc);
            if !seen.contains(&id) {
                let _ = writeln!(out, "{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    let items: Vec<Value> = all
        .iter()
        .map(|(r, image)| {
            let created = image.config.created.clone().unwrap_or_default();
            let size = human_size(image_size(store, image));
            let mut map: BTreeMap<String, Value> = BTreeMap::new();
            let mut put = |k: &str, v: String| {
                map.insert(k.to_string(), Value::String(v.into()));
            };
            let dangling = is_dangling(r);
            let none = || "<none>".to_string();
            put(
                "Repository",
                if dangling { none() } else { r.familiar_name() },
            );
            let tag = r.tag.clone().filter(|_| !dangling).unwrap_or_else(none);
            put("Tag", tag);
            put("ID", image_id(image, args.no_trunc));
            put("Digest", image.named_digest().to_string());
            put("CreatedAt", created.clone());
            put(
                "CreatedSince",
                created_since(image.config.created.as_deref(), now),
            );
            put("Size", size.clone());
            put("VirtualSize", size);
            put("SharedSize", "N/A".into());
            put("UniqueSize", "N/A".into());
            put("Containers", "N/A".into());
            Value::from(map)
        })
        .collect();
    let headers = {
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in [
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("ID", "IMAGE ID"),
            ("Digest", "DIGEST"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedSince", "CREATED"),
            ("Size", "SIZE"),
            ("VirtualSize", "VIRTUAL SIZE"),
            ("SharedSize", "SHARED SIZE"),
            ("UniqueSize", "UNIQUE SIZE"),
            ("Containers", "CONTAINERS"),
        ] {
            map.insert(k.to_string(), Value::String(v.into()));
        }
        Value::from(map)
    };
    let default = if args.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    print_items(
        &mut out,
        &Format::parse(args.format.as_deref()),
        default,
        &headers,
        &items,
    )
    .map_err(|m| Failure::new(m, 1))?;
    Ok(0)
}

/// Go's `path.Match` for `reference=`: `*` is any run of characters but
/// `/`, `?` one of them; the rest match themselves.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn walk(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| walk(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && t[0] != '/' && walk(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && walk(&p[1..], &t[1..]),
        }
    }
    walk(&p, &t)
}

/// docker's `Config` of an image: every field present, in docker's order,
/// `null` where unset.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<BTreeMap<String, ch05_images::oci::Empty>>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<ch05_images::oci::HealthConfig>,
    image: String,
    volumes: Option<BTreeMap<String, ch05_images::oci::Empty>>,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    on_build: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shell: Option<Vec<String>>,
}

/// docker's image inspect document, fields in docker's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: DockerConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    size: u64,
    graph_driver: serde_json::Value,
    #[serde(rename = "RootFS")]
    root_fs: serde_json::Value,
    metadata: serde_json::Value,
}

/// docker's image inspect document for `image`, named `names`.
pub fn inspect_document(store: &Store, image: &Image, names: &[Reference]) -> ImageInspect {
    let names: Vec<&Reference> = names.iter().filter(|r| !is_dangling(r)).collect();
    let repo_tags: Vec<String> = names.iter().map(|r| r.familiar()).collect();
    let mut repo_digests: Vec<String> = names
        .iter()
        .map(|r| format!("{}@{}", r.familiar_name(), image.named_digest()))
        .collect();
    repo_digests.dedup();
    let lowers: Vec<String> = image
        .config
        .rootfs
        .diff_ids
        .iter()
        .rev()
        .filter_map(|d| store.layer_path(d).ok())
        .map(|p| p.display().to_string())
        .collect();
    let comment = image
        .config
        .history
        .as_ref()
        .and_then(|h| h.last())
        .and_then(|h| h.comment.clone())
        .unwrap_or_default();
    let c = image.config.config.clone().unwrap_or_default();
    ImageInspect {
        id: image.manifest.config.digest.clone(),
        repo_tags,
        repo_digests,
        parent: String::new(),
        comment,
        created: (image.config.created.clone()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        docker_version: String::new(),
        author: image.config.author.clone().unwrap_or_default(),
        config: DockerConfig {
            hostname: String::new(),
            domainname: String::new(),
            user: c.user.unwrap_or_default(),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: c.exposed_ports,
            tty: false,
            open_stdin: false,
            stdin_once: false,
            env: c.env,
            cmd: c.cmd,
            healthcheck: c.healthcheck,
            image: String::new(),
            volumes: c.volumes,
            working_dir: c.working_dir.unwrap_or_default(),
            entrypoint: c.entrypoint,
            on_build: c.on_build,
            labels: c.labels,
            stop_signal: c.stop_signal,
            shell: c.shell,
        },
        architecture: image.config.architecture.clone(),
        variant: image.config.variant.clone(),
        os: image.config.os.clone(),
        size: image_size(store, image),
        graph_driver: serde_json::json!({
            "Data": {"LowerDir": lowers.join(":")},
            "Name": "overlay",
        }),
        root_fs: serde_json::json!({
            "Type": image.config.rootfs.kind,
            "Layers": image.config.rootfs.diff_ids,
        }),
        metadata: serde_json::json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
    }
}

/// `image inspect`.
pub fn inspect(engine: &Engine, args: &ImageInspectArgs) -> Outcome {
    let store = engine.image_store()?;
    let template = match args.format.as_deref() {
        Some(text) if text != "json" => Some(template(text).map_err(|m| Failure::new(m, 1))?),
        _ => None,
    };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &args.images {
        match find_image(store, name) {
            Ok((image, names)) => found.push(inspect_document(store, &image, &names)),
            Err(_) => missing.push(name.clone()),
        }
    }
    let mut out = std::io::stdout().lock();
    match &template {
        Some(template) => {
            for doc in &found {
                let value =
                    gotmpl::ser::to_value(doc).map_err(|e| Failure::new(e.to_string(), 1))?;
                let text = render(template, &value).map_err(|m| Failure::new(m, 1))?;
                let _ = writeln!(out, "{text}");
            }
        }
        None => {
            let _ = writeln!(out, "{}", to_json_4(&found));
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    for name in &missing {
        eprintln!("Error: No such image: {name}");
    }
    Err(Failure::new("", 1))
}

/// `history`: the image's steps, newest first; the steps that made a layer
/// show its size.
pub fn history(engine: &Engine, args: &HistoryArgs) -> Outcome {
    let store = engine.image_store()?;
    let (image, _) = find_image(store, &args.image)?;
    let layers = image.manifest.layers.len();
    // The steps as the config tells them; an image without history (an
    // import) has one unnamed step per layer.
    let steps = match &image.config.history {
        Some(h) if !h.is_empty() => h.clone(),
        _ => (0..layers)
            .map(|_| ch05_images::oci::History {
                created: image.config.created.clone(),
                ..Default::default()
            })
            .collect(),
    };
    let mut next_layer = 0;
    let mut rows = Vec::new();
    for step in &steps {
        let size = if step.empty_layer == Some(true) || next_layer >= layers {
            0
        } else {
            next_layer += 1;
            layer_size(store, &image, next_layer - 1)
        };
        rows.push((step.clone(), size));
    }
    rows.reverse();
    let now = SystemTime::now();
    let mut out = std::io::stdout().lock();
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (step, size))| {
            let id = if i == 0 {
                image_id(&image, args.no_trunc)
            } else {
                "<missing>".to_string()
            };
            let mut created_by = step.created_by.clone().unwrap_or_default();
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            let (created, size) = if args.human {
                (
                    created_since(step.created.as_deref(), now),
                    human_size(*size),
                )
            } else {
                (step.created.clone().unwrap_or_default(), size.to_string())
            };
            let mut map: BTreeMap<String, Value> = BTreeMap::new();
            let mut put = |k: &str, v: String| {
                map.insert(k.to_string(), Value::String(v.into()));
            };
            put("ID", id);
            put("CreatedSince", created);
            put("CreatedAt", step.created.clone().unwrap_or_default());
            put("CreatedBy", created_by);
            put("Size", size);
            put("Comment", step.comment.clone().unwrap_or_default());
            Value::from(map)
        })
        .collect();
    if args.quiet {
        let template = template("{{.ID}}").map_err(|m| Failure::new(m, 1))?;
        for item in &items {
            let id = render(&template, item).map_err(|m| Failure::new(m, 1))?;
            let _ = writeln!(out, "{id}");
        }
        return Ok(0);
    }
    let headers = {
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in [
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ] {
            map.insert(k.to_string(), Value::String(v.into()));
        }
        Value::from(map)
    };
    print_items(
        &mut out,
        &Format::parse(args.format.as_deref()),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &headers,
        &items,
    )
    .map_err(|m| Failure::new(m, 1))?;
    Ok(0)
}

/// `tag SOURCE TARGET`: a second name for the same manifest.
pub fn tag(engine: &Engine, args: &TagArgs) -> Outcome {
    let store = engine.image_store()?;
    let target =
        Reference::parse(&args.target).map_err(|_| Failure::new("invalid reference format", 1))?;
    if target.digest.is_some() {
        return Err(Failure::new(
            "refusing to create a tag with a digest reference",
            1,
        ));
    }
    // No collection between reading the digest and naming it again.
    let _lock = store.lock_shared().map_err(store_failure)?;
    let (image, _) = find_image(store, &args.source)?;
    store
        .set_name(&target.to_string(), image.named_digest())
        .map_err(store_failure)?;
    // Named now: no longer dangling.
    store
        .remove_name(&dangling_name(image.named_digest()))
        .map_err(store_failure)?;
    Ok(0)
}

/// The store lock exclusive, saying why when a writer makes us wait.
pub fn lock_exclusive(store: &Store) -> Result<StoreLock, Failure> {
    if let Some(lock) = store.try_lock_exclusive().map_err(store_failure)? {
        return Ok(lock);
    }
    eprintln!("waiting for a pull, load, import or run to finish with the image store");
    store.lock_exclusive().map_err(store_failure)
}

/// The containers made from the image with config digest `id`: (short id,
/// running).
fn users_of(engine: &Engine, id: &str) -> Result<Vec<(String, bool)>, Failure> {
    Ok(engine
        .containers()?
        .into_iter()
        .filter(|c| c.image == id)
        .map(|c| (c.id[..12].to_string(), c.state.running))
        .collect())
}

/// Print what a garbage collection deleted, as docker's `Deleted:` lines.
fn print_deleted(out: &mut dyn Write, config_id: &str, report: &gc::GcReport) {
    if report.blobs.iter().any(|d| d == config_id) {
        let _ = writeln!(out, "Deleted: {config_id}");
    }
    for layer in &report.layers {
        let _ = writeln!(out, "Deleted: {layer}");
    }
}

/// `rmi`: each image's names, and the image with its last name; refused
/// while a container uses it (`-f` then only removes the names, and the
/// content stays for the container).
pub fn rmi(engine: &Engine, args: &RmiArgs) -> Outcome {
    let store = engine.image_store()?;
    let lock = lock_exclusive(store)?;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for target in &args.images {
        match rmi_one(engine, store, &lock, target, args.force, &mut out) {
            Ok(()) => {}
            Err(failure) => {
                eprintln!("Error: {}", failure.message);
                failed = true;
            }
        }
    }
    if failed {
        return Err(Failure::new("", 1));
    }
    Ok(0)
}

fn rmi_one(
    engine: &Engine,
    store: &Store,
    lock: &StoreLock,
    target: &str,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (image, names) = find_image(store, target)?;
    let config_id = image.manifest.config.digest.clone();
    let short = image_id(&image, false);
    let by_name = Reference::parse(target)
        .ok()
        .is_some_and(|r| names.iter().any(|n| n.to_string() == r.to_string()));
    // docker: an ID names every tag; a name only itself.
    let doomed: Vec<Reference> = if by_name {
        let wanted = Reference::parse(target).map_err(store_failure)?;
        names
            .iter()
            .filter(|n| n.to_string() == wanted.to_string())
            .cloned()
            .collect()
    } else {
        if names.len() > 1 && !force {
            let repos: std::collections::BTreeSet<String> =
                names.iter().map(|n| n.familiar_name()).collect();
            if repos.len() > 1 {
                return Err(Failure::new(
                    format!(
                        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    ),
                    1,
                ));
            }
        }
        names.clone()
    };
    // The last real name going takes a dangling one with it.
    let last = names.iter().all(|n| is_dangling(n) || doomed.contains(n));
    let mut doomed = doomed;
    if last {
        doomed.extend(names.iter().filter(|n| is_dangling(n)).cloned());
        doomed.dedup();
    }
    let users = users_of(engine, &config_id)?;
    if last && let Some((container, running)) = users.first() {
        if !by_name && *running {
            return Err(Failure::new(
                format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {container}"
                ),
                1,
            ));
        }
        if !force {
            let what = if by_name {
                format!(
                    "unable to remove repository reference \"{target}\" (must force) - container {container} is using its referenced image {short}"
                )
            } else {
                format!(
                    "unable to delete {short} (must be forced) - image is being used by stopped container {container}"
                )
            };
            return Err(Failure::new(format!("conflict: {what}"), 1));
        }
        // Forced: the names go, the content stays for the container
        // (chapter 5's collection keeps what containers record).
        store
            .set_name(&dangling_name(image.named_digest()), image.named_digest())
            .map_err(store_failure)?;
        for name in doomed.iter().filter(|n| !is_dangling(n)) {
            if store
                .remove_name(&name.to_string())
                .map_err(store_failure)?
                .is_some()
            {
                let _ = writeln!(out, "Untagged: {}", name.familiar());
            }
        }
        return Ok(());
    }
    let mut removal = gc::Removal::default();
    for name in &doomed {
        if let Some(d) = store
            .remove_name(&name.to_string())
            .map_err(store_failure)?
        {
            removal.untagged.push((name.to_string(), d));
        }
    }
    for (name, _) in &removal.untagged {
        if Reference::parse(name).is_ok_and(|r| !is_dangling(&r)) {
            let _ = writeln!(out, "Untagged: {}", gc::familiar(name));
        }
    }
    if last {
        let report = gc::collect_garbage(store, lock).map_err(store_failure)?;
        print_deleted(out, &config_id, &report);
    }
    Ok(())
}

/// `image prune`: content no name reaches (chapter 5's garbage); with
/// `-a`, also every image no container uses.
pub fn prune(engine: &Engine, args: &PruneArgs) -> Outcome {
    if !args.force {
        let question = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !super::confirm(question) {
            return Ok(0);
        }
    }
    let (lines, reclaimed) = prune_images(engine, args.all)?;
    let mut out = std::io::stdout().lock();
    super::print_deleted(&mut out, "Images", &lines);
    let _ = writeln!(out, "Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// Untag the dangling images (all unused ones with `all`) and collect
/// the garbage: docker's `untagged:`/`deleted:` lines, and the bytes freed.
pub fn prune_images(engine: &Engine, all: bool) -> Result<(Vec<String>, u64), Failure> {
    let store = engine.image_store()?;
    let lock = lock_exclusive(store)?;
    let stored =
        || tree_size(&store.root().join("blobs")) + tree_size(&store.root().join("layers"));
    let before = stored();
    let mut lines = Vec::new();
    let used: Vec<String> = engine.containers()?.into_iter().map(|c| c.image).collect();
    for (name, image) in named_images(store)? {
        let unused = !used.contains(&image.manifest.config.digest);
        if unused
            && (all || is_dangling(&name))
            && store
                .remove_name(&name.to_string())
                .map_err(store_failure)?
                .is_some()
            && !is_dangling(&name)
        {
            lines.push(format!("untagged: {}", name.familiar()));
        }
    }
    let report = gc::collect_garbage(store, &lock).map_err(store_failure)?;
    for blob in &report.blobs {
        lines.push(format!("deleted: {blob}"));
    }
    for layer in &report.layers {
        lines.push(format!("deleted: {layer}"));
    }
    Ok((lines, before.saturating_sub(stored())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns_match_as_gos_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("web:*", "web:v0.1"));
        assert!(glob("*/web", "user/web"));
        assert!(!glob("*", "user/web"));
        assert!(glob("we?:v0.?", "web:v0.1"));
        assert!(!glob("web", "web2"));
    }
}
