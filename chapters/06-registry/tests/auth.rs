//! `--htpasswd` and `--read-only`: the challenge, real clients answering it
//! (skopeo, chapter 5's pull), and the refusals.

mod common;

use std::process::Command;

use base64::Engine as _;
use berth_test_support::registry::{oci_ref, require_tool};
use ch05_images::pull::{PullOptions, pull};
use ch05_images::reference::Reference;
use ch05_images::registry::{ClientOptions, Credentials, Registry};
use ch05_images::store::Store;
use common::*;

/// An htpasswd file made by Apache's own tool (bcrypt, `-B`).
fn htpasswd(dir: &std::path::Path, user: &str, password: &str) -> std::path::PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn basic_auth_with_an_htpasswd_file() {
    let test = "basic_auth_with_an_htpasswd_file";
    if !require_tool(test, "htpasswd") || !require_tool(test, "skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), "alice", "s3cret");
    let server = Server::start_in(
        &dir.path().join("registry"),
        &["--htpasswd", file.to_str().unwrap()],
    );

    // The challenge, for anonymous and wrong credentials alike.
    for headers in [
        vec![],
        vec![("authorization", basic("alice", "nope"))],
        vec![("authorization", basic("bob", "s3cret"))],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = request("GET", &server.url("/v2/"), &headers, None);
        reply.assert_error(401, "UNAUTHORIZED");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"ch06-registry\"")
        );
    }
    // Even a malformed name gets the challenge first: nothing is said to
    // strangers.
    request("GET", &server.url("/v2/UPPER/tags/list"), &[], None).assert_error(401, "UNAUTHORIZED");
    let good = basic("alice", "s3cret");
    assert_eq!(
        request(
            "GET",
            &server.url("/v2/"),
            &[("authorization", &good)],
            None
        )
        .status,
        200
    );

    // skopeo pushes with credentials, and is refused without.
    let (layout, digest) = oci_layout(dir.path(), &[("etc/motd", b"auth\n")]);
    let anonymous = skopeo(&[&oci_ref(&layout, "1"), &server.skopeo_ref("private/app:1")]);
    assert!(!anonymous.status.success());
    let pushed = skopeo(&[
        "--dest-creds",
        "alice:s3cret",
        &oci_ref(&layout, "1"),
        &server.skopeo_ref("private/app:1"),
    ]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    // Chapter 5 pulls with credentials.
    let reference = Reference::parse(&format!("{}/private/app:1", server.addr)).unwrap();
    let store = Store::open(dir.path().join("store2")).unwrap();
    let options = ClientOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
        ..ClientOptions::default()
    };
    let registry = Registry::new(&server.addr, &options).unwrap();
    assert_eq!(
        pull(&store, &registry, &reference, &PullOptions::default())
            .unwrap()
            .digest,
        digest
    );
    // And is told to log in without.
    let anonymous = Registry::new(&server.addr, &ClientOptions::default()).unwrap();
    let err = pull(&store, &anonymous, &reference, &PullOptions::default()).unwrap_err();
    assert!(err.to_string().contains("authentication required"), "{err}");
}

#[test]
fn a_read_only_registry_serves_pulls_and_denies_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let mut server = Server::start_in(&root, &[]);
    let (_, _, manifest) = push_small_image(&server, "ro", "1", 1);
    assert!(server.stop().success());

    let server = Server::start_in(&root, &["--read-only"]);
    assert_eq!(
        request("GET", &server.url("/v2/ro/manifests/1"), &[], None).body,
        manifest
    );
    let before = server.files();
    request("POST", &server.url("/v2/ro/blobs/uploads/"), &[], None).assert_error(403, "DENIED");
    put_manifest(&server, "ro", "2", OCI_MANIFEST, &manifest).assert_error(403, "DENIED");
    request("DELETE", &server.url("/v2/ro/manifests/1"), &[], None).assert_error(403, "DENIED");
    assert_eq!(server.files(), before);
}

#[test]
fn serve_refuses_an_htpasswd_file_without_bcrypt() {
    if !require_tool("serve_refuses_an_htpasswd_file_without_bcrypt", "htpasswd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // -m: Apache's MD5, which distribution does not accept either.
    let out = Command::new("htpasswd")
        .args(["-mbn", "carol", "pw"])
        .output()
        .unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, out.stdout).unwrap();
    let run = Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("registry"))
        .arg("--htpasswd")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains("\"carol\"") && stderr.contains("htpasswd -B"),
        "{stderr}"
    );
    assert!(!dir.path().join("registry").exists(), "nothing created");
}
