//! Chapter 5 against a real registry: Debian's docker-registry (the CNCF
//! distribution registry) on 127.0.0.1, filled by skopeo from the OCI
//! layout our `save` writes. Nothing leaves the machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_test_support::probe::{ProbeRootfs, probe_rootfs};
use berth_test_support::registry::{
    RegistryConfig, TestRegistry, oci_ref, require_tool, skopeo_copy, skopeo_digest,
};
use berth_test_support::{Run, bin_path, command};
use sha2::Digest as _;

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

/// A store to pull into, a store the test image is made in, and a registry.
struct Setup {
    state: tempfile::TempDir,
    source: tempfile::TempDir,
    base: ProbeRootfs,
    registry: TestRegistry,
}

impl Setup {
    fn new(test: &str) -> Option<Setup> {
        Setup::with(test, RegistryConfig::default())
    }

    fn with(test: &str, config: RegistryConfig) -> Option<Setup> {
        if !require_tool(test, "skopeo") {
            return None;
        }
        Some(Setup {
            registry: TestRegistry::start_with(test, config)?,
            state: tempfile::tempdir().unwrap(),
            source: tempfile::tempdir().unwrap(),
            base: probe_rootfs(),
        })
    }

    fn root(&self) -> &Path {
        self.state.path()
    }

    /// `ch05-images --root STATE ARGS...`.
    fn ch05_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = command(&bin());
        cmd.arg("--root").arg(self.root()).args(args);
        cmd
    }

    fn ch05(&self, args: &[&str]) -> Run {
        Run::capture(self.ch05_cmd(args))
    }

    /// `ch05-images` on the source store.
    fn source(&self, args: &[&str]) -> Run {
        let mut cmd = command(&bin());
        cmd.arg("--root").arg(self.source.path()).args(args);
        let run = Run::capture(cmd);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run
    }

    /// Import `dir` as `berth/test:1` in the source store, save it as an
    /// OCI layout and copy that into the registry as `repo_tag`; returns
    /// the layout.
    fn push(&self, dir: &Path, repo_tag: &str) -> PathBuf {
        self.push_with(dir, &[], repo_tag)
    }

    /// [`Setup::push`] with more `import` options (the image's config).
    fn push_with(&self, dir: &Path, config: &[&str], repo_tag: &str) -> PathBuf {
        let mut import = vec!["import", dir.to_str().unwrap(), "berth/test:1"];
        import.extend(config);
        self.source(&import);
        let layout = self.source.path().join("layout");
        let _ = std::fs::remove_dir_all(&layout);
        self.source(&[
            "save",
            "--format",
            "oci",
            "-o",
            layout.to_str().unwrap(),
            "berth/test:1",
        ]);
        skopeo_copy(
            &[],
            &oci_ref(&layout, "1"),
            &self.registry.skopeo_ref(repo_tag),
        );
        layout
    }

    fn image_ref(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.addr)
    }
}

fn settings(registry: &TestRegistry) -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(&regex_escape(&registry.addr), "[REGISTRY]");
    s.add_filter(r"--root /tmp/\.tmp[A-Za-z0-9]+ ", "--root [STATE] ");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[ID]");
    s.add_filter(r"\([0-9.]+ [KMG]?i?B\)", "([SIZE])");
    s.add_filter(r"content-length: [0-9]+", "content-length: [N]");
    s.add_filter(r"\t[0-9.]+ [KMG]iB\n", "\t[SIZE]\n");
    s.add_filter(r#""size": [0-9]+"#, r#""size": [SIZE]"#);
    s
}

fn regex_escape(text: &str) -> String {
    berth_test_support::regex_escape(text)
}

/// Every blob in `root` hashes to its name, and no layer or blob is under a
/// temporary name that looks final.
fn assert_store_verified(root: &Path) {
    let blobs = root.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_file() {
            continue;
        }
        let name = entry.file_name().into_string().unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            format!("{:x}", sha2::Sha256::digest(&bytes)),
            name,
            "blob {name} is not what its name says"
        );
    }
}

/// The blobs under their final names.
fn final_blobs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .map(|rd| {
            rd.map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Files left in the store's temporary directories.
fn temp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for dir in ["blobs/tmp", "layers/tmp"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn pull_by_tag_then_by_digest() {
    let Some(s) = Setup::new("pull_by_tag_then_by_digest") else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    let image = s.image_ref("berth/probe:1");
    let registry_digest = skopeo_digest(&s.registry.skopeo_ref("berth/probe:1"));

    let pull = s.ch05(&["pull", &image]);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());
    settings(&s.registry).bind(|| insta::assert_snapshot!("ch05_pull", pull.transcript()));
    assert!(
        pull.stdout()
            .contains(&format!("Digest: {registry_digest}")),
        "our digest is the registry's: {}",
        pull.transcript()
    );

    // The layer is unpacked: the probe binary is in it, byte for byte.
    let inspect = s.ch05(&["inspect", &image]);
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout()).unwrap();
    assert_eq!(json["Digest"], registry_digest.as_str());
    let diff_id = json["Config"]["rootfs"]["diff_ids"][0].as_str().unwrap();
    let layer = s
        .root()
        .join("layers/sha256")
        .join(diff_id.trim_start_matches("sha256:"));
    assert_eq!(
        std::fs::read(layer.join("usr/local/bin/berth-probe")).unwrap(),
        std::fs::read(s.base.path.join("usr/local/bin/berth-probe")).unwrap()
    );
    assert_store_verified(s.root());

    // Again: nothing downloaded.
    let again = s.ch05(&["pull", &image]);
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
    assert!(
        again.stdout().contains(": Already exists"),
        "{}",
        again.transcript()
    );
    assert!(again.stdout().contains("Status: Image is up to date"));

    // By digest, into an empty store: the same image, named by its digest.
    let by_digest = format!("{}/berth/probe@{registry_digest}", s.registry.addr);
    let other = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(other.path())
        .args(["pull", &by_digest]);
    let pulled = Run::capture(cmd);
    assert_eq!(pulled.code(), Some(0), "{}", pulled.transcript());
    let mut cmd = command(&bin());
    cmd.arg("--root").arg(other.path()).args(["images"]);
    let images = Run::capture(cmd).stdout();
    assert!(
        images.contains(&format!("{}/berth/probe\t<none>", s.registry.addr)),
        "{images}"
    );
    assert_eq!(final_blobs(other.path()), final_blobs(s.root()));
}

#[test]
fn the_http_conversation_of_a_pull() {
    let Some(s) = Setup::new("the_http_conversation_of_a_pull") else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    let mut cmd = s.ch05_cmd(&["pull", &s.image_ref("berth/probe:1")]);
    cmd.env("BERTH_TRACE_HTTP", "1");
    let pull = Run::capture(cmd);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());
    let stderr = pull.stderr();
    // The real protocol: the manifest asked for by tag with every media
    // type we accept, then the config and the layer by digest.
    assert!(
        stderr.contains("> GET /v2/berth/probe/manifests/1"),
        "{stderr}"
    );
    assert!(stderr.contains("application/vnd.oci.image.index.v1+json"));
    assert_eq!(
        stderr
            .matches("> GET /v2/berth/probe/blobs/sha256:")
            .count(),
        2
    );
    settings(&s.registry).bind(|| insta::assert_snapshot!("ch05_pull_http", pull.transcript()));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_index_gives_this_platform_unless_another_is_asked_for() {
    let Some(s) = Setup::new("an_index_gives_this_platform_unless_another_is_asked_for") else {
        return;
    };
    let single = s.push(&s.base.path, "berth/probe:1");
    let multi = s.source.path().join("multi");
    let two = berth_test_support::layout::two_platform_layout(
        &single,
        &multi,
        serde_json::to_value(ch05_images::oci::Platform::host()).unwrap(),
        serde_json::json!({"org.opencontainers.image.ref.name": "multi"}),
    );
    let (host_digest, arm_digest) = (two.host, two.arm);
    skopeo_copy(
        &["--all"],
        &oci_ref(&multi, "multi"),
        &s.registry.skopeo_ref("berth/multi:1"),
    );
    let image = s.image_ref("berth/multi:1");
    let manifest_of = |run: &Run| -> String {
        let inspect = s.ch05(&["inspect", &image]);
        assert_eq!(inspect.code(), Some(0), "{}", run.transcript());
        let json: serde_json::Value = serde_json::from_str(&inspect.stdout()).unwrap();
        json["Digest"].as_str().unwrap().to_string()
    };

    let pull = s.ch05(&["pull", &image]);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());
    assert_eq!(
        manifest_of(&pull),
        host_digest,
        "the host's entry is chosen"
    );

    let arm = s.ch05(&["pull", "--platform", "linux/arm64", &image]);
    assert_eq!(arm.code(), Some(0), "{}", arm.transcript());
    assert_eq!(manifest_of(&arm), arm_digest, "--platform picks the other");
    assert!(
        arm.stdout().contains(": Already exists"),
        "the layer is shared"
    );

    let before = final_blobs(s.root());
    let none = s.ch05(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(none.code(), Some(1), "{}", none.transcript());
    settings(&s.registry)
        .bind(|| insta::assert_snapshot!("ch05_pull_no_platform", none.transcript()));
    assert_eq!(final_blobs(s.root()), before, "nothing stored");
}

#[test]
fn basic_auth_with_an_htpasswd_file() {
    let config = RegistryConfig {
        htpasswd: Some(("teacher".into(), "s3cret".into())),
    };
    let Some(s) = Setup::with("basic_auth_with_an_htpasswd_file", config) else {
        return;
    };
    s.source(&["import", s.base.path.to_str().unwrap(), "berth/test:1"]);
    let layout = s.source.path().join("layout");
    s.source(&[
        "save",
        "--format",
        "oci",
        "-o",
        layout.to_str().unwrap(),
        "berth/test:1",
    ]);
    skopeo_copy(
        &["--dest-creds", "teacher:s3cret"],
        &oci_ref(&layout, "1"),
        &s.registry.skopeo_ref("class/probe:1"),
    );
    let image = s.image_ref("class/probe:1");

    let anonymous = s.ch05(&["pull", &image]);
    assert_eq!(anonymous.code(), Some(1), "{}", anonymous.transcript());
    settings(&s.registry)
        .bind(|| insta::assert_snapshot!("ch05_pull_unauthorized", anonymous.transcript()));
    assert!(final_blobs(s.root()).is_empty());

    let with_password = |password: &str| -> Run {
        let mut cmd = s.ch05_cmd(&["pull", "--username", "teacher", "--password-stdin", &image]);
        cmd.stdin(Stdio::piped());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            shown: "ch05-images pull --username teacher --password-stdin".into(),
            output,
        }
    };
    let wrong = with_password("guess");
    assert_eq!(wrong.code(), Some(1), "{}", wrong.transcript());
    assert!(
        wrong.stderr().contains("authentication required"),
        "{}",
        wrong.transcript()
    );
    let right = with_password("s3cret");
    assert_eq!(right.code(), Some(0), "{}", right.transcript());

    // As `docker login` leaves it: ~/.docker/config.json.
    let docker = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("teacher:s3cret");
    std::fs::write(
        docker.path().join("config.json"),
        serde_json::json!({"auths": {s.registry.addr.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(fresh.path())
        .args(["pull", &image])
        .env("DOCKER_CONFIG", docker.path());
    let from_config = Run::capture(cmd);
    assert_eq!(from_config.code(), Some(0), "{}", from_config.transcript());
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_kept() {
    let Some(s) = Setup::new("a_corrupted_blob_is_refused_and_nothing_is_kept") else {
        return;
    };
    let layout = s.push(&s.base.path, "berth/probe:1");
    // Flip one byte in the middle of the layer, in the registry's storage.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(manifest_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let data = s.registry.blob_data(layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let pull = s.ch05(&["pull", &s.image_ref("berth/probe:1")]);
    assert_eq!(pull.code(), Some(1), "{}", pull.transcript());
    assert!(
        pull.stderr().contains(layer) && pull.stderr().contains("does not match its digest"),
        "the error names the blob and the mismatch: {}",
        pull.transcript()
    );
    settings(&s.registry).bind(|| insta::assert_snapshot!("ch05_pull_corrupt", pull.transcript()));
    let kept = final_blobs(s.root());
    assert!(
        !kept.contains(&layer.trim_start_matches("sha256:").to_string()),
        "the bad layer is not kept"
    );
    // Nor the config that came before it: a failed pull is undone.
    assert_eq!(kept, Vec::<String>::new());
    assert!(
        temp_leftovers(s.root()).is_empty(),
        "{:?}",
        temp_leftovers(s.root())
    );
    let images = s.ch05(&["images"]);
    assert_eq!(
        images.stdout().lines().count(),
        1,
        "no image named: {}",
        images.stdout()
    );
}

#[test]
fn an_unknown_tag_or_repository_is_named() {
    let Some(s) = Setup::new("an_unknown_tag_or_repository_is_named") else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    let tag = s.ch05(&["pull", &s.image_ref("berth/probe:nope")]);
    assert_eq!(tag.code(), Some(1), "{}", tag.transcript());
    settings(&s.registry)
        .bind(|| insta::assert_snapshot!("ch05_pull_unknown_tag", tag.transcript()));
    let repo = s.ch05(&["pull", &s.image_ref("nobody/here:1")]);
    assert_eq!(repo.code(), Some(1), "{}", repo.transcript());
    assert!(repo.stderr().contains("not found"), "{}", repo.transcript());
    // Nothing answers on this port: a clear connection error, after retries.
    let port = berth_test_support::registry::free_port();
    let closed = s.ch05(&["pull", &format!("127.0.0.1:{port}/a/b:1")]);
    assert_eq!(closed.code(), Some(1), "{}", closed.transcript());
    assert!(
        closed.stderr().contains(&format!("127.0.0.1:{port}")),
        "{}",
        closed.transcript()
    );
    assert!(final_blobs(s.root()).is_empty());
}

#[test]
fn a_pull_killed_mid_transfer_leaves_no_half_blob_and_the_next_completes() {
    let Some(s) =
        Setup::new("a_pull_killed_mid_transfer_leaves_no_half_blob_and_the_next_completes")
    else {
        return;
    };
    // A layer big enough to be caught in flight: 96 MiB that gzip cannot
    // shrink.
    let big = tempfile::tempdir().unwrap();
    copy_dir(&s.base.path, big.path());
    let mut noise = vec![0u8; 96 << 20];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for chunk in noise.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(big.path().join("noise"), &noise).unwrap();
    drop(noise);
    s.push(big.path(), "berth/big:1");
    let image = s.image_ref("berth/big:1");

    let mut child = s
        .ch05_cmd(&["pull", "--jobs", "1", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a download is under way: a temp file with bytes in it.
    let tmp = s.root().join("blobs/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut caught = false;
    while std::time::Instant::now() < deadline {
        let in_flight = walk_files(&tmp)
            .into_iter()
            .any(|p| std::fs::metadata(&p).is_ok_and(|m| m.len() > 0));
        if in_flight {
            caught = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(caught, "the pull finished before it could be killed");

    assert_store_verified(s.root());
    let images = s.ch05(&["images"]);
    assert_eq!(
        images.stdout().lines().count(),
        1,
        "not named: {}",
        images.stdout()
    );

    let again = s.ch05(&["pull", &image]);
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
    assert_store_verified(s.root());
    let inspect = s.ch05(&["inspect", &image]);
    assert_eq!(inspect.code(), Some(0), "{}", inspect.transcript());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn two_pulls_of_one_image_at_once_corrupt_nothing() {
    let Some(s) = Setup::new("two_pulls_of_one_image_at_once_corrupt_nothing") else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    let image = s.image_ref("berth/probe:1");
    let children: Vec<_> = (0..2)
        .map(|_| {
            s.ch05_cmd(&["pull", &image])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_store_verified(s.root());
    assert!(
        temp_leftovers(s.root()).is_empty(),
        "{:?}",
        temp_leftovers(s.root())
    );
    let inspect = s.ch05(&["inspect", &image]);
    assert_eq!(inspect.code(), Some(0), "{}", inspect.transcript());
}

/// The classic docker session of the book's "what the book covers" —
/// pull, images, inspect, tag, save, rmi, load — replayed with ch05, one
/// transcript.
#[test]
fn the_classic_docker_session() {
    let Some(s) = Setup::new("the_classic_docker_session") else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    let image = s.image_ref("berth/probe:1");
    let archive = s.source.path().join("probe.tar");
    let archive = archive.to_str().unwrap();
    let steps: Vec<Vec<&str>> = vec![
        vec!["pull", &image],
        vec!["images"],
        vec!["tag", &image, "probe:classroom"],
        vec!["images"],
        vec!["save", "-o", archive, "probe:classroom"],
        vec!["rmi", "probe:classroom"],
        vec!["rmi", &image],
        vec!["images"],
        vec!["load", "-i", archive],
        vec!["images"],
    ];
    let mut transcript = String::new();
    for args in steps {
        let run = s.ch05(&args);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        transcript.push_str(&run.transcript());
    }
    let inspect = s.ch05(&["inspect", "probe:classroom"]);
    assert_eq!(inspect.code(), Some(0), "{}", inspect.transcript());
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout()).unwrap();
    assert_eq!(
        json["Config"]["rootfs"]["diff_ids"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let mut settings = settings(&s.registry);
    settings.add_filter(&regex_escape(archive), "[DIR]/probe.tar");
    settings.bind(|| {
        insta::assert_snapshot!("ch05_docker_session", transcript);
        insta::assert_snapshot!("ch05_inspect", inspect.transcript());
    });
}

/// An image with every part of its config set, pushed by skopeo and pulled
/// back, runs as its config says: Entrypoint + Cmd, Env, WorkingDir, and a
/// User given by name.
#[test]
fn a_pulled_image_runs_as_its_config_says() {
    if !berth_test_support::require_root("a_pulled_image_runs_as_its_config_says") {
        return;
    }
    let Some(s) = Setup::new("a_pulled_image_runs_as_its_config_says") else {
        return;
    };
    let probe = berth_test_support::probe::PROBE_IN_CONTAINER;
    let config = [
        "--entrypoint",
        probe,
        "--cmd",
        "cwd",
        "uid",
        "env",
        "-e",
        "GREETING=hello from the image",
        "-w",
        "/tmp",
        "-u",
        "nobody",
    ];
    s.push_with(&s.base.path, &config, "berth/configured:1");
    let image = s.image_ref("berth/configured:1");
    let pull = s.ch05(&["pull", &image]);
    assert_eq!(pull.code(), Some(0), "{}", pull.transcript());

    let run = s.ch05(&["run", "--rm", &image]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout();
    assert!(out.starts_with("cwd: /tmp\nuid: 65534/65534\n"), "{out}");
    assert!(
        out.contains("env: GREETING=hello from the image\n"),
        "{out}"
    );
    assert!(
        out.contains("env: HOME=/nonexistent\n"),
        "nobody's home: {out}"
    );

    // Arguments after the image replace Cmd and keep Entrypoint.
    let run = s.ch05(&["run", "--rm", &image, "uid"]);
    assert_eq!(run.stdout(), "uid: 65534/65534\n", "{}", run.transcript());
}

/// On a terminal, progress is drawn as bars (indicatif), not printed as the
/// plain lines a log gets.
#[test]
fn progress_bars_on_a_terminal() {
    let test = "progress_bars_on_a_terminal";
    if !require_tool(test, "script") {
        return;
    }
    let Some(s) = Setup::new(test) else {
        return;
    };
    s.push(&s.base.path, "berth/probe:1");
    // script(1) runs the pull on a pseudo-terminal and copies what it drew.
    let line = format!(
        "{} --root {} pull {}",
        bin().display(),
        s.root().display(),
        s.image_ref("berth/probe:1")
    );
    let mut cmd = command(Path::new("script"));
    cmd.args(["-qec", &line, "/dev/null"]);
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let drawn = run.stdout();
    assert!(drawn.contains(": pull complete"), "{drawn}");
    assert!(drawn.contains("] "), "a bar was drawn: {drawn}");
    assert!(
        !drawn.contains("pull complete ("),
        "no plain progress lines on a terminal: {drawn}"
    );
    assert!(drawn.contains("Status: Downloaded newer image"), "{drawn}");
}

#[test]
fn a_config_over_the_limit_is_refused_without_downloading_it() {
    let Some(s) = Setup::new("a_config_over_the_limit_is_refused_without_downloading_it") else {
        return;
    };
    let layout = s.push(&s.base.path, "berth/probe:1");
    // The same image with a 5 MiB config (a padded field), as a layout.
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let put = |bytes: &[u8]| {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(blob(&digest), bytes).unwrap();
        (digest, bytes.len())
    };
    let index = read(layout.join("index.json"));
    let mut manifest = read(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut config = read(blob(manifest["config"]["digest"].as_str().unwrap()));
    config["padding"] = "x".repeat(5 << 20).into();
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.clone().into();
    manifest["config"]["size"] = config_size.into();
    let (digest_of_manifest, _) = put(&serde_json::to_vec(&manifest).unwrap());
    let _ = index;
    // skopeo refuses such a config itself: upload by hand (POST a session,
    // PUT the blob to it with its digest), then the manifest.
    let base = format!("http://{}/v2/berth/huge", s.registry.addr);
    let agent = ureq::Agent::new_with_defaults();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for d in [&layer, &config_digest] {
        let session = agent
            .post(&format!("{base}/blobs/uploads/"))
            .send_empty()
            .unwrap();
        assert_eq!(session.status(), 202);
        let location = session.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("http://{}{location}", s.registry.addr)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let sent = agent
            .put(&format!("{location}{sep}digest={d}"))
            .header("Content-Type", "application/octet-stream")
            .send(&std::fs::read(blob(d)).unwrap()[..])
            .unwrap();
        assert_eq!(sent.status(), 201);
    }
    let sent = agent
        .put(&format!("{base}/manifests/1"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send(&std::fs::read(blob(&digest_of_manifest)).unwrap()[..])
        .unwrap();
    assert_eq!(sent.status(), 201);

    let pull = s.ch05(&["pull", &s.image_ref("berth/huge:1")]);
    assert_eq!(pull.code(), Some(1), "{}", pull.transcript());
    assert!(
        pull.stderr()
            .contains("over the 4194304-byte limit for a config: refused without downloading it"),
        "{}",
        pull.transcript()
    );
    assert_eq!(final_blobs(s.root()), Vec::<String>::new());
    assert!(temp_leftovers(s.root()).is_empty());
    let hex = config_digest.trim_start_matches("sha256:");
    let log = s.registry.log();
    assert!(
        log.lines()
            .any(|l| l.contains("GET") && l.contains("/v2/berth/huge/manifests/1")),
        "the log shows the requests: {log}"
    );
    assert!(
        !log.lines().any(|l| l.contains("GET") && l.contains(hex)),
        "the config was downloaded"
    );
}
