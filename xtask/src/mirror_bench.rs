//! `bench ch06-mirror`: chapter 6's pull-through cache against
//! distribution's proxy mode (Debian's `docker-registry` with
//! `proxy.remoteurl`), both in front of one remote docker-registry, all on
//! loopback.
//!
//! A 200 MiB image (one layer of random bytes) is pulled through each cache
//! with `skopeo copy` to an OCI layout:
//!
//! - **cold**: the cache is emptied before each run (its blobs and
//!   repositories removed), so every byte comes from the remote, through
//!   the cache, to the client;
//! - **warm**: the cache has it, and serves it from its disk.
//!
//! Then the cached layer alone, fetched by curl to /dev/null: the cache's
//! own speed, without skopeo's hashing and writing.
//!
//! Goals (issue 18): at least distribution's throughput cold, at least
//! 1.5× warm; and the cache's peak resident set (VmHWM, over everything)
//! flat in blob size — reported next to distribution's.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::bench::Bench;
use crate::scenarios::{
    CH06_IMAGE_BYTES, LayoutImage, Linking, Plan, build_release, import_and_save, require_root,
    run_quietly, which, write_noise,
};
use crate::servers::ServerProcess;

const DISTRIBUTION: &str = "docker-registry (proxy)";
const OURS: &str = "ch06-registry serve --proxy-remote-url";

/// What the plans need running, and what is measured after them.
pub struct MirrorSetup {
    /// The remote first (stopped last), then the two caches.
    caches: Vec<ServerProcess>,
    _remote: ServerProcess,
    _scratch: TempDir,
}

/// A docker-registry config: storage in `root`, on `addr`, proxying
/// `remote` if given.
fn distribution_config(root: &Path, addr: &str, remote: Option<&str>) -> String {
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        root.display()
    );
    if let Some(remote) = remote {
        yaml.push_str(&format!("proxy:\n  remoteurl: http://{remote}\n"));
    }
    yaml
}

fn start_distribution(
    dir: &Path,
    name: &str,
    label: &str,
    remote: Option<&str>,
) -> Result<ServerProcess> {
    let addr = format!("127.0.0.1:{}", berth_test_support::registry::free_port());
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(&config, distribution_config(&dir.join(name), &addr, remote))?;
    let mut command = Command::new("docker-registry");
    command.arg("serve").arg(&config);
    ServerProcess::start(label, command, &addr, &dir.join(format!("{name}.log")))
}

/// The plans (cold, warm) and the servers they use.
pub fn ch06_mirror(root: &Path) -> Result<(Vec<Plan>, MirrorSetup)> {
    require_root(
        "bench ch06-mirror",
        "the benchmark image is made by chapter 5",
    )?;
    for tool in ["docker-registry", "skopeo", "curl"] {
        which(tool).with_context(|| {
            format!("{tool} not found: apt-get install docker-registry skopeo curl")
        })?;
    }
    let ch05 = build_release(root, "ch05-images", Linking::Dynamic)?;
    let ch06 = build_release(root, "ch06-registry", Linking::Dynamic)?;
    let scratch = tempfile::Builder::new()
        .prefix("berth-bench-ch06-mirror-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = scratch.path().to_path_buf();

    // 1. The image: 200 MiB of noise, as an OCI layout.
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs)?;
    write_noise(
        &rootfs.join("noise"),
        CH06_IMAGE_BYTES,
        0x2545_f491_4f6c_dd1d,
    )?;
    let layout = dir.join("layout");
    import_and_save(
        &ch05,
        &dir.join("source"),
        &rootfs,
        "bench/mirror:1",
        &layout,
    )?;
    std::fs::remove_dir_all(&rootfs)?;
    let image = LayoutImage::read(&layout)?;

    // 2. The remote, holding it; the two caches in front of it.
    let remote = start_distribution(&dir, "remote", "remote", None)?;
    run_quietly(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("docker://{}/bench/mirror:1", remote.addr)),
        "putting the image in the remote",
    )?;
    let dist = start_distribution(&dir, "dist-cache", DISTRIBUTION, Some(&remote.addr))?;
    let ours_addr = format!("127.0.0.1:{}", berth_test_support::registry::free_port());
    let ours_root = dir.join("ours-cache");
    let mut command = Command::new(&ch06);
    command
        .args(["serve", "--addr", &ours_addr, "--root"])
        .arg(&ours_root)
        .args(["--proxy-remote-url", &format!("http://{}", remote.addr)])
        .args(["--proxy-ttl", "1h"]);
    let ours = ServerProcess::start(OURS, command, &ours_addr, &dir.join("ours-cache.log"))?;

    // 3. The client, and what empties each cache (cold runs).
    let empty: [Vec<OsString>; 2] = [
        vec![
            "rm".into(),
            "-rf".into(),
            dir.join("dist-cache/docker/registry/v2/blobs").into(),
            dir.join("dist-cache/docker/registry/v2/repositories")
                .into(),
        ],
        vec![
            "rm".into(),
            "-rf".into(),
            ours_root.join("blobs/sha256").into(),
            ours_root.join("repositories/bench").into(),
        ],
    ];
    let pull = |server: &ServerProcess, out: &Path| -> Vec<OsString> {
        vec![
            "skopeo".into(),
            "--insecure-policy".into(),
            "copy".into(),
            "-q".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/bench/mirror:1", server.addr).into(),
            format!("oci:{}:1", out.display()).into(),
        ]
    };
    let mut plans = Vec::new();
    for cold in [true, false] {
        let benches = [&dist, &ours]
            .into_iter()
            .enumerate()
            .map(|(i, server)| {
                let out = dir.join(format!("pulled-{i}-{cold}"));
                let mut reset: Vec<OsString> = vec!["rm".into(), "-rf".into(), out.clone().into()];
                if cold {
                    reset.extend(empty[i].iter().skip(2).cloned());
                }
                Bench::new(&server.label, pull(server, &out)).with_reset(reset)
            })
            .collect();
        plans.push(Plan {
            benches,
            goal_label: OURS.into(),
            // Cold: at least distribution's throughput; warm: 1.5× it.
            goal_max_ratio: if cold { 1.0 } else { 0.67 },
            _scratch: None,
            title: Some(format!(
                "pull a 200 MiB image through the cache with skopeo copy, {}",
                if cold {
                    "cold (the cache emptied before each run)"
                } else {
                    "warm (the cache has it)"
                }
            )),
            content_bytes: Some(image.bytes),
            extra: None,
        });
    }
    // The caches alone, warm: the layer to /dev/null with curl, a client
    // that does nothing with the bytes (skopeo hashes and writes them).
    let layer = image.blobs.last().context("the image has no layer")?;
    let layer_bytes =
        std::fs::metadata(layout.join("blobs").join(layer.replacen(':', "/", 1)))?.len();
    plans.push(Plan {
        benches: [&dist, &ours]
            .into_iter()
            .map(|server| {
                Bench::new(
                    &server.label,
                    [
                        "curl".to_string(),
                        "-sSf".into(),
                        "-o".into(),
                        "/dev/null".into(),
                        format!("http://{}/v2/bench/mirror/blobs/{layer}", server.addr),
                    ],
                )
            })
            .collect(),
        goal_label: OURS.into(),
        goal_max_ratio: 0.67,
        _scratch: None,
        title: Some("GET the cached 200 MiB layer with curl (to /dev/null), warm".into()),
        content_bytes: Some(layer_bytes),
        extra: None,
    });
    Ok((
        plans,
        MirrorSetup {
            caches: vec![dist, ours],
            _remote: remote,
            _scratch: scratch,
        },
    ))
}

/// After the pulls: each cache's peak resident set; the servers stopped.
pub fn ch06_mirror_after(setup: MirrorSetup) -> Result<serde_json::Value> {
    println!("\n## cache peak RSS over the whole run (VmHWM)");
    let mut peaks = serde_json::Map::new();
    for server in &setup.caches {
        let kib = server.peak_rss_kib()?;
        println!("{:<40}  {:>7.1} MiB", server.label, kib as f64 / 1024.0);
        peaks.insert(server.label.clone(), kib.into());
    }
    let MirrorSetup { caches, .. } = setup;
    for server in caches {
        let label = server.label.clone();
        server.stop().with_context(|| format!("stop {label}"))?;
    }
    Ok(serde_json::json!({ "cache_peak_rss_kib": peaks }))
}
