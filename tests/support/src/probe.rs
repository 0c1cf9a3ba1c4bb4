//! `berth-probe` (tests/probe), the program tests run inside containers to
//! print facts about them as stable lines, built static for that purpose.
//!
//! - [`probe_binary`]: the static probe, built once per test run.
//! - [`install_probe`]: copy it into a rootfs, at [`PROBE_IN_CONTAINER`].
//!
//! ```no_run
//! # use berth_test_support::probe::{install_probe, probe_binary};
//! # use ch01_chroot::rootfs::Source;
//! let (_tmp, rootfs) = berth_test_support::fresh_rootfs(Source::Auto);
//! let probe = install_probe(&rootfs); // "/usr/local/bin/berth-probe"
//! // ... run `probe pid hostname mounts` in a container on `rootfs` ...
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ch01_chroot::elf::{is_static, read_needs};

/// Where [`install_probe`] puts the probe, as the container sees it.
pub const PROBE_IN_CONTAINER: &str = "/usr/local/bin/berth-probe";

/// The static `berth-probe` binary, on the host.
///
/// Built the first time a test asks, with
/// `RUSTFLAGS='-C target-feature=+crt-static' cargo build -p berth-probe
/// --release --target ARCH-unknown-linux-gnu` (the explicit `--target` keeps
/// the flag away from build scripts), into `target/probe`: a target directory
/// of its own, so the nested cargo never waits for the lock the outer
/// `cargo test` holds on `target/`. A lock file makes parallel test binaries
/// build it once; later runs find it fresh in well under a second.
///
/// Where there is no cargo to build it (a test binary copied into the
/// cgroup-v2 VM), set `BERTH_PROBE` to a prebuilt static probe, or share the
/// target directory that already holds `target/probe`.
pub fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let probe = match std::env::var_os("BERTH_PROBE") {
            Some(path) => PathBuf::from(path),
            None => build_probe(),
        };
        check_static(&probe);
        probe
    })
}

/// Copy the probe into `rootfs` (a test's own, not the shared read-only
/// [`crate::rootfs`]) as `usr/local/bin/berth-probe`, mode 0755, and return
/// its path inside the container, [`PROBE_IN_CONTAINER`].
pub fn install_probe(rootfs: &Path) -> PathBuf {
    let dest = rootfs.join(PROBE_IN_CONTAINER.trim_start_matches('/'));
    let dir = dest.parent().expect("the probe's path has a directory");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // Copy beside it and rename over, so a probe that is running (ETXTBSY)
    // or half-written is never what a container finds.
    let partial = dir.join(format!(".berth-probe.{}", std::process::id()));
    std::fs::copy(probe_binary(), &partial)
        .unwrap_or_else(|e| panic!("copy the probe to {}: {e}", partial.display()));
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", partial.display()));
    std::fs::rename(&partial, &dest)
        .unwrap_or_else(|e| panic!("rename the probe to {}: {e}", dest.display()));
    PathBuf::from(PROBE_IN_CONTAINER)
}

/// The cargo target directory this test binary was built in: the ancestor
/// holding cargo's `CACHEDIR.TAG` (`target/` for `target/debug/deps/X` and
/// for `target/x86_64-unknown-linux-gnu/debug/deps/X`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps_up = exe.ancestors().nth(3);
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .or(deps_up)
        .expect("test binary lives in target/*/deps")
        .to_path_buf()
}

fn build_probe() -> PathBuf {
    build_static("berth-probe", &target_dir().join("probe"))
}

/// Chapter 7's `berth-init`, the init `run --init` mounts into containers:
/// `BERTH_INIT` if set, else built static as the probe is, into
/// `target/static` (where `cargo xtask berth-init` builds it and where
/// `berth` looks for it).
pub fn init_binary() -> &'static Path {
    static INIT: OnceLock<PathBuf> = OnceLock::new();
    INIT.get_or_init(|| {
        let init = match std::env::var_os("BERTH_INIT") {
            Some(path) => PathBuf::from(path),
            None => build_static("berth-init", &target_dir().join("static")),
        };
        check_static(&init);
        init
    })
}

/// Build `package`'s binary of the same name as a static program into
/// `dir` (a target directory of its own, so the nested cargo never waits
/// for the outer one's lock), once per test run.
fn build_static(package: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let _lock = crate::lock_file(&dir.join(format!("{package}.lock")));

    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let binary = dir.join(&triple).join("release").join(package);
    // `cargo test` tells its test binaries which cargo it is.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The workspace's manifest, two levels above tests/support.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support sits two levels below the workspace")
        .join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "-p", package, "--release"])
        .args(["--target", &triple])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // It would win over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", dir)
        .stdin(Stdio::null());
    let shown = format!(
        "RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR={} {} build -p {package} \
         --release --target {triple} --manifest-path {}",
        dir.display(),
        Path::new(&cargo).display(),
        manifest.display()
    );
    match cmd.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "building {package} failed ({}): {shown}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        // No cargo here (a test binary run in the VM): use a build made
        // before, if there is one.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && binary.is_file() => {}
        Err(e) => panic!(
            "cannot run cargo to build {package} ({e}): {shown}\n\
             (set BERTH_PROBE or BERTH_INIT to a static build made elsewhere)"
        ),
    }
    binary
}

/// Panic unless `probe` (or any program built here) is a static ELF
/// program: it must run in any rootfs.
fn check_static(probe: &Path) {
    let path = std::path::absolute(probe)
        .unwrap_or_else(|e| panic!("the probe's path {}: {e}", probe.display()));
    let path = path.to_str().expect("the probe's path is UTF-8");
    let needs = read_needs(Path::new("/"), path).unwrap_or_else(|e| panic!("the probe: {e}"));
    assert!(
        is_static(&needs),
        "the probe {path} is not static (interpreter {:?}, needs {:?}); \
         it must be built with -C target-feature=+crt-static and an explicit --target",
        needs.interpreter,
        needs.needed
    );
}

/// A rootfs of a test's own with the probe in it, readable by every user (so
/// a rootless run as another user can use it); removed when dropped.
pub struct ProbeRootfs {
    _tmp: tempfile::TempDir,
    pub path: PathBuf,
}

/// Make a [`ProbeRootfs`].
pub fn probe_rootfs() -> ProbeRootfs {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, path) = crate::fresh_rootfs(ch01_chroot::rootfs::Source::Auto);
    install_probe(&path);
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 the test rootfs's parent");
    ProbeRootfs { _tmp: tmp, path }
}
