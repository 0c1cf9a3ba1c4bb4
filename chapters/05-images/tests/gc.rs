//! Chapter 5 end to end: `rmi` and garbage collection (what goes, what
//! stays shared, what a container holds on to), and an image whose `User`
//! is a name from its own /etc/passwd.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_test_support::probe::{PROBE_IN_CONTAINER, probe_rootfs};
use berth_test_support::{Run, bin_path, require_root};
use ch05_images::digest::{Algorithm, Digest};
use ch05_images::image::{load_image, unpack_layers};
use ch05_images::reference::Reference;
use ch05_images::store::Store;

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

/// A store of the test's own.
struct State {
    dir: tempfile::TempDir,
}

impl State {
    fn new() -> State {
        State {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn ch05(&self, args: &[&str]) -> Run {
        let mut all = vec!["--root", self.root().to_str().unwrap()];
        all.extend(args);
        Run::new(&bin(), all)
    }
    /// Run and insist on success.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.ch05(args);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run
    }
    fn store(&self) -> Store {
        Store::open(self.root()).unwrap()
    }
    /// The blob digests and unpacked layer diff_ids in the store.
    fn content(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let store = self.store();
        (
            store.blob_digests().unwrap().into_iter().collect(),
            store.layer_diff_ids().unwrap().into_iter().collect(),
        )
    }
    /// Unpack an image's layers (what `run` does first), returning its
    /// blob digests and diff_ids.
    fn unpack(&self, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let store = self.store();
        let image = load_image(&store, &Reference::parse(name).unwrap()).unwrap();
        unpack_layers(&store, &image).unwrap();
        let mut blobs: BTreeSet<String> = image
            .manifest
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .collect();
        blobs.insert(image.digest.clone());
        blobs.insert(image.manifest.config.digest.clone());
        (
            blobs,
            image.config.rootfs.diff_ids.iter().cloned().collect(),
        )
    }
}

fn settings() -> insta::Settings {
    let mut s = berth_test_support::container_snapshot_settings();
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s
}

#[test]
fn rmi_and_gc_remove_what_no_image_shares() {
    let s = State::new();
    let base = probe_rootfs();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("hello"), "hello\n").unwrap();
    let base = base.path.to_str().unwrap();
    // a and b: the same tree, so the same layer; c: a layer of its own.
    s.ok(&["import", base, "berth/a", "--cmd", "/bin/true"]);
    s.ok(&["import", base, "berth/b", "--cmd", "/bin/false"]);
    s.ok(&["import", other.path().to_str().unwrap(), "berth/c"]);
    let (a_blobs, a_layers) = s.unpack("berth/a");
    let (b_blobs, b_layers) = s.unpack("berth/b");
    let (c_blobs, c_layers) = s.unpack("berth/c");
    assert_eq!(a_layers, b_layers, "a and b share their layer");
    let (blobs, layers) = s.content();
    assert_eq!(blobs.len(), 8, "3 manifests, 3 configs, 2 layer blobs");
    assert_eq!(layers.len(), 2);

    // a goes: its manifest and config, not the layer b still uses.
    let rmi = s.ok(&["rmi", "berth/a"]);
    settings().bind(|| insta::assert_snapshot!("ch05_rmi_shared_layer", rmi.transcript()));
    let (blobs, layers) = s.content();
    let gone: BTreeSet<String> = a_blobs.difference(&b_blobs).cloned().collect();
    assert_eq!(gone.len(), 2);
    assert!(blobs.is_disjoint(&gone));
    assert!(blobs.is_superset(&b_blobs) && blobs.is_superset(&c_blobs));
    assert_eq!(layers, &b_layers | &c_layers);

    // c goes: everything of its own, its unpacked layer too.
    let rmi = s.ok(&["rmi", "berth/c"]);
    settings().bind(|| insta::assert_snapshot!("ch05_rmi", rmi.transcript()));
    let (blobs, layers) = s.content();
    assert_eq!(blobs, b_blobs);
    assert_eq!(layers, b_layers);

    // A name given to another image leaves the old one dangling, for
    // prune; the layer it shares stays.
    let old_b = s.store().resolve("docker.io/berth/b:latest").unwrap();
    s.ok(&["import", base, "berth/b", "--cmd", "/bin/sh"]);
    let prune = s.ok(&["prune"]);
    let out = prune.stdout();
    let pruned: Vec<&str> = out.lines().collect();
    assert_eq!(pruned.len(), 2, "{}", prune.transcript());
    assert!(pruned.contains(&format!("deleted: {}", old_b.unwrap()).as_str()));
    assert_eq!(s.content().1, b_layers);
    assert_eq!(s.ok(&["prune"]).stdout(), "");

    // The last image: nothing left.
    s.ok(&["rmi", "berth/b"]);
    let (blobs, layers) = s.content();
    assert!(
        blobs.is_empty() && layers.is_empty(),
        "{blobs:?} {layers:?}"
    );
    let none = s.ch05(&["rmi", "berth/b"]);
    assert_eq!(none.code(), Some(1));
    assert!(
        none.stderr().contains("no image berth/b: see `images`"),
        "{}",
        none.transcript()
    );
}

#[test]
fn rmi_is_refused_while_a_container_uses_the_image() {
    if !require_root("rmi_is_refused_while_a_container_uses_the_image") {
        return;
    }
    let s = State::new();
    let base = probe_rootfs();
    let base = base.path.to_str().unwrap();
    s.ok(&[
        "import",
        base,
        "berth/probe:1",
        "--cmd",
        PROBE_IN_CONTAINER,
        "uid",
    ]);
    s.ok(&["tag", "berth/probe:1", "berth/probe:2"]);
    let run = s.ok(&["run", "--name", "keep", "berth/probe:1"]);
    assert_eq!(run.stdout(), "uid: 0/0\n");
    let ps = s.ok(&["ps"]);
    assert!(
        ps.stdout().contains("keep\tberth/probe:"),
        "{}",
        ps.transcript()
    );

    // One name of two: only untagged, even with a container.
    s.ok(&["rmi", "berth/probe:2"]);
    // The last name: refused, and the store is as it was.
    let before = s.content();
    let rmi = s.ch05(&["rmi", "berth/probe:1"]);
    assert_eq!(rmi.code(), Some(1));
    settings().bind(|| insta::assert_snapshot!("ch05_rmi_in_use", rmi.transcript()));
    assert_eq!(s.content(), before);
    assert!(s.ok(&["images"]).stdout().contains("berth/probe\t1\t"));

    // rm the container, and rmi goes through.
    assert_eq!(s.ok(&["rm", "keep"]).stdout(), "keep: removed\n");
    let rmi = s.ok(&["rmi", "berth/probe:1"]);
    assert!(
        rmi.stdout().contains("deleted: layer sha256:"),
        "{}",
        rmi.transcript()
    );
    let (blobs, layers) = s.content();
    assert!(
        blobs.is_empty() && layers.is_empty(),
        "{blobs:?} {layers:?}"
    );

    // --rm leaves nothing that holds the image.
    s.ok(&[
        "import",
        base,
        "berth/probe:1",
        "--cmd",
        PROBE_IN_CONTAINER,
        "uid",
    ]);
    s.ok(&["run", "--rm", "berth/probe:1"]);
    assert_eq!(s.ok(&["ps"]).stdout(), "NAME\tIMAGE\n");
    s.ok(&["rmi", "berth/probe:1"]);
}

/// Give image `from` the config User `user`, as `to`: a new config blob and
/// a new manifest (what `docker commit --change 'USER alice'` makes).
fn with_user(store: &Store, from: &str, to: &str, user: &str) {
    let image = load_image(store, &Reference::parse(from).unwrap()).unwrap();
    let mut config = image.config.clone();
    config.config.get_or_insert_with(Default::default).user = Some(user.to_string());
    let put = |bytes: &[u8]| {
        let digest = Digest::of_bytes(Algorithm::Sha256, bytes).to_string();
        store
            .put_blob(&digest, Some(bytes.len() as u64), bytes)
            .unwrap();
        (digest, bytes.len() as u64)
    };
    let (digest, size) = put(&serde_json::to_vec(&config).unwrap());
    let mut manifest = image.manifest.clone();
    manifest.config.digest = digest;
    manifest.config.size = size;
    let (digest, _) = put(&serde_json::to_vec(&manifest).unwrap());
    store
        .set_name(&Reference::parse(to).unwrap().to_string(), &digest)
        .unwrap();
}

/// The `Uid:`, `Gid:` and `Groups:` lines of /proc/self/status, tabs as spaces.
fn ids(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_user_name_in_the_image_config_comes_from_its_etc_passwd() {
    if !require_root("a_user_name_in_the_image_config_comes_from_its_etc_passwd") {
        return;
    }
    let s = State::new();
    let rootfs = probe_rootfs();
    let etc = rootfs.path.join("etc");
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001:Alice:/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\nalice:x:1001:\nstaff:x:50:alice\naudio:x:63:bob,alice\n",
    )
    .unwrap();
    // What the container runs: the probe, then the kernel's view of the
    // process's ids (cat's own, which it shares).
    let script = rootfs.path.join("usr/local/bin/ids");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{PROBE_IN_CONTAINER} uid gid env\nexec cat /proc/self/status\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = rootfs.path.to_str().unwrap();
    s.ok(&["import", base, "berth/users", "--cmd", "/usr/local/bin/ids"]);
    let store = s.store();
    with_user(&store, "berth/users", "berth/alice", "alice");
    with_user(&store, "berth/users", "berth/carol", "carol");

    // User "alice": uid, primary gid, supplementary groups and HOME from
    // the image's files.
    let run = s.ok(&["run", "--rm", "berth/alice"]);
    let out = run.stdout();
    assert!(out.starts_with("uid: 1000/1000\ngid: 1001/1001\n"), "{out}");
    assert!(out.contains("env: HOME=/home/alice\n"), "{out}");
    assert_eq!(
        ids(&out),
        [
            "Uid: 1000 1000 1000 1000",
            "Gid: 1001 1001 1001 1001",
            "Groups: 50 63"
        ]
    );
    // -u NAME:GROUP on the command line wins: that group, no others.
    let run = s.ok(&["run", "--rm", "-u", "alice:staff", "berth/alice"]);
    assert_eq!(
        ids(&run.stdout()),
        ["Uid: 1000 1000 1000 1000", "Gid: 50 50 50 50", "Groups:"]
    );
    // A uid the image's passwd does not know: gid 0, HOME /.
    let run = s.ok(&["run", "--rm", "-u", "4242", "berth/alice"]);
    assert!(run.stdout().starts_with("uid: 4242/4242\ngid: 0/0\n"));
    assert!(run.stdout().contains("env: HOME=/\n"));

    // A name the image does not have: refused before any container exists.
    let run = s.ch05(&["run", "--rm", "berth/carol"]);
    assert_eq!(run.code(), Some(125));
    settings().bind(|| insta::assert_snapshot!("ch05_error_unknown_user", run.transcript()));
    assert!(
        !s.root().join("containers").exists()
            || std::fs::read_dir(s.root().join("containers"))
                .unwrap()
                .next()
                .is_none()
    );
}
