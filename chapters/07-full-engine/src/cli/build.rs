//! `build`: an image from a Dockerfile (see [`crate::build`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ch05_images::reference::Reference;
use clap::Args;

use super::{Failure, Outcome};
use crate::build::builder::{BuildRequest, build as run_build};
use crate::engine::Engine;

/// The flags of `build`.
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_name = "list")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Set platform if server is multi-platform capable (this host's
    /// only: berth build does not emulate)
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build
    /// (default: bridge as root, none otherwise)
    #[arg(long, value_name = "string")]
    pub network: Option<String>,
    /// The OCI runtime RUN instructions run with
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Created times of the image, and the latest file time in its layers
    /// (seconds since the epoch; default: $SOURCE_DATE_EPOCH)
    #[arg(long, value_name = "int")]
    pub timestamp: Option<i64>,
    /// A directory, a tarball, or - (a tarball or a Dockerfile on stdin)
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::new(message, 1)
}

/// `build`.
pub fn build(engine: &Engine, args: &BuildArgs) -> Outcome {
    let mut tags = Vec::new();
    for tag in &args.tags {
        let reference = Reference::parse(tag).map_err(|_| {
            bad(format!(
                "invalid argument {tag:?} for \"-t, --tag\" flag: invalid reference format"
            ))
        })?;
        tags.push(reference);
    }
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            // `--build-arg NAME`: the value of NAME here, as docker.
            None => match std::env::var(arg) {
                Ok(v) => build_args.insert(arg.clone(), v),
                Err(_) => continue,
            },
        };
    }
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let timestamp = match args.timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) if !text.is_empty() => Some(text.parse::<i64>().map_err(|_| {
                bad(format!(
                    "SOURCE_DATE_EPOCH={text:?}: want seconds since the epoch"
                ))
            })?),
            _ => None,
        },
    };
    if let Some(text) = &args.platform {
        let wanted: ch05_images::oci::Platform = text
            .parse()
            .map_err(|e| bad(format!("invalid platform {text:?}: {e}")))?;
        let host = ch05_images::oci::Platform::host();
        if (&wanted.os, &wanted.architecture) != (&host.os, &host.architecture) {
            return Err(bad(format!(
                "--platform {text}: berth build runs RUN steps on this host, {}/{}, and does not emulate others",
                host.os, host.architecture
            )));
        }
    }
    let network = args.network.clone().unwrap_or_else(|| {
        if nix::unistd::geteuid().is_root() {
            "bridge".into()
        } else {
            "none".into()
        }
    });
    let request = BuildRequest {
        context: args.context.clone(),
        dockerfile: args.file.clone(),
        tags,
        build_args,
        target: args.target.clone(),
        platform: args.platform.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels,
        quiet: args.quiet,
        network,
        runtime: args.runtime.clone(),
        timestamp,
    };
    run_build(engine, &request).map_err(|e| bad(e.to_string()))?;
    Ok(0)
}
