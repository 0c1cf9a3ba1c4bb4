//! The settings file (`--config-file`, docker's daemon.json): refused when
//! wrong, shown by `info`, and `registry-mirrors` used by `pull`. Two of
//! Debian's docker-registry on 127.0.0.1 play Docker Hub (through the
//! test-only `BERTH_DOCKER_HUB`) and a mirror, each with its own image
//! under `library/busybox:latest`, so the digest says where a pull went.

mod common;

use std::path::{Path, PathBuf};

use berth_test_support::registry::{TestRegistry, free_port, oci_ref, require_tool, skopeo_copy};
use berth_test_support::{Run, command};
use ch05_images::reference::Reference;
use ch05_images::store::Store;
use common::berth_bin;

/// `berth --root R --run-root RR --config-file FILE ARGS...`, Docker Hub
/// played by `hub`.
fn berth(work: &Path, config: &Path, hub: &str, args: &[&str]) -> Run {
    let mut cmd = command(&berth_bin());
    cmd.arg("--root")
        .arg(work.join("root"))
        .arg("--run-root")
        .arg(work.join("run"))
        .arg("--config-file")
        .arg(config)
        .args(args)
        .env("BERTH_DOCKER_HUB", hub)
        .env("DOCKER_CONFIG", work.join("no-docker-config"));
    Run::capture(cmd)
}

fn write_config(work: &Path, json: &str) -> PathBuf {
    let path = work.join("daemon.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[test]
fn a_bad_settings_file_is_refused_naming_the_key() {
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        r#"{"registry-mirror": ["http://127.0.0.1:1"]}"#,
    );
    let run = berth(work.path(), &config, "127.0.0.1:1", &["info"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("unknown key `registry-mirror`")
            && run.stderr().contains(&config.display().to_string()),
        "{}",
        run.transcript()
    );
    let config = write_config(work.path(), r#"{"default-runtime": "kata"}"#);
    let run = berth(work.path(), &config, "127.0.0.1:1", &["info"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr()
            .contains("default-runtime: unknown runtime \"kata\""),
        "{}",
        run.transcript()
    );
    // A file named with --config-file must exist.
    let missing = work.path().join("nowhere.json");
    let run = berth(work.path(), &missing, "127.0.0.1:1", &["info"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr().contains("nowhere.json"),
        "{}",
        run.transcript()
    );
}

#[test]
fn info_shows_mirrors_insecure_registries_and_the_data_root() {
    let work = tempfile::tempdir().unwrap();
    let data_root = work.path().join("data");
    let config = write_config(
        work.path(),
        &format!(
            r#"{{"registry-mirrors": ["http://127.0.0.1:5001"], "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"],
                "data-root": "{}", "default-runtime": "runc"}}"#,
            data_root.display()
        ),
    );
    let mut cmd = command(&berth_bin());
    cmd.arg("--run-root")
        .arg(work.path().join("run"))
        .arg("--config-file")
        .arg(&config)
        .arg("info");
    let run = Run::capture(cmd);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let info = run.stdout();
    assert!(
        info.contains(
            " Insecure Registries:\n  127.0.0.0/8\n  10.0.0.0/8\n  registry.lan:5000\n Registry Mirrors:\n  http://127.0.0.1:5001/\n"
        ),
        "{info}"
    );
    assert!(info.contains(" Default Runtime: runc\n"), "{info}");
    assert!(
        info.contains(&format!(" Docker Root Dir: {}\n", data_root.display())),
        "{info}"
    );
}

/// An image of one file saying `text`, as an OCI layout; its digest.
fn layout(work: &Path, text: &str) -> (PathBuf, String) {
    let dir = work.join(text);
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), text).unwrap();
    let store = Store::open(dir.join("store")).unwrap();
    let name = Reference::parse("berth/settings:1").unwrap();
    let digest =
        ch05_images::image::import_rootfs(&store, &rootfs, &name, vec!["/bin/sh".into()]).unwrap();
    let layout = dir.join("layout");
    ch05_images::archive::save_oci_layout(&store, &[name], &layout).unwrap();
    (layout, digest)
}

fn digest_line(run: &Run) -> String {
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run.stderr()
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no Digest line: {}", run.transcript()))
        .to_string()
}

#[test]
fn pull_goes_through_the_registry_mirrors_and_falls_back_to_the_hub() {
    let test = "pull_goes_through_the_registry_mirrors_and_falls_back_to_the_hub";
    if !require_tool(test, "skopeo") {
        return;
    }
    let Some(hub) = TestRegistry::start(test) else {
        return;
    };
    let Some(mirror) = TestRegistry::start(test) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (hub_layout, hub_digest) = layout(work.path(), "hub");
    let (mirror_layout, mirror_digest) = layout(work.path(), "mirror");
    for (layout, registry) in [(&hub_layout, &hub), (&mirror_layout, &mirror)] {
        skopeo_copy(
            &[],
            &oci_ref(layout, "1"),
            &registry.skopeo_ref("library/busybox:latest"),
        );
    }
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = write_config(
        work.path(),
        &format!(
            r#"{{"registry-mirrors": ["{dead}", "http://{}"]}}"#,
            mirror.addr
        ),
    );
    // The dead mirror is skipped, the live one gives the image.
    let run = berth(work.path(), &config, &hub.addr, &["pull", "busybox"]);
    assert_eq!(digest_line(&run), mirror_digest);
    assert_eq!(run.stdout(), "docker.io/library/busybox:latest\n");
    assert!(
        run.stderr().contains(&format!("from mirror {dead}: ")),
        "{}",
        run.transcript()
    );
    // Both mirrors down: Docker Hub itself.
    drop(mirror);
    let run = berth(work.path(), &config, &hub.addr, &["rmi", "busybox"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let run = berth(work.path(), &config, &hub.addr, &["pull", "busybox"]);
    assert_eq!(digest_line(&run), hub_digest);
}

#[test]
fn containers_get_the_files_log_opts_and_default_ulimits_unless_they_set_their_own() {
    let test = "containers_get_the_files_log_opts_and_default_ulimits_unless_they_set_their_own";
    let Some(env) = common::envs(test).into_iter().next() else {
        return;
    };
    let config = write_config(
        env.root.parent().unwrap(),
        r#"{"log-opts": {"max-size": "10m", "max-file": "3"},
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 2048, "Soft": 1024},
                                "nproc": {"Name": "nproc", "Hard": 512, "Soft": 256}}}"#,
    );
    let config = config.to_str().unwrap();
    let template = "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}} {{end}}{{.HostConfig.LogConfig.Config}}";
    // Nothing given: the file's.
    let id = env.ok(&["--config-file", config, "create", common::IMAGE, "true"]);
    let shown = env.ok(&["inspect", "--format", template, id.trim()]);
    assert_eq!(
        shown.trim(),
        "nofile=1024:2048 nproc=256:512 map[max-file:3 max-size:10m]"
    );
    env.ok(&["rm", "-f", id.trim()]);
    // The container's own win; the other default ulimit is added.
    let id = env.ok(&[
        "--config-file",
        config,
        "create",
        "--ulimit",
        "nofile=100:200",
        "--log-opt",
        "max-size=1m",
        common::IMAGE,
        "true",
    ]);
    let shown = env.ok(&["inspect", "--format", template, id.trim()]);
    assert_eq!(
        shown.trim(),
        "nofile=100:200 nproc=256:512 map[max-size:1m]"
    );
    env.ok(&["rm", "-f", id.trim()]);
}

#[test]
fn bip_and_default_address_pools_choose_the_subnets() {
    let test = "bip_and_default_address_pools_choose_the_subnets";
    if !berth_test_support::require_root(test) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Addresses from TEST-NET-2 (RFC 5737), which no host routes.
    let config = write_config(
        work.path(),
        r#"{"bip": "198.51.100.1/25",
            "default-address-pools": [{"base": "198.51.100.128/25", "size": 28}]}"#,
    );
    let subnet = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}";
    let berth = |args: &[&str]| {
        let run = berth(work.path(), &config, "127.0.0.1:1", args);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        run.stdout().trim().to_string()
    };
    assert_eq!(
        berth(&["network", "inspect", "--format", subnet, "bridge"]),
        "198.51.100.0/25 198.51.100.1"
    );
    berth(&["network", "create", "one"]);
    berth(&["network", "create", "two"]);
    assert_eq!(
        berth(&["network", "inspect", "--format", subnet, "one"]),
        "198.51.100.128/28 198.51.100.129"
    );
    assert_eq!(
        berth(&["network", "inspect", "--format", subnet, "two"]),
        "198.51.100.144/28 198.51.100.145"
    );
    berth(&["network", "rm", "one", "two"]);
}
