//! `ch06-registry push`: an image from chapter 5's store into our registry
//! and into Debian's docker-registry, pulled back by chapter 5 identical.

mod common;

use std::path::Path;

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
    let wrong = push_cmd(
        &store,
        &[
            "--username",
            "alice",
            "--password-stdin",
            "berth/test:1",
            &dest,
        ],
        "nope\n",
    );
    assert_eq!(wrong.status.code(), Some(1));
    push_stdout(&push_cmd(
        &store,
        &[
            "--username",
            "alice",
            "--password-stdin",
            "berth/test:1",
            &dest,
        ],
        "pw1\n",
    ));
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
    push_stdout(&push_cmd(
        &store,
        &[
            "--username",
            "alice",
            "--password-stdin",
            "berth/test:1",
            &dest,
        ],
        "pw1\n",
    ));
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
