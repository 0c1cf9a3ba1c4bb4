//! `pull --registry-mirror`: Docker Hub images through mirrors first.
//!
//! Two of Debian's docker-registry on 127.0.0.1: one plays Docker Hub
//! (through the test-only `BERTH_DOCKER_HUB`), the other a mirror. Each
//! holds a *different* image under `library/busybox:latest`, so the digest
//! a pull reports says where the image came from.

use std::path::{Path, PathBuf};

use berth_test_support::registry::{TestRegistry, free_port, oci_ref, require_tool, skopeo_copy};
use berth_test_support::{Run, bin_path, command};
use ch05_images::reference::Reference;
use ch05_images::store::Store;

fn bin() -> PathBuf {
    bin_path(env!("CARGO_BIN_EXE_ch05-images"))
}

/// An image of one file saying `text`, as an OCI layout; its manifest digest.
fn layout(work: &Path, text: &str) -> (PathBuf, String) {
    let dir = work.join(text);
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), text).unwrap();
    let store = Store::open(dir.join("store")).unwrap();
    let name = Reference::parse("berth/mirror:1").unwrap();
    let digest =
        ch05_images::image::import_rootfs(&store, &rootfs, &name, vec!["/bin/sh".into()]).unwrap();
    let layout = dir.join("layout");
    ch05_images::archive::save_oci_layout(&store, &[name], &layout).unwrap();
    (layout, digest)
}

struct Setup {
    work: tempfile::TempDir,
    hub: TestRegistry,
    mirror: TestRegistry,
    hub_digest: String,
    mirror_digest: String,
}

fn setup(test: &str) -> Option<Setup> {
    if !require_tool(test, "skopeo") {
        return None;
    }
    let hub = TestRegistry::start(test)?;
    let mirror = TestRegistry::start(test)?;
    let work = tempfile::tempdir().unwrap();
    let (hub_layout, hub_digest) = layout(work.path(), "from-the-hub");
    let (mirror_layout, mirror_digest) = layout(work.path(), "from-the-mirror");
    for (layout, registry) in [(&hub_layout, &hub), (&mirror_layout, &mirror)] {
        skopeo_copy(
            &[],
            &oci_ref(layout, "1"),
            &registry.skopeo_ref("library/busybox:latest"),
        );
    }
    Some(Setup {
        work,
        hub,
        mirror,
        hub_digest,
        mirror_digest,
    })
}

impl Setup {
    /// `ch05-images pull ARGS...` into a fresh store, Docker Hub played by
    /// the hub registry.
    fn pull(&self, args: &[&str]) -> Run {
        pull_with(self.work.path(), &self.hub.addr, args)
    }

    fn mirror_url(&self) -> String {
        format!("http://{}", self.mirror.addr)
    }
}

/// `ch05-images pull ARGS...` into a fresh store under `work`, Docker Hub
/// played by the registry at `hub`.
fn pull_with(work: &Path, hub: &str, args: &[&str]) -> Run {
    let store = tempfile::tempdir_in(work).unwrap();
    let mut cmd = command(&bin());
    cmd.arg("--root")
        .arg(store.path())
        .arg("pull")
        .args(args)
        .env("BERTH_DOCKER_HUB", hub)
        .env("DOCKER_CONFIG", work.join("no-docker-config"));
    Run::capture(cmd)
}

fn digest_line(run: &Run) -> String {
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run.stdout()
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no Digest line: {}", run.transcript()))
        .to_string()
}

#[test]
fn docker_hub_images_come_from_the_first_mirror_that_has_them() {
    let test = "docker_hub_images_come_from_the_first_mirror_that_has_them";
    let Some(s) = setup(test) else { return };
    // Without mirrors: the hub.
    assert_eq!(digest_line(&s.pull(&["busybox"])), s.hub_digest);
    // With the mirror: the mirror's image, under the Hub's name.
    let run = s.pull(&["--registry-mirror", &s.mirror_url(), "busybox"]);
    assert_eq!(digest_line(&run), s.mirror_digest);
    assert!(
        run.stdout().contains("docker.io/library/busybox:latest"),
        "{}",
        run.transcript()
    );
    assert!(
        s.mirror
            .log()
            .contains("\"GET /v2/library/busybox/manifests/latest HTTP/1.1\" 200"),
        "{}",
        s.mirror.log()
    );
    // A dead mirror first, then the live one: the live one.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let run = s.pull(&[
        "--registry-mirror",
        &dead,
        "--registry-mirror",
        &s.mirror_url(),
        "busybox",
    ]);
    assert_eq!(digest_line(&run), s.mirror_digest);
    assert!(
        run.stderr().contains(&format!("from mirror {dead}: ")),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_mirror_that_is_down_or_lacks_the_image_falls_back_to_the_hub() {
    let test = "a_mirror_that_is_down_or_lacks_the_image_falls_back_to_the_hub";
    let Some(s) = setup(test) else { return };
    // Lacking: the mirror has no library/alpine.
    skopeo_copy(
        &[],
        &s.hub.skopeo_ref("library/busybox:latest"),
        &s.hub.skopeo_ref("library/alpine:3"),
    );
    let run = s.pull(&["--registry-mirror", &s.mirror_url(), "alpine:3"]);
    assert_eq!(digest_line(&run), s.hub_digest);
    assert!(
        run.stderr().contains("trying the next source"),
        "{}",
        run.transcript()
    );
    // Down: the hub's image, after the mirror was tried.
    let Setup {
        work,
        hub,
        mirror,
        hub_digest,
        ..
    } = s;
    let url = format!("http://{}", mirror.addr);
    drop(mirror);
    let run = pull_with(
        work.path(),
        &hub.addr,
        &["--registry-mirror", &url, "busybox"],
    );
    assert_eq!(digest_line(&run), hub_digest);
    assert!(
        run.stderr().contains(&format!("from mirror {url}: ")),
        "{}",
        run.transcript()
    );
}

#[test]
fn images_that_name_their_registry_never_go_through_mirrors() {
    let test = "images_that_name_their_registry_never_go_through_mirrors";
    let Some(s) = setup(test) else { return };
    let image = format!("{}/library/busybox:latest", s.hub.addr);
    let run = s.pull(&["--registry-mirror", &s.mirror_url(), &image]);
    assert_eq!(digest_line(&run), s.hub_digest);
    assert!(
        !s.mirror.log().contains("GET /v2/library/busybox/manifests"),
        "{}",
        s.mirror.log()
    );
}

#[test]
fn a_mirror_that_is_not_a_url_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let run = pull_with(
        work.path(),
        "127.0.0.1:1",
        &["--registry-mirror", "mirror.example", "busybox"],
    );
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("\"mirror.example\": give it as http://HOST[:PORT]"),
        "{}",
        run.transcript()
    );
}
