//! The bearer-token flow, as Docker Hub runs it: the registry answers 401
//! with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, the
//! client fetches a token for that scope from the realm and retries with
//! it. Until chapter 6's registry issues real tokens, a small gate made for
//! this test plays registry front door and token server, in front of a
//! real docker-registry.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_test_support::probe::probe_rootfs;
use berth_test_support::registry::{TestRegistry, oci_ref, require_tool, skopeo_copy};
use berth_test_support::{Run, bin_path, command};

fn bin() -> std::path::PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

/// What the gate saw.
#[derive(Default, Debug)]
struct Seen {
    /// The scope of each token asked for, and the Basic user who asked.
    tokens: Vec<(String, Option<String>)>,
    /// Requests turned away with 401.
    challenged: usize,
    /// Blob requests answered 503 on purpose.
    failed: usize,
    /// Requests that reached the blob storage behind a redirect, and
    /// whether each carried an Authorization header.
    storage: Vec<bool>,
}

/// How the gate misbehaves, like real registries do.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Answer each blob's first request with 503 Service Unavailable.
    fail_first_blob_request: bool,
    /// Send blob requests to "storage" (`/storage/...`) with a 307, as
    /// Docker Hub sends them to its CDN.
    redirect_blobs: bool,
}

/// An HTTP server that demands `Bearer tok:<scope>` on every /v2/ request,
/// hands out such tokens at /token, and forwards authorised requests to
/// the registry behind it.
struct Gate {
    addr: String,
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    fn start(upstream: String) -> Gate {
        Gate::start_with(upstream, Behaviour::default())
    }

    fn start_with(upstream: String, behaviour: Behaviour) -> Gate {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let thread = {
            let (server, seen, addr) = (server.clone(), seen.clone(), addr.clone());
            std::thread::spawn(move || serve(&server, &seen, &addr, &upstream, behaviour))
        };
        Gate {
            addr,
            server,
            seen,
            thread: Some(thread),
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.to_string())
}

fn serve(
    server: &tiny_http::Server,
    seen: &Mutex<Seen>,
    addr: &str,
    upstream: &str,
    behaviour: Behaviour,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut failed_once = std::collections::HashSet::new();
    for request in server.incoming_requests() {
        let url = request.url().to_string();
        // The "blob storage" a redirect leads to: open, like a pre-signed
        // URL, and it must not be sent the registry's token.
        if let Some(path) = url.strip_prefix("/storage") {
            let authorized = header(&request, "Authorization").is_some();
            seen.lock().unwrap().storage.push(authorized);
            forward(&agent, request, &format!("http://{upstream}{path}"));
            continue;
        }
        if let Some(query) = url.strip_prefix("/token?") {
            let scope = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("scope="))
                .unwrap_or_default()
                .replace("%3A", ":")
                .replace("%2F", "/");
            let user = header(&request, "Authorization").and_then(|a| {
                use base64::Engine as _;
                let b = a.strip_prefix("Basic ")?;
                let pair = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
                let pair = String::from_utf8(pair).ok()?;
                Some(pair.split(':').next()?.to_string())
            });
            seen.lock().unwrap().tokens.push((scope.clone(), user));
            let body = serde_json::json!({"token": format!("tok:{scope}"), "expires_in": 300});
            let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
            continue;
        }
        // /v2/<repository>/(manifests|blobs)/<ref>: the scope it needs.
        let repository = url
            .trim_start_matches("/v2/")
            .rsplitn(3, '/')
            .nth(2)
            .unwrap_or_default()
            .to_string();
        let wanted = format!("Bearer tok:repository:{repository}:pull");
        if header(&request, "Authorization").as_deref() != Some(wanted.as_str()) {
            seen.lock().unwrap().challenged += 1;
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="berth-test",scope="repository:{repository}:pull""#
            );
            let response = tiny_http::Response::from_string(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .with_status_code(401)
            .with_header(tiny_http::Header::from_bytes("WWW-Authenticate", challenge).unwrap())
            .with_header(
                tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
            );
            let _ = request.respond(response);
            continue;
        }
        if url.contains("/blobs/") {
            if behaviour.fail_first_blob_request && failed_once.insert(url.clone()) {
                seen.lock().unwrap().failed += 1;
                let _ = request.respond(
                    tiny_http::Response::from_string(
                        r#"{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}"#,
                    )
                    .with_status_code(503),
                );
                continue;
            }
            if behaviour.redirect_blobs {
                let location = format!("http://{addr}/storage{url}");
                let _ = request.respond(
                    tiny_http::Response::empty(307)
                        .with_header(tiny_http::Header::from_bytes("Location", location).unwrap()),
                );
                continue;
            }
        }
        forward(&agent, request, &format!("http://{upstream}{url}"));
    }
}

/// Forward `request` to `target` and stream the answer back.
fn forward(agent: &ureq::Agent, request: tiny_http::Request, target: &str) {
    let mut forward = agent.get(target);
    if let Some(accept) = header(&request, "Accept") {
        forward = forward.header("Accept", accept);
    }
    let Ok(response) = forward.call() else {
        let _ = request.respond(tiny_http::Response::empty(502));
        return;
    };
    let mut headers = vec![];
    for name in ["Content-Type", "Docker-Content-Digest"] {
        if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.push(tiny_http::Header::from_bytes(name, v).unwrap());
        }
    }
    let status = response.status().as_u16();
    let length = response.body().content_length().map(|l| l as usize);
    let body = response.into_body().into_reader();
    let _ = request.respond(tiny_http::Response::new(
        status.into(),
        headers,
        body,
        length,
        None,
    ));
}

/// A docker-registry holding the probe image as `berth/probe:1`, put there
/// by skopeo from the OCI layout ch05 saves; `None` (after a skip) without
/// the tools.
fn registry_with_probe(test: &str) -> Option<TestRegistry> {
    if !require_tool(test, "skopeo") {
        return None;
    }
    let registry = TestRegistry::start(test)?;
    let source = tempfile::tempdir().unwrap();
    let base = probe_rootfs();
    let layout = source.path().join("layout");
    for args in [
        vec!["import", base.path.to_str().unwrap(), "berth/test:1"],
        vec![
            "save",
            "--format",
            "oci",
            "-o",
            layout.to_str().unwrap(),
            "berth/test:1",
        ],
    ] {
        let mut cmd = command(&bin());
        cmd.arg("--root").arg(source.path()).args(&args);
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
    }
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &registry.skopeo_ref("berth/probe:1"),
    );
    Some(registry)
}

fn settings(gate: &Gate) -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(&berth_test_support::regex_escape(&gate.addr), "[REGISTRY]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[ID]");
    s.add_filter(r"\([0-9.]+ [KMG]?i?B\)", "([SIZE])");
    s.add_filter(r"content-length: [0-9]+", "content-length: [N]");
    s
}

#[test]
fn bearer_tokens_scoped_to_the_repository() {
    // The test image goes straight into the registry (behind the gate's back).
    let Some(registry) = registry_with_probe("bearer_tokens_scoped_to_the_repository") else {
        return;
    };
    let gate = Gate::start(registry.addr.clone());
    let image = format!("{}/berth/probe:1", gate.addr);

    // Anonymous, as for a public image on Docker Hub.
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root").arg(state.path()).args(["pull", &image]);
    cmd.env("BERTH_TRACE_HTTP", "1");
    let pull = Run::capture(cmd);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());
    {
        let seen = gate.seen.lock().unwrap();
        assert_eq!(
            seen.tokens,
            vec![("repository:berth/probe:pull".to_string(), None)],
            "one token, for this repository only, reused for every request"
        );
        assert_eq!(
            seen.challenged, 1,
            "challenged once, then the token is sent"
        );
    }
    settings(&gate).bind(|| insta::assert_snapshot!("ch05_pull_token", pull.transcript()));
    assert!(!pull.stderr().contains("tok:"), "tokens are never printed");

    // With credentials: the token server gets them, as Basic auth.
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(state.path())
        .args(["pull", "--username", "teacher", "--password-stdin", &image])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "s3cret").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = gate.seen.lock().unwrap();
    assert_eq!(
        seen.tokens.last().unwrap(),
        &(
            "repository:berth/probe:pull".to_string(),
            Some("teacher".to_string())
        )
    );
}

#[test]
fn redirects_to_blob_storage_and_transient_failures() {
    let Some(registry) = registry_with_probe("redirects_to_blob_storage_and_transient_failures")
    else {
        return;
    };
    let gate = Gate::start_with(
        registry.addr.clone(),
        Behaviour {
            fail_first_blob_request: true,
            redirect_blobs: true,
        },
    );
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(state.path())
        .args(["pull", &format!("{}/berth/probe:1", gate.addr)])
        .env("BERTH_TRACE_HTTP", "1");
    let pull = Run::capture(cmd);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());
    let seen = gate.seen.lock().unwrap();
    assert_eq!(seen.failed, 2, "each blob (config, layer) failed once...");
    assert_eq!(
        seen.storage,
        vec![false, false],
        "...then was fetched from storage once, without the registry's token"
    );
    let storage = format!(
        "< (redirected to http://{}/storage/v2/berth/probe/blobs/sha256:",
        gate.addr
    );
    assert!(pull.stderr().contains(&storage), "{}", pull.transcript());
    assert!(pull.stderr().contains("retry 1"), "{}", pull.transcript());
}
