//! What the registry tests share: our server on a free loopback port, an HTTP
//! client that reports every status instead of failing on it, and test
//! images made with chapter 5's library.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_test_support::bin_path;
use ch05_images::digest::{Algorithm, Digest};
use ch05_images::reference::Reference;
use ch05_images::store::Store;

pub fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch06-registry"))
}

/// `ch06-registry serve --addr 127.0.0.1:0 --root DIR`, stopped on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, as bound.
    pub addr: String,
    pub root: PathBuf,
    log: Arc<Mutex<String>>,
    /// The thread copying stderr into `log`; joined once the server exits.
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with a fresh storage directory.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(&dir.path().join("registry"), &[]);
        server._dir = Some(dir);
        server
    }

    /// A server on `root`, with extra `serve` arguments.
    pub fn start_in(root: &Path, extra: &[&str]) -> Server {
        Server::start_with(root, extra, |_| {})
    }

    /// [`Server::start_in`], its command changed by `configure` first (a
    /// resource limit, say).
    pub fn start_with(root: &Path, extra: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("start ch06-registry");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split(',').next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ch06-registry did not say where it listens; its stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            root: root.to_path_buf(),
            log,
            reader: Some(reader),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the server wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the server never logged {needle:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM);
        self.wait()
    }

    /// Waits for the server to exit (after a signal sent by the test).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Its last words are in the log once the pipe is drained.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `docker://ADDR/repo:tag` for skopeo.
    pub fn skopeo_ref(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }

    /// Every file under the storage root, relative, sorted: to show that a
    /// refused request stored nothing.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    let rel = entry.path().strip_prefix(&self.root).unwrap().to_owned();
                    out.push(rel.display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lowercase names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The codes of the spec's error JSON.
    pub fn codes(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["code"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the status and the (first) error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.codes().first().map(String::as_str)),
            (status, Some(code)),
            "{self:?} body {}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// One request; every status is an answer, not an error.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .max_redirects(0)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = match body {
        Some(bytes) => agent.run(builder.body(bytes.to_vec()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in response.headers() {
        let value = value.to_str().unwrap_or("").to_string();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap()
    };
    Reply {
        status: response.status().as_u16(),
        headers,
        body,
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    Digest::of_bytes(Algorithm::Sha256, bytes).to_string()
}

pub fn sha512(bytes: &[u8]) -> String {
    Digest::of_bytes(Algorithm::Sha512, bytes).to_string()
}

/// `n` bytes that are not all the same.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Pushes `bytes` as a blob of `repo` in one POST; returns its digest.
pub fn push_blob(server: &Server, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let reply = request(
        "POST",
        &server.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
        &[("content-type", "application/octet-stream")],
        Some(bytes),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    digest
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A descriptor.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// An image manifest naming `config` and `layers` (already pushed), with
/// optional extra fields.
pub fn image_manifest(config: &[u8], layers: &[&[u8]], extra: serde_json::Value) -> Vec<u8> {
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
    });
    if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec_pretty(&manifest).unwrap()
}

/// PUT a manifest.
pub fn put_manifest(
    server: &Server,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Reply {
    request(
        "PUT",
        &server.url(&format!("/v2/{repo}/manifests/{reference}")),
        &[("content-type", media_type)],
        Some(bytes),
    )
}

/// A small image in repository `repo`: config and one layer pushed, the
/// manifest under `tag`. Returns (config, layer, manifest bytes).
pub fn push_small_image(
    server: &Server,
    repo: &str,
    tag: &str,
    seed: u8,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#).into_bytes();
    let layer = pattern(10_000, seed);
    push_blob(server, repo, &config);
    push_blob(server, repo, &layer);
    let manifest = image_manifest(&config, &[&layer], serde_json::json!({}));
    let reply = put_manifest(server, repo, tag, OCI_MANIFEST, &manifest);
    assert_eq!(reply.status, 201, "{reply:?}");
    (config, layer, manifest)
}

/// A real image made by chapter 5 from a directory holding `files`, saved
/// as an OCI image layout under tag `1`. Returns the layout directory and
/// the manifest digest.
pub fn oci_layout(work: &Path, files: &[(&str, &[u8])]) -> (PathBuf, String) {
    let rootfs = work.join("rootfs");
    for (path, bytes) in files {
        let path = rootfs.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let store = Store::open(work.join("store")).unwrap();
    let name = Reference::parse("berth/test:1").unwrap();
    let digest =
        ch05_images::image::import_rootfs(&store, &rootfs, &name, vec!["/bin/sh".into()]).unwrap();
    let layout = work.join("layout");
    ch05_images::archive::save_oci_layout(&store, &[name], &layout).unwrap();
    (layout, digest)
}

/// `ch06-registry push --root STORE ARGS...`, with `stdin` on its stdin
/// and no docker config (so credentials come only from the arguments).
pub fn push_cmd(store: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("push")
        .arg("--root")
        .arg(store)
        .args(args)
        .env("LC_ALL", "C")
        .env("DOCKER_CONFIG", store.join("no-docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `push --username USER --password-stdin IMAGE DEST` with `password`
/// on stdin.
pub fn push_as(store: &Path, user: &str, password: &str, image: &str, dest: &str) -> Output {
    let args = ["--username", user, "--password-stdin", image, dest];
    push_cmd(store, &args, &format!("{password}\n"))
}

/// The stdout of a push that must have succeeded.
pub fn push_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "push failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An htpasswd file with one bcrypt entry, made by Apache's own tool.
pub fn htpasswd_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(out.status.success(), "htpasswd failed");
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    path
}
