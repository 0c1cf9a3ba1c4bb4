//! `ch06-registry gc`: what no manifest names goes, what one does stays, and
//! it refuses to run beside a live server.

mod common;

use std::process::Command;

use common::*;

fn gc(root: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["gc", "--root"])
        .arg(root)
        .args(extra)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

#[test]
fn gc_removes_what_no_manifest_names_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let mut server = Server::start_in(&root, &[]);

    // Kept: image "keep" in two repositories (the second by mount).
    let (config, layer, manifest) = push_small_image(&server, "keep", "1", 1);
    let mount = request(
        "POST",
        &server.url(&format!(
            "/v2/copy/blobs/uploads/?mount={}&from=keep",
            sha256(&layer)
        )),
        &[],
        None,
    );
    assert_eq!(mount.status, 201);
    push_blob(&server, "copy", &config);
    assert_eq!(
        put_manifest(&server, "copy", "1", OCI_MANIFEST, &manifest).status,
        201
    );
    // Garbage: an image whose manifest is deleted, a blob nothing names, an
    // abandoned upload.
    let (_, gone_layer, gone_manifest) = push_small_image(&server, "gone", "1", 2);
    let delete = request(
        "DELETE",
        &server.url(&format!("/v2/gone/manifests/{}", sha256(&gone_manifest))),
        &[],
        None,
    );
    assert_eq!(delete.status, 202);
    let stray = push_blob(&server, "keep", &pattern(777, 3));
    let upload = request("POST", &server.url("/v2/keep/blobs/uploads/"), &[], None);
    let location = upload.header("location").unwrap().to_string();
    request("PATCH", &server.url(&location), &[], Some(&pattern(100, 4)));

    // Not while the server runs.
    let refused = gc(&root, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("a registry is serving") && stderr.contains("stop it first"),
        "{stderr}"
    );
    assert!(server.stop().success());

    // A dry run changes nothing.
    let before = server.files();
    let dry = gc(&root, &["--dry-run", "--upload-max-age", "0s"]);
    assert!(dry.status.success());
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry_out.contains(&format!("would delete blob {stray}")),
        "{dry_out}"
    );
    assert_eq!(server.files(), before);

    let run = gc(&root, &["--upload-max-age", "0s"]);
    assert!(run.status.success(), "{run:?}");
    let out = String::from_utf8_lossy(&run.stdout);
    for digest in [&stray, &sha256(&gone_layer), &sha256(&gone_manifest)] {
        assert!(
            out.contains(&format!("deleted blob {digest}")),
            "{digest} not collected:\n{out}"
        );
    }
    assert!(out.contains("1 upload sessions"), "{out}");
    assert!(!server.files().iter().any(|f| f.starts_with("uploads/")));

    // What is named is all there, in both repositories.
    let mut server = Server::start_in(&root, &[]);
    for repo in ["keep", "copy"] {
        let got = request(
            "GET",
            &server.url(&format!("/v2/{repo}/manifests/1")),
            &[],
            None,
        );
        assert_eq!(got.body, manifest);
        for blob in [&config, &layer] {
            let got = request(
                "GET",
                &server.url(&format!("/v2/{repo}/blobs/{}", sha256(blob))),
                &[],
                None,
            );
            assert_eq!(&got.body, blob, "{repo}");
        }
    }
    request(
        "GET",
        &server.url(&format!("/v2/keep/blobs/{stray}")),
        &[],
        None,
    )
    .assert_error(404, "BLOB_UNKNOWN");
    request(
        "GET",
        &server.url(&format!("/v2/gone/blobs/{}", sha256(&gone_layer))),
        &[],
        None,
    )
    .assert_error(404, "BLOB_UNKNOWN");

    // Nothing left to do the second time.
    assert!(server.stop().success());
    let again = gc(&root, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("0 blobs (0 bytes), 0 links"));
}

#[test]
fn gc_refuses_a_directory_that_is_not_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let out = gc(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a registry's storage"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}
