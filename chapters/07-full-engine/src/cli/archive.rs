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
use crate::engine::commit::{apply_changes, dangling_name};

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
/// `-c` changes to its config; prints the image ID.
pub fn import(engine: &Engine, args: &ImportArgs) -> Outcome {
    let store = engine.image_store()?;
    let mut config = ch05_images::oci::ContainerConfig::default();
    apply_changes(&mut config, &args.changes).map_err(|m| Failure::new(m, 1))?;
    // Without a name, a dangling one (fixed once the digest is known).
    let temporary = format!("berth-import-{}:latest", std::process::id());
    let name = match &args.name {
        Some(n) => Reference::parse(n).map_err(|_| Failure::new("invalid reference format", 1))?,
        None => Reference::parse(&temporary).map_err(fail)?,
    };
    let digest = if args.file.as_os_str() == "-" {
        archive::import_tarball(store, std::io::stdin().lock(), &name, config).map_err(fail)?
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Failure::new(format!("open {}: {e}", args.file.display()), 1))?;
        archive::import_tarball(store, file, &name, config)
            .map_err(|e| Failure::new(format!("import {}: {e}", args.file.display()), 1))?
    };
    if args.name.is_none() {
        store
            .set_name(&dangling_name(&digest), &digest)
            .map_err(fail)?;
        store.remove_name(&name.to_string()).map_err(fail)?;
    }
    // Unpacked now, as pull and load unpack theirs; no collection meanwhile.
    let _lock = store.lock_shared().map_err(fail)?;
    let image = super::images::find_image(store, &digest_image_id(store, &digest)?)?.0;
    ch05_images::image::unpack_layers(store, &image).map_err(fail)?;
    println!("{}", image.manifest.config.digest);
    Ok(0)
}

/// The image ID (config digest) of the manifest `digest`.
fn digest_image_id(store: &ch05_images::store::Store, digest: &str) -> Result<String, Failure> {
    let bytes = store.read_blob(digest).map_err(fail)?;
    let manifest: ch05_images::oci::ImageManifest = serde_json::from_slice(&bytes).map_err(fail)?;
    Ok(manifest.config.digest)
}
