//! `save`, `load`, `import`: images as files, with chapter 5's docker
//! archive and tarball import.

use std::io::IsTerminal;
use std::path::PathBuf;

use ch05_images::archive;
use ch05_images::image::load_image;
use ch05_images::reference::Reference;
use clap::Args;

use super::images::named_images;
use super::{Failure, Outcome};
use crate::engine::Engine;
use ch05_images::oci::{self, History, ImageConfig, ImageManifest};

use crate::engine::commit::{DANGLING_REGISTRY, apply_changes, dangling_name, put_json};
use crate::engine::record::now_rfc3339;

/// The flags of `save`.
#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// The flags of `load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// The flags of `import`.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// A tarball (maybe compressed), or `-` for STDIN
    #[arg(value_name = "file|-")]
    pub file: PathBuf,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub name: Option<String>,
}

fn fail(err: impl std::fmt::Display) -> Failure {
    Failure::new(err.to_string(), 1)
}

/// `save`: a docker archive of the images; a repository without a tag
/// means all its tags, as docker's.
pub fn save(engine: &Engine, args: &SaveArgs) -> Outcome {
    let store = engine.image_store()?;
    let all = named_images(store)?;
    let mut refs = Vec::new();
    for text in &args.images {
        let reference =
            Reference::parse(text).map_err(|_| Failure::new("invalid reference format", 1))?;
        let last = text.rsplit('/').next().unwrap_or(text);
        let tag_given = last.contains(':') || last.contains('@');
        let matching: Vec<Reference> = if tag_given {
            vec![reference.clone()]
        } else {
            all.iter()
                .filter(|(r, _)| {
                    r.registry == reference.registry && r.repository == reference.repository
                })
                .map(|(r, _)| r.clone())
                .collect()
        };
        if matching.is_empty() || load_image(store, &matching[0]).is_err() {
            // An ID: the image under one of its names.
            let (_, names) = super::images::find_image(store, text)?;
            let Some(first) = names.into_iter().next() else {
                return Err(Failure::new(format!("No such image: {text}"), 1));
            };
            refs.push(first);
            continue;
        }
        refs.extend(matching);
    }
    match &args.output {
        Some(path) => archive::save_docker_archive_file(store, &refs, path)
            .map_err(|e| Failure::new(format!("save to {}: {e}", path.display()), 1))?,
        None => {
            if std::io::stdout().is_terminal() {
                return Err(Failure::new(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                    1,
                ));
            }
            let out = archive::save_docker_archive(store, &refs, std::io::stdout().lock())
                .map_err(fail)?;
            drop(out);
        }
    }
    Ok(0)
}

/// `load`: `Loaded image: NAME` per name, `Loaded image ID: ID` for an
/// image without one.
pub fn load(engine: &Engine, args: &LoadArgs) -> Outcome {
    let store = engine.image_store()?;
    let loaded = match &args.input {
        Some(path) => archive::load_path(store, path)
            .map_err(|e| Failure::new(format!("load {}: {e}", path.display()), 1))?,
        None => {
            if std::io::stdin().is_terminal() {
                return Err(Failure::new(
                    "requested load from stdin, but stdin is empty",
                    1,
                ));
            }
            archive::load_reader(store, std::io::stdin().lock(), "stdin").map_err(fail)?
        }
    };
    for image in loaded {
        for name in &image.names {
            if !args.quiet {
                println!("Loaded image: {}", name.familiar());
            }
        }
        if image.names.is_empty() {
            // Kept under a dangling name, as docker keeps an untagged image.
            store
                .set_name(&dangling_name(&image.digest), &image.digest)
                .map_err(fail)?;
            println!("Loaded image ID: {}", image.config);
        }
    }
    Ok(0)
}

/// `import`: a tarball's tree as a one-layer image (chapter 5), with
/// `-c` changes to its config, dated now with one history step ("Imported
/// from FILE", or `-m`), as docker's; prints the image ID.
pub fn import(engine: &Engine, args: &ImportArgs) -> Outcome {
    let store = engine.image_store()?;
    let mut config = ch05_images::oci::ContainerConfig::default();
    apply_changes(&mut config, &args.changes).map_err(|m| Failure::new(m, 1))?;
    let name = match &args.name {
        Some(n) => {
            Some(Reference::parse(n).map_err(|_| Failure::new("invalid reference format", 1))?)
        }
        None => None,
    };
    // 1. Chapter 5's import, under a name of its own (shown as <none> if
    //    we crash before step 3).
    let temporary = Reference::parse(&format!(
        "{DANGLING_REGISTRY}/import-{}:latest",
        std::process::id()
    ))
    .map_err(fail)?;
    let source = args.file.display().to_string();
    let first = if args.file.as_os_str() == "-" {
        archive::import_tarball(store, std::io::stdin().lock(), &temporary, config).map_err(fail)?
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Failure::new(format!("open {source}: {e}"), 1))?;
        archive::import_tarball(store, file, &temporary, config)
            .map_err(|e| Failure::new(format!("import {source}: {e}"), 1))?
    };
    // 2. Dated, with its history step: a new config and manifest.
    let _lock = store.lock_shared().map_err(fail)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&store.read_blob(&first).map_err(fail)?).map_err(fail)?;
    let mut image_config: ImageConfig =
        serde_json::from_slice(&store.read_blob(&manifest.config.digest).map_err(fail)?)
            .map_err(fail)?;
    let now = now_rfc3339();
    image_config.created = Some(now.clone());
    image_config.history = Some(vec![History {
        created: Some(now),
        comment: Some(
            args.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {source}")),
        ),
        ..History::default()
    }]);
    let bytes = serde_json::to_vec(&image_config).map_err(fail)?;
    let config = put_json(store, oci::OCI_CONFIG, &bytes)?;
    let manifest = ImageManifest {
        config: config.clone(),
        ..manifest
    };
    let bytes = serde_json::to_vec(&manifest).map_err(fail)?;
    let stamped = put_json(store, oci::OCI_MANIFEST, &bytes)?;
    // 3. Its name (or a dangling one), and the temporary one gone.
    let final_name = match &name {
        Some(n) => n.to_string(),
        None => dangling_name(&stamped.digest),
    };
    store.set_name(&final_name, &stamped.digest).map_err(fail)?;
    store.remove_name(&temporary.to_string()).map_err(fail)?;
    // 4. Unpacked now, as pull and load unpack theirs.
    let image = super::images::find_image(store, &config.digest)?.0;
    ch05_images::image::unpack_layers(store, &image).map_err(fail)?;
    println!("{}", config.digest);
    Ok(0)
}
