//! What the chapter 6 checks share: the registry, started as a process of
//! its own on a free loopback port, and a recorder between your code and
//! the registry that keeps every request it sends, so a check can look at
//! the requests themselves, not only at their outcome.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use sha2::Digest as _;

/// The registry, stopped (killed) when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, as bound.
    pub addr: String,
    _root: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let root = tempfile::tempdir().unwrap();
        let binary = berth_test_support::bin_path(env!("CARGO_BIN_EXE_ch06-exercise-registry"));
        let mut child = Command::new(&binary)
            .arg(root.path().join("registry"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Read stderr for as long as the registry runs (it logs every
        // request there; an unread pipe would fill up and stop it).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split(',').next().unwrap_or("").to_string());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the registry did not say where it listens");
        };
        Registry {
            child,
            addr,
            _root: root,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request as it went over the wire.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A TCP relay on its own loopback port, in front of `upstream`: bytes
/// pass unchanged both ways, and what clients send is kept.
pub struct Recorder {
    /// `127.0.0.1:PORT`: give this to the code under test.
    pub addr: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

/// Copies `from` to `to` until `from` ends, keeping a copy in `keep`.
fn relay(mut from: TcpStream, mut to: TcpStream, keep: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(keep) = &keep {
            keep.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Recorder {
    pub fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let keep = sent.clone();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let keep = keep.clone();
                std::thread::spawn(move || relay(client, server, Some(keep)));
                std::thread::spawn(move || relay(s2, c2, None));
            }
        });
        Recorder { addr, sent }
    }

    /// Every request sent so far, in order. The client sends one request
    /// at a time (it waits for each answer), so their bytes never
    /// interleave; each is found by its request line
    /// `METHOD /v2/... HTTP/1.1`, which a blob's bytes would have to
    /// contain by a one-in-2^64 chance.
    pub fn requests(&self) -> Vec<Sent> {
        let bytes = self.sent.lock().unwrap().clone();
        let mut found: Vec<(usize, Sent)> = Vec::new();
        for method in ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"] {
            let needle = format!("{method} /v2/");
            let mut from = 0;
            while let Some(at) = find(&bytes[from..], needle.as_bytes()) {
                let start = from + at;
                from = start + 1;
                let Some(end) = find(&bytes[start..], b"\r\n\r\n") else {
                    continue;
                };
                let Ok(head) = std::str::from_utf8(&bytes[start..start + end]) else {
                    continue;
                };
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or("");
                let Some(target) = request_line
                    .strip_prefix(&format!("{method} "))
                    .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
                else {
                    continue;
                };
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                found.push((
                    start,
                    Sent {
                        method: method.to_string(),
                        target: target.to_string(),
                        headers,
                    },
                ));
            }
        }
        found.sort_by_key(|(at, _)| *at);
        found.into_iter().map(|(_, sent)| sent).collect()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// `n` bytes that are not all the same.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// An HTTP client that hands back every status.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// `(status, body)` of a GET.
pub fn get(url: &str) -> (u16, Vec<u8>) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    (status, body)
}

/// Pushes `bytes` as a blob of `repository` in one POST.
pub fn push_blob(registry: &Registry, repository: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let url = registry.url(&format!("/v2/{repository}/blobs/uploads/?digest={digest}"));
    let response = agent()
        .post(&url)
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .unwrap();
    assert_eq!(response.status(), 201, "POST {url}");
    digest
}

/// A small image in `repository`, named by each of `tags`.
pub fn push_image_with_tags(registry: &Registry, repository: &str, tags: &[&str]) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = pattern(4096, 3);
    let descriptor = |media_type: &str, bytes: &[u8]| serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()});
    push_blob(registry, repository, config);
    push_blob(registry, repository, &layer);
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))
    .unwrap();
    for tag in tags {
        let url = registry.url(&format!("/v2/{repository}/manifests/{tag}"));
        let response = agent()
            .put(&url)
            .header("Content-Type", manifest_type)
            .send(&manifest[..])
            .unwrap();
        assert_eq!(response.status(), 201, "PUT {url}");
    }
}
