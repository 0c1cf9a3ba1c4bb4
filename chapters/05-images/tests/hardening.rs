//! Chapter 5 against an adversary and bad luck: image content reachable
//! from the host, layouts whose layers lie or escape, a layer whose root
//! is opaque, names a layer reserves, trees 20,000 levels deep, leftovers
//! of killed writers, a full disk, huge configs, escape sequences in names.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_test_support::probe::{ProbeRootfs, probe_rootfs};
use berth_test_support::{
    BackgroundEngine, Run, bin_path, cgroup_dirs, command, limit_descriptors, process_alive,
    require_root,
};
use sha2::Digest as _;

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

fn ch05_cmd(root: &Path, args: &[&str]) -> Command {
    let mut cmd = command(&bin());
    cmd.arg("--root").arg(root).args(args);
    cmd
}

fn ch05(root: &Path, args: &[&str]) -> Run {
    Run::capture(ch05_cmd(root, args))
}

/// Everything under `root` (names, kinds, sizes), sorted: what "the store
/// is unchanged" compares.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(path);
            } else {
                out.push(format!("{rel} {}", meta.len()));
            }
        }
    }
    out.sort();
    out
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// One tar entry, written raw (the tar crate would refuse `..` itself; an
/// attacker's tool does not). Long names get a GNU long-name record.
struct Entry<'a> {
    path: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    mode: u32,
    data: &'a [u8],
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        path,
        kind: tar::EntryType::Regular,
        link: "",
        mode: 0o644,
        data,
    }
}

fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_size(e.data.len() as u64);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if e.path.len() <= 100 && e.link.len() <= 100 {
            let old = header.as_old_mut();
            old.name[..e.path.len()].copy_from_slice(e.path.as_bytes());
            old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
            header.set_cksum();
            builder.append(&header, e.data).unwrap();
        } else {
            builder.append_data(&mut header, e.path, e.data).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

/// An OCI image layout in `dir` with one image named `name`, made of the
/// uncompressed `layers` (bottom first); `diff_ids` as the config says
/// (`None`: the layers' own).
fn layout(dir: &Path, name: &str, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
        (digest, bytes.len())
    };
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (digest, size) = put(l);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        })
        .collect();
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256(l)).collect());
    let platform = serde_json::to_value(ch05_images::oci::Platform::host()).unwrap();
    let config = serde_json::json!({
        "architecture": platform["architecture"],
        "os": platform["os"],
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors,
    });
    let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "annotations": {"io.containerd.image.name": name},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The layout directory `dir` as a tar file beside it.
fn layout_tar(dir: &Path) -> PathBuf {
    let out = dir.with_extension("tar");
    let mut builder = tar::Builder::new(fs::File::create(&out).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
    out
}

/// The probe rootfs as one layer tar, plus `extra` entries at the end.
fn rootfs_layer(base: &ProbeRootfs, extra: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &base.path).unwrap();
    let mut bytes = builder.into_inner().unwrap();
    // Drop the two zero blocks that end the archive, then add the extras.
    bytes.truncate(bytes.len() - 1024);
    let extra = tar_of(extra);
    bytes.extend_from_slice(&extra);
    bytes
}

/// A directory the test's stores live in, crossable by every user, so the
/// stores' own modes are all that stands between other users and them.
/// Import the probe's rootfs into the store at `root` as `name`.
fn import_probe_rootfs(root: &Path, name: &str) {
    let base = probe_rootfs();
    let import = ch05(root, &["import", base.path.to_str().unwrap(), name]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
}

fn open_parent() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `argv` run as uid and gid 65534 with no groups (setpriv), and its output.
/// Through `sh`: setpriv keeps its capabilities until its own execve, which
/// would resolve `argv[0]` as root; the shell it starts has none.
fn as_nobody(argv: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(["/bin/sh", "-c", "exec \"$@\"", "sh"])
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn image_content_is_reachable_only_through_containers() {
    if !require_root("image_content_is_reachable_only_through_containers") {
        return;
    }
    let parent = open_parent();
    let root = parent.path().join("store");
    // An image holding a setuid-root program and a world-writable directory.
    let (_tmp, rootfs) = berth_test_support::fresh_rootfs(ch01_chroot::rootfs::Source::Auto);
    fs::copy("/usr/bin/id", rootfs.join("suid-id")).unwrap();
    fs::set_permissions(rootfs.join("suid-id"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(rootfs.join("world")).unwrap();
    fs::set_permissions(rootfs.join("world"), fs::Permissions::from_mode(0o1777)).unwrap();
    let import = ch05(&root, &["import", rootfs.to_str().unwrap(), "local/suid"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    let unpack = ch05(&root, &["run", "--rm", "local/suid", "sh", "-c", "true"]);
    assert_eq!(unpack.code(), Some(0), "{}", unpack.transcript());
    let layer = fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        fs::metadata(layer.join("suid-id"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755,
        "the layer keeps the image's setuid bit"
    );

    // Through the layer directory.
    let suid = layer.join("suid-id");
    let out = as_nobody(&[suid.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && !said.contains("euid=0"), "{said}");
    let planted = layer.join("world/planted");
    let out = as_nobody(&["touch", planted.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "an unprivileged user wrote into a layer"
    );
    assert!(!planted.exists());

    // Through a running container's merged directory.
    let mut cmd = ch05_cmd(
        &root,
        &["run", "--name", "up", "local/suid", "sleep", "300"],
    );
    cmd.stdin(Stdio::null());
    let mut engine = BackgroundEngine::start(cmd);
    let merged = root.join("containers/up/merged/suid-id");
    let out = as_nobody(&[merged.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("euid=0"));
    assert!(!out.status.success());
    engine.terminate();
    assert_eq!(ch05(&root, &["rm", "up"]).code(), Some(0));

    // And the modes that do it.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join("blobs")), 0o700);
    assert_eq!(mode(&root.join("layers")), 0o700);
    assert_eq!(mode(&root.join("containers")), 0o711);
    assert_eq!(mode(&root.join("index.json")), 0o600);
}

#[test]
fn an_open_store_is_made_private_on_open() {
    let parent = open_parent();
    let root = parent.path().join("store");
    for dir in ["blobs/sha256", "layers/sha256", "containers/old"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("index.json"), "{\"names\":{}}\n").unwrap();
    for p in ["", "blobs", "layers", "containers", "containers/old"] {
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(root.join("index.json"), fs::Permissions::from_mode(0o644)).unwrap();
    let images = ch05(&root, &["images"]);
    assert_eq!(images.code(), Some(0), "{}", images.transcript());
    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
    let top = if nix::unistd::Uid::effective().is_root() {
        0o711
    } else {
        0o700
    };
    assert_eq!(mode(""), top);
    assert_eq!(mode("blobs"), 0o700);
    assert_eq!(mode("layers"), 0o700);
    assert_eq!(mode("containers"), top);
    assert_eq!(mode("containers/old"), 0o750);
    assert_eq!(mode("index.json"), 0o600);
}

#[test]
fn a_user_namespace_container_still_reaches_its_layers() {
    if !require_root("a_user_namespace_container_still_reaches_its_layers") {
        return;
    }
    let parent = open_parent();
    let root = parent.path().join("store");
    import_probe_rootfs(&root, "local/base");
    // Container root is host uid 100000: it reads a lower layer's file and
    // writes into a lower layer's (1777) directory: a copy-up into its
    // writable layer.
    let run = ch05(
        &root,
        &[
            "run",
            "--rm",
            "--userns",
            "local/base",
            "sh",
            "-c",
            "cat /etc/passwd >/dev/null && echo new > /tmp/new && cat /tmp/new",
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.stdout(), "new\n", "{}", run.transcript());
}

#[test]
fn load_unpacks_every_layer_and_refuses_bad_ones_leaving_the_store_as_it_was() {
    let parent = open_parent();
    let root = parent.path().join("store");
    let good = tar_of(&[file("hello", b"hi\n")]);
    let ok = parent.path().join("ok");
    layout(&ok, "local/ok:1", std::slice::from_ref(&good), None);
    let load = ch05(&root, &["load", "-i", ok.to_str().unwrap()]);
    assert_eq!(load.code(), Some(0), "{}", load.transcript());
    let before = listing(&root);

    let symlink = Entry {
        path: "evil",
        kind: tar::EntryType::Symlink,
        link: "/",
        mode: 0o777,
        data: b"",
    };
    // (case, layers, the config's diff_ids, what the error says)
    type Case<'a> = (&'a str, Vec<Vec<u8>>, Option<Vec<String>>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "diff_id",
            vec![good.clone(), tar_of(&[file("other", b"x")])],
            Some(vec![sha256(&good), sha256(b"not this layer")]),
            "but the image says diff_id",
        ),
        (
            "dotdot",
            vec![good.clone(), tar_of(&[file("../../escaped", b"x")])],
            None,
            "`..` is not allowed in a layer path",
        ),
        (
            "symlink",
            vec![
                good.clone(),
                tar_of(&[symlink, file("evil/etc/planted", b"x")]),
            ],
            None,
            "a parent directory is a symlink",
        ),
    ];
    for (case, layers, diff_ids, says) in cases {
        let dir = parent.path().join(case);
        layout(&dir, &format!("local/{case}:1"), &layers, diff_ids);
        for input in [dir.clone(), layout_tar(&dir)] {
            let load = ch05(&root, &["load", "-i", input.to_str().unwrap()]);
            assert_eq!(load.code(), Some(1), "{case}: {}", load.transcript());
            assert!(
                load.stderr().contains(says),
                "{case}: {}",
                load.transcript()
            );
            assert_eq!(
                listing(&root),
                before,
                "{case} ({}) changed the store",
                input.display()
            );
        }
    }
    assert!(!Path::new("/escaped").exists() && !Path::new("/etc/planted").exists());
}

#[test]
fn a_layer_whose_root_is_opaque_hides_every_layer_below() {
    if !require_root("a_layer_whose_root_is_opaque_hides_every_layer_below") {
        return;
    }
    let parent = open_parent();
    let root = parent.path().join("store");
    let base = probe_rootfs();
    let bottom = rootfs_layer(&base, &[file("base-file", b"from below\n")]);
    let top = rootfs_layer(
        &base,
        &[file(".wh..wh..opq", b""), file("top-file", b"from above\n")],
    );
    let dir = parent.path().join("opaque");
    layout(&dir, "local/opaque:1", &[bottom, top], None);
    let load = ch05(&root, &["load", "-i", dir.to_str().unwrap()]);
    assert_eq!(load.code(), Some(0), "{}", load.transcript());
    for driver in ["overlay", "vfs"] {
        let run = ch05(
            &root,
            &[
                "run",
                "--rm",
                "--storage-driver",
                driver,
                "local/opaque:1",
                "sh",
                "-c",
                "cat /top-file; test -e /base-file && echo base-file shows through; true",
            ],
        );
        assert_eq!(
            run.stdout(),
            "from above\n",
            "{driver}: {}",
            run.transcript()
        );
    }
}

#[test]
fn import_refuses_names_a_layer_reserves() {
    let parent = open_parent();
    let root = parent.path().join("store");
    let tree = parent.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/ok"), "fine").unwrap();
    let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/fine"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    let before = listing(&root);
    fs::write(tree.join("etc/.wh.."), "x").unwrap();
    let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/bad"]);
    assert_eq!(import.code(), Some(1), "{}", import.transcript());
    assert!(
        import
            .stderr()
            .contains("etc/.wh..: a name starting with .wh. means a deletion"),
        "{}",
        import.transcript()
    );
    assert_eq!(listing(&root), before);
}

/// Spawn `cmd`, wait for it with wait4(2), and return its exit code and
/// peak resident memory in KiB.
fn exit_and_peak_memory(mut cmd: Command) -> (Option<i32>, i64) {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as nix::libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; both pointers are to
    // live locals of the right types.
    let rc = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", nix::errno::Errno::last());
    std::mem::forget(child); // reaped above
    let code = nix::libc::WIFEXITED(status).then(|| nix::libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}

#[test]
fn twenty_thousand_levels_cost_neither_memory_nor_descriptors() {
    let parent = open_parent();
    let root = parent.path().join("store");
    // One entry: a file 20,000 directories deep (a 40 KB path).
    let deep = vec!["d"; 20_000].join("/");
    let leaf = format!("{deep}/leaf");
    let tar = tar_of(&[file(&leaf, b"bottom\n")]);
    let tarball = parent.path().join("deep.tar");
    fs::write(&tarball, &tar).unwrap();
    let mut cmd = ch05_cmd(&root, &["import", tarball.to_str().unwrap(), "local/deep"]);
    limit_descriptors(&mut cmd, 256);
    let (code, peak_kib) = exit_and_peak_memory(cmd);
    assert_eq!(code, Some(0));
    assert!(peak_kib < 200 * 1024, "import peaked at {peak_kib} KiB");
    assert_eq!(listing(&root.join("layers/tmp")), Vec::<String>::new());
    let images = ch05(&root, &["images"]);
    assert!(
        images.stdout().contains("local/deep"),
        "{}",
        images.transcript()
    );

    // 3,000 levels, then an entry that is refused: the import fails and
    // its half-made tree goes, under the same limit.
    let before = listing(&root);
    let deep = vec!["d"; 3_000].join("/");
    let leaf = format!("{deep}/leaf");
    let tar = tar_of(&[file(&leaf, b"x"), file("../escape", b"x")]);
    fs::write(&tarball, &tar).unwrap();
    let mut cmd = ch05_cmd(
        &root,
        &["import", tarball.to_str().unwrap(), "local/deeper"],
    );
    limit_descriptors(&mut cmd, 256);
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("`..` is not allowed"),
        "{}",
        run.transcript()
    );
    assert_eq!(listing(&root), before);
}

#[test]
fn leftovers_of_killed_writers_are_swept_but_not_a_running_ones() {
    let parent = open_parent();
    let root = parent.path().join("store");
    let tree = parent.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("f"), "x").unwrap();
    let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/a"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    // What a pull or load killed half-way leaves: a partial blob, a
    // half-unpacked layer (fresh: modified just now).
    let plant = || {
        fs::write(root.join("blobs/tmp/4242-0-00000000"), vec![7u8; 4096]).unwrap();
        fs::create_dir_all(root.join("layers/tmp/4242-1-00000000/usr/bin")).unwrap();
        fs::write(root.join("layers/tmp/4242-1-00000000/usr/bin/half"), "x").unwrap();
    };
    let temps = || {
        let mut left = listing(&root.join("blobs/tmp"));
        left.extend(listing(&root.join("layers/tmp")));
        left
    };
    plant();
    // A writer running now (holding the store lock shared): its temporary
    // files are not touched by another writer.
    {
        let lock = fs::OpenOptions::new()
            .write(true)
            .open(root.join("store.lock"))
            .unwrap();
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockShared).unwrap();
        let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/b"]);
        assert_eq!(import.code(), Some(0), "{}", import.transcript());
        assert_eq!(temps().len(), 5, "a running writer's files were swept");
    }
    // Alone, a writer sweeps them.
    let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/c"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    assert_eq!(temps(), Vec::<String>::new());
    // And prune, always.
    plant();
    let prune = ch05(&root, &["prune"]);
    assert_eq!(prune.code(), Some(0), "{}", prune.transcript());
    assert_eq!(temps(), Vec::<String>::new());
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0755").as_str()),
        )
        .unwrap();
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_disk_is_named_as_the_stores() {
    if !require_root("a_full_disk_is_named_as_the_stores") {
        return;
    }
    let parent = open_parent();
    // An archive of about 2 MiB, made in a roomy store.
    let roomy = parent.path().join("roomy");
    import_probe_rootfs(&roomy, "local/big");
    let archive = parent.path().join("big.tar");
    let save = ch05(
        &roomy,
        &["save", "-o", archive.to_str().unwrap(), "local/big"],
    );
    assert_eq!(save.code(), Some(0), "{}", save.transcript());
    assert!(fs::metadata(&archive).unwrap().len() > 1 << 20);
    // A store on a 1 MiB tmpfs, with something in it already.
    let small = parent.path().join("small");
    let _tmpfs = Tmpfs::mount(&small, "1m");
    let tree = parent.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("f"), "x").unwrap();
    let import = ch05(&small, &["import", tree.to_str().unwrap(), "local/small"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    let before = listing(&small);
    let mut cmd = ch05_cmd(&small, &["load"]);
    cmd.stdin(fs::File::open(&archive).unwrap());
    let load = Run::capture(cmd);
    assert_eq!(load.code(), Some(1), "{}", load.transcript());
    let says = format!(
        "no space left on the disk that holds the store {}",
        small.display()
    );
    assert!(load.stderr().contains(&says), "{}", load.transcript());
    assert!(
        !load.stderr().contains("read stdin"),
        "{}",
        load.transcript()
    );
    assert_eq!(listing(&small), before);
}

#[test]
fn read_only_commands_make_no_store() {
    let parent = open_parent();
    let typo = parent.path().join("typo");
    for args in [
        &["images"][..],
        &["inspect", "x"],
        &["tag", "x", "y"],
        &["rmi", "x"],
        &["prune"],
        &["save", "-o", "/dev/null", "x"],
        &["ps"],
        &["rm", "x"],
    ] {
        let run = ch05(&typo, args);
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr().contains(&typo.display().to_string()),
            "{}",
            run.transcript()
        );
        assert!(!typo.exists(), "{args:?} made {}", typo.display());
    }
}

#[test]
fn a_config_over_the_limit_is_not_read_whole() {
    let parent = open_parent();
    let root = parent.path().join("store");
    let tree = parent.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let import = ch05(&root, &["import", tree.to_str().unwrap(), "local/small"]);
    assert_eq!(import.code(), Some(0), "{}", import.transcript());
    // What an older pull could leave: a 300 MiB "config" (sparse: no disk)
    // and a manifest and name pointing to it.
    let size = 300u64 << 20;
    let zeros = vec![0u8; 1 << 20];
    let mut hasher = sha2::Sha256::new();
    for _ in 0..300 {
        hasher.update(&zeros);
    }
    let config = format!("sha256:{:x}", hasher.finalize());
    let blob = |digest: &str| {
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    fs::File::create(blob(&config))
        .unwrap()
        .set_len(size)
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": size},
        "layers": [],
    }))
    .unwrap();
    let digest = sha256(&manifest);
    fs::write(blob(&digest), &manifest).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    index["names"]["docker.io/local/huge:latest"] = digest.into();
    fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    for args in [
        &["images"][..],
        &["inspect", "local/huge"],
        &["run", "local/huge", "true"],
    ] {
        let (code, peak_kib) = exit_and_peak_memory(ch05_cmd(&root, args));
        assert_ne!(code, Some(0), "{args:?}");
        assert!(peak_kib < 64 * 1024, "{args:?} peaked at {peak_kib} KiB");
        let run = ch05(&root, args);
        assert!(
            run.stderr()
                .contains("over 4194304 bytes, the limit for a manifest or config"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn unpack_errors_print_names_escaped_and_their_cause_once() {
    let parent = open_parent();
    let root = parent.path().join("store");
    let evil = "x\x1b]0;pwned\x07/../../y";
    let dir = parent.path().join("evil");
    layout(&dir, "local/evil:1", &[tar_of(&[file(evil, b"x")])], None);
    let load = ch05(&root, &["load", "-i", dir.to_str().unwrap()]);
    assert_eq!(load.code(), Some(1), "{}", load.transcript());
    let err = load.stderr();
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains(r"x\x1b]0;pwned\x07/../../y"), "{err}");
    assert_eq!(
        err.matches("is not allowed in a layer path").count(),
        1,
        "{err}"
    );
}

#[test]
fn rm_after_the_engine_was_killed_mid_run_frees_the_name() {
    if !require_root("rm_after_the_engine_was_killed_mid_run_frees_the_name") {
        return;
    }
    let parent = open_parent();
    let root = parent.path().join("store");
    import_probe_rootfs(&root, "local/base");
    let mut engine = BackgroundEngine::start(ch05_cmd(
        &root,
        &[
            "run",
            "--name",
            "k9",
            "local/base",
            "sh",
            "-c",
            "echo up; exec sleep 300",
        ],
    ));
    // Killed once the command runs: the "started" line comes before the
    // setup ends, and an engine killed then takes its half-made child with
    // it (not what this test is about).
    engine.expect_stdout(b"up\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engine.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    engine.child.wait().unwrap();
    assert!(process_alive(engine.pid));
    let rm = ch05(&root, &["rm", "k9"]);
    assert_eq!(rm.code(), Some(0), "{}", rm.transcript());
    let start = std::time::Instant::now();
    while process_alive(engine.pid) && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!process_alive(engine.pid), "rm left the container running");
    assert!(cgroup_dirs(&engine.id).is_empty());
    let again = ch05(
        &root,
        &[
            "run",
            "--rm",
            "--name",
            "k9",
            "local/base",
            "sh",
            "-c",
            "true",
        ],
    );
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
    let _ = std::io::stdout().flush();
}
