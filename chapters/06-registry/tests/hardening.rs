//! The registry against clients that do nothing: idle and half-sent
//! connections beyond the descriptor limit, and a `serve` that cannot bind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn more_idle_connections_than_descriptors_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // 64 descriptors in all; connections that send nothing, or half a
    // request, are dropped after a second.
    let server = Server::start_with(
        &dir.path().join("registry"),
        &["--header-timeout", "1s", "--idle-timeout", "2s"],
        |cmd| {
            berth_test_support::limit_descriptors(cmd, 64);
        },
    );
    let mut idle = Vec::new();
    for i in 0..150 {
        let mut tcp = TcpStream::connect(&server.addr).unwrap();
        if i % 2 == 0 {
            tcp.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
        }
        idle.push(tcp);
    }
    // A real request, answered eventually (within a generous bound).
    let mut fresh = TcpStream::connect(&server.addr).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    fresh
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let read = fresh.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "no answer after {:?} ({read:?}): {answer:?}; server log:\n{}",
        started.elapsed(),
        server.log()
    );
    // The idle ones were closed by the server: reading them ends (EOF or
    // a reset), rather than waiting.
    for tcp in &mut idle {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut rest = Vec::new();
        match tcp.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    // And it still answers.
    let again = request("GET", &server.url("/v2/"), &[], None);
    assert_eq!(again.status, 200);
}

#[test]
fn serve_binds_before_it_makes_its_storage() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    for addr in [busy_addr.as_str(), "nonsense", "256.0.0.1:5000"] {
        let root = dir.path().join("registry");
        let out = Command::new(bin())
            .args(["serve", "--addr", addr, "--root"])
            .arg(&root)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{addr}: {stderr}");
        assert!(
            stderr.contains(&format!("listen on {addr}")),
            "{addr}: {stderr}"
        );
        assert!(!root.exists(), "{addr}: the storage was made");
    }
}

#[test]
fn a_stalled_upload_is_cut_off_and_the_session_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(
        &dir.path().join("registry"),
        &["--header-timeout", "5s", "--idle-timeout", "1s"],
    );
    let start = request("POST", &server.url("/v2/a/blobs/uploads/"), &[], None);
    let location = start.header("location").unwrap().to_string();
    // 10 bytes of a promised 1000, then nothing.
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    write!(
        tcp,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    )
    .unwrap();
    tcp.write_all(&[7; 10]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = Vec::new();
    let read = tcp.read_to_end(&mut answer);
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled connection was not closed: {read:?}"
    );
    // The session is where it was: no half chunk kept.
    let status = request("GET", &server.url(&location), &[], None);
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-0"));
}
