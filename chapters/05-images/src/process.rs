//! The process a container of an image runs: the image config applied.
//!
//! An image's config says what to run (`Entrypoint` and `Cmd`), where
//! (`WorkingDir`), as whom (`User`) and with what environment (`Env`); the
//! command line may override the first three. This module applies
//! docker's rules for all four, for `ch05-images run` and for chapter 7's
//! engine alike: the command by [`oci::process_args`], the user looked up
//! in the image's own `/etc/passwd` and `/etc/group`
//! ([`resolve_user_in_layers`]), and the environment by
//! [`apply_image_env`], which also sets `HOME` to the user's home.

use std::path::PathBuf;

use crate::oci::{self, ContainerConfig};
use crate::user::{ExecUser, UserError, apply_image_env, resolve_user_in_layers};

/// What the command line says instead of the image (`docker run`'s
/// `IMAGE CMD...`, `-w` and `-u`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the image's `Cmd` when not empty.
    pub cmd: Vec<String>,
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, names or numbers.
    pub user: Option<String>,
}

/// The process, as the image and the command line give it.
#[derive(Debug, Clone)]
pub struct ImageProcess {
    /// `Entrypoint` followed by `Cmd` (or the command line's command).
    pub args: Vec<String>,
    /// Absent: the container's root.
    pub workdir: Option<String>,
    /// Absent: root, as the image did not say.
    pub user: Option<ExecUser>,
    /// The image's `Env`, `NAME=value` each.
    pub env: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{image}: the image has no Entrypoint or Cmd: give a command after the image name")]
    NoCommand { image: String },
    #[error("{image}: {cause}")]
    User { image: String, cause: UserError },
}

// ANCHOR: image_process
/// The process a container of the image `image` (named so in errors)
/// runs: its `config` with `overrides` applied, users looked up in its
/// unpacked `layers` (bottom first).
pub fn image_process(
    image: &str,
    config: &ContainerConfig,
    layers: &[PathBuf],
    overrides: &Overrides,
) -> Result<ImageProcess, ProcessError> {
    // 1. What to run: docker's rules for Entrypoint and Cmd.
    let args = oci::process_args(config, &overrides.cmd, None);
    if args.is_empty() {
        let image = image.to_string();
        return Err(ProcessError::NoCommand { image });
    }
    // 2. WorkingDir and User, unless the command line says otherwise. A
    //    user or group name means what the image's own /etc/passwd and
    //    /etc/group say, read from its layers.
    let workdir = (overrides.workdir.clone()).or_else(|| config.working_dir.clone());
    let spec = (overrides.user.as_deref()).or(config.user.as_deref());
    let user = match spec.filter(|u| !u.is_empty()) {
        Some(spec) => Some(resolve_user_in_layers(layers, spec).map_err(|cause| {
            let image = image.to_string();
            ProcessError::User { image, cause }
        })?),
        None => None,
    };
    Ok(ImageProcess {
        args,
        workdir: workdir.filter(|w| !w.is_empty()),
        user,
        env: config.env.clone().unwrap_or_default(),
    })
}
// ANCHOR_END: image_process

impl ImageProcess {
    /// Lays the image's `Env` over `env` (the engine's minimal environment),
    /// and the user's home as `HOME` unless the image sets one.
    pub fn apply_env(&self, env: &mut Vec<String>) {
        apply_image_env(env, &self.env, self.user.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_line_overrides_the_image() {
        let config = ContainerConfig {
            cmd: Some(strings(&["/bin/sh"])),
            working_dir: Some("/srv".into()),
            env: Some(strings(&["PATH=/bin", "A=1"])),
            ..ContainerConfig::default()
        };
        let p = image_process("i", &config, &[], &Overrides::default()).unwrap();
        assert_eq!(
            (p.args.clone(), p.workdir.clone()),
            (strings(&["/bin/sh"]), Some("/srv".into()))
        );
        assert!(p.user.is_none());
        let mut env = strings(&["PATH=/usr/bin", "TERM=xterm"]);
        p.apply_env(&mut env);
        assert_eq!(env, strings(&["PATH=/bin", "TERM=xterm", "A=1"]));
        let overrides = Overrides {
            cmd: strings(&["echo", "hi"]),
            workdir: Some("/tmp".into()),
            user: Some("1000:1000".into()),
        };
        let p = image_process("i", &config, &[], &overrides).unwrap();
        assert_eq!(p.args, strings(&["echo", "hi"]));
        assert_eq!(p.workdir.as_deref(), Some("/tmp"));
        assert_eq!(p.user.map(|u| (u.uid, u.gid)), Some((1000, 1000)));
    }

    #[test]
    fn nothing_to_run_is_an_error_naming_the_image() {
        let err = image_process(
            "berth/x:1",
            &ContainerConfig::default(),
            &[],
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "berth/x:1: the image has no Entrypoint or Cmd: give a command after the image name"
        );
    }
}
