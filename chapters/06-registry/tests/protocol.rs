//! The distribution protocol, request by request, against our server: each
//! test plays one conversation of the spec and checks statuses, headers and
//! what ends up on disk.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

fn upload_location(reply: &Reply) -> String {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {reply:?}"))
        .to_string()
}

#[test]
fn a_chunked_upload_refuses_an_out_of_order_chunk_and_resumes() {
    let server = Server::start();
    let blob = pattern(2500, 1);
    let digest = sha256(&blob);

    // POST: a session, empty.
    let start = request(
        "POST",
        &server.url("/v2/team/app/blobs/uploads/"),
        &[("content-length", "0")],
        None,
    );
    assert_eq!(start.status, 202, "{start:?}");
    let location = upload_location(&start);
    let uuid = start.header("docker-upload-uuid").unwrap().to_string();
    assert!(location.starts_with("/v2/team/app/blobs/uploads/") && location.ends_with(&uuid));
    assert_eq!(start.header("range"), Some("0-0"));

    // The first chunk.
    let patch = |range: &str, bytes: &[u8]| {
        request(
            "PATCH",
            &server.url(&location),
            &[
                ("content-type", "application/octet-stream"),
                ("content-range", range),
            ],
            Some(bytes),
        )
    };
    let first = patch("0-999", &blob[..1000]);
    assert_eq!(
        (first.status, first.header("range")),
        (202, Some("0-999")),
        "{first:?}"
    );
    assert_eq!(first.header("location"), Some(location.as_str()));

    // A chunk that skips ahead: 416, and the answer says where we are.
    let skipped = patch("2000-2499", &blob[2000..]);
    skipped.assert_error(416, "BLOB_UPLOAD_INVALID");
    assert_eq!(skipped.header("range"), Some("0-999"));
    // A chunk that goes back: 416 too.
    patch("0-999", &blob[..1000]).assert_error(416, "BLOB_UPLOAD_INVALID");

    // GET: where to resume.
    let status = request("GET", &server.url(&location), &[], None);
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some("0-999"))
    );
    assert_eq!(status.header("location"), Some(location.as_str()));

    // The right next chunk, then the last one in the closing PUT.
    assert_eq!(patch("1000-1999", &blob[1000..2000]).status, 202);
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", "2000-2499"),
        ],
        Some(&blob[2000..]),
    );
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(
        put.header("location"),
        Some(format!("/v2/team/app/blobs/{digest}").as_str())
    );
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));

    // The blob is there, whole; the session is gone.
    let got = request(
        "GET",
        &server.url(&format!("/v2/team/app/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!(got.status, 200);
    assert_eq!(got.body, blob);
    request("GET", &server.url(&location), &[], None).assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    assert!(!server.files().iter().any(|f| f.starts_with("uploads/")));
}

#[test]
fn post_then_put_and_a_streamed_patch() {
    let server = Server::start();
    // POST, then the whole blob in the PUT.
    let blob = pattern(70_000, 2);
    let start = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None);
    let location = upload_location(&start);
    let digest = sha256(&blob);
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[],
        Some(&blob),
    );
    assert_eq!(put.status, 201, "{put:?}");

    // POST, a PATCH without Content-Range (appended as it comes), empty PUT.
    let blob = pattern(300_000, 3);
    let digest = sha256(&blob);
    let location = upload_location(&request(
        "POST",
        &server.url("/v2/a/blobs/uploads/"),
        &[],
        None,
    ));
    let patch = request("PATCH", &server.url(&location), &[], Some(&blob));
    assert_eq!(
        (patch.status, patch.header("range")),
        (202, Some("0-299999"))
    );
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[],
        Some(b""),
    );
    assert_eq!(put.status, 201, "{put:?}");
    let head = request(
        "HEAD",
        &server.url(&format!("/v2/a/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
}

#[test]
fn cancel_forgets_the_upload_and_its_bytes() {
    let server = Server::start();
    let location = upload_location(&request(
        "POST",
        &server.url("/v2/a/blobs/uploads/"),
        &[],
        None,
    ));
    assert_eq!(
        request(
            "PATCH",
            &server.url(&location),
            &[],
            Some(&pattern(5000, 4))
        )
        .status,
        202
    );
    assert!(server.files().iter().any(|f| f.starts_with("uploads/")));
    let cancel = request("DELETE", &server.url(&location), &[], None);
    assert_eq!(cancel.status, 204, "{cancel:?}");
    request("GET", &server.url(&location), &[], None).assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    request("DELETE", &server.url(&location), &[], None).assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    assert!(!server.files().iter().any(|f| f.starts_with("uploads/")));
}

#[test]
fn sha512_blobs_monolithic_and_chunked() {
    let server = Server::start();
    let blob = pattern(4096, 5);
    let digest = sha512(&blob);
    assert!(digest.starts_with("sha512:"));
    let post = request(
        "POST",
        &server.url(&format!("/v2/a/blobs/uploads/?digest={digest}")),
        &[],
        Some(&blob),
    );
    assert_eq!(post.status, 201, "{post:?}");
    let got = request(
        "GET",
        &server.url(&format!("/v2/a/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!((got.status, &got.body), (200, &blob));
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
    assert!(
        server
            .files()
            .iter()
            .any(|f| f.starts_with("blobs/sha512/"))
    );

    // A session that announces sha512, in two chunks.
    let blob = pattern(9000, 6);
    let digest = sha512(&blob);
    let start = request(
        "POST",
        &server.url("/v2/b/blobs/uploads/?digest-algorithm=sha512"),
        &[],
        None,
    );
    assert_eq!(start.status, 202);
    let location = upload_location(&start);
    let patch = request(
        "PATCH",
        &server.url(&location),
        &[("content-range", "0-4999")],
        Some(&blob[..5000]),
    );
    assert_eq!(patch.status, 202);
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[("content-range", "5000-8999")],
        Some(&blob[5000..]),
    );
    assert_eq!(put.status, 201, "{put:?}");
    // A session hashing sha256 closed with a sha512 digest still works (the
    // data is hashed again).
    let blob = pattern(3000, 7);
    let digest = sha512(&blob);
    let location = upload_location(&request(
        "POST",
        &server.url("/v2/c/blobs/uploads/"),
        &[],
        None,
    ));
    request("PATCH", &server.url(&location), &[], Some(&blob));
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[],
        None,
    );
    assert_eq!(put.status, 201, "{put:?}");
}

#[test]
fn blob_ranges_as_the_conformance_suite_asks() {
    let server = Server::start();
    let blob = pattern(2048, 8);
    let digest = push_blob(&server, "a", &blob);
    let url = server.url(&format!("/v2/a/blobs/{digest}"));
    let get = |range: &str| request("GET", &url, &[("range", range)], None);
    for (range, from, to) in [
        ("bytes=500-1499", 500, 1500),
        ("bytes=500-", 500, 2048),
        ("bytes=-500", 1548, 2048),
        ("bytes=2000-5000", 2000, 2048),
    ] {
        let reply = get(range);
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(reply.body, &blob[from..to], "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {from}-{}/2048", to - 1).as_str())
        );
        assert_eq!(
            reply.header("content-length"),
            Some((to - from).to_string().as_str())
        );
    }
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let reply = get(range);
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(reply.header("content-range"), Some("bytes */2048"));
    }
}

#[test]
fn manifests_by_tag_and_by_digest_tags_and_deletes() {
    let server = Server::start();
    let (_, _, manifest) = push_small_image(&server, "team/app", "v1", 1);
    let digest = sha256(&manifest);

    // By tag and by digest: the bytes exactly as pushed, their type, their digest.
    for reference in ["v1", digest.as_str()] {
        let url = server.url(&format!("/v2/team/app/manifests/{reference}"));
        let got = request("GET", &url, &[("accept", OCI_MANIFEST)], None);
        assert_eq!(got.status, 200);
        assert_eq!(got.body, manifest);
        assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
        let head = request("HEAD", &url, &[], None);
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(manifest.len().to_string().as_str())
        );
        assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
    }

    // More tags; pages of two with a Link to the next.
    for tag in ["v2", "latest", "A", "v10"] {
        assert_eq!(
            put_manifest(&server, "team/app", tag, OCI_MANIFEST, &manifest).status,
            201
        );
    }
    let list = request("GET", &server.url("/v2/team/app/tags/list"), &[], None).json();
    assert_eq!(
        list["tags"],
        serde_json::json!(["A", "latest", "v1", "v10", "v2"])
    );
    let page = request("GET", &server.url("/v2/team/app/tags/list?n=2"), &[], None);
    assert_eq!(page.json()["tags"], serde_json::json!(["A", "latest"]));
    assert_eq!(
        page.header("link"),
        Some("</v2/team/app/tags/list?n=2&last=latest>; rel=\"next\"")
    );
    let next = request(
        "GET",
        &server.url("/v2/team/app/tags/list?n=2&last=latest"),
        &[],
        None,
    );
    assert_eq!(next.json()["tags"], serde_json::json!(["v1", "v10"]));
    let last = request(
        "GET",
        &server.url("/v2/team/app/tags/list?n=2&last=v10"),
        &[],
        None,
    );
    assert_eq!(last.json()["tags"], serde_json::json!(["v2"]));
    assert_eq!(last.header("link"), None);
    let zero = request("GET", &server.url("/v2/team/app/tags/list?n=0"), &[], None);
    assert_eq!(
        (zero.json()["tags"].clone(), zero.header("link")),
        (serde_json::json!([]), None)
    );

    // Deleting a tag keeps the manifest.
    let delete = request(
        "DELETE",
        &server.url("/v2/team/app/manifests/v2"),
        &[],
        None,
    );
    assert_eq!(delete.status, 202);
    request("GET", &server.url("/v2/team/app/manifests/v2"), &[], None)
        .assert_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        request(
            "GET",
            &server.url(&format!("/v2/team/app/manifests/{digest}")),
            &[],
            None
        )
        .status,
        200
    );

    // Deleting the manifest takes every tag pointing to it.
    let delete = request(
        "DELETE",
        &server.url(&format!("/v2/team/app/manifests/{digest}")),
        &[],
        None,
    );
    assert_eq!(delete.status, 202);
    for reference in ["v1", "latest", digest.as_str()] {
        request(
            "GET",
            &server.url(&format!("/v2/team/app/manifests/{reference}")),
            &[],
            None,
        )
        .assert_error(404, "MANIFEST_UNKNOWN");
    }
    let list = request("GET", &server.url("/v2/team/app/tags/list"), &[], None).json();
    assert_eq!(list["tags"], serde_json::json!([]));
}

#[test]
fn push_by_digest_with_tag_parameters() {
    let server = Server::start();
    let (config, layer, _) = push_small_image(&server, "a", "first", 2);
    let manifest = image_manifest(
        &config,
        &[&layer],
        serde_json::json!({"annotations": {"x": "y"}}),
    );
    let digest = sha256(&manifest);
    let reply = request(
        "PUT",
        &server.url(&format!("/v2/a/manifests/{digest}?tag=1.0&tag=stable")),
        &[("content-type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.header("oci-tag"), Some("1.0, stable"));
    let list = request("GET", &server.url("/v2/a/tags/list"), &[], None).json();
    assert_eq!(list["tags"], serde_json::json!(["1.0", "first", "stable"]));
}

#[test]
fn docker_media_types_are_kept() {
    let server = Server::start();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = pattern(100, 9);
    push_blob(&server, "d", config);
    push_blob(&server, "d", &layer);
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": docker_manifest,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)],
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&server, "d", "1", docker_manifest, &manifest).status,
        201
    );
    let list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": list_type,
        "manifests": [{
            "mediaType": docker_manifest, "digest": sha256(&manifest), "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }],
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&server, "d", "list", list_type, &list).status,
        201
    );
    for (tag, media_type) in [("1", docker_manifest), ("list", list_type)] {
        let got = request(
            "GET",
            &server.url(&format!("/v2/d/manifests/{tag}")),
            &[],
            None,
        );
        assert_eq!(got.header("content-type"), Some(media_type));
    }
}

#[test]
fn an_index_needs_its_manifests_first() {
    let server = Server::start();
    let (_, _, amd64) = push_small_image(&server, "multi", "amd64", 3);
    let arm64 = {
        let (config, layer, _) = push_small_image(&server, "multi", "tmp", 4);
        image_manifest(
            &config,
            &[&layer],
            serde_json::json!({"annotations": {"arch": "arm64"}}),
        )
    };
    let entry = |bytes: &[u8], arch: &str| {
        let mut d = descriptor(OCI_MANIFEST, bytes);
        d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        d
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry(&amd64, "amd64"), entry(&arm64, "arm64")],
    }))
    .unwrap();
    // arm64's manifest is not pushed yet.
    let refused = put_manifest(&server, "multi", "latest", OCI_INDEX, &index);
    refused.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert!(String::from_utf8_lossy(&refused.body).contains(&sha256(&arm64)));
    // Pushed by digest, then the index goes in.
    assert_eq!(
        put_manifest(&server, "multi", &sha256(&arm64), OCI_MANIFEST, &arm64).status,
        201
    );
    assert_eq!(
        put_manifest(&server, "multi", "latest", OCI_INDEX, &index).status,
        201
    );
    let got = request("GET", &server.url("/v2/multi/manifests/latest"), &[], None);
    assert_eq!(
        (got.header("content-type"), got.body.as_slice()),
        (Some(OCI_INDEX), index.as_slice())
    );
}

#[test]
fn deleting_a_blob_in_one_repository_keeps_it_for_another() {
    let server = Server::start();
    let blob = pattern(1234, 10);
    let digest = push_blob(&server, "one", &blob);
    push_blob(&server, "two", &blob);
    let url = |repo: &str| server.url(&format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(request("DELETE", &url("one"), &[], None).status, 202);
    request("HEAD", &url("one"), &[], None);
    request("GET", &url("one"), &[], None).assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(request("GET", &url("two"), &[], None).body, blob);
    request("DELETE", &url("one"), &[], None).assert_error(404, "BLOB_UNKNOWN");
    // A repository that never had it cannot mount it from one that no longer does.
    let mount = request(
        "POST",
        &server.url(&format!("/v2/three/blobs/uploads/?mount={digest}&from=one")),
        &[],
        None,
    );
    assert_eq!(mount.status, 202, "not mountable: an upload starts instead");
    let mount = request(
        "POST",
        &server.url(&format!("/v2/three/blobs/uploads/?mount={digest}&from=two")),
        &[],
        None,
    );
    assert_eq!(mount.status, 201);
    assert_eq!(mount.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(request("GET", &url("three"), &[], None).body, blob);
}

#[test]
fn referrers_are_listed_and_filtered() {
    let server = Server::start();
    let (_, _, image) = push_small_image(&server, "app", "1", 5);
    let subject = descriptor(OCI_MANIFEST, &image);
    let subject_digest = sha256(&image);

    // Two artifacts about the image, one pushed... and one about an image
    // not pushed yet (allowed: a subject may come later).
    let empty = b"{}";
    push_blob(&server, "app", empty);
    let artifact = |kind: &str, subject: serde_json::Value| {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [],
            "subject": subject,
            "annotations": {"org.example.kind": kind},
        });
        m["layers"] = serde_json::json!([]);
        serde_json::to_vec(&m).unwrap()
    };
    let signature = artifact("application/vnd.example.signature", subject.clone());
    let sbom = artifact("application/vnd.example.sbom", subject.clone());
    let missing = descriptor(OCI_MANIFEST, b"not pushed");
    let orphan = artifact("application/vnd.example.sbom", missing);
    for doc in [&signature, &sbom, &orphan] {
        let reply = put_manifest(&server, "app", &sha256(doc), OCI_MANIFEST, doc);
        assert_eq!(reply.status, 201, "{reply:?}");
        let subject_of =
            serde_json::from_slice::<serde_json::Value>(doc).unwrap()["subject"]["digest"].clone();
        assert_eq!(reply.header("oci-subject"), subject_of.as_str());
    }

    let url = server.url(&format!("/v2/app/referrers/{subject_digest}"));
    let all = request("GET", &url, &[], None);
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some(OCI_INDEX));
    let index = all.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/vnd.example.sbom",
            "application/vnd.example.signature"
        ]
    );
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["digest"] == sha256(&signature).as_str())
        .unwrap();
    assert_eq!(entry["size"], signature.len());
    assert_eq!(
        entry["annotations"]["org.example.kind"],
        "application/vnd.example.signature"
    );

    let filtered = request(
        "GET",
        &format!("{url}?artifactType=application/vnd.example.sbom"),
        &[],
        None,
    );
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);

    // A deleted referrer is gone; an unknown subject (even in an unknown
    // repository) has an empty list, not a 404.
    let delete = request(
        "DELETE",
        &server.url(&format!("/v2/app/manifests/{}", sha256(&sbom))),
        &[],
        None,
    );
    assert_eq!(delete.status, 202);
    assert_eq!(
        request("GET", &url, &[], None).json()["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let nothing = request(
        "GET",
        &server.url(&format!("/v2/nowhere/referrers/{}", sha256(b"x"))),
        &[],
        None,
    );
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.json()["manifests"], serde_json::json!([]));
}

/// A PATCH whose body is half sent when the server is told to stop still
/// completes; the session survives a restart and is closed by the next
/// server, which rebuilds the hash from the data on disk.
#[test]
fn shutdown_lets_an_upload_in_progress_finish_and_a_restart_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let mut server = Server::start_in(&root, &[]);
    let blob = pattern(600_000, 11);
    let digest = sha256(&blob);
    let location = upload_location(&request(
        "POST",
        &server.url("/v2/a/blobs/uploads/"),
        &[],
        None,
    ));

    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    write!(
        tcp,
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: 0-399999\r\nContent-Length: 400000\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    tcp.write_all(&blob[..300_000]).unwrap();
    tcp.flush().unwrap();
    // The handler is writing the chunk (its first buffer reached the data
    // file) when the signal comes.
    let uuid = location.rsplit('/').next().unwrap();
    let data = root.join("uploads").join(uuid).join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&data).unwrap().len() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the PATCH never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    server.wait_for_log("SIGTERM: no new connections");
    tcp.write_all(&blob[300_000..400_000]).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(
        answer.to_lowercase().contains("range: 0-399999"),
        "{answer}"
    );
    // The server exits once that request is answered.
    let status = server.wait();
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(
        server.log().contains("ch06-registry: stopped"),
        "{}",
        server.log()
    );

    // A new server on the same storage: the session is still there.
    let server = Server::start_in(&root, &[]);
    let status = request("GET", &server.url(&location), &[], None);
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some("0-399999"))
    );
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[("content-range", "400000-599999")],
        Some(&blob[400_000..]),
    );
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(
        request(
            "GET",
            &server.url(&format!("/v2/a/blobs/{digest}")),
            &[],
            None
        )
        .body,
        blob
    );
}
