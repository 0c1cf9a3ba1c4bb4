//! The registry as a pull-through cache (`serve --proxy-remote-url`), in
//! front of a real remote: Debian's docker-registry with htpasswd on,
//! holding an image skopeo put there. Clients pull through the cache —
//! chapter 5, skopeo, podman — and the remote's own access log counts
//! what reached it. Everything on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_test_support::registry::{
    RegistryConfig, TestRegistry, oci_ref, require_tool, skopeo_copy, skopeo_digest,
};
use berth_test_support::require_root;
use ch05_images::mirrors::pull_with_mirrors;
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Registry};
use ch05_images::store::Store;
use common::*;

const USER: &str = "mirror";
const PASSWORD: &str = "s3cret";

/// The remote with an image under `berth/test:1`, and the cache in front.
struct Mirror {
    work: tempfile::TempDir,
    remote: TestRegistry,
    cache: Server,
    /// The image's manifest digest.
    digest: String,
    layout: PathBuf,
}

/// The test image's files: one big enough for many reads on every side.
fn files(seed: u8) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/hello", format!("hello {seed}\n").into_bytes()),
        ("usr/share/big.bin", pattern(4 * 1024 * 1024 + 3, seed)),
    ]
}

fn layout_of(work: &Path, seed: u8) -> (PathBuf, String) {
    let dir = work.join(format!("image-{seed}"));
    let files = files(seed);
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    oci_layout(&dir, &borrowed)
}

/// Starts the remote (with users), pushes the image, and a cache with
/// `ttl`; `None` after a skip when a peer is missing.
fn mirror(test: &str, ttl: &str) -> Option<Mirror> {
    if !require_tool(test, "skopeo") || !require_tool(test, "htpasswd") {
        return None;
    }
    let remote = TestRegistry::start_with(
        test,
        RegistryConfig {
            htpasswd: Some((USER.into(), PASSWORD.into())),
        },
    )?;
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = layout_of(work.path(), 1);
    push_to_remote(&remote, &layout, "berth/test:1");
    let cache = start_cache(work.path(), &remote.addr, ttl);
    Some(Mirror {
        work,
        remote,
        cache,
        digest,
        layout,
    })
}

fn push_to_remote(remote: &TestRegistry, layout: &Path, name: &str) {
    skopeo_copy(
        &["--dest-creds", &format!("{USER}:{PASSWORD}")],
        &oci_ref(layout, "1"),
        &remote.skopeo_ref(name),
    );
}

/// `serve --proxy-remote-url http://REMOTE` with the remote's user.
fn start_cache(work: &Path, remote: &str, ttl: &str) -> Server {
    let password = work.join("remote-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let root = work.join(format!("cache-{}", free_name()));
    Server::start_in(
        &root,
        &[
            "--proxy-remote-url",
            &format!("http://{remote}"),
            "--proxy-username",
            USER,
            "--proxy-password-file",
            password.to_str().unwrap(),
            "--proxy-ttl",
            ttl,
        ],
    )
}

fn free_name() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// How many `GET`s of `what` (a path prefix under `/v2/berth/test/`) the
/// remote answered with 200, by its access log.
fn remote_gets(remote: &TestRegistry, what: &str) -> usize {
    let needle = format!("\"GET /v2/berth/test/{what}");
    remote
        .log()
        .lines()
        .filter(|l| l.contains(&needle) && l.contains("HTTP/1.1\" 200 "))
        .count()
}

/// Chapter 5's pull of `ADDR/berth/test:TAG` into a fresh store; the digest.
fn ch05_pull(addr: &str, tag: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let registry = Registry::new(addr, &ClientOptions::default()).map_err(|e| e.to_string())?;
    let reference = Reference::parse(&format!("{addr}/berth/test:{tag}")).unwrap();
    pull(&store, &registry, &reference, &PullOptions::default())
        .map(|p| p.digest)
        .map_err(|e| e.to_string())
}

/// `podman ... pull --tls-verify=false IMAGE` with its store in `dir`.
fn podman_pull(dir: &Path, image: &str) -> std::process::Output {
    podman(dir, &["pull", "--quiet", "--tls-verify=false", image])
}

/// `podman --root R --runroot RR --storage-driver vfs ...`, with the
/// options these machines need (see DESIGN.md).
fn podman(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run podman")
}

#[test]
fn the_first_pull_fetches_from_the_remote_and_later_ones_do_not() {
    let test = "the_first_pull_fetches_from_the_remote_and_later_ones_do_not";
    let Some(m) = mirror(test, "1h") else { return };
    assert_eq!(remote_gets(&m.remote, "blobs/"), 0);

    // 1. Chapter 5 pulls through the cache: every blob (config, layer)
    //    comes from the remote once, and the cache says so.
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), m.digest);
    assert_eq!(remote_gets(&m.remote, "blobs/"), 2, "{}", m.remote.log());
    assert_eq!(remote_gets(&m.remote, "manifests/1"), 1);
    let fetched = m
        .cache
        .log()
        .lines()
        .filter(|l| l.contains("/blobs/") && l.ends_with("(from upstream)"))
        .count();
    assert_eq!(fetched, 2, "{}", m.cache.log());
    assert!(!m.cache.log().contains("(aborted)"), "{}", m.cache.log());

    // 2. Chapter 5 again, and skopeo: all from the cache (the tag is
    //    within its TTL, so not even a HEAD).
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), m.digest);
    assert_eq!(skopeo_digest(&m.cache.skopeo_ref("berth/test:1")), m.digest);
    let out = m.work.path().join("skopeo-out");
    skopeo_copy(
        &[],
        &m.cache.skopeo_ref("berth/test:1"),
        &oci_ref(&out, "1"),
    );
    assert_eq!(remote_gets(&m.remote, "blobs/"), 2, "{}", m.remote.log());
    assert_eq!(remote_gets(&m.remote, "manifests/"), 1);

    // 3. podman too, when it can run here.
    if require_root(test) && require_tool(test, "podman") {
        let dir = tempfile::tempdir().unwrap();
        let image = format!("{}/berth/test:1", m.cache.addr);
        let pulled = podman_pull(dir.path(), &image);
        assert!(
            pulled.status.success(),
            "podman pull {image}: {}\ncache log:\n{}",
            String::from_utf8_lossy(&pulled.stderr),
            m.cache.log()
        );
        assert_eq!(remote_gets(&m.remote, "blobs/"), 2, "{}", m.remote.log());
    }
}

#[test]
fn podman_pulls_through_a_cold_cache() {
    let test = "podman_pulls_through_a_cold_cache";
    if !require_root(test) || !require_tool(test, "podman") {
        return;
    }
    let Some(m) = mirror(test, "1h") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = format!("{}/berth/test:1", m.cache.addr);
    let pulled = podman_pull(dir.path(), &image);
    assert!(
        pulled.status.success(),
        "podman pull {image}: {}\ncache log:\n{}",
        String::from_utf8_lossy(&pulled.stderr),
        m.cache.log()
    );
    assert_eq!(remote_gets(&m.remote, "blobs/"), 2, "{}", m.remote.log());
    // podman has the remote's image.
    let inspect = podman(
        dir.path(),
        &["image", "inspect", "--format", "{{.Digest}}", &image],
    );
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), m.digest);
    // And the second podman pull costs the remote nothing.
    let again = tempfile::tempdir().unwrap();
    assert!(podman_pull(again.path(), &image).status.success());
    assert_eq!(remote_gets(&m.remote, "blobs/"), 2, "{}", m.remote.log());
}

#[test]
fn two_clients_pulling_one_blob_at_once_cause_one_download() {
    let test = "two_clients_pulling_one_blob_at_once_cause_one_download";
    let Some(m) = mirror(test, "1h") else { return };
    let manifest = request(
        "GET",
        &m.cache.url("/v2/berth/test/manifests/1"),
        &[("accept", OCI_MANIFEST)],
        None,
    );
    assert_eq!(manifest.status, 200);
    let layer = manifest.json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let url = m.cache.url(&format!("/v2/berth/test/blobs/{layer}"));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut response = ureq::get(&url).call().map_err(|e| e.to_string())?;
                let mut body = Vec::new();
                response
                    .body_mut()
                    .as_reader()
                    .read_to_end(&mut body)
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(body)
            })
        })
        .collect();
    for client in clients {
        let body = client.join().unwrap();
        let body = body.unwrap_or_else(|e| panic!("{e}; cache log:\n{}", m.cache.log()));
        assert_eq!(sha256(&body), layer);
    }
    let layer_gets = remote_gets(&m.remote, &format!("blobs/{layer}"));
    assert_eq!(layer_gets, 1, "{}", m.remote.log());
}

#[test]
fn a_tag_moved_on_the_remote_is_seen_after_the_ttl() {
    let test = "a_tag_moved_on_the_remote_is_seen_after_the_ttl";
    let Some(m) = mirror(test, "1s") else { return };
    let long = start_cache(m.work.path(), &m.remote.addr, "1h");
    for cache in [&m.cache, &long] {
        assert_eq!(ch05_pull(&cache.addr, "1").unwrap(), m.digest);
    }
    // Tag 1 moves to another image on the remote.
    let (moved, moved_digest) = layout_of(m.work.path(), 2);
    push_to_remote(&m.remote, &moved, "berth/test:1");
    assert_ne!(moved_digest, m.digest);
    // Within its TTL a cache still serves what it has...
    assert_eq!(ch05_pull(&long.addr, "1").unwrap(), m.digest);
    // ...after it, a HEAD to the remote finds the move.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), moved_digest);
    assert!(
        m.remote
            .log()
            .contains("\"HEAD /v2/berth/test/manifests/1 HTTP/1.1\" 200"),
        "{}",
        m.remote.log()
    );
    // And an unchanged tag, past its TTL, costs a HEAD and no download.
    let before = remote_gets(&m.remote, "manifests/");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), moved_digest);
    assert_eq!(remote_gets(&m.remote, "manifests/"), before);
}

#[test]
fn with_the_remote_down_cached_images_pull_and_others_fail_clearly() {
    let test = "with_the_remote_down_cached_images_pull_and_others_fail_clearly";
    let Some(m) = mirror(test, "1s") else { return };
    let (other, _) = layout_of(m.work.path(), 3);
    push_to_remote(&m.remote, &other, "berth/test:2");
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), m.digest);
    let remote_addr = m.remote.addr.clone();
    let Mirror {
        remote,
        cache,
        digest,
        work,
        ..
    } = m;
    drop(remote);
    // Past the TTL, so the cache asks the remote, which is gone.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ch05_pull(&cache.addr, "1").unwrap(), digest);
    assert!(
        cache
            .log()
            .contains("(upstream unreachable: served from the cache)"),
        "{}",
        cache.log()
    );
    let out = work.path().join("skopeo-down");
    skopeo_copy(&[], &cache.skopeo_ref("berth/test:1"), &oci_ref(&out, "1"));
    // Tag 2 was never pulled: nothing to serve, and the error says why.
    let reply = request(
        "GET",
        &cache.url("/v2/berth/test/manifests/2"),
        &[("accept", OCI_MANIFEST)],
        None,
    );
    assert_eq!(reply.status, 502, "{reply:?}");
    let detail = reply.json()["errors"][0]["detail"].to_string();
    assert!(
        detail.contains("not cached") && detail.contains(&remote_addr),
        "{detail}"
    );
    let err = ch05_pull(&cache.addr, "2").unwrap_err();
    assert!(err.contains("not cached"), "{err}");
}

#[test]
fn pushes_and_deletes_are_refused_as_unsupported() {
    let test = "pushes_and_deletes_are_refused_as_unsupported";
    let Some(m) = mirror(test, "1h") else { return };
    let before = m.cache.files();
    request(
        "POST",
        &m.cache.url("/v2/berth/test/blobs/uploads/"),
        &[],
        None,
    )
    .assert_error(405, "UNSUPPORTED");
    put_manifest(&m.cache, "berth/test", "2", OCI_MANIFEST, b"{}").assert_error(405, "UNSUPPORTED");
    request(
        "DELETE",
        &m.cache
            .url(&format!("/v2/berth/test/manifests/{}", m.digest)),
        &[],
        None,
    )
    .assert_error(405, "UNSUPPORTED");
    // skopeo is told so too.
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .arg(oci_ref(&m.layout, "1"))
        .arg(m.cache.skopeo_ref("berth/pushed:1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported"), "{stderr}");
    assert_eq!(m.cache.files(), before);
    assert_eq!(remote_gets(&m.remote, ""), 0);
}

/// A remote that lies: it answers `GET /v2/x/blobs/<digest>` with other
/// bytes than the digest's. Counts the blob requests it answered.
fn lying_remote(served: &[u8]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let (served, counter) = (served.to_vec(), count.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Headers, up to the blank line.
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let body: &[u8] = if line.contains("/blobs/") {
                counter.fetch_add(1, Ordering::SeqCst);
                &served
            } else {
                b"{}"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if !line.starts_with("HEAD") {
                let _ = stream.write_all(body);
            }
        }
    });
    (addr, count)
}

#[test]
fn a_corrupt_blob_from_the_remote_is_refused_and_not_cached() {
    let wanted = pattern(1024 * 1024, 5);
    let digest = sha256(&wanted);
    let mut corrupt = wanted.clone();
    corrupt[1000] ^= 0xff;
    let (remote, count) = lying_remote(&corrupt);
    let work = tempfile::tempdir().unwrap();
    let cache = start_cache(work.path(), &remote, "1h");
    let url = cache.url(&format!("/v2/x/blobs/{digest}"));
    for attempt in 1..=2 {
        // The answer breaks off before its last byte: no client gets the
        // corrupt blob whole.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent.get(&url).call().unwrap();
        let mut got = Vec::new();
        let read = response.body_mut().as_reader().read_to_end(&mut got);
        assert!(
            read.is_err() || got.len() < corrupt.len(),
            "attempt {attempt}"
        );
        // Nothing kept: the next request asks the remote again.
        assert_eq!(count.load(Ordering::SeqCst), attempt);
        cache.wait_for_log("refused, not cached");
        assert!(
            !cache.files().iter().any(|f| f.starts_with("blobs/")),
            "{:?}",
            cache.files()
        );
        assert!(!cache.files().iter().any(|f| f.starts_with("tmp/")));
    }
}

#[test]
fn a_bad_remote_url_is_refused_before_serving() {
    let work = tempfile::tempdir().unwrap();
    for url in ["ftp://example.org", "http://host/path", "127.0.0.1:5000"] {
        let out = Command::new(bin())
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(work.path().join("r"))
            .args(["--proxy-remote-url", url])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--proxy-remote-url") && stderr.contains("http://HOST:PORT"),
            "{stderr}"
        );
    }
}

#[test]
fn chapter_5_pulls_a_docker_hub_image_through_the_cache_as_its_mirror() {
    let test = "chapter_5_pulls_a_docker_hub_image_through_the_cache_as_its_mirror";
    let Some(m) = mirror(test, "1h") else { return };
    push_to_remote(&m.remote, &m.layout, "library/busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let busybox = Reference::parse("busybox").unwrap();
    let url = format!("http://{}", m.cache.addr);
    let from = pull_with_mirrors(
        &store,
        &busybox,
        std::slice::from_ref(&url),
        &ClientOptions::default(),
        &PullOptions::default(),
    )
    .unwrap();
    assert_eq!(from.mirror.as_deref(), Some(url.as_str()));
    assert_eq!(from.pulled.digest, m.digest);
    // Stored under Docker Hub's name; the bytes came through the cache.
    assert_eq!(
        store
            .resolve("docker.io/library/busybox:latest")
            .unwrap()
            .as_deref(),
        Some(m.digest.as_str())
    );
    assert!(
        m.cache.log().lines().any(|l| l
            .starts_with("GET /v2/library/busybox/manifests/latest 200")
            && l.ends_with("(from upstream)")),
        "{}",
        m.cache.log()
    );
}

/// The access-log lines of a registry, reduced to `METHOD PATH STATUS` and
/// our note, with digests named: ours are `METHOD PATH STATUS N bytes T ms
/// (NOTE)`, distribution's the combined log format.
fn access_lines(log: &str, names: &[(&str, &str)]) -> Vec<String> {
    let shorten = |text: &str| {
        let mut text = text.replace("/v2/berth/test/", "");
        for (digest, name) in names {
            text = text.replace(digest, name);
        }
        text
    };
    log.lines()
        .filter_map(|line| {
            if let Some((_, request)) = line.split_once("] \"") {
                // distribution: `... [DATE] "GET /v2/... HTTP/1.1" 200 SIZE "" "AGENT"`
                let (request, rest) = request.split_once('"')?;
                let status = rest.split_whitespace().next()?;
                let request = request.trim_end_matches(" HTTP/1.1");
                return Some(shorten(&format!("{request} {status}")));
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if !matches!(words.first(), Some(&"GET" | &"HEAD")) || words.len() < 3 {
                return None;
            }
            let note = line.split_once(" ms").map_or("", |(_, note)| note);
            Some(shorten(&format!(
                "{} {} {}{note}",
                words[0], words[1], words[2]
            )))
        })
        .collect()
}

/// Two columns: the cache's lines and the remote's.
fn side_by_side(cache: &[String], remote: &[String]) -> String {
    let mut out = format!("{:<44}{}\n", "our cache", "the remote (docker-registry)");
    for i in 0..cache.len().max(remote.len()) {
        let left = cache.get(i).map_or("", String::as_str);
        let right = remote.get(i).map_or("", String::as_str);
        out.push_str(format!("{left:<44}{right}").trim_end());
        out.push('\n');
    }
    if remote.is_empty() {
        out.push_str(&format!("{:<44}(nothing)\n", ""));
    }
    out
}

#[test]
fn book_the_access_logs_of_the_cache_and_the_remote() {
    let test = "book_the_access_logs_of_the_cache_and_the_remote";
    let Some(m) = mirror(test, "1h") else { return };
    // The image's digests, from its layout, named for the book.
    let hex = m.digest.trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let names = [
        (m.digest.as_str(), "[MANIFEST]"),
        (config.as_str(), "[CONFIG]"),
        (layer.as_str(), "[LAYER]"),
    ];
    let mut text = String::new();
    // The remote's log so far is skopeo's push of the image.
    let (mut cache_seen, mut remote_seen) = (0, access_lines(&m.remote.log(), &names).len());
    let steps = ["first pull (cold cache)", "second pull (warm cache)"];
    for (pulls, step) in steps.into_iter().enumerate() {
        assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), m.digest);
        // Each server logs a request once its answer is sent: wait for the
        // three of the cache, and the remote's layer on the first pull.
        let layer_line = format!("GET /v2/berth/test/blobs/{layer} 200");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while m.cache.log().matches(&layer_line).count() < pulls + 1
            || remote_gets(&m.remote, &format!("blobs/{layer}")) == 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{}\n{}",
                m.cache.log(),
                m.remote.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let cache = access_lines(&m.cache.log(), &names);
        let remote = access_lines(&m.remote.log(), &names);
        text.push_str(&format!(
            "== {step}: ch05-images pull [CACHE]/berth/test:1\n"
        ));
        text.push_str(&side_by_side(&cache[cache_seen..], &remote[remote_seen..]));
        (cache_seen, remote_seen) = (cache.len(), remote.len());
    }
    // What the book says about it.
    assert!(
        text.contains("GET blobs/[LAYER] 200 (from upstream)"),
        "{text}"
    );
    assert_eq!(remote_gets(&m.remote, "blobs/"), 2);
    berth_test_support::snapshot_settings()
        .bind(|| insta::assert_snapshot!("ch06_mirror_access_logs", text));
}

#[test]
fn a_head_of_a_blob_not_cached_asks_the_remote_and_downloads_nothing() {
    let test = "a_head_of_a_blob_not_cached_asks_the_remote_and_downloads_nothing";
    let Some(m) = mirror(test, "1h") else { return };
    let hex = m.digest.trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let layer = &manifest["layers"][0];
    let digest = layer["digest"].as_str().unwrap();
    let reply = request(
        "HEAD",
        &m.cache.url(&format!("/v2/berth/test/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-length"),
        Some(layer["size"].to_string().as_str())
    );
    assert_eq!(reply.header("docker-content-digest"), Some(digest));
    assert_eq!(remote_gets(&m.remote, "blobs/"), 0);
    assert!(!m.cache.files().iter().any(|f| f.starts_with("blobs/")));
    // A blob the remote does not have either: BLOB_UNKNOWN.
    let missing = sha256(b"nowhere");
    request(
        "HEAD",
        &m.cache.url(&format!("/v2/berth/test/blobs/{missing}")),
        &[],
        None,
    );
    request(
        "GET",
        &m.cache.url(&format!("/v2/berth/test/blobs/{missing}")),
        &[],
        None,
    )
    .assert_error(404, "BLOB_UNKNOWN");
}

#[test]
fn tags_are_the_remotes_and_the_cached_ones_when_it_is_down() {
    let test = "tags_are_the_remotes_and_the_cached_ones_when_it_is_down";
    let Some(m) = mirror(test, "1h") else { return };
    push_to_remote(&m.remote, &m.layout, "berth/test:2");
    push_to_remote(&m.remote, &m.layout, "berth/test:3");
    assert_eq!(ch05_pull(&m.cache.addr, "1").unwrap(), m.digest);
    let tags = |query: &str| {
        let reply = request(
            "GET",
            &m.cache.url(&format!("/v2/berth/test/tags/list{query}")),
            &[],
            None,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        (
            reply.json()["tags"].clone(),
            reply.header("link").map(str::to_string),
        )
    };
    // The remote's, though only 1 was pulled through (in the remote's
    // order), and in pages as the remote cuts them, its Link passed on.
    let sorted = |tags: serde_json::Value| {
        let mut tags: Vec<String> = serde_json::from_value(tags).unwrap();
        tags.sort();
        tags
    };
    assert_eq!(sorted(tags("").0), ["1", "2", "3"]);
    // Pages are the remote's: the same answer, body and Link, as the
    // remote gives for the same query.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    for query in ["?n=2", "?n=1&last=1"] {
        let direct = request(
            "GET",
            &format!("http://{}/v2/berth/test/tags/list{query}", m.remote.addr),
            &[("authorization", &basic)],
            None,
        );
        assert_eq!(direct.status, 200, "{direct:?}");
        let (page, link) = tags(query);
        assert_eq!(page, direct.json()["tags"], "{query}");
        assert_eq!(link.as_deref(), direct.header("link"), "{query}");
    }
    // The remote gone: what the cache has.
    let Mirror { remote, cache, .. } = m;
    drop(remote);
    let reply = request("GET", &cache.url("/v2/berth/test/tags/list"), &[], None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["tags"], serde_json::json!(["1"]));
    // The log line is written after the answer: wait for that one (the
    // earlier tags/list lines are there already).
    cache.wait_for_log("(upstream unreachable: served from the cache)");
    assert!(
        cache.log().lines().any(|l| l.contains("tags/list 200")
            && l.ends_with("(upstream unreachable: served from the cache)")),
        "{}",
        cache.log()
    );
}
