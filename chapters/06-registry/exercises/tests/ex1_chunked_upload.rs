//! Check for exercise 1: a blob uploaded in chunks to chapter 6's registry,
//! running as a process of its own, through a recorder that keeps every
//! request: one session opened, a PATCH per chunk with the right
//! Content-Range, the closing PUT naming the digest, a HEAD to verify, and
//! the blob in the registry byte for byte.

mod common;

use ch06_exercises::{checking_mine, ex1_chunked_upload, solutions};
use common::*;

type Upload = fn(&str, &str, &[u8], usize) -> Result<String, String>;

fn upload_in_chunks() -> Upload {
    if checking_mine() {
        ex1_chunked_upload::upload_in_chunks
    } else {
        solutions::ex1_chunked_upload::upload_in_chunks
    }
}

#[test]
fn ex1_chunked_upload_to_a_real_registry() {
    let registry = Registry::start();
    let recorder = Recorder::start(&registry.addr);
    // Three chunks of 64 KiB and a short last one.
    let blob = pattern(200_000, 7);
    let chunk = 64 * 1024;
    let digest = sha256(&blob);

    let got = upload_in_chunks()(&recorder.addr, "class/chunks", &blob, chunk);
    assert_eq!(got, Ok(digest.clone()), "the digest of the blob, confirmed");

    // The registry has it, byte for byte.
    let (status, body) = get(&registry.url(&format!("/v2/class/chunks/blobs/{digest}")));
    assert_eq!(status, 200, "GET the blob back");
    assert!(body == blob, "the registry's copy differs from the blob");

    // How it got there.
    let sent = recorder.requests();
    let methods: Vec<&str> = sent.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "PATCH", "PATCH", "PATCH", "PATCH", "PUT", "HEAD"],
        "one session, a PATCH per chunk, the closing PUT, then a HEAD; sent: {sent:#?}"
    );
    assert_eq!(
        sent[0].target, "/v2/class/chunks/blobs/uploads/",
        "the POST opens a session (with ?digest= it would be a one-request upload)"
    );
    let mut next = 0;
    for patch in &sent[1..5] {
        assert!(
            patch.target.starts_with("/v2/class/chunks/blobs/uploads/"),
            "a PATCH goes to the session's Location: {patch:?}"
        );
        let end = (next + chunk).min(blob.len()) - 1;
        assert_eq!(
            patch.header("content-range"),
            Some(format!("{next}-{end}").as_str()),
            "Content-Range names the chunk's first and last byte: {patch:?}"
        );
        assert_eq!(
            patch.header("content-type"),
            Some("application/octet-stream"),
            "{patch:?}"
        );
        next = end + 1;
    }
    let put = &sent[5];
    assert!(
        put.target.starts_with("/v2/class/chunks/blobs/uploads/")
            && put
                .target
                .replace("%3A", ":")
                .replace("%3a", ":")
                .contains(&format!("digest={digest}")),
        "the PUT closes the session and names the digest: {put:?}"
    );
    assert!(
        matches!(put.header("content-length"), None | Some("0"))
            && put.header("transfer-encoding").is_none(),
        "every byte went in the PATCHes; the PUT is empty: {put:?}"
    );
    assert_eq!(
        sent[6].target,
        format!("/v2/class/chunks/blobs/{digest}"),
        "the HEAD asks for the blob by its digest"
    );

    // A refusal is an error, not a digest: a repository name with capitals
    // is invalid (NAME_INVALID).
    let refused = upload_in_chunks()(&recorder.addr, "Class/Chunks", &blob[..10], 4);
    assert!(
        refused.is_err(),
        "an upload the registry refuses must be an Err: {refused:?}"
    );
}
