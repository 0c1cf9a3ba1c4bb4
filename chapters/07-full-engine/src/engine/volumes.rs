//! Volumes: data that outlives the container, mounted into it.
//!
//! A container's writable layer goes with the container. What must stay
//! (a database, a registry's blobs) lives outside it, in one of docker's
//! three kinds of mount, each a bind mount (or a tmpfs) the runtime makes
//! in the container's mount namespace before `pivot_root`:
//!
//! - a **bind** mount: a host path, as given (`-v /srv/data:/data`);
//! - a **volume**: a directory the engine owns, `ROOT/volumes/NAME/_data`,
//!   named (`-v data:/data`, shared by every container that names it) or
//!   anonymous (`-v /data`, or the image's `VOLUME`: a random name, removed
//!   with the container by `rm -v` and `--rm`). A new, empty volume is
//!   filled from the image's content at its path on first use, as docker
//!   does, so a `VOLUME /etc/app` keeps the image's defaults;
//! - a **tmpfs** (`--tmpfs /run`): memory, gone when the container stops.
//!
//! Man pages: mount(2) (`MS_BIND`, `MS_REC`), mount_namespaces(7)
//! (propagation), tmpfs(5).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::record::now_rfc3339;
use super::{EngineError, Result};

/// The label docker puts on a volume made for one container only.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// A volume as `volume inspect` shows it (docker's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// A mount the command line asked for (`-v`, `--mount`, `--tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        propagation: String,
        /// `-v` makes a missing source (docker's old behaviour, kept);
        /// `--mount` refuses it.
        create_source: bool,
    },
    Volume {
        /// None: anonymous.
        name: Option<String>,
        target: String,
        readonly: bool,
        nocopy: bool,
    },
    Tmpfs {
        target: String,
        options: Vec<String>,
    },
}

/// `-v`: `DEST` (anonymous volume), `NAME:DEST[:OPTS]` (named volume) or
/// `/HOST/PATH:DEST[:OPTS]` (bind). OPTS: `ro`, `rw`, `nocopy`, a
/// propagation mode, `z`/`Z` (SELinux labels: accepted, nothing to do).
pub fn parse_volume_flag(text: &str) -> std::result::Result<MountSpec, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, options] => (Some(*source), *target, *options),
        _ => return Err(format!("invalid spec: {text}: too many colons")),
    };
    let target = check_target(target, text)?;
    let (mut readonly, mut nocopy, mut propagation) = (false, false, String::new());
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            "z" | "Z" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = option.to_string()
            }
            _ => return Err(format!("invalid mode: {option}")),
        }
    }
    Ok(match source {
        Some(path) if path.starts_with('/') => MountSpec::Bind {
            source: PathBuf::from(path),
            target,
            readonly,
            propagation: if propagation.is_empty() {
                "rprivate".into()
            } else {
                propagation
            },
            create_source: true,
        },
        Some(name) => MountSpec::Volume {
            name: Some(check_volume_name(name)?.to_string()),
            target,
            readonly,
            nocopy,
        },
        None => MountSpec::Volume {
            name: None,
            target,
            readonly,
            nocopy,
        },
    })
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,…]`.
pub fn parse_mount_flag(text: &str) -> std::result::Result<MountSpec, String> {
    let mut fields = BTreeMap::new();
    let mut readonly = false;
    for field in text.split(',') {
        match field.split_once('=') {
            Some((key, value)) => {
                fields.insert(key.to_string(), value.to_string());
            }
            None if matches!(field, "readonly" | "ro") => readonly = true,
            None => return Err(format!("invalid field '{field}' must be a key=value pair")),
        }
    }
    let take = |keys: &[&str]| keys.iter().find_map(|k| fields.get(*k).cloned());
    if let Some(value) = take(&["readonly", "ro"]) {
        readonly = value != "false" && value != "0";
    }
    let target = take(&["target", "destination", "dst"])
        .ok_or_else(|| "invalid argument: target is required".to_string())?;
    let target = check_target(&target, text)?;
    let source = take(&["source", "src"]);
    match take(&["type"]).as_deref().unwrap_or("volume") {
        "bind" => {
            let source = source.ok_or("invalid argument: source is required for a bind mount")?;
            if !source.starts_with('/') {
                return Err(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                ));
            }
            Ok(MountSpec::Bind {
                source: PathBuf::from(source),
                target,
                readonly,
                propagation: take(&["bind-propagation"]).unwrap_or_else(|| "rprivate".into()),
                create_source: false,
            })
        }
        "volume" => Ok(MountSpec::Volume {
            name: match source {
                Some(name) => Some(check_volume_name(&name)?.to_string()),
                None => None,
            },
            target,
            readonly,
            nocopy: take(&["volume-nocopy"]).is_some_and(|v| v != "false"),
        }),
        "tmpfs" => {
            let mut options = Vec::new();
            if let Some(size) = take(&["tmpfs-size"]) {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = take(&["tmpfs-mode"]) {
                options.push(format!("mode={mode}"));
            }
            if readonly {
                options.push("ro".into());
            }
            Ok(MountSpec::Tmpfs { target, options })
        }
        other => Err(format!(
            "invalid argument: unknown mount type '{other}': use bind, volume or tmpfs"
        )),
    }
}

impl MountSpec {
    /// The destination in the container.
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Volume { target, .. }
            | MountSpec::Tmpfs { target, .. } => target,
        }
    }

    /// docker's `HostConfig.Mounts` entry (the API's `--mount`).
    pub fn to_api(&self) -> Value {
        match self {
            MountSpec::Bind {
                source,
                target,
                readonly,
                propagation,
                ..
            } => json!({"Type": "bind", "Source": source, "Target": target,
                        "ReadOnly": readonly, "BindOptions": {"Propagation": propagation}}),
            MountSpec::Volume {
                name,
                target,
                readonly,
                nocopy,
            } => json!({"Type": "volume", "Source": name.clone().unwrap_or_default(),
                        "Target": target, "ReadOnly": readonly,
                        "VolumeOptions": {"NoCopy": nocopy}}),
            MountSpec::Tmpfs { target, options } => {
                json!({"Type": "tmpfs", "Target": target, "TmpfsOptions": {"Options": options}})
            }
        }
    }

    /// A `HostConfig.Mounts` entry read back (as the API sends it).
    pub fn from_api(m: &Value) -> std::result::Result<MountSpec, String> {
        let text = |k: &str| m[k].as_str().unwrap_or("").to_string();
        let target = check_target(&text("Target"), &m.to_string())?;
        let readonly = m["ReadOnly"].as_bool().unwrap_or(false);
        match text("Type").as_str() {
            "bind" => {
                let source = text("Source");
                if !source.starts_with('/') {
                    return Err(format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                    ));
                }
                let propagation = m["BindOptions"]["Propagation"].as_str().unwrap_or("");
                Ok(MountSpec::Bind {
                    source: source.into(),
                    target,
                    readonly,
                    propagation: if propagation.is_empty() {
                        "rprivate".into()
                    } else {
                        propagation.into()
                    },
                    create_source: false,
                })
            }
            "volume" | "" => {
                let name = text("Source");
                Ok(MountSpec::Volume {
                    name: if name.is_empty() {
                        None
                    } else {
                        Some(check_volume_name(&name)?.to_string())
                    },
                    target,
                    readonly,
                    nocopy: m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false),
                })
            }
            "tmpfs" => Ok(MountSpec::Tmpfs {
                target,
                options: m["TmpfsOptions"]["Options"]
                    .as_array()
                    .map(|o| {
                        o.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            other => Err(format!(
                "invalid mount config: unknown mount type '{other}'"
            )),
        }
    }
}

/// `--tmpfs DEST[:OPTS]`.
pub fn parse_tmpfs_flag(text: &str) -> std::result::Result<MountSpec, String> {
    let (target, options) = text.split_once(':').unwrap_or((text, ""));
    Ok(MountSpec::Tmpfs {
        target: check_target(target, text)?,
        options: options
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// A mount's destination: absolute, no `..`, not `/` itself.
fn check_target(target: &str, spec: &str) -> std::result::Result<String, String> {
    let path = Path::new(target);
    if !path.is_absolute() {
        return Err(format!(
            "invalid volume specification: '{spec}': invalid mount config: mount path must be absolute"
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "invalid volume specification: '{spec}': the destination may not contain '..'"
        ));
    }
    if path.components().all(|c| c == Component::RootDir) {
        return Err(format!(
            "invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        ));
    }
    Ok(target.trim_end_matches('/').to_string())
}

/// docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. A relative path
/// lands here too, and gets docker's hint.
pub fn check_volume_name(name: &str) -> std::result::Result<&str, String> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        return Ok(name);
    }
    Err(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    ))
}

/// The engine's volumes: `ROOT/volumes/NAME/{_data,volume.json}`.
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
        }
    }

    fn record(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("volume.json")
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Volume `name`, made if it does not exist (docker's `volume create`
    /// of an existing name returns it unchanged); `None` makes an
    /// anonymous one.
    pub fn create(&self, name: Option<&str>, labels: BTreeMap<String, String>) -> Result<Volume> {
        let (name, mut labels) = match name {
            Some(name) => (
                check_volume_name(name)
                    .map_err(EngineError::Message)?
                    .to_string(),
                labels,
            ),
            None => {
                let mut labels = labels;
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                (super::ids::new_id(), labels)
            }
        };
        if let Ok(existing) = self.get(&name) {
            return Ok(existing);
        }
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |e: std::io::Error| EngineError::msg(format!("create volume {what}: {e}"))
        };
        let data = self.data(&name);
        std::fs::create_dir_all(&data).map_err(io(&data))?;
        let volume = Volume {
            created_at: now_rfc3339(),
            driver: "local".into(),
            labels: std::mem::take(&mut labels),
            mountpoint: data.display().to_string(),
            name: name.clone(),
            options: BTreeMap::new(),
            scope: "local".into(),
        };
        let json = serde_json::to_vec_pretty(&volume).expect("a volume serializes");
        let record = self.record(&name);
        ch04_overlay::files::write_atomic(&record, &json, 0o644)
            .map_err(|(path, e)| EngineError::msg(format!("{}: {e}", path.display())))?;
        Ok(volume)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let no_such = || EngineError::msg(format!("get {name}: no such volume"));
        if check_volume_name(name).is_err() {
            return Err(no_such());
        }
        let bytes = std::fs::read(self.record(name)).map_err(|_| no_such())?;
        serde_json::from_slice(&bytes).map_err(|e| EngineError::msg(format!("volume {name}: {e}")))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut all = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(EngineError::msg(format!("{}: {e}", self.dir.display()))),
        };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && let Ok(volume) = self.get(name)
            {
                all.push(volume);
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Remove volume `name`, its data included. The caller checked that
    /// no container uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir.join(name);
        // The record first: a half-removed volume is no volume.
        std::fs::remove_file(self.record(name))
            .map_err(|e| EngineError::msg(format!("remove volume {name}: {e}")))?;
        ch04_overlay::walk::remove_tree(&dir)
            .map_err(|e| EngineError::msg(format!("remove volume {name}: {e}")))
    }
}

impl super::Engine {
    pub fn volumes(&self) -> Volumes {
        Volumes::new(&self.roots.root)
    }

    /// `create`'s mounts: the specs of `-v` (`host.binds`), `--mount`
    /// (`host.mounts`) and `--tmpfs`, then an anonymous volume for each of
    /// the image's `VOLUME`s nothing is mounted on. Binds are checked (a
    /// missing source made for `-v`, refused for `--mount`), volumes made;
    /// the container's `Mounts` returned, tmpfs added to `host.tmpfs`.
    /// On error, the anonymous volumes made here are removed again.
    pub fn make_mounts(
        &self,
        host: &mut super::record::HostConfig,
        image_volumes: &[String],
    ) -> Result<Vec<Value>> {
        let mut specs = Vec::new();
        for bind in host.binds.iter().flatten() {
            specs.push(parse_volume_flag(bind).map_err(EngineError::Message)?);
        }
        for mount in &host.mounts {
            specs.push(MountSpec::from_api(mount).map_err(EngineError::Message)?);
        }
        let mut targets: Vec<String> = Vec::new();
        for spec in &specs {
            if targets.iter().any(|t| t == spec.target()) || host.tmpfs.contains_key(spec.target())
            {
                return Err(EngineError::msg(format!(
                    "Duplicate mount point: {}",
                    spec.target()
                )));
            }
            targets.push(spec.target().to_string());
        }
        for target in image_volumes {
            let target = target.trim_end_matches('/');
            if !targets.iter().any(|t| t == target) && !host.tmpfs.contains_key(target) {
                specs.push(MountSpec::Volume {
                    name: None,
                    target: target.to_string(),
                    readonly: false,
                    nocopy: false,
                });
            }
        }
        let mut made: Vec<String> = Vec::new();
        let result = (|| {
            let mut entries = Vec::new();
            for spec in &specs {
                entries.extend(self.make_mount(spec, host, &mut made)?);
            }
            Ok(entries)
        })();
        if result.is_err() {
            for name in made {
                let _ = self.volumes().remove(&name);
            }
        }
        result
    }

    /// One spec's `Mounts` entry; an anonymous volume made is added to
    /// `made`.
    fn make_mount(
        &self,
        spec: &MountSpec,
        host: &mut super::record::HostConfig,
        made: &mut Vec<String>,
    ) -> Result<Option<Value>> {
        match spec {
            MountSpec::Bind {
                source,
                create_source,
                ..
            } => {
                if !source.exists() {
                    if !create_source {
                        return Err(EngineError::msg(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            source.display()
                        )));
                    }
                    std::fs::create_dir_all(source).map_err(|e| {
                        EngineError::msg(format!(
                            "create the bind source {}: {e}",
                            source.display()
                        ))
                    })?;
                }
                Ok(mount_entry(spec, None))
            }
            MountSpec::Volume { name, .. } => {
                let volume = self.volumes().create(name.as_deref(), BTreeMap::new())?;
                if name.is_none() {
                    made.push(volume.name.clone());
                }
                Ok(mount_entry(spec, Some(&volume)))
            }
            MountSpec::Tmpfs { target, options } => {
                host.tmpfs.insert(target.clone(), options.join(","));
                Ok(None)
            }
        }
    }

    /// The containers (ids) whose `Mounts` name volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .filter(|c| volume_names(&c.mounts).iter().any(|n| n == name))
            .map(|c| c.id)
            .collect())
    }

    /// `rm -v` and `--rm`: the container's anonymous volumes, unless
    /// another container uses one too.
    pub fn remove_anonymous_volumes(&self, mounts: &[Value]) {
        for name in volume_names(mounts) {
            let anonymous = self.volumes().get(&name).is_ok_and(|v| v.is_anonymous());
            if anonymous
                && self.volume_users(&name).is_ok_and(|users| users.is_empty())
                && let Err(err) = self.volumes().remove(&name)
            {
                eprintln!("berth: warning: {err}");
            }
        }
    }
}

/// The names of the volumes in a container's `Mounts`.
pub fn volume_names(mounts: &[Value]) -> Vec<String> {
    mounts
        .iter()
        .filter(|m| m["Type"] == "volume")
        .filter_map(|m| m["Name"].as_str().map(String::from))
        .collect()
}

/// A `Mounts` entry of `inspect` (docker's fields) for a bind or volume.
pub fn mount_entry(spec: &MountSpec, volume: Option<&Volume>) -> Option<Value> {
    match spec {
        MountSpec::Bind {
            source,
            target,
            readonly,
            propagation,
            ..
        } => Some(json!({
            "Type": "bind", "Source": source, "Destination": target,
            "Mode": if *readonly { "ro" } else { "" }, "RW": !readonly,
            "Propagation": propagation,
        })),
        MountSpec::Volume {
            target,
            readonly,
            nocopy,
            ..
        } => {
            let volume = volume?;
            Some(json!({
                "Type": "volume", "Name": volume.name, "Source": volume.mountpoint,
                "Destination": target, "Driver": "local",
                "Mode": if *readonly { "ro" } else { "z" }, "RW": !readonly,
                "Propagation": "", "NoCopy": nocopy,
            }))
        }
        MountSpec::Tmpfs { .. } => None,
    }
}

/// The runtime's `mounts` for a container's `Mounts` and tmpfs: binds
/// (recursive, with their propagation, read-only if asked) and tmpfs
/// (never executable, setuid or device files unless asked otherwise).
pub fn oci_mounts(mounts: &[Value], tmpfs: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out = Vec::new();
    for m in mounts {
        let mut options = vec!["rbind".to_string()];
        let propagation = m["Propagation"].as_str().unwrap_or("");
        options.push(
            if propagation.is_empty() {
                "rprivate"
            } else {
                propagation
            }
            .into(),
        );
        if m["RW"] == false {
            options.push("ro".into());
        }
        out.push(json!({
            "destination": m["Destination"], "type": "bind",
            "source": m["Source"], "options": options,
        }));
    }
    for (target, given) in tmpfs {
        let mut options: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).into();
        options.extend(given.split(',').filter(|o| !o.is_empty()).map(String::from));
        out.push(json!({
            "destination": target, "type": "tmpfs", "source": "tmpfs", "options": options,
        }));
    }
    out
}

/// First use of an empty volume: the image's content at the mount's
/// path, copied in. The path is walked inside the rootfs without
/// following a symlink, so an image cannot point the copy at the host.
pub fn fill_from_image(rootfs: &Path, target: &str, data: &Path) -> Result<()> {
    let empty = std::fs::read_dir(data).map(|mut d| d.next().is_none());
    if !matches!(empty, Ok(true)) {
        return Ok(());
    }
    let mut path = rootfs.to_path_buf();
    for part in Path::new(target).components().skip(1) {
        path.push(part);
        match path.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => return Ok(()),
            Ok(_) => {}
            Err(_) => return Ok(()), // nothing there: nothing to copy
        }
    }
    if !path.is_dir() {
        return Ok(());
    }
    ch04_overlay::vfs::copy_layers(&[path], data)
        .map(|_| ())
        .map_err(|e| EngineError::msg(format!("copy the image's {target} into the volume: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_parse_as_docker_reads_them() {
        assert_eq!(
            parse_volume_flag("/data").unwrap(),
            MountSpec::Volume {
                name: None,
                target: "/data".into(),
                readonly: false,
                nocopy: false
            }
        );
        assert_eq!(
            parse_volume_flag("cache:/var/cache:ro,nocopy").unwrap(),
            MountSpec::Volume {
                name: Some("cache".into()),
                target: "/var/cache".into(),
                readonly: true,
                nocopy: true
            }
        );
        let MountSpec::Bind {
            source,
            propagation,
            readonly,
            ..
        } = parse_volume_flag("/srv:/srv:ro,rslave").unwrap()
        else {
            panic!("a bind");
        };
        assert_eq!(
            (source, propagation, readonly),
            ("/srv".into(), "rslave".into(), true)
        );
        // A relative path is a volume name to docker: refused with its hint.
        let err = parse_volume_flag("./data:/data").unwrap_err();
        assert!(err.contains("use absolute path"), "{err}");
        assert!(parse_volume_flag("data").is_err(), "a relative target");
        assert!(parse_volume_flag("/a:/").is_err(), "/ as a target");
        assert!(parse_volume_flag("/a:/b/../etc").is_err(), ".. in a target");
        assert!(parse_volume_flag("/a:/b:bogus").is_err());
    }

    #[test]
    fn mount_flags_parse_as_docker_reads_them() {
        let spec = parse_mount_flag("type=bind,source=/srv,target=/srv,readonly").unwrap();
        assert!(matches!(
            spec,
            MountSpec::Bind {
                readonly: true,
                create_source: false,
                ..
            }
        ));
        let spec = parse_mount_flag("type=tmpfs,dst=/run,tmpfs-size=1m").unwrap();
        assert_eq!(
            spec,
            MountSpec::Tmpfs {
                target: "/run".into(),
                options: vec!["size=1m".into()]
            }
        );
        assert!(parse_mount_flag("type=bind,source=rel,target=/x").is_err());
        assert!(parse_mount_flag("type=nfs,target=/x").is_err());
        assert!(parse_mount_flag("source=v").is_err(), "no target");
    }

    #[test]
    fn volumes_are_made_listed_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let named = volumes.create(Some("data"), BTreeMap::new()).unwrap();
        assert!(!named.is_anonymous());
        // Creating it again returns the same volume.
        assert_eq!(
            volumes.create(Some("data"), BTreeMap::new()).unwrap(),
            named
        );
        let anonymous = volumes.create(None, BTreeMap::new()).unwrap();
        assert!(anonymous.is_anonymous());
        assert_eq!(anonymous.name.len(), 64);
        let names: Vec<String> = volumes
            .list()
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names.len(), 2);
        volumes.remove("data").unwrap();
        assert!(volumes.get("data").is_err());
        assert!(!tmp.path().join("volumes/data").exists());
    }

    #[test]
    fn the_first_use_copies_the_image_content_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/app")).unwrap();
        std::fs::write(rootfs.join("etc/app/conf"), "default").unwrap();
        std::os::unix::fs::symlink("/etc", rootfs.join("escape")).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        fill_from_image(&rootfs, "/etc/app", &data).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("conf")).unwrap(),
            "default"
        );
        // Not empty any more: a second start copies nothing over it.
        std::fs::write(data.join("conf"), "changed").unwrap();
        fill_from_image(&rootfs, "/etc/app", &data).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("conf")).unwrap(),
            "changed"
        );
        // A symlink in the image's path is never followed out.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        fill_from_image(&rootfs, "/escape", &other).unwrap();
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
    }
}
