//! `ch06-registry push`: an image from chapter 5's store into our registry
//! and into Debian's docker-registry, pulled back by chapter 5 identical.

mod common;

use std::path::{Path, PathBuf};

use berth_test_support::registry::{RegistryConfig, TestRegistry, require_tool, skopeo_digest};
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Credentials, Registry};
use ch05_images::store::Store;
use common::*;

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/motd", b"pushed by berth\n".to_vec()),
        ("opt/data.bin", pattern(2 * 1024 * 1024 + 5, 9)),
    ]
}

/// A chapter 5 store holding `berth/test:1`; returns the store and the
/// manifest digest.
fn source(work: &Path) -> (std::path::PathBuf, String) {
    let files = files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let (_, digest) = oci_layout(work, &borrowed);
    (work.join("store"), digest)
}

/// Pulls `image` with chapter 5 into a fresh store and checks it is the
/// image `digest`, files and all.
fn pull_back(work: &Path, image: &str, digest: &str, credentials: Option<Credentials>) {
    let reference = Reference::parse(image).unwrap();
    let store = Store::open(work.join(format!("pulled-{}", digest.len() + image.len()))).unwrap();
    let options = ClientOptions {
        credentials,
        ..ClientOptions::default()
    };
    let registry = Registry::new(&reference.registry, &options).unwrap();
    let pulled = pull(&store, &registry, &reference, &PullOptions::default()).unwrap();
    assert_eq!(pulled.digest, digest);
    let image = ch05_images::image::load_image(&store, &reference).unwrap();
    let layers = ch05_images::image::unpack_layers(&store, &image).unwrap();
    for (path, bytes) in files() {
        assert_eq!(
            std::fs::read(layers[0].join(path)).unwrap(),
            bytes,
            "{path}"
        );
    }
}

#[test]
fn push_into_our_registry_then_again_then_to_another_repository() {
    let work = tempfile::tempdir().unwrap();
    let (store, digest) = source(work.path());
    let server = Server::start();
    let dest = format!("{}/pushed/app:1", server.addr);

    let first = push_stdout(&push_cmd(&store, &["berth/test:1", &dest], ""));
    assert!(first.starts_with(&format!(
        "The push refers to repository [{}/pushed/app]\n",
        server.addr
    )));
    assert_eq!(
        first.matches(": Pushed\n").count(),
        2,
        "config and layer:\n{first}"
    );
    assert!(
        first.ends_with(&format!("1: digest: {digest} size: {}\n", {
            let m = request("GET", &server.url("/v2/pushed/app/manifests/1"), &[], None);
            m.body.len()
        })),
        "{first}"
    );
    pull_back(work.path(), &dest, &digest, None);

    // Again: nothing is sent.
    let again = push_stdout(&push_cmd(&store, &["berth/test:1", &dest], ""));
    assert_eq!(
        again.matches(": Layer already exists\n").count(),
        2,
        "{again}"
    );

    // To another repository of the same registry: named there, the image
    // is mounted from where it came from.
    Store::open(&store)
        .unwrap()
        .set_name(&Reference::parse(&dest).unwrap().to_string(), &digest)
        .unwrap();
    let copy = format!("{}/copy/app:2", server.addr);
    let mounted = push_stdout(&push_cmd(&store, &[&dest, &copy], ""));
    assert_eq!(
        mounted.matches(": Mounted from pushed/app\n").count(),
        2,
        "{mounted}"
    );
    pull_back(work.path(), &copy, &digest, None);
}

#[test]
fn push_into_debian_docker_registry_whole_and_in_chunks() {
    let test = "push_into_debian_docker_registry_whole_and_in_chunks";
    if !require_tool(test, "skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (store, digest) = source(work.path());

    let whole = format!("{}/berth/whole:1", registry.addr);
    let out = push_stdout(&push_cmd(&store, &["berth/test:1", &whole], ""));
    assert_eq!(out.matches(": Pushed\n").count(), 2, "{out}");
    assert_eq!(skopeo_digest(&registry.skopeo_ref("berth/whole:1")), digest);
    pull_back(work.path(), &whole, &digest, None);

    // In chunks of 300 kB (PATCH with Content-Range), into a new repository;
    // distribution does not mount without being told where from.
    let chunked = format!("{}/berth/chunked:1", registry.addr);
    let out = push_stdout(&push_cmd(
        &store,
        &["--chunk-size", "300000", "berth/test:1", &chunked],
        "",
    ));
    assert_eq!(out.matches(": Pushed\n").count(), 2, "{out}");
    pull_back(work.path(), &chunked, &digest, None);
}

#[test]
fn push_with_credentials_to_registries_that_require_them() {
    let test = "push_with_credentials_to_registries_that_require_them";
    if !require_tool(test, "htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (store, digest) = source(work.path());
    let alice = || {
        Some(Credentials {
            username: "alice".into(),
            password: "pw1".into(),
        })
    };

    // Ours, with --htpasswd.
    let file = htpasswd_file(work.path(), "alice", "pw1");
    let server = Server::start_in(
        &work.path().join("registry"),
        &["--htpasswd", file.to_str().unwrap()],
    );
    let dest = format!("{}/private/app:1", server.addr);
    let refused = push_cmd(&store, &["berth/test:1", &dest], "");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("authentication required") && stderr.contains("--password-stdin"),
        "{stderr}"
    );
    let wrong = push_as(&store, "alice", "nope", "berth/test:1", &dest);
    assert_eq!(wrong.status.code(), Some(1));
    push_stdout(&push_as(&store, "alice", "pw1", "berth/test:1", &dest));
    pull_back(work.path(), &dest, &digest, alice());

    // Debian's docker-registry with htpasswd.
    if !require_tool(test, "skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start_with(
        test,
        RegistryConfig {
            htpasswd: Some(("alice".into(), "pw1".into())),
        },
    ) else {
        return;
    };
    let dest = format!("{}/private/app:1", registry.addr);
    push_stdout(&push_as(&store, "alice", "pw1", "berth/test:1", &dest));
    pull_back(work.path(), &dest, &digest, alice());
}

#[test]
fn push_names_what_is_missing() {
    let work = tempfile::tempdir().unwrap();
    let (store, _) = source(work.path());
    let server = Server::start();
    let out = push_cmd(
        &store,
        &["no/such:image", &format!("{}/x:1", server.addr)],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no image no/such:image in the store"),
        "{stderr}"
    );
    // Nothing reached the registry.
    assert!(
        !server
            .files()
            .iter()
            .any(|f| f.starts_with("blobs/") || f.starts_with("repositories/"))
    );
    // A registry that is not there.
    let port = berth_test_support::registry::free_port();
    let out = push_cmd(
        &store,
        &["berth/test:1", &format!("127.0.0.1:{port}/x:1")],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// `n` bytes that do not compress (so a layer of them is as big as they
/// are): SHA-256 in counter mode.
fn noise(n: usize, seed: u8) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(n + 32);
    let mut counter = 0u64;
    while out.len() < n {
        let mut block = sha2::Sha256::new();
        block.update([seed]);
        block.update(counter.to_le_bytes());
        out.extend_from_slice(&block.finalize());
        counter += 1;
    }
    out.truncate(n);
    out
}

/// An image of several layers in a chapter 5 store.
struct Layered {
    store: PathBuf,
    /// The manifest's digest.
    digest: String,
    /// The layers' digests, in order.
    layers: Vec<String>,
    /// Each layer's file and its bytes.
    files: Vec<(String, Vec<u8>)>,
}

/// A chapter 5 store holding `berth/layers:1`, an image of a layer per
/// entry of `sizes`, each a directory with a file of its own
/// (`layer-K/data.bin`, of that size).
fn layered(work: &Path, sizes: &[usize]) -> Layered {
    let read_json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let combined = work.join("combined");
    std::fs::create_dir_all(combined.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut files = Vec::new();
    let mut first: Option<(serde_json::Value, serde_json::Value)> = None;
    for (k, &size) in sizes.iter().enumerate() {
        let dir = work.join(format!("part-{k}"));
        let path = format!("layer-{k}/data.bin");
        let bytes = noise(size, k as u8);
        let (layout, digest) = oci_layout(&dir, &[(path.as_str(), bytes.as_slice())]);
        files.push((path, bytes));
        let blob = |d: &str| {
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
        };
        for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                combined.join("blobs/sha256").join(entry.file_name()),
            )
            .unwrap();
        }
        std::fs::copy(layout.join("oci-layout"), combined.join("oci-layout")).unwrap();
        let manifest = read_json(blob(&digest));
        let config = read_json(blob(manifest["config"]["digest"].as_str().unwrap()));
        layers.push(manifest["layers"][0].clone());
        diff_ids.push(config["rootfs"]["diff_ids"][0].clone());
        first.get_or_insert((manifest, config));
    }
    let (mut manifest, mut config) = first.unwrap();
    config["rootfs"]["diff_ids"] = diff_ids.into();
    config.as_object_mut().unwrap().remove("history");
    let put = |bytes: Vec<u8>| -> (String, usize) {
        let digest = sha256(&bytes);
        let path = combined
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(path, &bytes).unwrap();
        (digest, bytes.len())
    };
    let (config_digest, config_size) = put(serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    manifest["layers"] = layers.clone().into();
    let (digest, size) = put(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": size,
            "annotations": {
                "io.containerd.image.name": "berth/layers:1",
                "org.opencontainers.image.ref.name": "1",
            },
        }]
    });
    std::fs::write(
        combined.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let store = work.join("layered-store");
    let loaded = ch05_images::archive::load_path(&Store::open(&store).unwrap(), &combined).unwrap();
    assert_eq!(loaded[0].digest, digest);
    let layer_digests = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    Layered {
        store,
        digest,
        layers: layer_digests,
        files,
    }
}

#[test]
fn layers_upload_in_parallel_and_the_first_failure_stops_the_rest() {
    let work = tempfile::tempdir().unwrap();
    // A small first layer, and big ones after it.
    let mib = 1024 * 1024;
    let Layered {
        store,
        digest,
        layers,
        files,
    } = layered(work.path(), &[1000, 32 * mib, 32 * mib, mib]);
    let server = Server::start();

    // Four layers, three at a time: each pushed, and reported in the
    // manifest's order (config first), whatever order they finished in.
    let dest = format!("{}/berth/layers:1", server.addr);
    let out = push_stdout(&push_cmd(
        &store,
        &["--jobs", "3", "berth/layers:1", &dest],
        "",
    ));
    let reported: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_suffix(": Pushed"))
        .collect();
    let short = |d: &str| d.trim_start_matches("sha256:")[..12].to_string();
    assert_eq!(reported.len(), 5, "{out}");
    assert_eq!(
        reported[1..].to_vec(),
        layers.iter().map(|d| short(d)).collect::<Vec<_>>(),
        "{out}"
    );
    let pulled = Store::open(work.path().join("pulled")).unwrap();
    let reference = Reference::parse(&dest).unwrap();
    let registry = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    assert_eq!(
        pull(&pulled, &registry, &reference, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );
    let image = ch05_images::image::load_image(&pulled, &reference).unwrap();
    let unpacked = ch05_images::image::unpack_layers(&pulled, &image).unwrap();
    for (k, (path, bytes)) in files.iter().enumerate() {
        assert_eq!(
            &std::fs::read(unpacked[k].join(path)).unwrap(),
            bytes,
            "{path}"
        );
    }

    // The first layer damaged in the store (a byte changed): the registry
    // refuses its closing PUT while the big ones are still on their way;
    // those stop, their upload sessions are cancelled, and no manifest is
    // pushed.
    let source = Store::open(&store).unwrap();
    let damaged = source.blob_path(&layers[0]).unwrap();
    let mut perms = std::fs::metadata(&damaged).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&damaged, perms).unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    // (To a registry of its own: ours would mount the good blob it has.)
    let server = Server::start();
    let broken = format!("{}/berth/broken:1", server.addr);
    let out = push_cmd(&store, &["--jobs", "3", "berth/layers:1", &broken], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("blob {}: ", layers[0])) && stderr.contains("DIGEST_INVALID"),
        "{stderr}"
    );
    request(
        "GET",
        &server.url("/v2/berth/broken/manifests/1"),
        &[],
        None,
    )
    .assert_error(404, "MANIFEST_UNKNOWN");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left: Vec<String> = server
            .files()
            .into_iter()
            .filter(|f| f.starts_with("uploads/") || f.starts_with("tmp/"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upload sessions left behind: {left:#?}\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
