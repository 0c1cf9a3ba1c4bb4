//! The book's sample output for part 6, recorded from the real thing: HTTP
//! conversations with our registry, request by request (upload sessions,
//! manifests, tags, referrers, errors), and the private-registry story end
//! to end (serve, tag, push, pull into another store). Each is an insta
//! snapshot; `cargo xtask book-sync` copies it to `book/src/output/`.
//!
//! Every conversation also asserts what it shows, so a snapshot can only
//! hold an answer the protocol allows.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_test_support::{Run, command, regex_escape, skip};
use ch05_images::reference::Reference;
use ch05_images::store::Store;
use common::*;

/// One request and its answer, rendered as the book shows them.
struct Conversation<'a> {
    server: &'a Server,
    text: String,
}

/// What came back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A body as the book prints it: JSON as text (pretty-printed if it came
/// on one line), anything else as its size.
fn show_body(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok();
    match (text, serde_json::from_slice::<serde_json::Value>(bytes)) {
        (Some(text), Ok(_)) if text.contains('\n') => Some(text.trim_end().to_string()),
        (Some(_), Ok(value)) => serde_json::to_string_pretty(&value).ok(),
        (Some(text), Err(_))
            if text.len() <= 80 && text.chars().all(|c| c == '\n' || !c.is_control()) =>
        {
            Some(text.trim_end().to_string())
        }
        _ => Some(format!("[{} bytes]", bytes.len())),
    }
}

impl<'a> Conversation<'a> {
    fn new(server: &'a Server) -> Conversation<'a> {
        Conversation {
            server,
            text: String::new(),
        }
    }

    /// A new connection for every request, as `curl` would make: the book
    /// shows each exchange on its own.
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .build()
            .into()
    }

    /// A line of explanation between exchanges.
    fn note(&mut self, words: &str) {
        self.text.push_str(&format!("# {words}\n"));
    }

    /// Sends `method path` with `headers` and `body`; records both sides.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        self.send_with(method, path, headers, body, None)
    }

    /// [`Conversation::send`], showing `label` instead of the body.
    fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        label: Option<&str>,
    ) -> Answer {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(self.server.url(path));
        self.text.push_str(&format!("> {method} {path}\n"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
            self.text.push_str(&format!(">   {name}: {value}\n"));
        }
        let response = match body {
            Some(bytes) => {
                self.text
                    .push_str(&format!(">   content-length: {}\n", bytes.len()));
                Self::agent().run(builder.body(bytes.to_vec()).unwrap())
            }
            None => Self::agent().run(builder.body(()).unwrap()),
        };
        let shown = match label {
            Some(label) => Some(label.to_string()),
            None => body.and_then(show_body),
        };
        if let Some(shown) = shown {
            for line in shown.lines() {
                self.text.push_str(&format!(">   | {line}\n"));
            }
        }
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response.body_mut().read_to_vec().unwrap()
        };
        self.text.push_str(&format!(
            "< {} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
        for (name, value) in &headers {
            // Every answer has these two; the first exchange shows them.
            if name == "date" || (name == "docker-distribution-api-version" && path != "/v2/") {
                continue;
            }
            self.text.push_str(&format!("<   {name}: {value}\n"));
        }
        if let Some(shown) = show_body(&body) {
            for line in shown.lines() {
                self.text.push_str(&format!("<   | {line}\n"));
            }
        }
        self.text.push('\n');
        Answer {
            status: status.as_u16(),
            headers,
            body,
        }
    }
}

/// The filters of every snapshot here: the server's address, upload
/// session ids, temporary directories, timings.
fn settings(addr: &str) -> insta::Settings {
    let mut s = berth_test_support::snapshot_settings();
    s.add_filter(&regex_escape(addr), "[REGISTRY]");
    s.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    );
    s.add_filter(r"\b[0-9]+\.[0-9] ms\b", "[TIME]");
    s
}

#[test]
fn book_a_chunked_upload() {
    let server = Server::start();
    let blob = pattern(2500, 1);
    let digest = sha256(&blob);
    let octets = ("content-type", "application/octet-stream");
    let mut c = Conversation::new(&server);

    c.note("Is this a registry, and may I use it?");
    let base = c.send("GET", "/v2/", &[], None);
    assert_eq!(base.status, 200);
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    c.note("Open an upload session.");
    let start = c.send("POST", "/v2/class/app/blobs/uploads/", &[], None);
    assert_eq!(start.status, 202);
    let location = start.header("location").unwrap().to_string();
    assert_eq!(start.header("range"), Some("0-0"));

    c.note("The first 1000 bytes (Content-Range is inclusive).");
    let first = c.send(
        "PATCH",
        &location,
        &[octets, ("content-range", "0-999")],
        Some(&blob[..1000]),
    );
    assert_eq!((first.status, first.header("range")), (202, Some("0-999")));

    c.note("A chunk that skips bytes 1000-1999 is refused, and the answer says where we are.");
    let skipped = c.send(
        "PATCH",
        &location,
        &[octets, ("content-range", "2000-2499")],
        Some(&blob[2000..]),
    );
    assert_eq!(
        (skipped.status, skipped.code().as_str()),
        (416, "BLOB_UPLOAD_INVALID")
    );
    assert_eq!(skipped.header("range"), Some("0-999"));

    c.note("Where was I? (What a client asks after a broken connection.)");
    let status = c.send("GET", &location, &[], None);
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some("0-999"))
    );

    c.note("The next chunk in order.");
    let second = c.send(
        "PATCH",
        &location,
        &[octets, ("content-range", "1000-1999")],
        Some(&blob[1000..2000]),
    );
    assert_eq!(
        (second.status, second.header("range")),
        (202, Some("0-1999"))
    );

    c.note("Close the session with the digest of the whole blob, and the last chunk.");
    let put = c.send(
        "PUT",
        &format!("{location}?digest={digest}"),
        &[octets, ("content-range", "2000-2499")],
        Some(&blob[2000..]),
    );
    assert_eq!(put.status, 201);
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));

    c.note("The blob is there, under its digest; the session is gone.");
    let head = c.send("HEAD", &format!("/v2/class/app/blobs/{digest}"), &[], None);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("2500"))
    );
    let gone = c.send("GET", &location, &[], None);
    assert_eq!(
        (gone.status, gone.code().as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );

    settings(&server.addr).bind(|| insta::assert_snapshot!("ch06_http_chunked_upload", c.text));
}

#[test]
fn book_monolithic_uploads_mounts_and_a_wrong_digest() {
    let server = Server::start();
    let blob = b"hello, registry\n";
    let digest = sha256(blob);
    let octets = ("content-type", "application/octet-stream");
    let mut c = Conversation::new(&server);

    c.note("The whole blob in one request: POST with ?digest=.");
    let post = c.send(
        "POST",
        &format!("/v2/class/app/blobs/uploads/?digest={digest}"),
        &[octets],
        Some(blob),
    );
    assert_eq!(post.status, 201);

    c.note("Bytes that do not hash to the digest named: refused, nothing stored.");
    let before = server.files();
    let wrong = c.send(
        "POST",
        &format!("/v2/class/app/blobs/uploads/?digest={digest}"),
        &[octets],
        Some(b"hello, registrY\n"),
    );
    assert_eq!(
        (wrong.status, wrong.code().as_str()),
        (400, "DIGEST_INVALID")
    );
    assert_eq!(server.files(), before);

    c.note("Another repository has no link to the blob yet...");
    let head = c.send("HEAD", &format!("/v2/team/tool/blobs/{digest}"), &[], None);
    assert_eq!(head.status, 404);

    c.note("...so it asks to mount it from class/app: no bytes sent.");
    let mount = c.send(
        "POST",
        &format!("/v2/team/tool/blobs/uploads/?mount={digest}&from=class/app"),
        &[],
        None,
    );
    assert_eq!(mount.status, 201);
    let head = c.send("HEAD", &format!("/v2/team/tool/blobs/{digest}"), &[], None);
    assert_eq!(head.status, 200);

    // One copy of the content, two links.
    let files = server.files();
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        files
            .iter()
            .filter(|f| f.ends_with(hex))
            .cloned()
            .collect::<Vec<_>>(),
        [
            format!("blobs/sha256/{hex}"),
            format!("repositories/class/app/_blobs/sha256/{hex}"),
            format!("repositories/team/tool/_blobs/sha256/{hex}"),
        ]
    );
    let text = format!(
        "{}# The storage afterwards:\n{}\n",
        c.text,
        files
            .iter()
            .filter(|f| !f.ends_with("registry.lock"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    settings(&server.addr).bind(|| insta::assert_snapshot!("ch06_http_monolithic", text));
}

#[test]
fn book_manifests_by_tag_and_digest() {
    let server = Server::start();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = pattern(1000, 2);
    push_blob(&server, "class/app", config);
    let manifest = image_manifest(config, &[&layer], serde_json::json!({}));
    let digest = sha256(&manifest);
    let mut c = Conversation::new(&server);

    c.note("The config is in, the layer is not: the manifest is refused.");
    let refused = c.send(
        "PUT",
        "/v2/class/app/manifests/1.0",
        &[("content-type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    push_blob(&server, "class/app", &layer);

    c.note("(The layer is pushed.) Now the manifest goes in, under tag 1.0.");
    let put = c.send_with(
        "PUT",
        "/v2/class/app/manifests/1.0",
        &[("content-type", OCI_MANIFEST)],
        Some(&manifest),
        Some("(the same bytes)"),
    );
    assert_eq!(put.status, 201);
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));

    c.note("Pulled by tag: the same bytes, their type, their digest.");
    let by_tag = c.send(
        "GET",
        "/v2/class/app/manifests/1.0",
        &[("accept", OCI_MANIFEST)],
        None,
    );
    assert_eq!(by_tag.body, manifest);
    assert_eq!(sha256(&by_tag.body), digest);

    c.note("Asked by digest, HEAD says whether it exists and how big it is.");
    let by_digest = c.send(
        "HEAD",
        &format!("/v2/class/app/manifests/{digest}"),
        &[],
        None,
    );
    assert_eq!(by_digest.status, 200);
    assert_eq!(
        by_digest.header("content-length"),
        Some(manifest.len().to_string().as_str())
    );

    c.note("A tag that does not exist.");
    let unknown = c.send("GET", "/v2/class/app/manifests/2.0", &[], None);
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );

    c.note("A name that cannot be a repository.");
    let invalid = c.send("GET", "/v2/Class/App/manifests/1.0", &[], None);
    assert_eq!(
        (invalid.status, invalid.code().as_str()),
        (400, "NAME_INVALID")
    );

    settings(&server.addr).bind(|| insta::assert_snapshot!("ch06_http_manifests", c.text));
}

#[test]
fn book_tags_page_by_page() {
    let server = Server::start();
    let (_, _, manifest) = push_small_image(&server, "class/app", "1.0", 3);
    for tag in ["1.1", "2.0", "latest", "stable"] {
        let reply = put_manifest(&server, "class/app", tag, OCI_MANIFEST, &manifest);
        assert_eq!(reply.status, 201);
    }
    let mut c = Conversation::new(&server);

    c.note("All the tags at once, in byte order.");
    let all = c.send("GET", "/v2/class/app/tags/list", &[], None);
    assert_eq!(
        all.json()["tags"],
        serde_json::json!(["1.0", "1.1", "2.0", "latest", "stable"])
    );

    c.note("Two at a time: the Link header names the next page.");
    let mut path = "/v2/class/app/tags/list?n=2".to_string();
    let mut pages = Vec::new();
    loop {
        let page = c.send("GET", &path, &[], None);
        pages.push(page.json()["tags"].clone());
        match page.header("link") {
            Some(link) => {
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string();
            }
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            serde_json::json!(["1.0", "1.1"]),
            serde_json::json!(["2.0", "latest"]),
            serde_json::json!(["stable"]),
        ]
    );

    c.note("The repositories of the registry, the same way.");
    let catalog = c.send("GET", "/v2/_catalog", &[], None);
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["class/app"])
    );

    settings(&server.addr).bind(|| insta::assert_snapshot!("ch06_http_tags", c.text));
}

#[test]
fn book_referrers() {
    let server = Server::start();
    let (_, _, image) = push_small_image(&server, "class/app", "1.0", 4);
    let image_digest = sha256(&image);
    let empty = b"{}";
    push_blob(&server, "class/app", empty);
    let signature = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [],
        "subject": descriptor(OCI_MANIFEST, &image),
        "annotations": {"org.example.signed-by": "teacher"},
    }))
    .unwrap();
    let signature_digest = sha256(&signature);
    let mut c = Conversation::new(&server);

    c.note("A signature of image 1.0: its subject is the image's manifest.");
    let put = c.send(
        "PUT",
        &format!("/v2/class/app/manifests/{signature_digest}"),
        &[("content-type", OCI_MANIFEST)],
        Some(&signature),
    );
    assert_eq!(put.status, 201);
    assert_eq!(put.header("oci-subject"), Some(image_digest.as_str()));

    c.note("What refers to the image?");
    let referrers = c.send(
        "GET",
        &format!("/v2/class/app/referrers/{image_digest}"),
        &[],
        None,
    );
    assert_eq!(referrers.status, 200);
    assert_eq!(
        referrers.json()["manifests"][0]["digest"],
        signature_digest.as_str()
    );

    c.note("Only SBOMs, please: none.");
    let sboms = c.send(
        "GET",
        &format!(
            "/v2/class/app/referrers/{image_digest}?artifactType=application/vnd.example.sbom"
        ),
        &[],
        None,
    );
    assert_eq!(sboms.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(sboms.json()["manifests"], serde_json::json!([]));

    settings(&server.addr).bind(|| insta::assert_snapshot!("ch06_http_referrers", c.text));
}

/// `ch05-images`, built beside `ch06-registry` (`cargo test --workspace` and
/// `cargo build` build every chapter's binary; `cargo test -p
/// ch06-registry` alone does not).
fn ch05_images(test: &str) -> Option<PathBuf> {
    let path = bin().with_file_name("ch05-images");
    if path.is_file() {
        Some(path)
    } else {
        skip(
            test,
            &format!(
                "{} is not built: run `cargo build -p ch05-images` first (cargo test --workspace builds it)",
                path.display()
            ),
        );
        None
    }
}

/// A command in the story's fixed environment, with no docker config.
fn story_command(binary: &Path, work: &Path, args: &[&str]) -> Command {
    let mut cmd = command(binary);
    cmd.env("DOCKER_CONFIG", work.join("no-docker-config"))
        .args(args);
    cmd
}

/// The private-registry story: run a registry, name an image for it, push,
/// push again, push to another repository, pull into another store.
#[test]
fn book_a_private_registry_end_to_end() {
    let test = "book_a_private_registry_end_to_end";
    let Some(ch05) = ch05_images(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let rootfs = w.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/motd"), "served by our own registry\n").unwrap();
    let registry_root = w.join("registry");
    let server = Server::start_in(&registry_root, &[]);
    let store = w.join("store").to_str().unwrap().to_string();
    let other = w.join("other").to_str().unwrap().to_string();
    let image = format!("{}/class/motd:1", server.addr);
    let team = format!("{}/team/motd:stable", server.addr);

    server.wait_for_log("listening on");
    let mut transcript = format!(
        "$ ch06-registry serve --addr 127.0.0.1:0 --root {} &\n{}\n",
        registry_root.display(),
        server
            .log()
            .lines()
            .next()
            .map(|l| format!("[stderr] {l}"))
            .unwrap()
    );
    let steps: Vec<(&Path, Vec<&str>)> = vec![
        (
            &ch05,
            vec![
                "--root",
                &store,
                "import",
                rootfs.to_str().unwrap(),
                "motd:1",
            ],
        ),
        (&ch05, vec!["--root", &store, "tag", "motd:1", &image]),
        (&ch05, vec!["--root", &store, "images"]),
    ];
    let push_steps: Vec<Vec<&str>> = vec![
        vec!["push", "--root", &store, &image],
        vec!["push", "--root", &store, &image],
        vec!["push", "--root", &store, &image, &team],
    ];
    let pull_steps: Vec<Vec<&str>> = vec![
        vec!["--root", &other, "pull", &team],
        vec!["--root", &other, "images"],
    ];
    let mut run = |binary: &Path, args: &[&str]| {
        let r = Run::capture(story_command(binary, w, args));
        assert_eq!(r.code(), Some(0), "{}", r.transcript());
        transcript.push_str(&r.transcript());
        r
    };
    for (binary, args) in &steps {
        run(binary, args);
    }
    // Each push, and what the registry logged for it: its last request is
    // the manifest's PUT, logged once the answer is sent.
    let mut pushes = Vec::new();
    let mut push_log = String::new();
    let titles = [
        "the first push",
        "the same push again",
        "to another repository",
    ];
    for (args, title) in push_steps.iter().zip(titles) {
        let before = server.log().lines().count();
        pushes.push(run(&bin(), args).stdout());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let lines = loop {
            let lines: Vec<String> = server
                .log()
                .lines()
                .skip(before)
                .map(str::to_string)
                .collect();
            if lines.iter().any(|l| l.contains("/manifests/")) {
                break lines;
            }
            assert!(std::time::Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        push_log.push_str(&format!("# {title}\n"));
        for line in lines {
            push_log.push_str(&line);
            push_log.push('\n');
        }
    }
    for args in &pull_steps {
        run(&ch05, args);
    }
    // The first push sends config and layer, the second nothing, the
    // third mounts both from class/motd.
    assert_eq!(pushes[0].matches(": Pushed\n").count(), 2, "{}", pushes[0]);
    assert_eq!(
        pushes[1].matches(": Layer already exists\n").count(),
        2,
        "{}",
        pushes[1]
    );
    assert_eq!(
        pushes[2].matches(": Mounted from class/motd\n").count(),
        2,
        "{}",
        pushes[2]
    );
    assert!(
        push_log.contains("PUT /v2/class/motd/manifests/1 201"),
        "{push_log}"
    );

    // The image's three digests, from the store: the snapshot names them
    // by role, so it shows that the same image went in and came out.
    let source = Store::open(&store).unwrap();
    let manifest = source
        .resolve(&Reference::parse("motd:1").unwrap().to_string())
        .unwrap()
        .unwrap();
    let mut bytes = Vec::new();
    source
        .open_blob(&manifest)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let config = parsed["config"]["digest"].as_str().unwrap().to_string();
    let layer = parsed["layers"][0]["digest"].as_str().unwrap().to_string();
    let pulled = Store::open(&other)
        .unwrap()
        .resolve(&Reference::parse(&team).unwrap().to_string())
        .unwrap();
    assert_eq!(pulled.as_deref(), Some(manifest.as_str()));
    assert!(
        transcript.contains(&format!("Digest: {manifest}")),
        "{transcript}"
    );

    let mut s = settings(&server.addr);
    for (digest, role) in [
        (&manifest, "MANIFEST"),
        (&config, "CONFIG"),
        (&layer, "LAYER"),
    ] {
        let hex = digest.trim_start_matches("sha256:");
        s.add_filter(&format!("sha256:{hex}"), format!("sha256:[{role}]"));
        s.add_filter(&format!(r"\b{}\b", &hex[..12]), format!("[{role}-ID]"));
    }
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"\([0-9.]+ [KMG]?i?B\)", "([SIZE])");
    s.add_filter(r"\t[0-9.]+ [KMG]?i?B\n", "\t[SIZE]\n");
    s.bind(|| {
        insta::assert_snapshot!("ch06_private_registry", transcript);
        insta::assert_snapshot!("ch06_push_access_log", push_log);
    });
}

/// Garbage collection: a manifest deleted over the API leaves its blobs
/// behind; `gc` refuses to run beside the server, then (stopped) shows what
/// it would remove and removes it.
#[test]
fn book_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let mut server = Server::start_in(&root, &[]);
    push_small_image(&server, "class/app", "1", 5);
    let (config, layer, manifest) = push_small_image(&server, "class/app", "2", 6);
    let mut c = Conversation::new(&server);
    c.note("Image 2 is deleted: its manifest and every tag on it.");
    let delete = c.send(
        "DELETE",
        &format!("/v2/class/app/manifests/{}", sha256(&manifest)),
        &[],
        None,
    );
    assert_eq!(delete.status, 202);
    let mut transcript = c.text.clone();

    let gc = |extra: &[&str]| {
        let mut cmd = command(&bin());
        cmd.args(["gc", "--root"]).arg(&root).args(extra);
        Run::capture(cmd)
    };
    let refused = gc(&[]);
    assert_eq!(refused.code(), Some(1), "{}", refused.transcript());
    transcript.push_str(&refused.transcript());

    let before = server.log().lines().count();
    assert!(server.stop().success());
    transcript.push_str("$ kill -TERM $REGISTRY_PID\n");
    for line in server
        .log()
        .lines()
        .skip(before)
        .filter(|l| l.starts_with("ch06-registry:"))
    {
        transcript.push_str(&format!("[stderr] {line}\n"));
    }

    let files = server.files();
    let dry = gc(&["--dry-run"]);
    assert_eq!(dry.code(), Some(0), "{}", dry.transcript());
    assert_eq!(server.files(), files, "a dry run changes nothing");
    transcript.push_str(&dry.transcript());
    let run = gc(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    transcript.push_str(&run.transcript());

    // Image 2's config, layer and manifest are gone; image 1 is whole.
    for bytes in [&config, &layer, &manifest] {
        let hex = sha256(bytes).trim_start_matches("sha256:").to_string();
        assert!(
            !server.files().iter().any(|f| f.ends_with(&hex)),
            "{hex} is still there"
        );
    }
    let server = Server::start_in(&root, &[]);
    let image1 = request("GET", &server.url("/v2/class/app/manifests/1"), &[], None);
    assert_eq!(image1.status, 200);
    let parsed: serde_json::Value = serde_json::from_slice(&image1.body).unwrap();
    for blob in [&parsed["config"]["digest"], &parsed["layers"][0]["digest"]] {
        let url = server.url(&format!("/v2/class/app/blobs/{}", blob.as_str().unwrap()));
        assert_eq!(request("HEAD", &url, &[], None).status, 200);
    }

    let mut s = settings(&server.addr);
    s.add_filter(r"\$REGISTRY_PID", "[PID]");
    s.bind(|| insta::assert_snapshot!("ch06_gc", transcript));
}
