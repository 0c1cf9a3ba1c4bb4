//! `commit`: a container's writable layer as a new image.
//!
//! The overlay's upper directory holds exactly what the container changed
//! (chapter 4): new and modified files, whiteouts for deletions, opaque
//! directories. Chapter 4's `commit_layer` writes it as an OCI layer (the
//! whiteouts as `.wh.` entries), and the new image is the container's
//! image with that layer on top, a config made from the container's own
//! (with `-c` changes), and one more history step (author, comment). The
//! container is frozen meanwhile (`-p`, the default; chapter 3's freezer
//! through the runtime's `pause`), so the layer is one moment's state.
//!
//! An image made without a name is kept under a *dangling* name (see
//! [`dangling_name`]): chapter 5's store keeps images by name, and docker
//! shows such an image as `<none>`.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ch04_overlay::commit::{CommitOptions, commit_layer};
use ch05_images::digest::{Algorithm, Digest, Verifier};
use ch05_images::oci::{
    self, ContainerConfig, Descriptor, Empty, History, ImageConfig, ImageManifest, Manifest,
    Platform,
};
use ch05_images::reference::Reference;
use ch05_images::store::{Compression, Store};
use flate2::GzBuilder;

use super::record::{Config, Status, now_rfc3339};
use super::{Engine, EngineError, Result};

/// The registry part of the names that keep unnamed images.
pub const DANGLING_REGISTRY: &str = "dangling.berth.invalid";

/// The name that keeps the unnamed image with manifest `digest`.
pub fn dangling_name(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("{DANGLING_REGISTRY}/image:{hex}")
}

/// Whether `name` is a dangling name (shown as `<none>`).
pub fn is_dangling(name: &Reference) -> bool {
    name.registry == DANGLING_REGISTRY
}

/// What `commit` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-c`: Dockerfile instructions.
    pub changes: Vec<String>,
    /// `-p`: freeze the container meanwhile.
    pub pause: bool,
    /// `REPOSITORY[:TAG]`.
    pub name: Option<Reference>,
}

fn msg(e: impl std::fmt::Display) -> EngineError {
    EngineError::msg(e.to_string())
}

/// A JSON array (`["a","b"]`) or, in shell form, `/bin/sh -c TEXT`.
fn exec_or_shell(text: &str) -> Vec<String> {
    if text.trim_start().starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(text)
    {
        return list;
    }
    vec!["/bin/sh".into(), "-c".into(), text.to_string()]
}

/// `KEY=VALUE ...` pairs, or the old one-pair form `KEY VALUE`.
fn pairs(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let text = text.trim();
    if let Some((first, rest)) = text.split_once(char::is_whitespace)
        && !first.contains('=')
    {
        return Ok(vec![(first.to_string(), rest.trim().to_string())]);
    }
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("{word}: want KEY=VALUE"))?;
        out.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    Ok(out)
}

/// Apply `-c`/`--change` instructions to `config`, as docker's commit and
/// import do: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
/// STOPSIGNAL.
pub fn apply_changes(
    config: &mut ContainerConfig,
    changes: &[String],
) -> std::result::Result<(), String> {
    for change in changes {
        let change = change.trim();
        let (word, rest) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "CMD" => config.cmd = Some(exec_or_shell(rest)),
            "ENTRYPOINT" => config.entrypoint = Some(exec_or_shell(rest)),
            "ENV" => {
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs(rest)? {
                    env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
            }
            "EXPOSE" => {
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') {
                        port.to_string()
                    } else {
                        format!("{port}/tcp")
                    };
                    ports.insert(port, Empty {});
                }
            }
            "LABEL" => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs(rest)? {
                    labels.insert(k, v);
                }
            }
            "USER" => config.user = Some(rest.to_string()),
            "WORKDIR" => config.working_dir = Some(rest.to_string()),
            "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
            "VOLUME" => {
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                let list = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(list) => list,
                    Err(_) => rest.split_whitespace().map(str::to_string).collect(),
                };
                for v in list {
                    volumes.insert(v, Empty {});
                }
            }
            _ => {
                return Err(format!(
                    "{word} is not a valid change command (want one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)"
                ));
            }
        }
    }
    Ok(())
}

/// The image config's `config` a container runs with.
fn container_config(c: &Config) -> ContainerConfig {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ContainerConfig {
        user: nonempty(&c.user),
        exposed_ports: c
            .exposed_ports
            .as_ref()
            .map(|p| p.keys().map(|k| (k.clone(), Empty {})).collect()),
        env: (!c.env.is_empty()).then(|| c.env.clone()),
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        volumes: c
            .volumes
            .as_ref()
            .map(|v| v.keys().map(|k| (k.clone(), Empty {})).collect()),
        working_dir: nonempty(&c.working_dir),
        labels: (!c.labels.is_empty()).then(|| c.labels.clone()),
        stop_signal: c.stop_signal.clone(),
        ..ContainerConfig::default()
    }
}

/// The image manifest (this host's, through an index) named by `digest`.
fn read_manifest(store: &Store, digest: &str) -> Result<ImageManifest> {
    let mut digest = digest.to_string();
    for _ in 0..=ch05_images::image::MAX_INDEX_NESTING {
        match oci::parse_manifest("", &store.read_blob(&digest).map_err(msg)?).map_err(msg)? {
            Manifest::Image(m) => return Ok(m),
            Manifest::Index(index) => {
                digest = oci::choose_platform(&index, &Platform::host())
                    .map_err(msg)?
                    .digest
                    .clone();
            }
        }
    }
    Err(EngineError::msg(format!("{digest}: indexes nest too deep")))
}

/// Store `bytes` as a blob of `media_type`; its descriptor.
pub fn put_json(store: &Store, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
    let digest = Digest::of_bytes(Algorithm::Sha256, bytes).to_string();
    store
        .put_blob(&digest, Some(bytes.len() as u64), bytes)
        .map_err(msg)?;
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

impl Engine {
    /// Commit container `text`; the new image's ID (config digest).
    pub fn commit(&self, text: &str, request: &CommitRequest) -> Result<String> {
        let c = self.container(text)?;
        let id = c.id.clone();
        // A rootless engine's containers are full copies (vfs): no upper
        // directory holds what they changed.
        if super::rootfs::driver() != ch04_overlay::state::StorageDriver::Overlay {
            return Err(EngineError::msg(
                "commit needs the overlay storage driver, which holds a container's changes \
                 apart; a normal user's engine copies the layers instead (vfs): run berth as \
                 root to commit"
                    .to_string(),
            ));
        }
        let store = self.image_store()?;
        // 1. The image the container was made from (its recorded manifest).
        let uses = ch05_images::gc::container_uses(&self.roots.root).map_err(msg)?;
        let used = uses
            .into_iter()
            .find(|u| u.name == id)
            .ok_or_else(|| EngineError::msg(format!("container {id} records no image")))?;
        let lowers = used.layers.clone();
        let base_digest = used
            .image
            .ok_or_else(|| EngineError::msg(format!("container {id} records no image")))?;
        let mounts: Vec<String> = c
            .mounts
            .iter()
            .filter_map(|m| m["Destination"].as_str().map(str::to_string))
            .collect();
        let base = read_manifest(store, &base_digest)?;
        let base_config: ImageConfig =
            serde_json::from_slice(&store.read_blob(&base.config.digest).map_err(msg)?)
                .map_err(msg)?;
        // 2. The changes as they stand, not under the container's feet.
        let changes = {
            let mut config = container_config(&c.config);
            apply_changes(&mut config, &request.changes).map_err(EngineError::Message)?;
            config
        };
        let store_lock = store.lock_shared().map_err(msg)?;
        let freeze = request.pause && c.state.status == Status::Running;
        if freeze {
            self.pause(&id)?;
        }
        let layer = self.write_upper(store, &id, &lowers, &mounts);
        if freeze {
            self.unpause(&id)?;
        }
        let (blob, diff_id, size) = layer?;
        // Unpacked now (the container thawed), as pull and load unpack
        // theirs: a run of the new image finds it ready, and `images`
        // counts its real size.
        let compression = Compression::of_media_type(oci::OCI_LAYER_TAR_GZIP);
        store
            .unpack_layer(&blob, &diff_id, compression)
            .map_err(msg)?;
        // 3. The config: the base's, the container's settings, one more
        //    layer and history step.
        let created = now_rfc3339();
        let mut history = base_config.history.clone().unwrap_or_else(|| {
            base.layers
                .iter()
                .map(|_| History {
                    created: base_config.created.clone(),
                    ..History::default()
                })
                .collect()
        });
        let mut created_by = vec![c.path.clone()];
        created_by.extend(c.args.iter().cloned());
        history.push(History {
            created: Some(created.clone()),
            author: request.author.clone(),
            created_by: Some(created_by.join(" ")),
            comment: request.message.clone(),
            empty_layer: None,
        });
        let mut rootfs = base_config.rootfs.clone();
        rootfs.diff_ids.push(diff_id);
        let config = ImageConfig {
            created: Some(created),
            author: request.author.clone(),
            config: Some(changes),
            rootfs,
            history: Some(history),
            ..base_config
        };
        let config_bytes = serde_json::to_vec(&config).map_err(msg)?;
        let config = put_json(store, oci::OCI_CONFIG, &config_bytes)?;
        // 4. The manifest last, then the name.
        let mut layers = base.layers.clone();
        layers.push(Descriptor::new(oci::OCI_LAYER_TAR_GZIP, blob, size));
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config: config.clone(),
            layers,
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(msg)?;
        let manifest = put_json(store, oci::OCI_MANIFEST, &bytes)?;
        let name = match &request.name {
            Some(name) => name.to_string(),
            None => dangling_name(&manifest.digest),
        };
        store.set_name(&name, &manifest.digest).map_err(msg)?;
        drop(store_lock);
        self.event("commit", &c, &[]);
        Ok(config.digest)
    }

    /// Container `id`'s upper directory as a gzip layer in the store: (blob
    /// digest, diff_id, size). The mount points the runtime made for the
    /// engine's mounts are left out (docker keeps them in an "init" layer
    /// that is never committed).
    pub(crate) fn write_upper(
        &self,
        store: &Store,
        id: &str,
        lowers: &[PathBuf],
        mounts: &[String],
    ) -> Result<(String, String, u64)> {
        let upper = self.dir(id).0.join("upper");
        let temp = || {
            tempfile::tempfile_in(store.root()).map_err(|e| {
                EngineError::msg(format!(
                    "create a temporary file in {}: {e}",
                    store.root().display()
                ))
            })
        };
        let failed = |e: &dyn std::fmt::Display| {
            EngineError::msg(format!("commit {}: {e}", upper.display()))
        };
        // 1. Chapter 4's layer, uncompressed.
        let mut tar = temp()?;
        let options = CommitOptions {
            keep_times: true,
            gzip: false,
        };
        commit_layer(&upper, &mut tar, &options).map_err(|e| failed(&e))?;
        tar.seek(SeekFrom::Start(0)).map_err(msg)?;
        // 2. Without the mount points; hashed as a tar, gzipped, hashed.
        let excluded = engine_made(&upper, lowers, mounts);
        let mut blob = temp()?;
        let gz = GzBuilder::new()
            .mtime(0)
            .write(Tee::new(&mut blob), flate2::Compression::default());
        let mut builder = tar::Builder::new(Tee::new(gz));
        let mut archive = tar::Archive::new(&mut tar);
        for entry in archive.entries().map_err(|e| failed(&e))? {
            let mut entry = entry.map_err(|e| failed(&e))?;
            let path = entry.path().map_err(|e| failed(&e))?.into_owned();
            let name = path.to_string_lossy();
            let name = name.trim_start_matches("./").trim_end_matches('/');
            if excluded.iter().any(|x| x == name) {
                continue;
            }
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            if kind.is_hard_link() || kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(|e| failed(&e))?
                    .unwrap_or_default()
                    .into_owned();
                builder.append_link(&mut header, &path, &target)
            } else {
                builder.append_data(&mut header, &path, &mut entry)
            }
            .map_err(|e| failed(&e))?;
        }
        let Tee { inner: gz, hash } = builder.into_inner().map_err(|e| failed(&e))?;
        let (diff_id, _) = hash.finish();
        let Tee { hash, .. } = gz.finish().map_err(|e| failed(&e))?;
        let (digest, size) = hash.finish();
        // 3. Into the store under its digest.
        blob.seek(SeekFrom::Start(0)).map_err(msg)?;
        let digest = digest.to_string();
        store
            .put_blob(&digest, Some(size), &mut blob)
            .map_err(msg)?;
        Ok((digest, diff_id.to_string(), size))
    }
}

/// A writer that hashes what passes through it.
struct Tee<W> {
    inner: W,
    hash: Verifier,
}

impl<W: Write> Tee<W> {
    fn new(inner: W) -> Tee<W> {
        Tee {
            inner,
            hash: Verifier::new(Algorithm::Sha256),
        }
    }
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What the runtime made in `upper` only to mount over it: an empty file
/// or directory at a mount point (/proc, /sys, /dev, the /etc files, the
/// volumes) that no lower layer has; and a directory holding only those
/// (/etc), unless the container changed the directory itself. Paths as a layer tar names them (`etc/hosts`).
pub fn engine_made(upper: &Path, lowers: &[PathBuf], mounts: &[String]) -> Vec<String> {
    let in_lowers = |rel: &str| {
        lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok())
    };
    let empty = |rel: &str| match upper.join(rel).symlink_metadata() {
        Ok(m) if m.is_file() => m.len() == 0,
        Ok(m) if m.is_dir() => std::fs::read_dir(upper.join(rel))
            .map(|mut d| d.next().is_none())
            .unwrap_or(false),
        _ => false,
    };
    let mut candidates: Vec<String> = [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    candidates.extend(mounts.iter().map(|m| m.trim_matches('/').to_string()));
    let mut excluded: Vec<String> = candidates
        .into_iter()
        .filter(|rel| !rel.is_empty() && empty(rel) && !in_lowers(rel))
        .collect();
    // A directory the runtime made to hold mount points (deepest first).
    let mut parents: Vec<String> = excluded
        .iter()
        .filter_map(|rel| Path::new(rel).parent())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .collect();
    parents.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parents.dedup();
    // A copied-up directory is the same as its lower one unless the
    // container changed its owner or mode.
    let same_as_lower = |rel: &str| {
        use std::os::unix::fs::MetadataExt;
        let Ok(up) = upper.join(rel).symlink_metadata() else {
            return false;
        };
        lowers
            .iter()
            .rev()
            .find_map(|l| l.join(rel).symlink_metadata().ok())
            .is_some_and(|low| {
                (low.mode(), low.uid(), low.gid()) == (up.mode(), up.uid(), up.gid())
            })
    };
    for parent in parents {
        if in_lowers(&parent) && !same_as_lower(&parent) {
            continue;
        }
        let only_made = std::fs::read_dir(upper.join(&parent)).is_ok_and(|entries| {
            entries.flatten().all(|e| {
                let rel = format!("{parent}/{}", e.file_name().to_string_lossy());
                excluded.contains(&rel)
            })
        });
        if only_made {
            excluded.push(parent);
        }
    }
    excluded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_dockers() {
        let mut c = ContainerConfig::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["/bin/httpd","-f","-h","/data"]"#.into(),
                "ENV A=1 B=2".into(),
                "ENV C 3 4".into(),
                "EXPOSE 80 53/udp".into(),
                "WORKDIR /data".into(),
                "ENTRYPOINT echo hi".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/httpd", "-f", "-h", "/data"]);
        assert_eq!(c.env.unwrap(), ["A=1", "B=2", "C=3 4"]);
        let ports: Vec<String> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.working_dir.unwrap(), "/data");
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert!(apply_changes(&mut ContainerConfig::default(), &["RUN ls".into()]).is_err());
    }

    #[test]
    fn dangling_names_parse_and_are_known() {
        let name = dangling_name("sha256:abc123");
        let r = Reference::parse(&name).unwrap();
        assert!(is_dangling(&r));
        assert!(!is_dangling(&Reference::parse("busybox").unwrap()));
    }

    #[test]
    fn mount_points_the_runtime_made_are_not_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        for dir in [
            "upper/proc",
            "upper/dev",
            "upper/etc",
            "upper/data",
            "upper/sys/x",
            "lower/dev",
        ] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        for file in ["upper/etc/hosts", "upper/etc/hostname", "upper/data/empty"] {
            std::fs::write(tmp.path().join(file), "").unwrap();
        }
        let mut made = engine_made(
            &upper,
            std::slice::from_ref(&lower),
            &["/data/empty".into()],
        );
        made.sort();
        // /dev is the image's (an empty change, kept); /sys holds a file;
        // /data only held the volume's mount point.
        assert_eq!(
            made,
            [
                "data",
                "data/empty",
                "etc",
                "etc/hostname",
                "etc/hosts",
                "proc"
            ]
        );
        // /etc with a file of the container's own stays.
        std::fs::write(upper.join("etc/motd"), "hi").unwrap();
        assert!(!engine_made(&upper, &[lower], &[]).contains(&"etc".to_string()));
    }
}
