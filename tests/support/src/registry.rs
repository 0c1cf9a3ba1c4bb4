//! A real registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry), started on 127.0.0.1 with its storage in a temp
//! dir, stopped when dropped. Images get there with `skopeo copy`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip;

/// Whether `program` is on PATH; if not, skip `test`, naming the package
/// to install (a failure under BERTH_STRICT=1: CI installs it).
pub fn require_tool(test: &str, program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    if !found {
        skip(
            test,
            &format!(
                "{program} is not installed: sudo apt-get install {}",
                debian_package(program)
            ),
        );
    }
    found
}

/// The Debian package that installs `program`.
fn debian_package(program: &str) -> &str {
    match program {
        "htpasswd" => "apache2-utils",
        "script" => "bsdutils",
        other => other,
    }
}

/// A `docker-registry serve` on a free loopback port.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`, as image references name it.
    pub addr: String,
    dir: tempfile::TempDir,
}

/// Options for [`TestRegistry::start_with`].
#[derive(Default)]
pub struct RegistryConfig {
    /// Basic auth: a `user:password` pair written as a bcrypt htpasswd file.
    pub htpasswd: Option<(String, String)>,
}

impl TestRegistry {
    /// An open registry, or `None` (after a skip) without docker-registry.
    pub fn start(test: &str) -> Option<TestRegistry> {
        TestRegistry::start_with(test, RegistryConfig::default())
    }

    /// A registry with `config`, or `None` (after a skip) when the tools are
    /// missing.
    pub fn start_with(test: &str, config: RegistryConfig) -> Option<TestRegistry> {
        if !require_tool(test, "docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &config.htpasswd {
            if !require_tool(test, "htpasswd") {
                return None;
            }
            let file = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, yaml).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = TestRegistry { child, addr, dir };
        registry.wait_ready();
        Some(registry)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {} within 20 s; its log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's storage (`docker/registry/v2` under its root):
    /// `blobs/`, `repositories/`.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2")
    }

    /// The file in which the registry keeps blob `digest` (`sha256:...`).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `docker://ADDR/repo:tag` for skopeo.
    pub fn skopeo_ref(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (the kernel's pick for port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `skopeo copy` between two transports, over plain HTTP to loopback
/// registries; panics with skopeo's words if it fails.
pub fn skopeo_copy(extra: &[&str], from: &str, to: &str) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .args([from, to])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The digest skopeo sees for an image (`skopeo inspect --format {{.Digest}}`).
pub fn skopeo_digest(image: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            "--tls-verify=false",
            "--raw",
        ])
        .arg(image)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(&out.stdout))
}

/// Path helper for callers that keep OCI layouts in temp dirs.
pub fn oci_ref(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}
