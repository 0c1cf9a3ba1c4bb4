//! The builder: a Dockerfile's instructions, one step at a time, each
//! step an image (docker's classic builder).
//!
//! - FROM starts a stage from an image (pulled if missing, or with
//!   `--pull`), an earlier stage, or `scratch`.
//! - RUN is a container of the stage's current image, made, started and
//!   waited for by the engine (the same runtime, monitor and network as
//!   `berth run`), whose writable layer becomes the step's layer (as
//!   `commit` does), and which is then removed.
//! - COPY and ADD write a layer from the context or another stage
//!   ([`super::copy`]).
//! - The others change the image config only, and add a history entry
//!   with `empty_layer`.
//!
//! Before doing a step, the builder asks the cache ([`super::cache`]) with
//! the step's key; a hit gives the image the same step gave before.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ch04_overlay::commit::{CommitOptions, commit_layer};
use ch05_images::image::{Image, load_image, unpack_layers};
use ch05_images::oci::{
    self, ContainerConfig, Descriptor, Empty, History, ImageConfig, ImageManifest, Platform, RootFs,
};
use ch05_images::reference::Reference;
use ch05_images::store::{Compression, Store};
use clap::Parser;

use super::cache::{self, Cache};
use super::context::{Context, ContextError, unpack_archive};
use super::copy::{self, Attrs, Tree};
use super::dockerfile::{self, Command, CopyArgs, Instruction, ParseError, ShellOrExec};
use super::expand::{ExpandError, Vars, expand_word, expand_words};
use super::view::LayerView;
use crate::engine::commit::{dangling_name, put_json};
use crate::engine::create::PullPolicy;
use crate::engine::logs::LogOptions;
use crate::engine::record::now_rfc3339;
use crate::engine::start::StartMode;
use crate::engine::{Engine, EngineError};

/// How many lines of a failing RUN's output its error shows.
pub const FAILED_OUTPUT_LINES: usize = 10;

/// What `berth build` is asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// A directory, a tarball, or `-`.
    pub context: String,
    /// `-f`: the Dockerfile (`-` for stdin); default `CONTEXT/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--platform`: the base images' platform (this host's).
    pub platform: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    /// RUN's `--network`.
    pub network: String,
    /// RUN's `--runtime`.
    pub runtime: Option<String>,
    /// `SOURCE_DATE_EPOCH` / `--timestamp`: every created time, and no
    /// file time later.
    pub timestamp: Option<i64>,
}

/// A build that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A step: its line, its instruction, what went wrong.
    #[error("Dockerfile:{line}: {text}: {message}")]
    Step {
        line: usize,
        text: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// What a step's work fails with, before the step names itself.
type StepResult<T> = Result<T, String>;

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl From<ExpandError> for String {
    fn from(e: ExpandError) -> String {
        e.to_string()
    }
}

/// The stage being built: its current image and what the builder keeps
/// beside it.
#[derive(Clone)]
struct Stage {
    /// `AS name`, lower case.
    name: Option<String>,
    /// A name the store knows the current image by.
    image_name: String,
    /// The current image's manifest digest.
    digest: String,
    manifest: ImageManifest,
    config: ImageConfig,
    /// The unpacked layers, bottom first.
    layers: Vec<PathBuf>,
    /// The ARGs declared in the stage, with their values.
    args: Vars,
    /// Whether this stage set CMD (ENTRYPOINT clears an inherited one).
    cmd_set: bool,
}

impl Stage {
    fn container_config(&self) -> ContainerConfig {
        self.config.config.clone().unwrap_or_default()
    }

    /// The variables in effect: the stage's ARGs, then its ENV over them.
    fn vars(&self) -> Vars {
        let mut vars = self.args.clone();
        for kv in self.container_config().env.unwrap_or_default() {
            if let Some((k, v)) = kv.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        vars
    }

    fn workdir(&self) -> String {
        self.container_config()
            .working_dir
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

/// A writer many owners share (a container's stdout and stderr, in one
/// buffer in their order).
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `docker run`'s flags, to make a RUN step's container with the same
/// code (and defaults) as `berth run`.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct RunLine {
    #[command(flatten)]
    run: crate::cli::run::RunArgs,
}

/// The context's files, for [`copy::copy_entry`].
struct ContextTree<'a>(&'a Context);

impl Tree for ContextTree<'_> {
    fn list(&self, _rel: &str, host: &Path) -> Vec<(String, PathBuf)> {
        let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(host)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        entries.sort();
        entries
    }
    fn excluded(&self, rel: &str) -> bool {
        self.0.ignore.excludes(rel)
    }
}

/// Another stage's (or image's) files.
struct ViewTree<'a>(&'a LayerView);

impl Tree for ViewTree<'_> {
    fn list(&self, rel: &str, _host: &Path) -> Vec<(String, PathBuf)> {
        self.0.list(rel).into_iter().collect()
    }
    fn excluded(&self, _rel: &str) -> bool {
        false
    }
}

/// Removes a RUN step's container, however the step ends.
struct Removal<'a> {
    engine: &'a Engine,
    id: String,
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.engine.remove(&self.id, true) {
            eprintln!("remove intermediate container {}: {err}", &self.id[..12]);
        }
    }
}

/// The short form of an image ID (`sha256:` and 12 hex digits off).
pub fn short_id(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// The builder's state through one build.
struct Builder<'a> {
    engine: &'a Engine,
    store: &'a Store,
    request: &'a BuildRequest,
    context: &'a Context,
    cache: Cache,
    escape: char,
    /// ARGs before the first FROM.
    global: Vars,
    /// The build args some ARG consumed.
    used: BTreeSet<String>,
    /// The stages built so far.
    done: Vec<Stage>,
    step: usize,
    total: usize,
}

/// Build as `request` says; the final image's ID (config digest).
pub fn build(engine: &Engine, request: &BuildRequest) -> Result<String, BuildError> {
    let store = engine
        .image_store()
        .map_err(|e| BuildError::Other(e.to_string()))?;
    super::interrupt::catch().map_err(|e| BuildError::Other(format!("sigaction: {e}")))?;
    // 1. The context and the Dockerfile.
    let context = Context::open(&request.context, store.root())?;
    let dockerfile_text = match (&request.dockerfile, &context.dockerfile_text) {
        (_, Some(text)) => text.clone(),
        (Some(path), None) if path == Path::new("-") => {
            if request.context == "-" {
                return Err(BuildError::Other(
                    "invalid argument: can't use stdin for both build context and dockerfile"
                        .into(),
                ));
            }
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| BuildError::Other(format!("read the Dockerfile from stdin: {e}")))?;
            text
        }
        (Some(path), None) => {
            let path = if path.is_relative() && !path.exists() {
                context.root.join(path)
            } else {
                path.clone()
            };
            std::fs::read_to_string(&path)
                .map_err(|e| BuildError::Other(format!("read {}: {e}", path.display())))?
        }
        (None, None) => {
            let path = context.root.join("Dockerfile");
            std::fs::read_to_string(&path).map_err(|e| {
                BuildError::Other(format!(
                    "unable to prepare context: read {}: {e}",
                    path.display()
                ))
            })?
        }
    };
    let file = dockerfile::parse(&dockerfile_text)?;
    for note in &file.notes {
        eprintln!("note: {note}");
    }
    // 2. Meta ARGs, then stages (each from its FROM).
    let first_from = file
        .instructions
        .iter()
        .position(|i| matches!(i.command, Command::From { .. }))
        .ok_or_else(|| BuildError::Other("the Dockerfile has no FROM instruction".into()))?;
    let (meta, rest) = file.instructions.split_at(first_from);
    if let Some(bad) = meta.iter().find(|i| !matches!(i.command, Command::Arg(_))) {
        return Err(BuildError::Step {
            line: bad.line,
            text: bad.text.clone(),
            message: "no build stage in current context: only ARG may come before the first FROM"
                .into(),
        });
    }
    let mut stages: Vec<&[Instruction]> = Vec::new();
    let mut start = 0;
    for (n, ins) in rest.iter().enumerate().skip(1) {
        if matches!(ins.command, Command::From { .. }) {
            stages.push(&rest[start..n]);
            start = n;
        }
    }
    stages.push(&rest[start..]);
    // 3. Up to the target stage.
    if let Some(target) = &request.target {
        let target = target.to_ascii_lowercase();
        let index = stages
            .iter()
            .position(
                |s| matches!(&s[0].command, Command::From { name: Some(n), .. } if *n == target),
            )
            .ok_or_else(|| {
                BuildError::Other(format!("target stage {target:?} could not be found"))
            })?;
        stages.truncate(index + 1);
    }
    let mut builder = Builder {
        engine,
        store,
        request,
        context: &context,
        cache: Cache::new(&engine.roots().root),
        escape: file.escape,
        global: Vars::new(),
        used: BTreeSet::new(),
        done: Vec::new(),
        step: 0,
        total: meta.len() + stages.iter().map(|s| s.len()).sum::<usize>(),
    };
    for ins in meta {
        builder.announce(ins)?;
        if let Command::Arg(pairs) = &ins.command {
            let mut global = builder.global.clone();
            builder
                .declare_args(pairs, &mut global, &Vars::new())
                .map_err(|m| step_error(ins, m))?;
            builder.global = global;
        }
    }
    for instructions in stages {
        let mut stage = builder.from(&instructions[0])?;
        for ins in &instructions[1..] {
            builder.announce(ins)?;
            builder
                .instruction(&mut stage, ins)
                .map_err(|m| step_error(ins, m))?;
        }
        builder.done.push(stage);
    }
    let mut last = builder
        .done
        .pop()
        .ok_or_else(|| BuildError::Other("nothing was built".into()))?;
    // 4. --label, then the names.
    if !request.labels.is_empty() {
        let labels = request.labels.clone();
        builder
            .metadata(&mut last, "LABEL (--label)", |c| {
                c.labels.get_or_insert_with(BTreeMap::new).extend(labels);
                Ok(())
            })
            .map_err(BuildError::Other)?;
    }
    let unused: Vec<&String> = request
        .build_args
        .keys()
        .filter(|k| !builder.used.contains(*k))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "[Warning] One or more build-args [{}] were not consumed",
            names.join(" ")
        );
    }
    let id = last.manifest.config.digest.clone();
    builder.say(&format!("Successfully built {}", short_id(&id)));
    for tag in &request.tags {
        store
            .set_name(&tag.to_string(), &last.digest)
            .map_err(|e| BuildError::Other(e.to_string()))?;
        builder.say(&format!("Successfully tagged {}", tag.familiar()));
    }
    if request.quiet {
        println!("{id}");
    }
    Ok(id)
}

fn step_error(ins: &Instruction, message: String) -> BuildError {
    BuildError::Step {
        line: ins.line,
        text: ins.text.clone(),
        message,
    }
}

/// An RFC 3339 time for `secs` since the epoch.
fn rfc3339(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

impl Builder<'_> {
    fn say(&self, line: &str) {
        if !self.request.quiet {
            println!("{line}");
        }
    }

    fn announce(&mut self, ins: &Instruction) -> Result<(), BuildError> {
        super::interrupt::check().map_err(|m| step_error(ins, m))?;
        self.step += 1;
        self.say(&format!("Step {}/{} : {}", self.step, self.total, ins.text));
        Ok(())
    }

    fn created(&self) -> String {
        match self.request.timestamp {
            Some(secs) => rfc3339(secs),
            None => now_rfc3339(),
        }
    }

    /// A stage's start: FROM.
    fn from(&mut self, ins: &Instruction) -> Result<Stage, BuildError> {
        self.announce(ins)?;
        let Command::From {
            image,
            name,
            platform,
        } = &ins.command
        else {
            unreachable!("stages start with FROM");
        };
        let fail = |m: String| step_error(ins, m);
        let image = expand_word(image, &self.global, self.escape).map_err(|e| fail(e.into()))?;
        let mut stage = if image == "scratch" {
            self.scratch().map_err(fail)?
        } else if let Some(earlier) = self
            .done
            .iter()
            .find(|s| s.name.as_deref() == Some(image.to_ascii_lowercase().as_str()))
        {
            earlier.clone()
        } else {
            let pull = if self.request.pull {
                PullPolicy::Always
            } else {
                PullPolicy::Missing
            };
            let platform = match platform {
                Some(p) => {
                    Some(expand_word(p, &self.global, self.escape).map_err(|e| fail(e.into()))?)
                }
                None => self.request.platform.clone(),
            };
            let (reference, found) = self
                .engine
                .ensure_image(&image, pull, platform.as_deref(), &mut std::io::stderr())
                .map_err(|e| fail(e.to_string()))?;
            self.stage_of(reference.to_string(), found).map_err(fail)?
        };
        stage.name = name.clone();
        stage.args = Vars::new();
        stage.cmd_set = false;
        self.say(&format!(
            " ---> {}",
            short_id(&stage.manifest.config.digest)
        ));
        // The base image's ONBUILD triggers run now, and are not passed
        // on to this image.
        let triggers = stage
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if !triggers.is_empty() {
            self.say(&format!("# Executing {} build trigger(s)", triggers.len()));
        }
        for trigger in triggers {
            let parsed = dockerfile::parse_instruction(&trigger, ins.line, self.escape)?;
            self.instruction(&mut stage, &parsed)
                .map_err(|m| fail(format!("ONBUILD {trigger}: {m}")))?;
        }
        Ok(stage)
    }

    fn stage_of(&self, image_name: String, image: Image) -> StepResult<Stage> {
        let layers = unpack_layers(self.store, &image).map_err(text)?;
        Ok(Stage {
            name: None,
            image_name,
            digest: image.digest.clone(),
            manifest: image.manifest,
            config: image.config,
            layers,
            args: Vars::new(),
            cmd_set: false,
        })
    }

    /// `FROM scratch`: an image without layers (stored, so that every step
    /// has a parent in the store).
    fn scratch(&self) -> StepResult<Stage> {
        let platform = Platform::host();
        let config = ImageConfig {
            created: None,
            author: None,
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: None,
            os_features: None,
            variant: platform.variant.clone(),
            config: Some(ContainerConfig {
                env: Some(vec![format!("PATH={}", crate::engine::start::DEFAULT_PATH)]),
                ..ContainerConfig::default()
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: Some(vec![]),
        };
        let (digest, manifest) = self.store_image(vec![], &config)?;
        Ok(Stage {
            name: None,
            image_name: dangling_name(&digest),
            digest,
            manifest,
            config,
            layers: vec![],
            args: Vars::new(),
            cmd_set: false,
        })
    }

    /// Put `config` and a manifest of `layers` in the store, under a
    /// dangling name: (manifest digest, manifest).
    fn store_image(
        &self,
        layers: Vec<Descriptor>,
        config: &ImageConfig,
    ) -> StepResult<(String, ImageManifest)> {
        let bytes = serde_json::to_vec(config).map_err(text)?;
        let config = put_json(self.store, oci::OCI_CONFIG, &bytes).map_err(text)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(text)?;
        let digest = put_json(self.store, oci::OCI_MANIFEST, &bytes)
            .map_err(text)?
            .digest;
        self.store
            .set_name(&dangling_name(&digest), &digest)
            .map_err(text)?;
        Ok((digest, manifest))
    }

    /// Make the image with manifest `digest` the stage's current one.
    fn load(&self, stage: &mut Stage, digest: &str) -> StepResult<()> {
        let name = dangling_name(digest);
        self.store.set_name(&name, digest).map_err(text)?;
        let reference = Reference::parse(&name).map_err(text)?;
        let image = load_image(self.store, &reference).map_err(text)?;
        let loaded = self.stage_of(name, image)?;
        stage.image_name = loaded.image_name;
        stage.digest = loaded.digest;
        stage.manifest = loaded.manifest;
        stage.config = loaded.config;
        stage.layers = loaded.layers;
        Ok(())
    }

    /// The cached image for `key`, made current; whether there was one.
    fn cached(&self, stage: &mut Stage, key: &str) -> bool {
        if self.request.no_cache {
            return false;
        }
        let Some(digest) = self.cache.get(self.store, key) else {
            return false;
        };
        if self.load(stage, &digest).is_err() {
            return false;
        }
        self.say(" ---> Using cache");
        self.say(&format!(
            " ---> {}",
            short_id(&stage.manifest.config.digest)
        ));
        true
    }

    /// The history so far, one entry per layer at least.
    fn history(&self, stage: &Stage) -> Vec<History> {
        stage.config.history.clone().unwrap_or_else(|| {
            stage
                .manifest
                .layers
                .iter()
                .map(|_| History {
                    created: stage.config.created.clone(),
                    ..History::default()
                })
                .collect()
        })
    }

    /// A step that makes a new image of `stage` with `config`, `layer` on
    /// top if any, and one history entry; it becomes current and is cached
    /// under `key`.
    fn commit(
        &self,
        stage: &mut Stage,
        key: &str,
        created_by: String,
        config: ContainerConfig,
        layer: Option<(Descriptor, String)>,
    ) -> StepResult<()> {
        let created = self.created();
        let mut history = self.history(stage);
        history.push(History {
            created: Some(created.clone()),
            author: stage.config.author.clone(),
            created_by: Some(created_by),
            comment: None,
            empty_layer: layer.is_none().then_some(true),
        });
        let mut image = stage.config.clone();
        image.created = Some(created);
        image.config = Some(config);
        image.history = Some(history);
        let mut layers = stage.manifest.layers.clone();
        if let Some((descriptor, diff_id)) = layer {
            layers.push(descriptor);
            image.rootfs.diff_ids.push(diff_id);
        }
        let (digest, _) = self.store_image(layers, &image)?;
        self.load(stage, &digest)?;
        if let Err(err) = self.cache.put(key, &digest) {
            eprintln!("the build cache: {err}");
        }
        self.say(&format!(
            " ---> {}",
            short_id(&stage.manifest.config.digest)
        ));
        Ok(())
    }

    /// A step that changes the config only.
    fn metadata(
        &self,
        stage: &mut Stage,
        what: &str,
        change: impl FnOnce(&mut ContainerConfig) -> StepResult<()>,
    ) -> StepResult<()> {
        let mut config = stage.container_config();
        change(&mut config)?;
        let effect = serde_json::to_string(&config).map_err(text)?;
        let author = stage.config.author.clone().unwrap_or_default();
        let key = cache::key(&stage.digest, &[what, &effect, &author]);
        if self.cached(stage, &key) {
            return Ok(());
        }
        self.commit(
            stage,
            &key,
            format!("/bin/sh -c #(nop)  {what}"),
            config,
            None,
        )
    }

    /// Declare `pairs` (ARG) into `args`, with `vars` for substitution.
    fn declare_args(
        &mut self,
        pairs: &[(String, Option<String>)],
        args: &mut Vars,
        vars: &Vars,
    ) -> StepResult<()> {
        for (name, default) in pairs {
            let value = if let Some(given) = self.request.build_args.get(name) {
                self.used.insert(name.clone());
                Some(given.clone())
            } else if let Some(default) = default {
                let mut scope = vars.clone();
                scope.extend(args.clone());
                Some(expand_word(default, &scope, self.escape)?)
            } else {
                self.global.get(name).cloned()
            };
            match value {
                Some(v) => args.insert(name.clone(), v),
                None => args.remove(name),
            };
        }
        Ok(())
    }

    fn instruction(&mut self, stage: &mut Stage, ins: &Instruction) -> StepResult<()> {
        let vars = stage.vars();
        let esc = self.escape;
        let x = |word: &str| -> StepResult<String> { Ok(expand_word(word, &vars, esc)?) };
        match &ins.command {
            Command::From { .. } => unreachable!("FROM starts a stage"),
            Command::Run(cmd) => self.run(stage, cmd),
            Command::Copy(args) => self.copy(stage, ins, args, false),
            Command::Add(args) => self.copy(stage, ins, args, true),
            Command::Arg(pairs) => {
                let mut args = stage.args.clone();
                self.declare_args(pairs, &mut args, &vars)?;
                stage.args = args;
                let shown: Vec<String> = pairs
                    .iter()
                    .map(|(k, _)| match stage.args.get(k) {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect();
                self.metadata(stage, &format!("ARG {}", shown.join(" ")), |_| Ok(()))
            }
            Command::Env(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    set.push((x(k)?, x(v)?));
                }
                let shown: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.metadata(stage, &format!("ENV {}", shown.join(" ")), |c| {
                    let env = c.env.get_or_insert_with(Vec::new);
                    for (k, v) in set {
                        let line = format!("{k}={v}");
                        match env
                            .iter_mut()
                            .find(|e| e.split('=').next() == Some(k.as_str()))
                        {
                            Some(old) => *old = line,
                            None => env.push(line),
                        }
                    }
                    Ok(())
                })
            }
            Command::Label(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    set.push((x(k)?, x(v)?));
                }
                let shown: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.metadata(stage, &format!("LABEL {}", shown.join(" ")), |c| {
                    c.labels.get_or_insert_with(BTreeMap::new).extend(set);
                    Ok(())
                })
            }
            Command::Workdir(dir) => {
                let dir = x(dir)?;
                let full = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{}/{dir}", stage.workdir())
                };
                let full = format!("/{}", super::ignore::clean(&full));
                self.metadata(stage, &format!("WORKDIR {full}"), |c| {
                    c.working_dir = Some(full.clone());
                    Ok(())
                })
            }
            Command::User(user) => {
                let user = x(user)?;
                self.metadata(stage, &format!("USER {user}"), |c| {
                    c.user = Some(user.clone());
                    Ok(())
                })
            }
            Command::Cmd(cmd) => {
                let argv = self.argv(stage, cmd);
                stage.cmd_set = true;
                let shown = serde_json::to_string(&argv).map_err(text)?;
                self.metadata(stage, &format!("CMD {shown}"), |c| {
                    c.cmd = Some(argv);
                    Ok(())
                })
            }
            Command::Entrypoint(cmd) => {
                let argv = self.argv(stage, cmd);
                let clear_cmd = !stage.cmd_set;
                let shown = serde_json::to_string(&argv).map_err(text)?;
                self.metadata(stage, &format!("ENTRYPOINT {shown}"), |c| {
                    c.entrypoint = Some(argv);
                    if clear_cmd {
                        c.cmd = None;
                    }
                    Ok(())
                })
            }
            Command::Expose(ports) => {
                let mut set = Vec::new();
                for port in ports {
                    for p in expand_words(port, &vars, esc)? {
                        let (number, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                        let valid = number
                            .split('-')
                            .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                        if !valid || !matches!(proto, "tcp" | "udp" | "sctp") {
                            return Err(format!("invalid containerPort: {p}"));
                        }
                        set.push(format!("{number}/{proto}"));
                    }
                }
                self.metadata(stage, &format!("EXPOSE {}", set.join(" ")), |c| {
                    let ports = c.exposed_ports.get_or_insert_with(BTreeMap::new);
                    for p in set {
                        ports.insert(p, Empty {});
                    }
                    Ok(())
                })
            }
            Command::Volume(list) => {
                let mut set = Vec::new();
                for v in list {
                    let v = x(v)?;
                    if v.is_empty() {
                        return Err("VOLUME specified can not be an empty string".into());
                    }
                    set.push(v);
                }
                self.metadata(stage, &format!("VOLUME {set:?}"), |c| {
                    let volumes = c.volumes.get_or_insert_with(BTreeMap::new);
                    for v in set {
                        volumes.insert(v, Empty {});
                    }
                    Ok(())
                })
            }
            Command::StopSignal(signal) => {
                let signal = x(signal)?;
                crate::runtime::signals::parse_signal(&signal)
                    .map_err(|_| format!("Invalid signal: {signal}"))?;
                self.metadata(stage, &format!("STOPSIGNAL {signal}"), |c| {
                    c.stop_signal = Some(signal.clone());
                    Ok(())
                })
            }
            Command::Shell(list) => {
                let shown = serde_json::to_string(list).map_err(text)?;
                self.metadata(stage, &format!("SHELL {shown}"), |c| {
                    c.shell = Some(list.clone());
                    Ok(())
                })
            }
            Command::Maintainer(who) => {
                stage.config.author = Some(who.clone());
                self.metadata(stage, &format!("MAINTAINER {who}"), |_| Ok(()))
            }
            Command::Healthcheck(check) => {
                let health = health_config(check, &vars, esc)?;
                let shown = serde_json::to_string(&health.test).map_err(text)?;
                self.metadata(stage, &format!("HEALTHCHECK {shown}"), |c| {
                    c.healthcheck = Some(health);
                    Ok(())
                })
            }
            Command::Onbuild(trigger, _) => {
                let trigger = trigger.clone();
                self.metadata(stage, &format!("ONBUILD {trigger}"), |c| {
                    c.on_build.get_or_insert_with(Vec::new).push(trigger);
                    Ok(())
                })
            }
        }
    }

    /// A command's argv: the exec form as is, the shell form through the
    /// stage's SHELL.
    fn argv(&self, stage: &Stage, cmd: &ShellOrExec) -> Vec<String> {
        match cmd {
            ShellOrExec::Exec(list) => list.clone(),
            ShellOrExec::Shell(text) => {
                let mut argv = stage
                    .container_config()
                    .shell
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                argv.push(text.clone());
                argv
            }
        }
    }

    /// RUN: a container of the current image; its changes, a layer.
    fn run(&self, stage: &mut Stage, cmd: &ShellOrExec) -> StepResult<()> {
        let argv = self.argv(stage, cmd);
        // The ARGs reach RUN's environment (ENV wins), and its key.
        let env_names: BTreeSet<String> = stage
            .container_config()
            .env
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split('=').next().map(str::to_string))
            .collect();
        let args: Vec<String> = stage
            .args
            .iter()
            .filter(|(k, _)| !env_names.contains(*k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut created_by = argv.join(" ");
        if !args.is_empty() {
            created_by = format!("|{} {} {created_by}", args.len(), args.join(" "));
        }
        let key = cache::key(&stage.digest, &["RUN", &created_by]);
        if self.cached(stage, &key) {
            return Ok(());
        }
        // 1. The container, as `berth run` makes it.
        let config = stage.container_config();
        let mut line: Vec<String> = vec!["--entrypoint".into(), String::new()];
        line.push(format!("--network={}", self.request.network));
        if let Some(runtime) = &self.request.runtime {
            line.push(format!("--runtime={runtime}"));
        }
        if let Some(user) = config.user.as_ref().filter(|u| !u.is_empty()) {
            line.push(format!("--user={user}"));
        }
        if let Some(dir) = config.working_dir.as_ref().filter(|w| !w.is_empty()) {
            line.push(format!("--workdir={dir}"));
        }
        for kv in &args {
            line.push(format!("--env={kv}"));
        }
        line.push(stage.image_name.clone());
        line.extend(argv.iter().cloned());
        let parsed = RunLine::try_parse_from(&line).map_err(|e| e.to_string())?;
        // The engine's settings hold for a build's containers too.
        let runtime = self.engine.settings().default_runtime.clone();
        let default = crate::engine::runtime_client::DEFAULT_RUNTIME;
        let mut request = parsed.run.request(runtime.as_deref().unwrap_or(default))?;
        self.engine
            .settings()
            .apply_defaults(&mut request.host_config);
        let c = self
            .engine
            .create(request, &mut std::io::sink())
            .map_err(text)?;
        let removal = Removal {
            engine: self.engine,
            id: c.id.clone(),
        };
        self.say(&format!(" ---> Running in {}", &c.id[..12]));
        // 2. Run it to its end; its output.
        self.engine
            .start(&c.id, StartMode::Detached)
            .map_err(text)?;
        // Waited for in short spans, so that a Ctrl-C removes it (the
        // Removal) before the build ends; its output shown as it comes.
        let mut shown = 0;
        loop {
            super::interrupt::check()?;
            let stopped = self
                .engine
                .wait_stopped(&c.id, std::time::Duration::from_millis(200))
                .map_err(text)?;
            shown = self.show_output(&c.id, shown)?.len();
            if stopped {
                break;
            }
        }
        let code = self.engine.wait(&c.id).map_err(text)?;
        let output = self.show_output(&c.id, shown)?;
        let output = String::from_utf8_lossy(&output).into_owned();
        if code != 0 {
            let lines: Vec<&str> = output.lines().collect();
            let tail = &lines[lines.len().saturating_sub(FAILED_OUTPUT_LINES)..];
            let mut message = format!(
                "The command '{}' returned a non-zero code: {code}",
                argv.join(" ")
            );
            if !tail.is_empty() {
                message.push_str("\nlast output lines:");
                for l in tail {
                    message.push_str(&format!("\n  {l}"));
                }
            }
            return Err(message);
        }
        // 3. Its writable layer.
        let upper = self.engine.dir(&c.id).0.join("upper");
        if let Some(limit) = self.request.timestamp {
            copy::clamp_tree(&upper, limit).map_err(text)?;
        }
        let store_lock = self.store.lock_shared().map_err(text)?;
        let (blob, diff_id, size) = self
            .engine
            .write_upper(self.store, &c.id, &c.berth.layers, &[])
            .map_err(text)?;
        self.store
            .unpack_layer(
                &blob,
                &diff_id,
                Compression::of_media_type(oci::OCI_LAYER_TAR_GZIP),
            )
            .map_err(text)?;
        drop(store_lock);
        self.say(&format!("Removing intermediate container {}", &c.id[..12]));
        drop(removal);
        let descriptor = Descriptor::new(oci::OCI_LAYER_TAR_GZIP, blob, size);
        self.commit(stage, &key, created_by, config, Some((descriptor, diff_id)))
    }

    /// Container `id`'s output so far (its log, stdout and stderr in
    /// their order); what is past `shown` bytes is printed (unless `-q`).
    fn show_output(&self, id: &str, shown: usize) -> StepResult<Vec<u8>> {
        let output = Shared::default();
        self.engine
            .logs(
                id,
                &LogOptions {
                    follow: false,
                    tail: None,
                    timestamps: false,
                    since: None,
                    until: None,
                },
                &mut output.clone(),
                &mut output.clone(),
            )
            .map_err(text)?;
        let bytes = output.0.borrow().clone();
        if !self.request.quiet && bytes.len() > shown {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes[shown..]);
            let _ = out.flush();
        }
        Ok(bytes)
    }

    /// The files of `--from` (a stage's name or index, or an image).
    fn files_of(&self, from: &str) -> StepResult<LayerView> {
        let lower = from.to_ascii_lowercase();
        if let Some(stage) = self.done.iter().find(|s| s.name.as_deref() == Some(&lower)) {
            return Ok(LayerView::new(stage.layers.clone()));
        }
        if let Ok(index) = from.parse::<usize>() {
            return self
                .done
                .get(index)
                .map(|s| LayerView::new(s.layers.clone()))
                .ok_or_else(|| format!("invalid from flag value {from}: no stage {index} yet"));
        }
        let (_, image) = self
            .engine
            .ensure_image(from, PullPolicy::Missing, None, &mut std::io::stderr())
            .map_err(|e: EngineError| e.to_string())?;
        Ok(LayerView::new(
            unpack_layers(self.store, &image).map_err(text)?,
        ))
    }

    /// `--chown`'s owner, by the stage's own /etc/passwd and /etc/group;
    /// a user alone gives the same number as group, as docker does.
    fn owner(&self, stage: &Stage, spec: Option<&str>) -> StepResult<(u32, u32)> {
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            return Ok((0, 0));
        };
        let resolved = ch05_images::user::resolve_user_in_layers(&stage.layers, spec)
            .map_err(|e| format!("--chown={spec}: {e}"))?;
        if spec.contains(':') {
            Ok((resolved.uid, resolved.gid))
        } else {
            Ok((resolved.uid, resolved.uid))
        }
    }

    /// COPY and ADD.
    fn copy(
        &self,
        stage: &mut Stage,
        ins: &Instruction,
        args: &CopyArgs,
        add: bool,
    ) -> StepResult<()> {
        let vars = stage.vars();
        let esc = self.escape;
        let x = |word: &str| -> StepResult<String> { Ok(expand_word(word, &vars, esc)?) };
        let mut sources = Vec::new();
        for s in &args.sources {
            sources.push(x(s)?);
        }
        let dest = x(&args.dest)?;
        let chown = args.chown.as_deref().map(x).transpose()?;
        let (uid, gid) = self.owner(stage, chown.as_deref())?;
        let mode = match &args.chmod {
            Some(text) => Some(
                u32::from_str_radix(&x(text)?, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("invalid chmod parameter: {text}"))?,
            ),
            None => None,
        };
        let attrs = Attrs {
            uid,
            gid,
            mode,
            clamp: self.request.timestamp,
        };
        // 1. Where: the destination inside the stage, its directories
        //    resolved as the stage has them (a link followed inside it).
        let dest_path = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", stage.workdir())
        };
        let view = LayerView::new(stage.layers.clone());
        let cleaned = super::ignore::clean(&dest_path);
        let wildcard = sources.iter().any(|s| super::ignore::has_wildcards(s));
        let into_dir = dest.ends_with('/')
            || dest.ends_with("/.")
            || sources.len() > 1
            || wildcard
            || view.is_dir(&dest_path);
        let dest_rel = match cleaned.rsplit_once('/') {
            Some((parent, base)) => match view.resolve(&format!("/{parent}")) {
                Some((real, _)) if !real.is_empty() => format!("{real}/{base}"),
                Some(_) => base.to_string(),
                None => cleaned.clone(),
            },
            None => cleaned.clone(),
        };
        let dest_rel = if into_dir {
            view.resolve(&format!("/{dest_rel}"))
                .map(|(real, _)| real)
                .unwrap_or(dest_rel)
        } else {
            dest_rel
        };
        // 2. The files, into a staging tree.
        let staging = tempfile::tempdir_in(self.store.root()).map_err(text)?;
        let root = staging.path();
        let existing = |rel: &str| -> Option<std::fs::Metadata> {
            view.entry_at(rel).and_then(|p| p.symlink_metadata().ok())
        };
        let from_view = match &args.from {
            Some(from) => Some(self.files_of(&x(from)?)?),
            None => None,
        };
        let context_tree = ContextTree(self.context);
        for source in &sources {
            // (context-relative or stage path, host path)
            let found: Vec<(String, PathBuf)> = match &from_view {
                Some(other) => {
                    let (rel, host) = other
                        .resolve(source)
                        .ok_or_else(|| format!("{source}: no such file or directory in --from"))?;
                    vec![(rel, host)]
                }
                None => {
                    if add && (source.starts_with("http://") || source.starts_with("https://")) {
                        let name = if into_dir || dest.ends_with('/') {
                            let name = super::fetch::file_name(source).ok_or_else(|| {
                                format!("ADD {source}: cannot determine a filename from the URL; give a destination file")
                            })?;
                            join_rel(&dest_rel, &name)
                        } else {
                            dest_rel.clone()
                        };
                        if let Some((parent, _)) = name.rsplit_once('/') {
                            copy::make_parents(root, parent, &existing, &attrs).map_err(text)?;
                        }
                        let path = under(root, &name)?;
                        let modified = super::fetch::fetch(source, &path)?;
                        let mode = attrs.mode.unwrap_or(0o600);
                        std::fs::set_permissions(
                            &path,
                            std::os::unix::fs::PermissionsExt::from_mode(mode),
                        )
                        .map_err(text)?;
                        copy::set_owner(&path, &attrs).map_err(text)?;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        let mtime = modified.unwrap_or(now);
                        let mtime = attrs.clamp.map_or(mtime, |limit| mtime.min(limit));
                        copy::set_mtime(&path, mtime).map_err(text)?;
                        continue;
                    }
                    self.context
                        .sources(source)
                        .map_err(text)?
                        .into_iter()
                        .map(|rel| {
                            let host = self.context.root.join(&rel);
                            (rel, host)
                        })
                        .collect()
                }
            };
            let tree: &dyn Tree = match &from_view {
                Some(_) => &ViewTree(from_view.as_ref().expect("from view")),
                None => &context_tree,
            };
            for (rel, host) in found {
                let meta = host.symlink_metadata().map_err(text)?;
                if meta.is_dir() {
                    // A directory's contents go into the destination.
                    copy::make_parents(root, &dest_rel, &existing, &attrs).map_err(text)?;
                    for (name, child) in tree.list(&rel, &host) {
                        let child_rel = if rel.is_empty() {
                            name.clone()
                        } else {
                            format!("{rel}/{name}")
                        };
                        if tree.excluded(&child_rel) && !child.is_dir() {
                            continue;
                        }
                        copy::copy_entry(
                            tree,
                            &child_rel,
                            &child,
                            &under(root, &join_rel(&dest_rel, &name))?,
                            &attrs,
                        )
                        .map_err(text)?;
                    }
                    continue;
                }
                if add && from_view.is_none() && is_local_archive(&host) {
                    copy::make_parents(root, &dest_rel, &existing, &attrs).map_err(text)?;
                    let bytes = std::fs::read(&host).map_err(text)?;
                    unpack_archive(&bytes, &under(root, &dest_rel)?, true).map_err(text)?;
                    if let Some(limit) = attrs.clamp {
                        copy::clamp_tree(&under(root, &dest_rel)?, limit).map_err(text)?;
                    }
                    continue;
                }
                let base = Path::new(&rel)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = if into_dir {
                    join_rel(&dest_rel, &base)
                } else {
                    dest_rel.clone()
                };
                if let Some((parent, _)) = target.rsplit_once('/') {
                    copy::make_parents(root, parent, &existing, &attrs).map_err(text)?;
                }
                copy::copy_entry(tree, &rel, &host, &under(root, &target)?, &attrs)
                    .map_err(text)?;
            }
        }
        // Directories written into after they were made: their times too.
        if let Some(limit) = attrs.clamp {
            copy::clamp_tree(root, limit).map_err(text)?;
        }
        // 3. The key: the files, where they go, how.
        let digest = copy::tree_digest(root).map_err(text)?;
        let key = cache::key(&stage.digest, &[&ins.keyword, &digest]);
        if self.cached(stage, &key) {
            return Ok(());
        }
        // 4. The layer.
        let mut blob = tempfile::tempfile_in(self.store.root()).map_err(text)?;
        let layer = commit_layer(
            root,
            &mut blob,
            &CommitOptions {
                keep_times: true,
                gzip: true,
            },
        )
        .map_err(text)?;
        let digest_of_blob = layer.digest.clone().unwrap_or_default();
        use std::io::{Seek, SeekFrom};
        blob.seek(SeekFrom::Start(0)).map_err(text)?;
        self.store
            .put_blob(&digest_of_blob, Some(layer.size), &mut blob)
            .map_err(text)?;
        self.store
            .unpack_layer(
                &digest_of_blob,
                &layer.diff_id,
                Compression::of_media_type(oci::OCI_LAYER_TAR_GZIP),
            )
            .map_err(text)?;
        let kind = if sources.len() == 1 && !wildcard {
            "file"
        } else {
            "multi"
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {} {kind}:{} in {dest} ",
            ins.keyword,
            digest.trim_start_matches("sha256:")
        );
        let config = stage.container_config();
        self.commit(
            stage,
            &key,
            created_by,
            config,
            Some((
                Descriptor::new(oci::OCI_LAYER_TAR_GZIP, digest_of_blob, layer.size),
                layer.diff_id,
            )),
        )
    }
}

/// HEALTHCHECK's settings as docker's image config keeps them.
fn health_config(
    check: &dockerfile::Healthcheck,
    vars: &Vars,
    escape: char,
) -> StepResult<oci::HealthConfig> {
    let duration = |flag: &str, text: &Option<String>| -> StepResult<i64> {
        let Some(text) = text else { return Ok(0) };
        let text = expand_word(text, vars, escape)?;
        let d = humantime::parse_duration(&text).map_err(|e| format!("--{flag}={text}: {e}"))?;
        if d.as_millis() < 1 && !d.is_zero() {
            return Err(format!("--{flag}: a duration of at least 1ms"));
        }
        Ok(d.as_nanos() as i64)
    };
    let test = match &check.test {
        None => vec!["NONE".to_string()],
        Some(ShellOrExec::Exec(argv)) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(argv.iter().cloned());
            t
        }
        Some(ShellOrExec::Shell(cmd)) => vec!["CMD-SHELL".to_string(), cmd.clone()],
    };
    let retries = match &check.retries {
        Some(text) => expand_word(text, vars, escape)?
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("--retries={text}: a number"))?,
        None => 0,
    };
    Ok(oci::HealthConfig {
        test,
        interval: duration("interval", &check.interval)?,
        timeout: duration("timeout", &check.timeout)?,
        start_period: duration("start-period", &check.start_period)?,
        start_interval: duration("start-interval", &check.start_interval)?,
        retries,
    })
}

/// `dir/name` for a path relative to the stage's root, `dir` empty at
/// the root: never absolute, so that it stays under the staging tree.
fn join_rel(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    let name = name.trim_start_matches('/');
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// `rel` under the staging tree `root`, refused if it would not stay
/// there (absolute, or with `..`).
fn under(root: &Path, rel: &str) -> StepResult<PathBuf> {
    if rel.starts_with('/') || rel.split('/').any(|p| p == "..") {
        return Err(format!(
            "internal error: {rel:?} would leave the layer's tree"
        ));
    }
    Ok(root.join(rel))
}

/// Whether ADD unpacks `path`: a tar, plain or gzip.
fn is_local_archive(path: &Path) -> bool {
    let mut head = [0u8; 262];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    use std::io::Read;
    let n = file.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b]) || head.get(257..262) == Some(b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_paths_never_leave_the_staging_tree() {
        assert_eq!(join_rel("", "hello.txt"), "hello.txt");
        assert_eq!(join_rel("/", "/hello.txt"), "hello.txt");
        assert_eq!(join_rel("app/bin", "x"), "app/bin/x");
        let root = Path::new("/staging");
        assert_eq!(under(root, "app/x").unwrap(), Path::new("/staging/app/x"));
        assert!(under(root, "/hello.txt").is_err());
        assert!(under(root, "a/../../etc").is_err());
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
