//! Bad input, each answered with the spec's status and error code, and
//! nothing stored: the storage's files are the same before and after.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use common::*;

/// Runs `f` and asserts that the storage holds exactly the same files after.
fn stores_nothing(server: &Server, f: impl FnOnce()) {
    let before = server.files();
    f();
    assert_eq!(server.files(), before, "the storage changed");
}

/// Sends raw bytes (a request whose headers lie), closes our side, and
/// returns the first status code and the body of the first answer.
fn raw(server: &Server, bytes: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.write_all(bytes).unwrap();
    tcp.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

#[test]
fn invalid_repository_names() {
    let server = Server::start();
    stores_nothing(&server, || {
        for path in [
            "/v2/Upper/manifests/latest",
            "/v2/a..b/tags/list",
            "/v2/a/../b/tags/list",
            "/v2/a%2F..%2Fb/tags/list",
            "/v2/-a/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "/v2/a//b/tags/list",
        ] {
            request("GET", &server.url(path), &[], None).assert_error(400, "NAME_INVALID");
        }
        request(
            "POST",
            &server.url("/v2/UP/blobs/uploads/"),
            &[],
            Some(b"x"),
        )
        .assert_error(400, "NAME_INVALID");
        let long = "a".repeat(256);
        request(
            "GET",
            &server.url(&format!("/v2/{long}/tags/list")),
            &[],
            None,
        )
        .assert_error(400, "NAME_INVALID");
        // A mount from an invalid name.
        let digest = sha256(b"x");
        request(
            "POST",
            &server.url(&format!(
                "/v2/a/blobs/uploads/?mount={digest}&from=..%2Fetc"
            )),
            &[],
            None,
        )
        .assert_error(400, "NAME_INVALID");
    });
}

#[test]
fn malformed_digests() {
    let server = Server::start();
    stores_nothing(&server, || {
        for digest in [
            "sha256:xyz",
            "sha256:ABCDEF",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "nocolon:",
        ] {
            request(
                "GET",
                &server.url(&format!("/v2/a/blobs/{digest}")),
                &[],
                None,
            )
            .assert_error(400, "DIGEST_INVALID");
            request(
                "POST",
                &server.url(&format!("/v2/a/blobs/uploads/?digest={digest}")),
                &[],
                Some(b"data"),
            )
            .assert_error(400, "DIGEST_INVALID");
            request(
                "GET",
                &server.url(&format!("/v2/a/referrers/{digest}")),
                &[],
                None,
            )
            .assert_error(400, "DIGEST_INVALID");
            request(
                "POST",
                &server.url(&format!("/v2/a/blobs/uploads/?mount={digest}")),
                &[],
                None,
            )
            .assert_error(400, "DIGEST_INVALID");
        }
        put_manifest(&server, "a", "sha256:baddigeststring", OCI_MANIFEST, b"{}")
            .assert_error(400, "DIGEST_INVALID");
        request(
            "POST",
            &server.url("/v2/a/blobs/uploads/?digest-algorithm=md5"),
            &[],
            None,
        )
        .assert_error(400, "DIGEST_INVALID");
    });
}

#[test]
fn oversized_and_malformed_manifests() {
    let server = Server::start();
    let (config, layer, _) = push_small_image(&server, "a", "base", 1);
    stores_nothing(&server, || {
        // Over 4 MiB: 413, refused on its Content-Length before the body
        // is read (so we send none).
        let headers = format!(
            "PUT /v2/a/manifests/huge HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\n\
             Content-Length: {}\r\n\r\n",
            4 * 1024 * 1024 + 1
        );
        let (status, body) = raw(&server, headers.as_bytes());
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("MANIFEST_INVALID"), "{body}");

        let good = image_manifest(&config, &[&layer], serde_json::json!({}));
        let text = String::from_utf8(good.clone()).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (OCI_MANIFEST, b"not json at all".to_vec()),
            (OCI_MANIFEST, b"[]".to_vec()),
            (
                OCI_MANIFEST,
                text.replace("\"schemaVersion\": 2", "\"schemaVersion\": 1")
                    .into_bytes(),
            ),
            (
                OCI_MANIFEST,
                text.replacen("\"layers\": [", "\"manifests\": [], \"layers\": [", 1)
                    .into_bytes(),
            ),
            (
                OCI_MANIFEST,
                text.replace("\"config\"", "\"konfig\"").into_bytes(),
            ),
            (OCI_INDEX, good.clone()),
            ("application/vnd.example.unknown+json", good.clone()),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                good.clone(),
            ),
            (
                "",
                text.replace(&format!("\"mediaType\": \"{OCI_MANIFEST}\","), "")
                    .into_bytes(),
            ),
        ];
        for (media_type, body) in cases {
            let reply = put_manifest(&server, "a", "bad", media_type, &body);
            assert_eq!(
                (reply.status, reply.codes()),
                (400, vec!["MANIFEST_INVALID".to_string()]),
                "{media_type} {}: {}",
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&reply.body)
            );
        }
        // A descriptor whose size lies about the blob.
        let lying = text.replace(&format!("\"size\": {}", layer.len()), "\"size\": 3");
        put_manifest(&server, "a", "bad", OCI_MANIFEST, lying.as_bytes())
            .assert_error(400, "MANIFEST_INVALID");
        // Invalid tag.
        put_manifest(&server, "a", ".hidden", OCI_MANIFEST, &good)
            .assert_error(400, "MANIFEST_INVALID");
    });
}

#[test]
fn a_manifest_naming_missing_blobs_is_refused_with_one_error_each() {
    let server = Server::start();
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    push_blob(&server, "a", config);
    // Present in another repository only: still missing here.
    let elsewhere = pattern(500, 2);
    push_blob(&server, "b", &elsewhere);
    let never = pattern(600, 3);
    let manifest = image_manifest(config, &[&elsewhere, &never], serde_json::json!({}));
    stores_nothing(&server, || {
        let reply = put_manifest(&server, "a", "1", OCI_MANIFEST, &manifest);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.codes(),
            ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
        );
        let text = String::from_utf8_lossy(&reply.body);
        assert!(
            text.contains(&sha256(&elsewhere)) && text.contains(&sha256(&never)),
            "{text}"
        );
    });
    request("GET", &server.url("/v2/a/manifests/1"), &[], None)
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[test]
fn an_out_of_order_chunk_is_416_and_stores_nothing() {
    let server = Server::start();
    let start = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None);
    let location = start.header("location").unwrap().to_string();
    assert_eq!(
        request(
            "PATCH",
            &server.url(&location),
            &[("content-range", "0-9")],
            Some(&[1; 10])
        )
        .status,
        202
    );
    stores_nothing(&server, || {
        for range in ["11-20", "5-14", "0-9", "10-9"] {
            request(
                "PATCH",
                &server.url(&location),
                &[("content-range", range)],
                Some(&[2; 10]),
            )
            .assert_error(416, "BLOB_UPLOAD_INVALID");
        }
        // Malformed ranges.
        for range in ["10-", "bytes 10-19", "x"] {
            request(
                "PATCH",
                &server.url(&location),
                &[("content-range", range)],
                Some(&[2; 10]),
            )
            .assert_error(400, "BLOB_UPLOAD_INVALID");
        }
        // Range and length disagree.
        request(
            "PATCH",
            &server.url(&location),
            &[("content-range", "10-29")],
            Some(&[2; 10]),
        )
        .assert_error(400, "SIZE_INVALID");
    });
    let status = request("GET", &server.url(&location), &[], None);
    assert_eq!(status.header("range"), Some("0-9"));
}

#[test]
fn a_content_range_whose_length_wraps_around_is_416() {
    let server = Server::start();
    let start = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None);
    let location = start.header("location").unwrap().to_string();
    let before = request("GET", &server.url(&location), &[], None);
    stores_nothing(&server, || {
        // END - START + 1 is 2^64: it must not wrap to 0 and let an empty
        // body through as the whole chunk.
        request(
            "PATCH",
            &server.url(&location),
            &[("content-range", "0-18446744073709551615")],
            Some(&[]),
        )
        .assert_error(416, "BLOB_UPLOAD_INVALID");
    });
    let after = request("GET", &server.url(&location), &[], None);
    assert_eq!(after.status, 204);
    assert_eq!(
        after.header("range"),
        before.header("range"),
        "the upload moved"
    );
}

#[test]
fn a_wrong_digest_on_the_closing_put_stores_nothing() {
    let server = Server::start();
    let before = server.files();
    let blob = pattern(100_000, 4);
    let wrong = sha256(b"something else");
    // Chunked.
    let location = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None)
        .header("location")
        .unwrap()
        .to_string();
    request("PATCH", &server.url(&location), &[], Some(&blob));
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={wrong}")),
        &[],
        None,
    );
    put.assert_error(400, "DIGEST_INVALID");
    assert!(String::from_utf8_lossy(&put.body).contains(&sha256(&blob)));
    // The session went with it.
    request("GET", &server.url(&location), &[], None).assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    // POST then PUT with the body.
    let location = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None)
        .header("location")
        .unwrap()
        .to_string();
    request(
        "PUT",
        &server.url(&format!("{location}?digest={wrong}")),
        &[],
        Some(&blob),
    )
    .assert_error(400, "DIGEST_INVALID");
    // Monolithic POST.
    request(
        "POST",
        &server.url(&format!("/v2/a/blobs/uploads/?digest={wrong}")),
        &[],
        Some(&blob),
    )
    .assert_error(400, "DIGEST_INVALID");
    // A PUT without a digest.
    let location = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None)
        .header("location")
        .unwrap()
        .to_string();
    request("PUT", &server.url(&location), &[], Some(&blob)).assert_error(400, "DIGEST_INVALID");
    request("DELETE", &server.url(&location), &[], None);
    assert_eq!(server.files(), before);
    request(
        "GET",
        &server.url(&format!("/v2/a/blobs/{}", sha256(&blob))),
        &[],
        None,
    )
    .assert_error(404, "BLOB_UNKNOWN");
}

#[test]
fn a_content_length_that_lies() {
    let server = Server::start();
    let blob = pattern(1000, 5);
    let digest = sha256(&blob);
    stores_nothing(&server, || {
        // Says 1000 bytes, sends 500, then closes: the body broke off.
        let mut request_bytes = format!(
            "POST /v2/a/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n\
             Content-Length: 1000\r\n\r\n"
        )
        .into_bytes();
        request_bytes.extend_from_slice(&blob[..500]);
        let (status, body) = raw(&server, &request_bytes);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("SIZE_INVALID"), "{body}");

        // Says 500, sends 1000: the first 500 are the blob, which hashes
        // wrong; the rest is not a request.
        let mut request_bytes = format!(
            "POST /v2/a/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n\
             Content-Length: 500\r\n\r\n"
        )
        .into_bytes();
        request_bytes.extend_from_slice(&blob);
        let (status, body) = raw(&server, &request_bytes);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("DIGEST_INVALID"), "{body}");
    });

    // In a session: the broken chunk is undone, the session goes on.
    let location = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None)
        .header("location")
        .unwrap()
        .to_string();
    assert_eq!(
        request("PATCH", &server.url(&location), &[], Some(&blob[..100])).status,
        202
    );
    let mut patch = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Range: 100-999\r\nContent-Length: 900\r\n\r\n"
    )
    .into_bytes();
    patch.extend_from_slice(&blob[100..400]);
    let (status, body) = raw(&server, &patch);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SIZE_INVALID"), "{body}");
    let status = request("GET", &server.url(&location), &[], None);
    assert_eq!(status.header("range"), Some("0-99"));
    // The hash is rebuilt from the data: the upload still closes right.
    let put = request(
        "PUT",
        &server.url(&format!("{location}?digest={digest}")),
        &[("content-range", "100-999")],
        Some(&blob[100..]),
    );
    assert_eq!(put.status, 201, "{put:?}");
}

#[test]
fn unknown_things_are_named() {
    let server = Server::start();
    push_small_image(&server, "a", "1", 6);
    stores_nothing(&server, || {
        request("GET", &server.url("/v2/nothing/tags/list"), &[], None)
            .assert_error(404, "NAME_UNKNOWN");
        request(
            "GET",
            &server.url("/v2/nothing/manifests/latest"),
            &[],
            None,
        )
        .assert_error(404, "NAME_UNKNOWN");
        request("GET", &server.url("/v2/a/manifests/2"), &[], None)
            .assert_error(404, "MANIFEST_UNKNOWN");
        request("GET", &server.url("/v2/a/manifests/-bad-tag"), &[], None)
            .assert_error(404, "MANIFEST_UNKNOWN");
        let digest = sha256(b"never pushed");
        request(
            "GET",
            &server.url(&format!("/v2/a/manifests/{digest}")),
            &[],
            None,
        )
        .assert_error(404, "MANIFEST_UNKNOWN");
        request(
            "DELETE",
            &server.url(&format!("/v2/a/manifests/{digest}")),
            &[],
            None,
        )
        .assert_error(404, "MANIFEST_UNKNOWN");
        request("DELETE", &server.url("/v2/a/manifests/nope"), &[], None)
            .assert_error(404, "MANIFEST_UNKNOWN");
        request(
            "GET",
            &server.url(&format!("/v2/a/blobs/{digest}")),
            &[],
            None,
        )
        .assert_error(404, "BLOB_UNKNOWN");
        for id in ["00000000-0000-0000-0000-000000000000", "..%2F..%2Fetc", "x"] {
            request(
                "PATCH",
                &server.url(&format!("/v2/a/blobs/uploads/{id}")),
                &[],
                Some(b"x"),
            )
            .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
        }
        request("PUT", &server.url("/v2/a/tags/list"), &[], Some(b"x"))
            .assert_error(405, "UNSUPPORTED");
        request("GET", &server.url("/v2/a"), &[], None).assert_error(404, "UNSUPPORTED");
        request("GET", &server.url("/other"), &[], None).assert_error(404, "UNSUPPORTED");
    });
    // An upload belongs to its repository.
    let location = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None)
        .header("location")
        .unwrap()
        .to_string();
    let stolen = location.replace("/v2/a/", "/v2/b/");
    request("PATCH", &server.url(&stolen), &[], Some(b"x"))
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}
