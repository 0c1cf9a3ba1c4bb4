//! Our registry against real clients: skopeo (containers/image, what podman
//! and buildah push and pull with) copies an image in and out, byte for
//! byte, and a two-platform index with every platform; podman pulls from
//! it, open or with tokens; chapter 5's pull fetches from it, picking a
//! platform from an index, and runs an image our push put there.
//! Everything on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::registry::{oci_ref, require_tool, skopeo_copy, skopeo_digest};
use berth_test_support::{Run, command, require_root, skip};
use ch05_images::oci::Platform;
use ch05_images::pull::{LayerOutcome, PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Registry};
use ch05_images::store::Store;
use common::*;

/// [`files`] as an OCI layout of one image under `work`; its directory and
/// manifest digest.
fn test_layout(work: &Path) -> (PathBuf, String) {
    let files = files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    oci_layout(work, &borrowed)
}

/// The files of the test image: small ones, and one big enough to need
/// several reads and writes on each side.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/hello", b"hello from berth\n".to_vec()),
        ("usr/share/big.bin", pattern(3 * 1024 * 1024 + 17, 7)),
    ]
}

/// Every blob of an OCI layout, by name, with its bytes.
fn layout_blobs(layout: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn skopeo_copies_an_image_in_and_back_out_byte_for_byte() {
    if !require_tool(
        "skopeo_copies_an_image_in_and_back_out_byte_for_byte",
        "skopeo",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = test_layout(work.path());
    let server = Server::start();

    // In: skopeo uploads with POST, PATCH (streamed) and PUT, then the manifest.
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("berth/test:1"),
    );
    assert_eq!(skopeo_digest(&server.skopeo_ref("berth/test:1")), digest);
    let log = server.log();
    for step in [
        "PATCH /v2/berth/test/blobs/uploads/",
        "PUT /v2/berth/test/manifests/1 201",
    ] {
        assert!(log.contains(step), "no {step:?} in the access log:\n{log}");
    }

    // Into a second repository: the blobs are mounted, not sent again.
    skopeo_copy(
        &[],
        &server.skopeo_ref("berth/test:1"),
        &server.skopeo_ref("other/copy:v2"),
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("POST /v2/other/copy/blobs/uploads/?")
                && l.contains("from=berth%2Ftest")
                && l.contains("mount=sha256%3A")
                && l.contains(" 201 ")),
        "the second push should mount from berth/test:\n{log}"
    );

    // Out again: the same bytes under the same digests.
    let out = work.path().join("out");
    skopeo_copy(
        &[],
        &server.skopeo_ref("other/copy:v2"),
        &oci_ref(&out, "1"),
    );
    assert_eq!(layout_blobs(&out), layout_blobs(&layout));

    // The catalog and the tags say what is there.
    let catalog = request("GET", &server.url("/v2/_catalog"), &[], None).json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["berth/test", "other/copy"])
    );
    let tags = request("GET", &server.url("/v2/other/copy/tags/list"), &[], None).json();
    assert_eq!(
        tags,
        serde_json::json!({"name": "other/copy", "tags": ["v2"]})
    );

    // The blob store holds each blob once for both repositories, and
    // nothing is left in tmp/ or uploads/.
    let files = server.files();
    let blobs = files.iter().filter(|f| f.starts_with("blobs/")).count();
    assert_eq!(blobs, layout_blobs(&layout).len(), "{files:#?}");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("tmp/") || f.starts_with("uploads/")),
        "{files:#?}"
    );
}

#[test]
fn chapter_5_pulls_from_our_registry() {
    if !require_tool("chapter_5_pulls_from_our_registry", "skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = test_layout(work.path());
    let server = Server::start();
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("berth/pulled:1"),
    );

    let store = Store::open(work.path().join("pulled-store")).unwrap();
    let registry = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let reference = Reference::parse(&format!("{}/berth/pulled:1", server.addr)).unwrap();
    let pulled = pull(&store, &registry, &reference, &PullOptions::default()).unwrap();
    assert_eq!(pulled.digest, digest);
    assert_eq!(pulled.manifest_digest, digest);

    // The layer arrived intact: its files are in the unpacked layer.
    let image = ch05_images::image::load_image(&store, &reference).unwrap();
    let layers = ch05_images::image::unpack_layers(&store, &image).unwrap();
    for (path, bytes) in &files() {
        assert_eq!(
            &std::fs::read(layers[0].join(path)).unwrap(),
            bytes,
            "{path}"
        );
    }

    // By digest too.
    let by_digest = Reference::parse(&format!("{}/berth/pulled@{digest}", server.addr)).unwrap();
    let again = Store::open(work.path().join("again")).unwrap();
    assert_eq!(
        pull(&again, &registry, &by_digest, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );
}

/// `podman --root R --runroot RR --storage-driver vfs ...`: a podman with
/// its store in `dir`, and the options these machines need (see DESIGN.md).
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

/// The file `rel` in whichever of podman's vfs layer directories has it.
fn podman_file(dir: &Path, rel: &str) -> Option<Vec<u8>> {
    let layers = dir.join("root/vfs/dir");
    std::fs::read_dir(layers)
        .ok()?
        .filter_map(|e| std::fs::read(e.ok()?.path().join(rel)).ok())
        .next()
}

#[test]
fn podman_pulls_from_our_registry_open_and_with_tokens() {
    let test = "podman_pulls_from_our_registry_open_and_with_tokens";
    if !require_root(test)
        || !require_tool(test, "podman")
        || !require_tool(test, "skopeo")
        || !require_tool(test, "htpasswd")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (layout, digest) = test_layout(work.path());

    // An open registry, and one that wants tokens (pushed to with a user,
    // pulled from anonymously).
    let open = Server::start();
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &open.skopeo_ref("berth/podman:1"),
    );
    let file = htpasswd_file(work.path(), "alice", "pw");
    let tokens = Server::start_in(
        &work.path().join("token-registry"),
        &["--token-realm", "--htpasswd", file.to_str().unwrap()],
    );
    skopeo_copy(
        &["--dest-creds", "alice:pw"],
        &oci_ref(&layout, "1"),
        &tokens.skopeo_ref("berth/podman:1"),
    );

    for server in [&open, &tokens] {
        let dir = tempfile::tempdir().unwrap();
        let image = format!("{}/berth/podman:1", server.addr);
        let pulled = podman(
            dir.path(),
            &["pull", "--quiet", "--tls-verify=false", &image],
        );
        assert!(
            pulled.status.success(),
            "podman pull {image}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&pulled.stderr),
            server.log()
        );
        let inspect = podman(
            dir.path(),
            &["image", "inspect", "--format", "{{.Digest}}", &image],
        );
        assert_eq!(
            String::from_utf8_lossy(&inspect.stdout).trim(),
            digest,
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        // podman unpacked our bytes.
        for (path, bytes) in &files() {
            assert_eq!(
                podman_file(dir.path(), path).as_ref(),
                Some(bytes),
                "{path}"
            );
        }
    }
    assert!(tokens.log().contains("GET /token?"), "{}", tokens.log());
}

#[test]
fn a_two_platform_index_round_trips_and_chapter_5_picks_each_platform() {
    let test = "a_two_platform_index_round_trips_and_chapter_5_picks_each_platform";
    if !require_tool(test, "skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (single, _) = test_layout(work.path());
    let multi = work.path().join("multi");
    let two = berth_test_support::layout::two_platform_layout(
        &single,
        &multi,
        serde_json::to_value(Platform::host()).unwrap(),
        serde_json::json!({"org.opencontainers.image.ref.name": "multi"}),
    );
    let (index, host, arm) = (two.index, two.host, two.arm);
    let server = Server::start();

    // In with every platform, and out again: the same bytes under the
    // same digests, the index included.
    skopeo_copy(
        &["--all"],
        &oci_ref(&multi, "multi"),
        &server.skopeo_ref("berth/multi:1"),
    );
    assert_eq!(skopeo_digest(&server.skopeo_ref("berth/multi:1")), index);
    let head = request(
        "HEAD",
        &server.url("/v2/berth/multi/manifests/1"),
        &[("accept", OCI_INDEX)],
        None,
    );
    assert_eq!(head.header("content-type"), Some(OCI_INDEX));
    assert_eq!(head.header("docker-content-digest"), Some(index.as_str()));
    let out = work.path().join("out");
    skopeo_copy(
        &["--all"],
        &server.skopeo_ref("berth/multi:1"),
        &oci_ref(&out, "1"),
    );
    assert_eq!(layout_blobs(&out), layout_blobs(&multi));

    // Chapter 5 takes the host's entry, or the one --platform names; the
    // layer both share is fetched once.
    let store = Store::open(work.path().join("pulled")).unwrap();
    let registry = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let reference = Reference::parse(&format!("{}/berth/multi:1", server.addr)).unwrap();
    let pulled = pull(&store, &registry, &reference, &PullOptions::default()).unwrap();
    assert_eq!(
        (pulled.digest.as_str(), pulled.manifest_digest.as_str()),
        (index.as_str(), host.as_str())
    );
    let arm64 = PullOptions {
        platform: "linux/arm64/v8".parse::<Platform>().unwrap(),
        platform_given: true,
        ..PullOptions::default()
    };
    let pulled = pull(&store, &registry, &reference, &arm64).unwrap();
    assert_eq!(
        (pulled.digest.as_str(), pulled.manifest_digest.as_str()),
        (index.as_str(), arm.as_str())
    );
    assert!(
        pulled
            .layers
            .iter()
            .all(|(_, outcome)| *outcome == LayerOutcome::AlreadyExists),
        "{:?}",
        pulled.layers
    );
}

/// `ch05-images`, built beside `ch06-registry` (`cargo test --workspace`
/// builds both); `None` after a skip if it is not there.
fn ch05_binary(test: &str) -> Option<PathBuf> {
    let ours = bin();
    let theirs = ours.with_file_name("ch05-images");
    if theirs.is_file() {
        return Some(theirs);
    }
    skip(
        test,
        &format!(
            "{} is not built: run `cargo build -p ch05-images` (or test the whole workspace)",
            theirs.display()
        ),
    );
    None
}

#[test]
fn an_image_pushed_by_us_and_pulled_by_chapter_5_runs() {
    let test = "an_image_pushed_by_us_and_pulled_by_chapter_5_runs";
    if !require_root(test) {
        return;
    }
    let Some(ch05) = ch05_binary(test) else {
        return;
    };
    // The image: a rootfs with the probe, and a file to read back, whose
    // Cmd reads it.
    let rootfs = probe_rootfs();
    std::fs::write(rootfs.path.join("etc/berth-pushed"), "pushed by ch06\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let name = Reference::parse("berth/runnable:1").unwrap();
    let cmd = [PROBE_IN_CONTAINER, "read", "/etc/berth-pushed", "uid"];
    let digest = ch05_images::image::import_rootfs(
        &Store::open(&source).unwrap(),
        &rootfs.path,
        &name,
        cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap();

    let server = Server::start();
    let image = format!("{}/berth/runnable:1", server.addr);
    push_stdout(&push_cmd(&source, &["berth/runnable:1", &image], ""));

    // Chapter 5, in a store of its own: pull, then run.
    let state = work.path().join("state");
    let ch05_run = |args: &[&str]| {
        let mut cmd = command(&ch05);
        cmd.arg("--root").arg(&state).args(args);
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run
    };
    assert!(
        ch05_run(&["pull", &image])
            .stdout()
            .contains(&format!("Digest: {digest}"))
    );
    let out = ch05_run(&["run", "--rm", &image]).stdout();
    assert!(out.contains("pushed by ch06"), "{out}");
    assert!(out.contains("uid: 0/0"), "{out}");
}
