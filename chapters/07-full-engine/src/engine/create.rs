//! `create`: an image and the command line become a container.
//!
//! What the command line asks for is docker's API: a `Config` (what to
//! run) and a `HostConfig` (how to run it on this host). Creating a
//! container, as docker's daemon does it:
//!
//! 1. **The image**: found in chapter 5's store, or pulled first
//!    (`--pull missing`, the default; `always`; `never`).
//! 2. **The image's config merged in**: its Env after the user's `-e`
//!    (the user's win), its Cmd and Entrypoint unless overridden (a new
//!    `--entrypoint` drops the image's Cmd too), its WorkingDir, User,
//!    Labels and StopSignal unless given.
//! 3. **An id and a name**, the name taken under the names lock.
//! 4. **The directory**, with chapter 4's state (the layers) and chapter
//!    5's `image` file, written while the store's shared lock keeps
//!    garbage collection from taking the layers meanwhile.
//! 5. **The mounts**: binds checked, volumes made, the image's `VOLUME`s
//!    given anonymous ones ([`super::volumes`]).
//! 6. **The record**, status `created`, and a `create` event.
//!
//! Nothing is mounted and nothing runs yet: a created container has no
//! process (docker's meaning). `start` does the rest.

use std::collections::BTreeMap;
use std::io::Write;

use ch05_images::image::{Image, load_image, unpack_layers};
use ch05_images::mirrors::pull_with_mirrors;
use ch05_images::oci::{self, Platform};
use ch05_images::pull::PullOptions;
use ch05_images::reference::Reference;
use ch05_images::registry::ClientOptions;

use super::ids::{SHORT_ID, check_name, new_id, random_name};
use super::names::Names;
use super::record::{Config, Container, GraphDriver, HostConfig, now_rfc3339};
use super::runtime_client::runtime_name;
use super::{Engine, EngineError, Result, rootfs};

/// `--pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(text: &str) -> Result<PullPolicy, String> {
        match text {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(format!(
                "invalid pull option: '{text}': must be one of \"always\", \"missing\" or \"never\""
            )),
        }
    }
}

/// What `create` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `--name`.
    pub name: Option<String>,
    /// The user's half of `Config`: `Image`, `Cmd`, `Entrypoint`, `Env`...
    pub config: Config,
    pub host_config: HostConfig,
    pub pull: PullPolicy,
    pub platform: Option<String>,
    /// The runtime's program.
    pub runtime_path: std::path::PathBuf,
    /// `--network-alias`, `--ip`, `-p` (see [`super::network`]).
    pub network: super::record::NetworkFields,
}

impl Engine {
    /// The image `name`, pulled per `pull` if needed. Pull progress goes to
    /// `progress` (stderr for `run`, as docker prints it).
    pub fn ensure_image(
        &self,
        name: &str,
        pull: PullPolicy,
        platform: Option<&str>,
        progress: &mut dyn Write,
    ) -> Result<(Reference, Image)> {
        let reference =
            Reference::parse(name).map_err(|_| EngineError::msg("invalid reference format"))?;
        let store = self.image_store()?;
        let local = load_image(store, &reference);
        let must_pull = match (pull, &local) {
            (PullPolicy::Always, _) => true,
            (PullPolicy::Missing, Err(_)) => true,
            (PullPolicy::Never, Err(_)) => {
                return Err(EngineError::msg(format!(
                    "No such image: {}",
                    reference.familiar()
                )));
            }
            _ => false,
        };
        if !must_pull {
            return Ok((
                reference,
                local.map_err(|e| EngineError::msg(e.to_string()))?,
            ));
        }
        if pull == PullPolicy::Missing {
            let _ = writeln!(
                progress,
                "Unable to find image '{}' locally",
                reference.familiar()
            );
        }
        self.pull(&reference, platform, progress)?;
        let image = load_image(store, &reference).map_err(|e| EngineError::msg(e.to_string()))?;
        Ok((reference, image))
    }

    /// Pull `reference` with chapter 5, printing docker's lines.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: Option<&str>,
        progress: &mut dyn Write,
    ) -> Result<()> {
        let store = self.image_store()?;
        let platform_given = platform.is_some();
        let platform = match platform {
            Some(text) => text
                .parse::<Platform>()
                .map_err(|e| EngineError::msg(format!("invalid platform {text:?}: {e}")))?,
            None => Platform::host(),
        };
        let settings = self.settings();
        let client = ClientOptions {
            insecure: settings
                .is_insecure(&reference.registry)
                .then(|| reference.registry.clone())
                .into_iter()
                .collect(),
            credentials: None,
            trace: false,
        };
        let tag = reference.tag.as_deref().unwrap_or("latest");
        let _ = writeln!(
            progress,
            "{tag}: Pulling from {}",
            reference.familiar_name()
        );
        let options = PullOptions {
            platform,
            platform_given,
            jobs: ch05_images::pull::DEFAULT_JOBS,
        };
        let mirrors = &settings.registry_mirrors;
        let pulled = pull_with_mirrors(store, reference, mirrors, &client, &options)
            .map_err(|e| EngineError::msg(format!("pull {}: {e}", reference.familiar())))?
            .pulled;
        for (id, outcome) in &pulled.layers {
            let _ = writeln!(progress, "{id}: {outcome}");
        }
        let _ = writeln!(progress, "Digest: {}", pulled.digest);
        let status = if pulled.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        let _ = writeln!(progress, "Status: {status} {}", reference.familiar());
        Ok(())
    }

    /// Create a container; its record.
    pub fn create(&self, request: CreateRequest, progress: &mut dyn Write) -> Result<Container> {
        let CreateRequest {
            name,
            config: user,
            host_config,
            pull,
            platform,
            runtime_path,
            network,
        } = request;
        // 1. The image.
        let (_reference, image) =
            self.ensure_image(&user.image, pull, platform.as_deref(), progress)?;
        let image_config = image.config.config.clone().unwrap_or_default();
        // 2. The image's config merged in; something to run.
        let id = new_id();
        let mut config = merge_image_config(user, &image_config);
        if config.hostname.is_empty() {
            config.hostname = id[..SHORT_ID].to_string();
        }
        let user_entrypoint = config.entrypoint.clone();
        let args = oci::process_args(
            &oci::ContainerConfig {
                entrypoint: user_entrypoint.clone(),
                cmd: config.cmd.clone(),
                ..oci::ContainerConfig::default()
            },
            &[],
            None,
        );
        let Some((path, args)) = args.split_first() else {
            return Err(EngineError::msg("No command specified"));
        };
        if let Some(name) = &name {
            check_name(name).map_err(EngineError::Message)?;
        }
        // 3. The layers, under the store's shared lock until the container
        //    has recorded its image.
        let store = self.image_store()?;
        let store_lock = store
            .lock_shared()
            .map_err(|e| EngineError::msg(e.to_string()))?;
        let layers = unpack_layers(store, &image).map_err(|e| EngineError::msg(e.to_string()))?;
        // 4. The name, and the directory, under the names lock.
        let names = Names::new(&self.roots);
        let names_lock = names.lock()?;
        let name = match name {
            Some(name) => check_name(&name).map_err(EngineError::Message)?.to_string(),
            None => random_name(|n| names.taken(n)),
        };
        names.reserve(&names_lock, &name, &id)?;
        let dir = match rootfs::create_dir(&self.roots.root, &id, &layers) {
            Ok(dir) => dir,
            Err(err) => {
                names.release(&name, &id);
                return Err(err);
            }
        };
        let lock = dir.lock()?;
        drop(names_lock);
        // 5. The mounts: binds checked, volumes made (the image's VOLUMEs
        //    as anonymous ones), so a bad spec leaves nothing behind.
        let mut host_config = host_config;
        let image_volumes: Vec<String> = config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let mounts = match self.make_mounts(&mut host_config, &image_volumes) {
            Ok(mounts) => mounts,
            Err(err) => {
                let _ = ch04_overlay::cli::remove_container_dir(&dir.0);
                names.release(&name, &id);
                return Err(err);
            }
        };
        let made = (|| -> Result<Container> {
            ch05_images::gc::record_image(&dir.0, image.named_digest())
                .map_err(|e| EngineError::msg(e.to_string()))?;
            // 6. The record.
            let dirs = rootfs::overlay_dirs(&dir, &layers);
            let lower: Vec<String> = layers
                .iter()
                .rev()
                .map(|l| l.display().to_string())
                .collect();
            let container = Container {
                id: id.clone(),
                created: now_rfc3339(),
                path: path.clone(),
                args: args.to_vec(),
                image: image.manifest.config.digest.clone(),
                resolv_conf_path: dir.0.join("resolv.conf").display().to_string(),
                hostname_path: dir.0.join("hostname").display().to_string(),
                hosts_path: dir.0.join("hosts").display().to_string(),
                log_path: dir.log(&id).display().to_string(),
                name: format!("/{name}"),
                driver: "overlay".into(),
                platform: "linux".into(),
                host_config: HostConfig {
                    runtime: runtime_name(&runtime_path),
                    ..host_config
                },
                graph_driver: GraphDriver {
                    data: BTreeMap::from([
                        ("LowerDir".into(), lower.join(":")),
                        ("MergedDir".into(), dirs.merged.display().to_string()),
                        ("UpperDir".into(), dirs.upper.display().to_string()),
                        ("WorkDir".into(), dirs.work.display().to_string()),
                    ]),
                    name: "overlay".into(),
                },
                config,
                mounts: mounts.clone(),
                berth: super::record::BerthFields {
                    runtime_path: runtime_path.display().to_string(),
                    image_manifest: image.named_digest().to_string(),
                    layers: layers.clone(),
                    manually_stopped: false,
                    cgroups_path: super::bundle::cgroups_path(&id),
                    needs_cleanup: false,
                    network,
                },
                ..Container::default()
            };
            dir.save(&container)?;
            Ok(container)
        })();
        drop(store_lock);
        let container = match made {
            Ok(container) => container,
            Err(err) => {
                let _ = ch04_overlay::cli::remove_container_dir(&dir.0);
                names.release(&name, &id);
                self.remove_anonymous_volumes(&mounts);
                return Err(err);
            }
        };
        drop(lock);
        self.event("create", &container, &[]);
        Ok(container)
    }
}

/// docker's merge of an image's config into the user's.
pub fn merge_image_config(mut user: Config, image: &oci::ContainerConfig) -> Config {
    // Env: the user's first; the image's where the user set no such name.
    let names: Vec<String> = user
        .env
        .iter()
        .map(|kv| kv.split('=').next().unwrap_or_default().to_string())
        .collect();
    for kv in image.env.iter().flatten() {
        let name = kv.split('=').next().unwrap_or_default();
        if !names.iter().any(|n| n == name) {
            user.env.push(kv.clone());
        }
    }
    // Entrypoint and Cmd: `--entrypoint X` drops the image's Cmd;
    // `--entrypoint ""` clears the image's Entrypoint only.
    match user.entrypoint.as_deref() {
        None => {
            user.entrypoint = image.entrypoint.clone();
            if user.cmd.is_none() {
                user.cmd = image.cmd.clone();
            }
        }
        Some([only]) if only.is_empty() => {
            user.entrypoint = None;
            if user.cmd.is_none() {
                user.cmd = image.cmd.clone();
            }
        }
        Some(_) => {}
    }
    if user.working_dir.is_empty() {
        user.working_dir = image.working_dir.clone().unwrap_or_default();
    }
    if user.user.is_empty() {
        user.user = image.user.clone().unwrap_or_default();
    }
    let mut labels = image.labels.clone().unwrap_or_default();
    labels.append(&mut user.labels);
    user.labels = labels;
    if user.stop_signal.is_none() {
        user.stop_signal = image.stop_signal.clone();
    }
    // ExposedPorts: the image's and the user's (`--expose`, `-p`).
    if let Some(ports) = &image.exposed_ports {
        let exposed = user.exposed_ports.get_or_insert_with(BTreeMap::new);
        for key in ports.keys() {
            exposed
                .entry(key.clone())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    if user.volumes.is_none() {
        user.volumes = image.volumes.as_ref().map(|v| {
            v.keys()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect()
        });
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> oci::ContainerConfig {
        oci::ContainerConfig {
            env: Some(vec!["PATH=/usr/bin".into(), "LANG=C".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            working_dir: Some("/srv".into()),
            user: Some("daemon".into()),
            labels: Some(BTreeMap::from([("a".into(), "image".into())])),
            ..oci::ContainerConfig::default()
        }
    }

    #[test]
    fn the_image_config_fills_in_what_the_user_left_out() {
        let user = Config {
            env: vec!["LANG=fr".into(), "X=1".into()],
            labels: BTreeMap::from([("a".into(), "user".into())]),
            ..Config::default()
        };
        let c = merge_image_config(user, &image());
        assert_eq!(c.env, ["LANG=fr", "X=1", "PATH=/usr/bin"]);
        assert_eq!(c.entrypoint.as_deref(), Some(&["/entry".to_string()][..]));
        assert_eq!(c.cmd.as_deref(), Some(&["serve".to_string()][..]));
        assert_eq!(
            (c.working_dir.as_str(), c.user.as_str()),
            ("/srv", "daemon")
        );
        assert_eq!(c.labels["a"], "user");
    }

    #[test]
    fn entrypoint_overrides_follow_docker() {
        let with = |entrypoint: Option<Vec<&str>>, cmd: Option<Vec<&str>>| {
            let user = Config {
                entrypoint: entrypoint.map(|e| e.into_iter().map(String::from).collect()),
                cmd: cmd.map(|c| c.into_iter().map(String::from).collect()),
                ..Config::default()
            };
            let c = merge_image_config(user, &image());
            (c.entrypoint, c.cmd)
        };
        let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        // A command replaces the Cmd only.
        assert_eq!(with(None, Some(vec!["ls"])), (s(&["/entry"]), s(&["ls"])));
        // A new entrypoint drops the image's Cmd.
        assert_eq!(with(Some(vec!["sh"]), None), (s(&["sh"]), None));
        // An empty one clears the Entrypoint and keeps the Cmd.
        assert_eq!(with(Some(vec![""]), None), (None, s(&["serve"])));
    }

    #[test]
    fn pull_policies_parse() {
        assert_eq!("never".parse::<PullPolicy>(), Ok(PullPolicy::Never));
        assert!(
            "sometimes"
                .parse::<PullPolicy>()
                .unwrap_err()
                .contains("\"always\"")
        );
    }
}
