//! Chapter 5, images as files: `save` and `load` in both formats, with
//! skopeo and umoci as the other side, malicious archives refused, and
//! `import` of root filesystem tarballs.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::registry::{oci_ref, require_tool, skopeo_copy, skopeo_digest};
use berth_test_support::{Run, bin_path, command, require_root};

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

const NAME: &str = "berth/probe:1";

struct Setup {
    state: tempfile::TempDir,
    /// Where archives are written, and other stores live.
    work: tempfile::TempDir,
    base: berth_test_support::probe::ProbeRootfs,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            state: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            base: probe_rootfs(),
        }
    }
    fn ch05(&self, args: &[&str]) -> Run {
        ch05_in(self.state.path(), args)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
    /// The probe rootfs imported as [`NAME`]; its manifest digest.
    fn imported(&self) -> String {
        let base = self.base.path.to_str().unwrap();
        let import = self.ch05(&["import", base, NAME, "--cmd", PROBE_IN_CONTAINER, "cwd"]);
        assert_eq!(import.code(), Some(0), "{}", import.transcript());
        digest_of(&self.ch05(&["inspect", NAME]))
    }
    /// `save --format oci -o LAYOUT NAME`, as run (some tests expect failure).
    fn save_layout(&self, layout: &Path) -> Run {
        self.ch05(&[
            "save",
            "--format",
            "oci",
            "-o",
            layout.to_str().unwrap(),
            NAME,
        ])
    }
    /// A store of its own under the work directory.
    fn store(&self, name: &str) -> PathBuf {
        self.path(name)
    }
}

fn ch05_in(root: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--root", root.to_str().unwrap()];
    all.extend(args);
    Run::new(&bin(), all)
}

/// `Digest` from `inspect`'s output.
fn digest_of(inspect: &Run) -> String {
    assert_eq!(inspect.code(), Some(0), "{}", inspect.transcript());
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout()).unwrap();
    json["Digest"].as_str().unwrap().to_string()
}

fn inspect_in(root: &Path, name: &str) -> serde_json::Value {
    let run = ch05_in(root, &["inspect", name]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    serde_json::from_str(&run.stdout()).unwrap()
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"[0-9a-f]{64}", "[HEX]");
    s
}

/// The names of a tar's entries, in order.
fn tar_names(path: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// One file of a tar.
fn tar_file(path: &Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new(name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("{} has no {name}", path.display());
}

/// A copy of the tar `from` with `change` applied to each entry (name,
/// data): `None` leaves it out.
fn rewrite_tar(from: &Path, to: &Path, change: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    rewrite_tar_and(from, to, change, &[]);
}

/// [`rewrite_tar`], then `extra` entries (header, data) at the end.
fn rewrite_tar_and(
    from: &Path,
    to: &Path,
    mut change: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(tar::Header, &[u8])],
) {
    let mut archive = tar::Archive::new(fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(fs::File::create(to).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let mut header = entry.header().clone();
        if let Some(data) = change(&name, data) {
            header.set_size(data.len() as u64);
            header.set_cksum();
            out.append(&header, data.as_slice()).unwrap();
        }
    }
    for (header, data) in extra {
        out.append(header, *data).unwrap();
    }
    out.finish().unwrap();
}

/// A tar entry header for `data` under a raw `name`, unchecked: the tar
/// crate refuses to write `..` itself, an attacker's tool does not.
fn raw_header(name: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    header
}

/// What a failed load or import must leave: no name, no blob, no layer,
/// no temporary file.
fn assert_store_untouched(root: &Path) {
    let images = ch05_in(root, &["images"]);
    assert_eq!(
        images.stdout().lines().count(),
        1,
        "{}",
        images.transcript()
    );
    for dir in ["blobs/sha256", "blobs/tmp", "layers/sha256", "layers/tmp"] {
        let left: Vec<_> = fs::read_dir(root.join(dir))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} holds {left:?}");
    }
    for entry in fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            ["blobs", "layers", "index.json", "index.lock", "store.lock"].contains(&name.as_str()),
            "unexpected {name} in the store"
        );
    }
}

#[test]
fn a_docker_archive_round_trips_byte_for_byte() {
    let s = Setup::new();
    let digest = s.imported();
    let (a, b) = (s.path("a.tar"), s.path("b.tar"));
    let save = s.ch05(&["save", "-o", a.to_str().unwrap(), NAME]);
    assert_eq!(save.code(), Some(0), "{}", save.transcript());
    assert!(save.stdout().is_empty(), "{}", save.transcript());
    // Deterministic: the same image saved twice is the same file.
    let again = s.ch05(&["save", "-o", b.to_str().unwrap(), NAME]);
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());

    // What is inside: an OCI layout, and manifest.json pointing into it.
    let names = tar_names(&a);
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_file(&a, "manifest.json")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&tar_file(&a, "index.json")).unwrap();
    let layout = String::from_utf8(tar_file(&a, "oci-layout")).unwrap();
    let shown = format!(
        "{}\n\nmanifest.json:\n{}\n\nindex.json:\n{}\n\noci-layout:\n{layout}\n",
        names.join("\n"),
        serde_json::to_string_pretty(&manifest).unwrap(),
        serde_json::to_string_pretty(&index).unwrap(),
    );
    let mut with_sizes = settings();
    with_sizes.add_filter(r#""size": [0-9]+"#, r#""size": [SIZE]"#);
    with_sizes.bind(|| insta::assert_snapshot!("ch05_save_docker_archive", shown));
    assert_eq!(manifest[0]["RepoTags"][0], NAME);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // Into a fresh store: the same manifest, so the same image.
    let fresh = s.store("fresh");
    let load = ch05_in(&fresh, &["load", "-i", a.to_str().unwrap()]);
    settings().bind(|| insta::assert_snapshot!("ch05_load", load.transcript()));
    assert_eq!(load.code(), Some(0));
    assert_eq!(inspect_in(&fresh, NAME)["Digest"], digest.as_str());
}

#[test]
fn an_oci_layout_round_trips_and_skopeo_reads_it() {
    if !require_tool("an_oci_layout_round_trips_and_skopeo_reads_it", "skopeo") {
        return;
    }
    let s = Setup::new();
    let digest = s.imported();
    let layout = s.path("layout");
    let save = s.save_layout(&layout);
    assert_eq!(save.code(), Some(0), "{}", save.transcript());
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let hex = digest.trim_start_matches("sha256:");
    assert!(layout.join("blobs/sha256").join(hex).is_file());
    // skopeo finds the image by its tag, with the digest we gave it.
    assert_eq!(skopeo_digest(&oci_ref(&layout, "1")), digest);

    // A layout is written whole or not at all: never into a used directory.
    let twice = s.save_layout(&layout);
    assert_eq!(twice.code(), Some(1), "{}", twice.transcript());
    assert!(
        twice
            .stderr()
            .contains("exists and is not an empty directory"),
        "{}",
        twice.transcript()
    );
    let leftovers: Vec<_> = fs::read_dir(s.work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".berth-save-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let fresh = s.store("fresh");
    let load = ch05_in(&fresh, &["load", "-i", layout.to_str().unwrap()]);
    assert_eq!(
        load.stdout(),
        format!("Loaded image: {NAME}\n"),
        "{}",
        load.transcript()
    );
    assert_eq!(inspect_in(&fresh, NAME)["Digest"], digest.as_str());
}

#[test]
fn skopeo_copies_our_archives_and_we_load_what_it_writes() {
    if !require_tool(
        "skopeo_copies_our_archives_and_we_load_what_it_writes",
        "skopeo",
    ) {
        return;
    }
    let s = Setup::new();
    s.imported();
    let config = inspect_in(s.state.path(), NAME)["Manifest"]["config"]["digest"].clone();
    let (archive, layout) = (s.path("probe.tar"), s.path("layout"));
    assert_eq!(
        s.ch05(&["save", "-o", archive.to_str().unwrap(), NAME])
            .code(),
        Some(0)
    );
    let save = s.save_layout(&layout);
    assert_eq!(save.code(), Some(0));

    // Our docker archive, read by skopeo, written as an OCI layout...
    let theirs = s.path("theirs");
    skopeo_copy(
        &[],
        &format!("docker-archive:{}", archive.display()),
        &oci_ref(&theirs, "berth/probe:copied"),
    );
    // ...our OCI layout, written by skopeo as a docker archive (old style:
    // an uncompressed `<id>/layer.tar`, a symlink to `<diff_id>.tar`).
    let their_tar = s.path("theirs.tar");
    skopeo_copy(
        &[],
        &oci_ref(&layout, "1"),
        &format!("docker-archive:{}:berth/probe:sk", their_tar.display()),
    );
    assert!(
        tar_names(&their_tar)
            .iter()
            .any(|n| n.ends_with("/layer.tar")),
        "{:?}",
        tar_names(&their_tar)
    );

    // Both load, named as skopeo named them, with our config.
    let fresh = s.store("fresh");
    for (input, name) in [
        (&theirs, "berth/probe:copied"),
        (&their_tar, "berth/probe:sk"),
    ] {
        let load = ch05_in(&fresh, &["load", "-i", input.to_str().unwrap()]);
        assert_eq!(
            load.stdout(),
            format!("Loaded image: {name}\n"),
            "{}",
            load.transcript()
        );
        let image = inspect_in(&fresh, name);
        assert_eq!(image["Manifest"]["config"]["digest"], config, "{name}");
    }
    // A layout entry named only by a tag (`oci:DIR:latest`) names no
    // repository: the image loads, unnamed, as docker reports it.
    let bare = s.path("bare");
    skopeo_copy(&[], &oci_ref(&layout, "1"), &oci_ref(&bare, "latest"));
    let load = ch05_in(&fresh, &["load", "-i", bare.to_str().unwrap()]);
    assert_eq!(load.code(), Some(0), "{}", load.transcript());
    assert_eq!(
        load.stdout(),
        format!("Loaded image ID: {}\n", config.as_str().unwrap())
    );
    assert!(
        load.stderr()
            .contains(r#"the archive gives only the tag "latest", no repository"#),
        "{}",
        load.transcript()
    );
    assert_eq!(ch05_in(&fresh, &["images"]).stdout().lines().count(), 3);
    // skopeo's docker archive holds the layer uncompressed: its digest is
    // its diff_id.
    let sk = inspect_in(&fresh, "berth/probe:sk");
    assert_eq!(
        sk["Manifest"]["layers"][0]["digest"],
        sk["Config"]["rootfs"]["diff_ids"][0]
    );
    assert_eq!(
        sk["Manifest"]["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
}

#[test]
fn umoci_unpacks_our_layout() {
    if !require_tool("umoci_unpacks_our_layout", "umoci") {
        return;
    }
    let s = Setup::new();
    s.imported();
    let layout = s.path("layout");
    let save = s.save_layout(&layout);
    assert_eq!(save.code(), Some(0), "{}", save.transcript());
    let bundle = s.path("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        bundle
            .join("rootfs")
            .join(&PROBE_IN_CONTAINER[1..])
            .is_file()
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!([PROBE_IN_CONTAINER, "cwd"])
    );
}

#[test]
fn a_docker_archive_loads_by_manifest_json_alone_and_from_stdin() {
    let s = Setup::new();
    s.imported();
    let original = inspect_in(s.state.path(), NAME);
    let archive = s.path("probe.tar");
    assert_eq!(
        s.ch05(&["save", "-o", archive.to_str().unwrap(), NAME])
            .code(),
        Some(0)
    );

    // Without the OCI index, manifest.json alone says what is what: the
    // layers keep their compressed digests, the config its own.
    let docker_only = s.path("docker-only.tar");
    rewrite_tar(&archive, &docker_only, |name, data| {
        (!matches!(name, "index.json" | "oci-layout")).then_some(data)
    });
    let fresh = s.store("fresh");
    let load = ch05_in(&fresh, &["load", "-i", docker_only.to_str().unwrap()]);
    assert_eq!(
        load.stdout(),
        format!("Loaded image: {NAME}\n"),
        "{}",
        load.transcript()
    );
    let loaded = inspect_in(&fresh, NAME);
    assert_eq!(loaded["Manifest"]["config"], original["Manifest"]["config"]);
    assert_eq!(loaded["Manifest"]["layers"], original["Manifest"]["layers"]);

    // Gzipped, on stdin, as `docker load < image.tar.gz`.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&fs::read(&archive).unwrap()).unwrap();
    let gz = gz.finish().unwrap();
    let other = s.store("other");
    let mut cmd = command(&bin());
    cmd.args(["--root", other.to_str().unwrap(), "load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Loaded image: {NAME}\n")
    );
    assert_eq!(inspect_in(&other, NAME)["Digest"], original["Digest"]);
}

#[test]
fn a_loaded_image_runs() {
    if !require_root("a_loaded_image_runs") {
        return;
    }
    let s = Setup::new();
    s.imported();
    let archive = s.path("probe.tar");
    assert_eq!(
        s.ch05(&["save", "-o", archive.to_str().unwrap(), NAME])
            .code(),
        Some(0)
    );
    let fresh = s.store("fresh");
    assert_eq!(
        ch05_in(&fresh, &["load", "-i", archive.to_str().unwrap()]).code(),
        Some(0)
    );
    let run = ch05_in(&fresh, &["run", "--rm", NAME]);
    assert_eq!(run.stdout(), "cwd: /\n", "{}", run.transcript());
}

#[test]
fn malicious_archives_are_refused_and_leave_no_trace() {
    let s = Setup::new();
    s.imported();
    let archive = s.path("probe.tar");
    assert_eq!(
        s.ch05(&["save", "-o", archive.to_str().unwrap(), NAME])
            .code(),
        Some(0)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_file(&archive, "manifest.json")).unwrap();
    let layer = manifest[0]["Layers"][0].as_str().unwrap().to_string();
    let docker_only = |name: &str| !matches!(name, "index.json" | "oci-layout");
    let with_layer_path = |path: &str| {
        let mut m = manifest.clone();
        m[0]["Layers"][0] = path.into();
        serde_json::to_vec(&m).unwrap()
    };

    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    // 1. A layer path leaving the archive, as `..` or absolute.
    for (case, path, why) in [
        (
            "dotdot",
            "../../etc/passwd",
            r#"path "../../etc/passwd" contains '..': refusing it"#,
        ),
        (
            "absolute",
            "/etc/passwd",
            r#"path "/etc/passwd" is absolute: refusing it"#,
        ),
    ] {
        let evil = s.path(&format!("{case}.tar"));
        rewrite_tar(&archive, &evil, |name, data| match name {
            "manifest.json" => Some(with_layer_path(path)),
            n if docker_only(n) => Some(data),
            _ => None,
        });
        cases.push((case, evil, why));
    }
    // 2. A symlink in the archive pointing out of it.
    let symlink = s.path("symlink.tar");
    let mut link = raw_header("evil/layer.tar", 0, tar::EntryType::Symlink);
    link.set_link_name("../../../../etc/passwd").unwrap();
    link.set_cksum();
    rewrite_tar_and(
        &archive,
        &symlink,
        |name, data| match name {
            "manifest.json" => Some(with_layer_path("evil/layer.tar")),
            n if docker_only(n) => Some(data),
            _ => None,
        },
        &[(link, b"")],
    );
    cases.push((
        "symlink",
        symlink,
        "is a symlink pointing out of the archive: refusing it",
    ));
    // 3. A layer blob whose bytes are not those its name promises (same
    //    size, one byte changed).
    let tampered = s.path("tampered.tar");
    rewrite_tar(&archive, &tampered, |name, mut data| {
        if name == layer {
            let last = data.len() - 1;
            data[last] ^= 0xff;
        }
        Some(data)
    });
    cases.push(("tampered", tampered, "content does not match its digest"));
    // 4. A missing layer blob.
    let missing = s.path("missing.tar");
    rewrite_tar(&archive, &missing, |name, data| {
        (name != layer).then_some(data)
    });
    cases.push(("missing", missing, "): it is incomplete"));
    // 5. An index.json too big to be one.
    let huge = s.path("huge.tar");
    rewrite_tar(&archive, &huge, |name, mut data| {
        if name == "index.json" {
            data.resize(5 * 1024 * 1024, b' ');
        }
        Some(data)
    });
    cases.push((
        "huge",
        huge,
        "index.json is 5242880 bytes, over the 4194304-byte limit for a JSON document",
    ));

    for (case, evil, why) in cases {
        let root = s.store(&format!("store-{case}"));
        let load = ch05_in(&root, &["load", "-i", evil.to_str().unwrap()]);
        assert_eq!(load.code(), Some(1), "{case}: {}", load.transcript());
        assert!(load.stderr().contains(why), "{case}: {}", load.transcript());
        assert!(load.stdout().is_empty(), "{case}: {}", load.transcript());
        assert_store_untouched(&root);
        if case == "dotdot" {
            settings()
                .bind(|| insta::assert_snapshot!("ch05_load_error_unsafe_path", load.transcript()));
        }
    }
}

#[test]
fn import_takes_tarballs_like_directories_and_refuses_escapes() {
    let s = Setup::new();
    let digest = s.imported();
    // GNU tar keeps hard links and symlinks as they are.
    let tarball = s.path("rootfs.tar");
    let tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&s.base.path)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    let zst = s.path("rootfs.tar.zst");
    fs::write(
        &zst,
        zstd::encode_all(fs::File::open(&tarball).unwrap(), 3).unwrap(),
    )
    .unwrap();

    // The same tree, so the same image, whatever the packing.
    let cmd = ["--cmd", PROBE_IN_CONTAINER, "cwd"];
    for (file, name) in [(&tarball, "from/tar:1"), (&zst, "from/zstd:1")] {
        let mut args = vec!["import", file.to_str().unwrap(), name];
        args.extend(cmd);
        let import = s.ch05(&args);
        assert_eq!(import.code(), Some(0), "{}", import.transcript());
        assert_eq!(import.stdout(), format!("{name}: {digest}\n"));
    }
    let mut stdin = command(&bin());
    stdin
        .args([
            "--root",
            s.state.path().to_str().unwrap(),
            "import",
            "-",
            "from/stdin:1",
        ])
        .args(cmd)
        .stdin(fs::File::open(&tarball).unwrap());
    let import = Run::capture(stdin);
    assert_eq!(
        import.stdout(),
        format!("from/stdin:1: {digest}\n"),
        "{}",
        import.transcript()
    );
    assert!(
        fs::read_dir(s.state.path().join("layers/tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // A tarball reaching out of its root is refused, and leaves nothing.
    let evil = s.path("evil.tar");
    let mut out = tar::Builder::new(fs::File::create(&evil).unwrap());
    out.append(
        &raw_header("../escape", 4, tar::EntryType::Regular),
        &b"gotcha"[..4],
    )
    .unwrap();
    out.finish().unwrap();
    drop(out);
    let root = s.store("store-evil");
    let import = ch05_in(&root, &["import", evil.to_str().unwrap(), "evil"]);
    assert_eq!(import.code(), Some(1), "{}", import.transcript());
    assert!(
        import.stderr().contains(r#"unsafe path "../escape""#),
        "{}",
        import.transcript()
    );
    assert!(!root.join("layers/escape").exists() && !root.join("escape").exists());
    assert_store_untouched(&root);
}

/// podman, a real engine, loads our docker archive (`docker load` reads the
/// same file; no Docker daemon runs here) and sees our layer and config.
#[test]
fn podman_loads_our_docker_archive() {
    let test = "podman_loads_our_docker_archive";
    if !require_root(test) || !require_tool(test, "podman") {
        return;
    }
    let s = Setup::new();
    s.imported();
    let ours = inspect_in(s.state.path(), NAME);
    let archive = s.path("probe.tar");
    let save = s.ch05(&["save", "-o", archive.to_str().unwrap(), NAME]);
    assert_eq!(save.code(), Some(0), "{}", save.transcript());
    let podman = |args: &[&str]| -> std::process::Output {
        Command::new("podman")
            .arg("--root")
            .arg(s.path("podman-root"))
            .arg("--runroot")
            .arg(s.path("podman-run"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args)
            .output()
            .unwrap()
    };
    let load = podman(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = podman(&["image", "inspect", "docker.io/berth/probe:1"]);
    assert!(
        inspect.status.success(),
        "podman image inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        theirs[0]["RootFS"]["Layers"], ours["Config"]["rootfs"]["diff_ids"],
        "podman stored our layer"
    );
    assert_eq!(
        theirs[0]["Config"]["Cmd"], ours["Config"]["config"]["Cmd"],
        "and read our config"
    );
    // podman's storage may hold mounts: let podman remove what it made.
    let _ = podman(&["rmi", "--all", "--force"]);
}
