//! What each chapter's benchmark measures: the commands, their peer, and the goal.
//!
//! A scenario is a function that prepares what its commands need (release binaries, a
//! rootfs) and returns a [`Plan`]; [`run`] does the rest (measure, print, check the
//! goal, write JSON). To add `bench ch02`, add a `Ch02` variant to [`Scenario`] and a
//! `fn ch02(root) -> Result<Plan>` next to [`ch01`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::bench::{self, Bench};
use crate::display_path;
use crate::load;
use crate::servers::ServerProcess;

/// The chapters that have a benchmark.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Scenario {
    Ch01,
    Ch02,
    Ch03,
    Ch04,
    Ch05,
    Ch06,
    /// Chapter 6's pull-through cache against distribution's proxy mode.
    Ch06Mirror,
    Ch07,
    /// `berth build` against `podman build`.
    #[value(name = "ch07-build")]
    Ch07Build,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ch01 => "ch01",
            Scenario::Ch02 => "ch02",
            Scenario::Ch03 => "ch03",
            Scenario::Ch04 => "ch04",
            Scenario::Ch05 => "ch05",
            Scenario::Ch06 => "ch06",
            Scenario::Ch06Mirror => "ch06-mirror",
            Scenario::Ch07 => "ch07",
            Scenario::Ch07Build => "ch07-build",
        }
    }
}

/// What a scenario measures. The first bench is the baseline (the peer).
pub struct Plan {
    pub benches: Vec<Bench>,
    /// The bench (by label) whose ratio the goal is about.
    pub goal_label: String,
    /// The goal is met when that bench's ratio is at most this.
    pub goal_max_ratio: f64,
    /// Kept alive until the measurement is over; dropping it removes the scenario's files.
    pub _scratch: Option<TempDir>,
    /// A heading, when a scenario measures several things.
    pub title: Option<String>,
    /// The bytes each run moves: throughput is printed when known.
    pub content_bytes: Option<u64>,
    /// More figures the scenario measured, kept in its JSON record.
    pub extra: Option<serde_json::Value>,
}

impl Plan {
    fn goal_text(&self) -> String {
        format!(
            "{} ≤ {}× {}",
            self.goal_label, self.goal_max_ratio, self.benches[0].label
        )
    }
}

/// Prepares the scenario, measures it, prints the table and the goal, and writes JSON.
pub fn run(root: &Path, scenario: Scenario, runs: usize, json: Option<&Path>) -> Result<ExitCode> {
    // `_keep` holds what the measured commands need running (a registry)
    // until every plan is measured.
    let load_at_start = load_average();
    // Peak RSS is read through a small static program of its own (see
    // xtask/peak-rss for why not from our own wait4).
    let peak_rss_tool = build_release(root, "berth-peak-rss", Linking::Static)?;
    // `after` is measured once the plans are, with what they left running.
    let mut after = None;
    let mut mirror_after = None;
    let (plans, _keep): (Vec<Plan>, Option<Box<dyn std::any::Any>>) = match scenario {
        Scenario::Ch01 => (vec![ch01(root)?], None),
        Scenario::Ch02 => (vec![ch02(root)?], None),
        Scenario::Ch03 => (vec![ch03(root)?], None),
        Scenario::Ch04 => (vec![ch04(root)?], None),
        Scenario::Ch05 => {
            let (plans, registry) = ch05(root)?;
            (plans, Some(Box::new(registry)))
        }
        Scenario::Ch06 => {
            let (plans, setup) = ch06(root)?;
            after = Some(setup);
            (plans, None)
        }
        Scenario::Ch06Mirror => {
            let (plans, setup) = crate::mirror_bench::ch06_mirror(root)?;
            mirror_after = Some(setup);
            (plans, None)
        }
        Scenario::Ch07 => (vec![ch07(root)?], None),
        Scenario::Ch07Build => (ch07_build(root)?, None),
    };
    let mut records = Vec::new();
    for plan in &plans {
        records.push(measure(scenario, plan, runs, &peak_rss_tool)?);
    }
    let mut extra = after.map(|setup| ch06_after(setup, runs)).transpose()?;
    if let Some(setup) = mirror_after {
        extra = Some(crate::mirror_bench::ch06_mirror_after(setup)?);
    }
    let load_at_end = load_average();
    // Other work on the machine slows every command; interleaving spreads
    // it evenly only if it is steady. Worth knowing when figures surprise.
    println!(
        "\nmachine load average (1, 5, 15 min): {load_at_start} at the start, {load_at_end} at the end"
    );
    if let Some(path) = json {
        let mut value = serde_json::json!({
            "scenario": scenario.name(),
            "invocation": format!("cargo xtask bench {} --runs {runs}", scenario.name()),
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "kernel": kernel_release(),
            "load_average_start": load_at_start,
            "load_average_end": load_at_end,
            "runs": runs,
            "warmup_runs": bench::WARMUP_RUNS,
        });
        if records.len() == 1 {
            for (k, v) in records.remove(0).as_object().into_iter().flatten() {
                value[k] = v.clone();
            }
        } else {
            value["groups"] = records.into();
        }
        for (k, v) in extra.iter().filter_map(|e| e.as_object()).flatten() {
            value[k] = v.clone();
        }
        let text = serde_json::to_string_pretty(&value)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        give_to_sudo_user(path);
        eprintln!("bench {}: wrote {}", scenario.name(), path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Measure one plan, print its table, throughput and goal; return its JSON.
fn measure(
    scenario: Scenario,
    plan: &Plan,
    runs: usize,
    peak_rss_tool: &Path,
) -> Result<serde_json::Value> {
    if let Some(title) = &plan.title {
        println!("\n## {title}");
    }
    eprintln!(
        "bench {}: measuring {} commands, {runs} runs each",
        scenario.name(),
        plan.benches.len()
    );
    let results = bench::compare(&plan.benches, runs, Some(peak_rss_tool))?;
    print!("{}", bench::render(&results, runs));
    let mut throughput = serde_json::Map::new();
    if let Some(bytes) = plan.content_bytes {
        for m in &results {
            let mb_s = bytes as f64 / 1e6 / m.median.as_secs_f64();
            println!("throughput, {}: {mb_s:.1} MB/s", m.label);
            throughput.insert(m.label.clone(), ((mb_s * 10.0).round() / 10.0).into());
        }
    }

    let goal = plan.goal_text();
    let ratio = results
        .iter()
        .find(|m| m.label == plan.goal_label)
        .with_context(|| {
            format!(
                "the goal names `{}`, which is not measured",
                plan.goal_label
            )
        })?
        .ratio;
    let met = ratio <= plan.goal_max_ratio;
    println!(
        "goal: {goal}: {} (ratio {ratio:.2})",
        if met { "met" } else { "not met" }
    );
    let mut record = serde_json::json!({
        "title": plan.title,
        "content_bytes": plan.content_bytes,
        "throughput_mb_s": throughput,
        "goal": {
            "text": goal,
            "label": plan.goal_label,
            "max_ratio": plan.goal_max_ratio,
            "ratio": (ratio * 10000.0).round() / 10000.0,
            "met": met,
        },
        "results": bench::to_json(&results),
    });
    for (k, v) in plan.extra.iter().filter_map(|e| e.as_object()).flatten() {
        record[k] = v.clone();
    }
    Ok(record)
}

/// Chapter 1: `ch01-chroot run ROOTFS /bin/true` against coreutils' `chroot ROOTFS /bin/true`.
fn ch01(root: &Path) -> Result<Plan> {
    require_root("bench ch01", "chroot(2) needs CAP_SYS_CHROOT")?;
    let chroot = Path::new("/usr/sbin/chroot");
    ensure!(
        chroot.exists(),
        "{} not found: install coreutils (it is the baseline)",
        chroot.display()
    );

    // The engine ships as a static binary, as runc does: no dynamic loader
    // work at every start. The dynamic build is measured too, for the book.
    let ch01 = build_release(root, "ch01-chroot", Linking::Static)?;
    let ch01_dynamic = build_release(root, "ch01-chroot", Linking::Dynamic)?;
    let (scratch, rootfs) = scratch_rootfs(root, "ch01")?;

    Ok(Plan {
        benches: vec![
            Bench::new(
                "chroot(1)",
                [chroot.as_os_str(), rootfs.as_os_str(), "/bin/true".as_ref()],
            ),
            Bench::new(
                "ch01-chroot",
                [
                    ch01.as_os_str(),
                    "run".as_ref(),
                    rootfs.as_os_str(),
                    "/bin/true".as_ref(),
                ],
            ),
            Bench::new(
                "ch01-chroot (dynamic)",
                [
                    ch01_dynamic.as_os_str(),
                    "run".as_ref(),
                    rootfs.as_os_str(),
                    "/bin/true".as_ref(),
                ],
            ),
        ],
        goal_label: "ch01-chroot".to_string(),
        goal_max_ratio: 1.2,
        _scratch: Some(scratch),
        title: None,
        content_bytes: None,
        extra: None,
    })
}

/// Chapter 2: `ch02-namespaces run --ns all ROOTFS /bin/true` against
/// `unshare ... chroot ROOTFS /bin/true` (the same namespaces, no engine) and
/// `crun run` on an OCI bundle of the same rootfs.
fn ch02(root: &Path) -> Result<Plan> {
    require_root("bench ch02", "namespaces and pivot_root need CAP_SYS_ADMIN")?;
    let ch02 = build_release(root, "ch02-namespaces", Linking::Static)?;
    let setup = crun_setup(root, "ch02")?;
    hide_unified_cgroup_controllers()?;

    let unshare: Vec<&std::ffi::OsStr> = [
        "unshare",
        "--fork",
        "--pid",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--user",
        "--map-root-user",
        "chroot",
    ]
    .iter()
    .map(|s| s.as_ref())
    .chain([setup.rootfs.as_os_str(), "/bin/true".as_ref()])
    .collect();
    let ours = [
        ch02.as_os_str(),
        "run".as_ref(),
        "--ns".as_ref(),
        "all".as_ref(),
        "--hostname".as_ref(),
        "bench".as_ref(),
        setup.rootfs.as_os_str(),
        "/bin/true".as_ref(),
    ];
    Ok(Plan {
        benches: vec![
            Bench::new("unshare+chroot", unshare),
            Bench::new("ch02-namespaces", ours),
            Bench::new("crun run", setup.run_command()),
        ],
        goal_label: "ch02-namespaces".to_string(),
        goal_max_ratio: 1.5,
        _scratch: Some(setup.scratch),
        title: None,
        content_bytes: None,
        extra: None,
    })
}

/// Chapter 3: what cgroups add. `ch03-cgroups run` with memory, pids and
/// CPU limits against chapter 2 (no cgroup) and against `crun run` with the
/// same limits in its config.json.
fn ch03(root: &Path) -> Result<Plan> {
    require_root("bench ch03", "creating cgroups needs root")?;
    let ch02 = build_release(root, "ch02-namespaces", Linking::Static)?;
    let ch03 = build_release(root, "ch03-cgroups", Linking::Static)?;
    let setup = crun_setup(root, "ch03")?;
    let path = setup.bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    config["linux"]["resources"] = serde_json::json!({
        "memory": { "limit": 64 << 20 },
        "pids": { "limit": 100 },
        "cpu": { "quota": 50000, "period": 100000 }
    });
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    hide_unified_cgroup_controllers()?;

    let common = ["run", "--hostname", "bench"];
    let limits = ["--memory", "64m", "--pids-limit", "100", "--cpus", "0.5"];
    let tail = [setup.rootfs.as_os_str(), "/bin/true".as_ref()];
    let ours: Vec<&std::ffi::OsStr> = std::iter::once(ch03.as_os_str())
        .chain(common.iter().chain(&limits).map(|s| s.as_ref()))
        .chain(tail)
        .collect();
    let without: Vec<&std::ffi::OsStr> = std::iter::once(ch02.as_os_str())
        .chain(common.iter().map(|s| s.as_ref()))
        .chain(tail)
        .collect();
    Ok(Plan {
        benches: vec![
            Bench::new("crun run (limits)", setup.run_command()),
            Bench::new("ch02-namespaces", without),
            Bench::new("ch03-cgroups (limits)", ours),
        ],
        goal_label: "ch03-cgroups (limits)".to_string(),
        goal_max_ratio: 1.0,
        _scratch: Some(setup.scratch),
        title: None,
        content_bytes: None,
        extra: None,
    })
}

/// Chapter 4: create + start + exit of a container on a 200 MB layer,
/// overlay against a copy per container (vfs); and the disk that ten
/// containers on that layer take with each driver.
fn ch04(root: &Path) -> Result<Plan> {
    require_root("bench ch04", "mounting overlay needs root")?;
    let ch04 = build_release(root, "ch04-overlay", Linking::Static)?;
    let (scratch, layer) = scratch_rootfs(root, "ch04")?;
    // 200 files of 1 MiB: a 200 MB image, as the issue asks.
    let blob = layer.join("blob");
    std::fs::create_dir(&blob)?;
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..200u32 {
        for (j, byte) in chunk.iter_mut().enumerate() {
            *byte = (j as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i)
                .to_le_bytes()[0];
        }
        std::fs::write(blob.join(format!("{i:03}")), &chunk)?;
    }
    let state = scratch.path().join("state");

    // Disk: ten containers with each driver, measured, then removed.
    let layer_mib = disk_usage(&layer)? as f64 / f64::from(1 << 20);
    let mut disk = serde_json::Map::new();
    for driver in ["overlay", "vfs"] {
        for n in 0..10 {
            let name = format!("disk-{driver}-{n}");
            run_quietly(
                Command::new(&ch04)
                    .arg("--root")
                    .arg(&state)
                    .args([
                        "run",
                        "--name",
                        &name,
                        "--storage-driver",
                        driver,
                        "--layer",
                    ])
                    .arg(&layer)
                    .arg("/bin/true"),
                "starting a container",
            )?;
        }
        let used = disk_usage(&state.join("containers"))?;
        let used_mib = used as f64 / f64::from(1 << 20);
        println!(
            "disk used by 10 containers on a {layer_mib:.0} MiB layer, {driver}: {used_mib:.1} MiB"
        );
        disk.insert(driver.into(), ((used_mib * 10.0).round() / 10.0).into());
        for n in 0..10 {
            let name = format!("disk-{driver}-{n}");
            run_quietly(
                Command::new(&ch04)
                    .arg("--root")
                    .arg(&state)
                    .args(["rm", &name]),
                "removing a container",
            )?;
        }
    }

    let run = |name: &str, driver: &str| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> =
            vec![ch04.clone().into(), "--root".into(), state.clone().into()];
        args.extend(
            [
                "run",
                "--rm",
                "--name",
                name,
                "--storage-driver",
                driver,
                "--layer",
            ]
            .map(Into::into),
        );
        args.push(layer.clone().into());
        args.push("/bin/true".into());
        args
    };
    Ok(Plan {
        benches: vec![
            Bench::new("vfs (a copy)", run("bench-vfs", "vfs")),
            Bench::new("overlay", run("bench-overlay", "overlay")),
        ],
        goal_label: "overlay".to_string(),
        goal_max_ratio: 1.0,
        _scratch: Some(scratch),
        title: None,
        content_bytes: None,
        extra: Some(serde_json::json!({
            "disk_ten_containers_mib": disk,
            "layer_mib": (layer_mib * 10.0).round() / 10.0,
        })),
    })
}

/// What chapter 5's commands need while they are measured: a loopback
/// registry holding the two images, and the scratch directory. The
/// registry stops first (fields drop in order).
struct Ch05Setup {
    _registry: berth_test_support::registry::TestRegistry,
    _scratch: TempDir,
}

/// `ch05-images import ROOTFS NAME` into the store `source`, then `save
/// --format oci -o LAYOUT NAME`: a benchmark image, as an OCI layout skopeo
/// can copy into a registry.
pub(crate) fn import_and_save(
    ch05: &Path,
    source: &Path,
    rootfs: &Path,
    name: &str,
    layout: &Path,
) -> Result<()> {
    let name = std::ffi::OsStr::new(name);
    let import = [OsStr::new("import"), rootfs.as_os_str(), name];
    let save = [
        OsStr::new("save"),
        OsStr::new("--format"),
        OsStr::new("oci"),
        OsStr::new("-o"),
        layout.as_os_str(),
        name,
    ];
    for args in [&import[..], &save[..]] {
        run_quietly(
            Command::new(ch05).arg("--root").arg(source).args(args),
            "making the benchmark image",
        )?;
    }
    Ok(())
}

/// The bytes in each chapter 5 benchmark image.
const CH05_IMAGE_BYTES: u64 = 200 << 20;

/// Chapter 5: pull and unpack a 200 MiB image from a docker-registry on
/// loopback, with `ch05-images pull`, `podman pull` (the baseline) and
/// `skopeo copy` + `umoci unpack`; once for an image of compressible files,
/// once for a layer of random bytes. Each run starts from an empty store.
fn ch05(root: &Path) -> Result<(Vec<Plan>, Ch05Setup)> {
    require_root("bench ch05", "podman's overlay storage needs root")?;
    for tool in ["docker-registry", "skopeo", "umoci", "podman"] {
        which(tool).with_context(|| {
            format!("{tool} not found: apt-get install it (the peers and the registry)")
        })?;
    }
    let ch05 = build_release(root, "ch05-images", Linking::Dynamic)?;
    let scratch = tempfile::Builder::new()
        .prefix("berth-bench-ch05-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let registry = berth_test_support::registry::TestRegistry::start("bench ch05")
        .context("docker-registry could not start")?;
    let dir = scratch.path();

    // The two images, made by ch05 itself and copied in by skopeo.
    let text = dir.join("text-rootfs");
    std::fs::create_dir(&text)?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for file in 0..200u32 {
        chunk.clear();
        let mut line = 0u32;
        while chunk.len() < 1 << 20 {
            use std::io::Write as _;
            writeln!(
                chunk,
                "file {file:03} line {line:06}: the quick brown fox jumps over the lazy dog {}",
                line.wrapping_mul(2_654_435_761) % 1000
            )?;
            line += 1;
        }
        chunk.truncate(1 << 20);
        std::fs::write(text.join(format!("{file:03}.txt")), &chunk)?;
    }
    let random = dir.join("random-rootfs");
    std::fs::create_dir(&random)?;
    write_noise(
        &random.join("noise"),
        CH05_IMAGE_BYTES,
        0x9e37_79b9_7f4a_7c15,
    )?;
    let source = dir.join("source");
    let mut plans = Vec::new();
    for (what, rootfs, name) in [
        ("200 MiB of compressible files", &text, "bench/text:1"),
        ("a 200 MiB layer of random bytes", &random, "bench/random:1"),
    ] {
        let layout = dir.join(format!("layout-{}", name.replace(['/', ':'], "-")));
        import_and_save(&ch05, &source, rootfs, name, &layout)?;
        let image = format!("{}/{name}", registry.addr);
        berth_test_support::registry::skopeo_copy(
            &[],
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{image}"),
        );

        let store = |tool: &str| dir.join(format!("store-{tool}"));
        let reset = |tool: &str| -> Vec<std::ffi::OsString> {
            vec!["rm".into(), "-rf".into(), store(tool).into()]
        };
        let podman = store("podman");
        let podman_pull: Vec<std::ffi::OsString> = vec![
            "podman".into(),
            "--root".into(),
            podman.join("root").into(),
            "--runroot".into(),
            podman.join("run").into(),
            "--storage-driver".into(),
            "overlay".into(),
            "--events-backend".into(),
            "none".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "pull".into(),
            "-q".into(),
            "--tls-verify=false".into(),
            image.clone().into(),
        ];
        let oci = store("skopeo");
        let skopeo_umoci = format!(
            "mkdir -p {0} && skopeo --insecure-policy copy -q --src-tls-verify=false docker://{image} oci:{0}/layout:1 && umoci unpack --image {0}/layout:1 {0}/bundle",
            oci.display()
        );
        let ours: Vec<std::ffi::OsString> = vec![
            ch05.clone().into(),
            "--root".into(),
            store("ch05").into(),
            "pull".into(),
            "-q".into(),
            image.clone().into(),
        ];
        plans.push(Plan {
            benches: vec![
                Bench::new("podman pull", podman_pull).with_reset(reset("podman")),
                Bench::new("skopeo copy + umoci unpack", ["sh", "-c", &skopeo_umoci])
                    .with_reset(reset("skopeo")),
                Bench::new("ch05-images pull", ours).with_reset(reset("ch05")),
            ],
            goal_label: "ch05-images pull".into(),
            // At least 1.5× podman's throughput.
            goal_max_ratio: 0.67,
            _scratch: None,
            title: Some(format!("pull + unpack {what}")),
            content_bytes: Some(CH05_IMAGE_BYTES),
            extra: None,
        });
    }
    Ok((
        plans,
        Ch05Setup {
            _registry: registry,
            _scratch: scratch,
        },
    ))
}

/// The random bytes in the one layer of each chapter 6 image. Throughput is
/// computed from what a run really moves: the layer as stored (a tar, gzip
/// compressed), the config and the manifest.
pub(crate) const CH06_IMAGE_BYTES: u64 = 200 << 20;

/// The labels of the two registries in chapter 6's tables.
const DISTRIBUTION: &str = "docker-registry";
const OURS: &str = "ch06-registry serve";

/// An image saved as an OCI image layout: the digests of its manifest,
/// config and layers (read from the layout's index.json and manifest).
pub(crate) struct LayoutImage {
    dir: PathBuf,
    manifest: String,
    /// Config and layers.
    pub(crate) blobs: Vec<String>,
    /// Manifest, config and layers, in bytes: what a push or pull moves.
    pub(crate) bytes: u64,
}

impl LayoutImage {
    pub(crate) fn read(dir: &Path) -> Result<LayoutImage> {
        let json = |path: PathBuf| -> Result<serde_json::Value> {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            Ok(serde_json::from_str(&text)?)
        };
        let blob = |digest: &str| dir.join("blobs").join(digest.replacen(':', "/", 1));
        let index = json(dir.join("index.json"))?;
        let manifest = index["manifests"][0]["digest"]
            .as_str()
            .context("the layout's index.json names no manifest")?
            .to_string();
        let mut bytes = std::fs::metadata(blob(&manifest))?.len();
        let value = json(blob(&manifest))?;
        let mut blobs = Vec::new();
        let descriptors = std::iter::once(&value["config"])
            .chain(value["layers"].as_array().into_iter().flatten());
        for d in descriptors {
            blobs.push(
                d["digest"]
                    .as_str()
                    .context("a descriptor without a digest")?
                    .to_string(),
            );
            bytes += d["size"].as_u64().context("a descriptor without a size")?;
        }
        Ok(LayoutImage {
            dir: dir.to_path_buf(),
            manifest,
            blobs,
            bytes,
        })
    }

    /// The manifest, config and layers.
    fn digests(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.manifest.as_str()).chain(self.blobs.iter().map(String::as_str))
    }
}

/// What chapter 6's plans need while they are measured, and what is
/// measured after them: both registries, serving from the scratch
/// directory. The servers stop first (fields drop in order).
struct Ch06Setup {
    /// docker-registry (the baseline), then ours.
    servers: Vec<ServerProcess>,
    /// `/v2/bench/pull/manifests/1`.
    manifest_path: String,
    /// `/v2/bench/pull/blobs/<the layer's digest>`.
    blob_path: String,
    _scratch: TempDir,
}

/// Chapter 6: our registry against the CNCF distribution registry (Debian's
/// `docker-registry`), both serving from a directory on this disk, loopback.
///
/// 1. Push and pull of a 200 MiB image (one layer of random bytes), each
///    with two clients, the same for both servers: chapter 5's pull (which
///    also unpacks) and chapter 6's push, then skopeo both ways (to and
///    from an OCI layout); first the layer alone fetched by curl, which
///    measures the server more than the client. A push starts from a
///    registry without the image (its blobs and repository removed between
///    runs: our server would otherwise mount the blobs it already has
///    instead of receiving them).
/// 2. Requests per second of manifest GET by tag and blob HEAD under 32
///    concurrent clients ([`crate::load`], with oha).
/// 3. Each server's peak resident set over all of it (VmHWM).
///
/// Both log one access line per request to a file (docker-registry at log
/// level warn, so its info lines are off). Needs docker-registry, skopeo and
/// curl (`apt-get install docker-registry skopeo curl`) and oha (`cargo
/// install oha`).
fn ch06(root: &Path) -> Result<(Vec<Plan>, Ch06Setup)> {
    require_root(
        "bench ch06",
        "chapter 5's pull unpacks the layer with its owners",
    )?;
    for tool in ["docker-registry", "skopeo", "curl"] {
        which(tool).with_context(|| {
            format!("{tool} not found: apt-get install docker-registry skopeo curl")
        })?;
    }
    which("oha").context("oha not found: cargo install oha (the load generator)")?;
    let ch05 = build_release(root, "ch05-images", Linking::Dynamic)?;
    let ch06 = build_release(root, "ch06-registry", Linking::Dynamic)?;
    let scratch = tempfile::Builder::new()
        .prefix("berth-bench-ch06-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = scratch.path();

    // 1. Two images of different random bytes, made by chapter 5, in its
    //    store (for our push) and as OCI layouts (for skopeo).
    let source = dir.join("source");
    let mut images = Vec::new();
    for (name, seed) in [("bench/pull:1", 1u64), ("bench/push:1", 2)] {
        let rootfs = dir.join(format!("rootfs-{seed}"));
        std::fs::create_dir(&rootfs)?;
        write_noise(
            &rootfs.join("noise"),
            CH06_IMAGE_BYTES,
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )?;
        let layout = dir.join(format!("layout-{seed}"));
        import_and_save(&ch05, &source, &rootfs, name, &layout)?;
        std::fs::remove_dir_all(&rootfs)?;
        images.push(LayoutImage::read(&layout)?);
    }
    let (pull_image, push_image) = (&images[0], &images[1]);

    // 2. The two servers, each on its own storage.
    let free = || format!("127.0.0.1:{}", berth_test_support::registry::free_port());
    let dist_addr = free();
    let dist_root = dir.join("docker-registry");
    let config = dir.join("docker-registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {dist_addr}\n",
            dist_root.display()
        ),
    )?;
    let mut command = Command::new("docker-registry");
    command.arg("serve").arg(&config);
    let dist = ServerProcess::start(
        DISTRIBUTION,
        command,
        &dist_addr,
        &dir.join("docker-registry.log"),
    )?;
    let ours_addr = free();
    let ours_root = dir.join("ch06-registry");
    let mut command = Command::new(&ch06);
    command
        .args(["serve", "--addr", &ours_addr, "--root"])
        .arg(&ours_root);
    let ours = ServerProcess::start(OURS, command, &ours_addr, &dir.join("ch06-registry.log"))?;

    // 3. The image to pull, put in both by skopeo.
    for server in [&dist, &ours] {
        run_quietly(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:1", pull_image.dir.display()))
                .arg(format!("docker://{}/bench/pull:1", server.addr)),
            "putting the image to pull in the registries",
        )?;
    }

    // 4. What each run does. Pulls start from an empty store, pushes from a
    //    registry without the pushed image's blobs and repository.
    let hex = |digest: &str| {
        digest
            .split_once(':')
            .map_or(digest, |(_, h)| h)
            .to_string()
    };
    let mut unpush: [Vec<std::ffi::OsString>; 2] = [
        vec!["rm".into(), "-rf".into()],
        vec!["rm".into(), "-rf".into()],
    ];
    let dist_v2 = dist_root.join("docker/registry/v2");
    for digest in push_image.digests() {
        let hex = hex(digest);
        unpush[0].push(
            dist_v2
                .join("blobs/sha256")
                .join(&hex[..2])
                .join(&hex)
                .into(),
        );
        unpush[1].push(ours_root.join("blobs/sha256").join(&hex).into());
    }
    unpush[0].push(dist_v2.join("repositories/bench/push").into());
    unpush[1].push(ours_root.join("repositories/bench/push").into());

    type Argv = Vec<std::ffi::OsString>;
    /// The command and its reset, for the server and its index.
    type Client<'a> = &'a dyn Fn(&ServerProcess, usize) -> (Argv, Argv);
    let clients: [(&str, Client); 4] = [
        (
            "pull a 200 MiB image with ch05-images pull (download + unpack)",
            &|server, i| {
                let store = dir.join(format!("pull-ch05-{i}"));
                (
                    vec![
                        ch05.clone().into(),
                        "--root".into(),
                        store.clone().into(),
                        "pull".into(),
                        "-q".into(),
                        format!("{}/bench/pull:1", server.addr).into(),
                    ],
                    vec!["rm".into(), "-rf".into(), store.into()],
                )
            },
        ),
        (
            "pull a 200 MiB image with skopeo copy (to an OCI layout)",
            &|server, i| {
                let layout = dir.join(format!("pull-skopeo-{i}"));
                (
                    vec![
                        "skopeo".into(),
                        "--insecure-policy".into(),
                        "copy".into(),
                        "-q".into(),
                        "--src-tls-verify=false".into(),
                        format!("docker://{}/bench/pull:1", server.addr).into(),
                        format!("oci:{}:1", layout.display()).into(),
                    ],
                    vec!["rm".into(), "-rf".into(), layout.into()],
                )
            },
        ),
        (
            "push a 200 MiB image with ch06-registry push",
            &|server, i| {
                (
                    vec![
                        ch06.clone().into(),
                        "push".into(),
                        "--root".into(),
                        source.clone().into(),
                        "bench/push:1".into(),
                        format!("{}/bench/push:1", server.addr).into(),
                    ],
                    unpush[i].clone(),
                )
            },
        ),
        (
            "push a 200 MiB image with skopeo copy (from an OCI layout)",
            &|server, i| {
                (
                    vec![
                        "skopeo".into(),
                        "--insecure-policy".into(),
                        "copy".into(),
                        "-q".into(),
                        "--dest-tls-verify=false".into(),
                        format!("oci:{}:1", push_image.dir.display()).into(),
                        format!("docker://{}/bench/push:1", server.addr).into(),
                    ],
                    unpush[i].clone(),
                )
            },
        ),
    ];
    let mut plans = Vec::new();
    for (title, client) in clients {
        let benches = [&dist, &ours]
            .into_iter()
            .enumerate()
            .map(|(i, server)| {
                let (argv, reset) = client(server, i);
                Bench::new(&server.label, argv).with_reset(reset)
            })
            .collect();
        let bytes = if title.starts_with("pull") {
            pull_image.bytes
        } else {
            push_image.bytes
        };
        plans.push(Plan {
            benches,
            goal_label: OURS.into(),
            // At least distribution's throughput.
            goal_max_ratio: 1.0,
            _scratch: None,
            title: Some(title.into()),
            content_bytes: Some(bytes),
            extra: None,
        });
    }
    // The server alone: the layer's bytes to /dev/null with curl, a client
    // that does nothing with them (no hashing, no disk).
    let layer = pull_image.blobs.last().context("the image has no layer")?;
    let layer_bytes = std::fs::metadata(
        pull_image
            .dir
            .join("blobs")
            .join(layer.replacen(':', "/", 1)),
    )?
    .len();
    plans.insert(
        0,
        Plan {
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
                            format!("http://{}/v2/bench/pull/blobs/{layer}", server.addr),
                        ],
                    )
                })
                .collect(),
            goal_label: OURS.into(),
            goal_max_ratio: 1.0,
            _scratch: None,
            title: Some("GET the 200 MiB layer with curl (to /dev/null)".into()),
            content_bytes: Some(layer_bytes),
            extra: None,
        },
    );
    Ok((
        plans,
        Ch06Setup {
            servers: vec![dist, ours],
            manifest_path: "/v2/bench/pull/manifests/1".into(),
            blob_path: format!("/v2/bench/pull/blobs/{layer}"),
            _scratch: scratch,
        },
    ))
}

/// Chapter 6, after the transfers: requests per second under load, then
/// each server's peak RSS; the servers are stopped. Returns the JSON.
fn ch06_after(setup: Ch06Setup, runs: usize) -> Result<serde_json::Value> {
    let accept = [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
    .join(", ");
    let targets = |path: &str| -> Vec<load::Target> {
        setup
            .servers
            .iter()
            .map(|s| load::Target {
                label: s.label.clone(),
                url: format!("http://{}{path}", s.addr),
            })
            .collect()
    };
    let tests = [
        load::LoadTest {
            title: format!(
                "manifest GET by tag, {} concurrent clients",
                load::CONNECTIONS
            ),
            method: "GET",
            headers: vec![("Accept", accept)],
            targets: targets(&setup.manifest_path),
        },
        load::LoadTest {
            title: format!("blob HEAD, {} concurrent clients", load::CONNECTIONS),
            method: "HEAD",
            headers: Vec::new(),
            targets: targets(&setup.blob_path),
        },
    ];
    let mut load_json = Vec::new();
    for test in &tests {
        println!("\n## {}", test.title);
        eprintln!(
            "bench ch06: loading {} servers, {runs} runs each",
            test.targets.len()
        );
        let results = load::compare(test, runs)?;
        print!("{}", load::render(test, &results, runs));
        let ratio = results
            .iter()
            .find(|r| r.label == OURS)
            .map_or(f64::NAN, |r| r.ratio);
        let met = ratio >= 1.0;
        println!(
            "goal: {OURS} ≥ 1× {DISTRIBUTION} requests/s: {} (ratio {ratio:.2})",
            if met { "met" } else { "not met" }
        );
        let mut json = load::to_json(test, &results);
        json["goal"] = serde_json::json!({ "min_ratio": 1.0, "ratio": (ratio * 10000.0).round() / 10000.0, "met": met });
        load_json.push(json);
    }

    // Peak memory over everything above, read while each server still runs.
    println!("\n## server peak RSS over the whole run (VmHWM)");
    let mut peaks = Vec::new();
    for server in &setup.servers {
        let kib = server.peak_rss_kib()?;
        println!("{:<20}  {:>7.1} MiB", server.label, kib as f64 / 1024.0);
        peaks.push((server.label.clone(), kib));
    }
    let peak = |label: &str| {
        peaks
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0, |(_, k)| *k)
    };
    let met = peak(OURS) <= peak(DISTRIBUTION);
    println!(
        "goal: {OURS} peak RSS ≤ {DISTRIBUTION}'s: {}",
        if met { "met" } else { "not met" }
    );
    let Ch06Setup { servers, .. } = setup;
    for server in servers {
        let label = server.label.clone();
        server.stop().with_context(|| format!("stop {label}"))?;
    }
    Ok(serde_json::json!({
        "load": load_json,
        "server_peak_rss_kib": peaks.iter().map(|(l, k)| (l.clone(), serde_json::Value::from(*k))).collect::<serde_json::Map<_, _>>(),
        "server_peak_rss_goal": { "text": format!("{OURS} ≤ {DISTRIBUTION}"), "met": met },
    }))
}

/// A file of `bytes` pseudo-random (incompressible) bytes, different for
/// each `seed`, written 1 MiB at a time.
pub(crate) fn write_noise(path: &Path, bytes: u64, seed: u64) -> Result<()> {
    use std::io::Write as _;
    let mut noise = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    let mut chunk = vec![0u8; 1 << 20];
    let mut state = seed.max(1);
    for _ in 0..bytes.div_ceil(1 << 20) {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        noise.write_all(&chunk)?;
    }
    noise.flush()?;
    Ok(())
}

/// Bytes of disk under `dir` (allocated blocks, each inode counted once).
fn disk_usage(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(total)
}

/// What a scenario compared with crun needs: crun itself, and a rootfs
/// (made by chapter 1's mkrootfs) with an OCI bundle around it, in a scratch
/// directory removed when the plan is dropped.
/// Chapter 7: `berth run --rm IMAGE /bin/true` (with crun and runc under
/// it) against `podman run --rm` of the same image, interleaved; and the
/// peak RSS of a monitor (`berth-monitor`), which runs as long as its
/// container: one per container.
/// Chapter 7's two stores, each with the same image (the bench rootfs,
/// imported as `bench/ch07`): berth's (release build) and podman's.
struct EngineStores {
    scratch: TempDir,
    berth: PathBuf,
    berth_root: PathBuf,
    berth_run: PathBuf,
    podman_root: PathBuf,
    podman_run: PathBuf,
}

impl EngineStores {
    fn new(root: &Path, scenario: &str) -> Result<EngineStores> {
        require_root(&format!("bench {scenario}"), "containers need root here")?;
        for tool in ["podman", "runc", "crun"] {
            which(tool)
                .with_context(|| format!("{tool} not found: apt-get install it (a peer)"))?;
        }
        // berth and berth-monitor, as cargo builds them (dynamic).
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--release",
                "-p",
                "ch07-full-engine",
                "--bin",
                "berth",
            ])
            .args(["--bin", "berth-monitor"])
            .current_dir(root);
        eprintln!("bench: {build:?}");
        ensure!(build.status()?.success(), "cargo build of berth failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let berth = target.join("release").join("berth");
        let ch05 = build_release(root, "ch05-images", Linking::Dynamic)?;
        let (scratch, rootfs) = scratch_rootfs(root, scenario)?;
        // crun refuses this host's hybrid layout unless hidden; every command
        // runs in the same mount namespace, so all see the same.
        hide_unified_cgroup_controllers()?;
        let dir = scratch.path();
        let stores = EngineStores {
            berth,
            berth_root: dir.join("berth-root"),
            berth_run: dir.join("berth-run"),
            podman_root: dir.join("podman-root"),
            podman_run: dir.join("podman-run"),
            scratch,
        };
        run_quietly(
            Command::new(&ch05)
                .arg("--root")
                .arg(&stores.berth_root)
                .args(["import"])
                .arg(&rootfs)
                .arg("bench/ch07"),
            "import the image into berth's store",
        )?;
        let tarball = stores.scratch.path().join("rootfs.tar");
        run_quietly(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tarball)
                .arg("."),
            "tar the rootfs for podman",
        )?;
        let import = stores.podman(&["import", "-q", &tarball.display().to_string(), "bench/ch07"]);
        run_quietly(
            Command::new(&import[0]).args(&import[1..]),
            "import the image into podman's store",
        )?;
        Ok(stores)
    }

    /// `podman` on its store, with the flags this host needs, and `args`.
    fn podman(&self, args: &[&str]) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = vec!["podman".into(), "--root".into()];
        argv.push(self.podman_root.clone().into());
        argv.push("--runroot".into());
        argv.push(self.podman_run.clone().into());
        argv.extend(
            [
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                "--storage-driver=overlay",
            ]
            .map(Into::into),
        );
        argv.extend(args.iter().map(Into::into));
        argv
    }

    /// `berth` on its store, and `args`.
    fn berth(&self, args: &[&str]) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = vec![self.berth.clone().into(), "--root".into()];
        argv.push(self.berth_root.clone().into());
        argv.push("--run-root".into());
        argv.push(self.berth_run.clone().into());
        argv.extend(args.iter().map(Into::into));
        argv
    }
}

fn ch07(root: &Path) -> Result<Plan> {
    let stores = EngineStores::new(root, "ch07")?;
    let berth_run_argv = |runtime: &str| {
        stores.berth(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "bench/ch07",
            "/bin/true",
        ])
    };
    let monitor_rss = monitor_peak_rss(&stores.berth, &stores.berth_root, &stores.berth_run)?;
    println!("berth-monitor peak RSS: {monitor_rss} KiB (goal: under 2048 KiB)");
    let benches = vec![
        Bench::new(
            "podman run --rm",
            stores.podman(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "localhost/bench/ch07",
                "/bin/true",
            ]),
        ),
        Bench::new("berth run --rm (crun)", berth_run_argv("crun")),
        Bench::new("berth run --rm (runc)", berth_run_argv("runc")),
    ];
    Ok(Plan {
        benches,
        goal_label: "berth run --rm (crun)".into(),
        goal_max_ratio: 0.15,
        _scratch: Some(stores.scratch),
        title: None,
        content_bytes: None,
        extra: Some(serde_json::json!({
            "monitor_peak_rss_kib": monitor_rss,
            "monitor_goal": "under 2048 KiB",
        })),
    })
}

/// Chapter 7's `build`: one Dockerfile (WORKDIR, COPY of a 200-file site,
/// two RUNs, ENV, CMD) built by `berth build` and `podman build` (both
/// with runc, no network): fresh (`--no-cache`), then fully cached. Goals
/// (issue 17): fresh at most 1.0× podman; cached under 0.2 s, which the
/// second table shows beside podman's.
fn ch07_build(root: &Path) -> Result<Vec<Plan>> {
    let stores = EngineStores::new(root, "ch07-build")?;
    let context = stores.scratch.path().join("context");
    for n in 0..200 {
        let dir = context.join("site").join(format!("d{}", n % 10));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("page{n}.html")),
            format!("<p>page {n}</p>\n").repeat(40),
        )?;
    }
    std::fs::write(
        context.join("Dockerfile"),
        "ARG BASE=bench/ch07\n\
         FROM $BASE\n\
         WORKDIR /app\n\
         COPY site/ ./site/\n\
         RUN echo built > /app/built && ls -R /app > /app/listing\n\
         ENV MODE=production\n\
         RUN wc -l /app/listing > /app/count\n\
         CMD [\"httpd\", \"-f\", \"-h\", \"/app/site\"]\n",
    )?;
    let context = context.display().to_string();
    let berth = |extra: &[&str]| {
        let mut args = vec!["build", "-q", "--network", "none", "--runtime", "runc"];
        args.extend(extra);
        args.push(&context);
        stores.berth(&args)
    };
    let podman = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "-q",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--build-arg",
            "BASE=localhost/bench/ch07",
        ];
        args.extend(extra);
        args.push(&context);
        stores.podman(&args)
    };
    // One build each first, so that the cached table starts cached.
    for argv in [berth(&[]), podman(&[])] {
        run_quietly(Command::new(&argv[0]).args(&argv[1..]), "a first build")?;
    }
    let fresh = Plan {
        benches: vec![
            Bench::new("podman build --no-cache", podman(&["--no-cache"])),
            Bench::new("berth build --no-cache", berth(&["--no-cache"])),
        ],
        goal_label: "berth build --no-cache".into(),
        goal_max_ratio: 1.0,
        _scratch: None,
        title: Some("a fresh build".into()),
        content_bytes: None,
        extra: None,
    };
    let cached = Plan {
        benches: vec![
            Bench::new("podman build (cached)", podman(&[])),
            Bench::new("berth build (cached)", berth(&[])),
        ],
        goal_label: "berth build (cached)".into(),
        goal_max_ratio: 1.0,
        _scratch: Some(stores.scratch),
        title: Some("a fully cached rebuild (goal: berth under 0.2 s)".into()),
        content_bytes: None,
        extra: None,
    };
    Ok(vec![fresh, cached])
}

/// The highest VmHWM of a monitor through a container's life: output
/// logged, an attached client, five restarts.
fn monitor_peak_rss(berth: &Path, root: &Path, run: &Path) -> Result<u64> {
    let berth_cmd = |args: &[&str]| {
        let mut cmd = Command::new(berth);
        cmd.arg("--root")
            .arg(root)
            .arg("--run-root")
            .arg(run)
            .args(args);
        cmd
    };
    let output = berth_cmd(&[
        "run",
        "-d",
        "--runtime",
        "crun",
        "--restart",
        "always",
        "bench/ch07",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; sleep 0.3; exit 1",
    ])
    .output()?;
    ensure!(
        output.status.success(),
        "berth run -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = String::from_utf8(output.stdout)?.trim().to_string();
    let pid_file = run.join(&id).join("monitor.pid");
    let text = std::fs::read_to_string(&pid_file)?;
    let monitor: i32 = text.split_whitespace().next().unwrap_or("0").parse()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut peak = 0;
    loop {
        let restarts = berth_cmd(&["inspect", "-f", "{{.RestartCount}}", &id]).output()?;
        let restarts: u32 = String::from_utf8_lossy(&restarts.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{monitor}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if restarts >= 5 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run_quietly(
        &mut berth_cmd(&["rm", "-f", &id]),
        "remove the monitor's container",
    )?;
    Ok(peak)
}

struct CrunSetup {
    crun: PathBuf,
    scratch: TempDir,
    rootfs: PathBuf,
    bundle: PathBuf,
}

fn crun_setup(root: &Path, scenario: &str) -> Result<CrunSetup> {
    let crun = which("crun")
        .context("crun not found: install it (apt-get install crun); it is the peer")?;
    let (scratch, rootfs) = scratch_rootfs(root, scenario)?;
    let bundle = scratch.path().join("bundle");
    write_crun_bundle(&bundle, &rootfs)?;
    Ok(CrunSetup {
        crun,
        scratch,
        rootfs,
        bundle,
    })
}

impl CrunSetup {
    /// `crun run --bundle BUNDLE berth-bench`.
    fn run_command(&self) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = vec![self.crun.clone().into()];
        argv.extend(["run", "--bundle"].map(Into::into));
        argv.push(self.bundle.clone().into());
        argv.push("berth-bench".into());
        argv
    }
}

/// A scratch directory (removed when the plan is dropped) holding a rootfs
/// made by chapter 1's static `mkrootfs`.
fn scratch_rootfs(root: &Path, scenario: &str) -> Result<(TempDir, PathBuf)> {
    let ch01 = build_release(root, "ch01-chroot", Linking::Static)?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("berth-bench-{scenario}-"))
        .tempdir()
        .context("cannot create a temporary directory for the rootfs")?;
    let rootfs = scratch.path().join("rootfs");
    run_quietly(
        Command::new(&ch01).arg("mkrootfs").arg(&rootfs),
        "building the rootfs",
    )?;
    Ok((scratch, rootfs))
}

/// An OCI bundle for crun: `crun spec`'s default config, pointed at
/// `rootfs`, running /bin/true without a terminal.
fn write_crun_bundle(bundle: &Path, rootfs: &Path) -> Result<()> {
    std::fs::create_dir_all(bundle)?;
    run_quietly(
        Command::new("crun").arg("spec").current_dir(bundle),
        "crun spec",
    )?;
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    config["root"]["path"] = rootfs.display().to_string().into();
    config["root"]["readonly"] = false.into();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    Ok(())
}

/// crun refuses this host's hybrid cgroup layout (controllers on v1, an
/// empty cgroup2 mount) unless the cgroup2 mount's controller list is
/// hidden. Do it in a mount namespace of our own, which every measured
/// command inherits, so all three run under the same conditions.
fn hide_unified_cgroup_controllers() -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if !controllers.exists() {
        return Ok(()); // pure v1 or pure v2: nothing to hide
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("unshare a mount namespace")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make mounts private")?;
    mount(
        Some("/dev/null"),
        controllers,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context("hide /sys/fs/cgroup/unified/cgroup.controllers")?;
    Ok(())
}

/// The first `name` on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Fails unless we run as root; `why` says which privilege the scenario needs.
pub(crate) fn require_root(task: &str, why: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{task} needs root ({why}): run with sudo");
    }
    Ok(())
}

/// How a benchmarked binary is linked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linking {
    /// Against the host's libc.so, as `cargo build` does by default.
    Dynamic,
    /// With `-C target-feature=+crt-static`: no loader, no libraries to map.
    /// Needs an explicit `--target`, so the flag skips proc-macro crates.
    Static,
}

/// `cargo build --release -p PACKAGE`, returning the path of its binary of the same name.
pub(crate) fn build_release(root: &Path, package: &str, linking: Linking) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "-p", package])
        .current_dir(root);
    if linking == Linking::Static {
        command
            .args(["--target", &triple])
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    eprintln!("bench: {command:?}");
    let status = command.status().context("cannot run cargo")?;
    ensure!(
        status.success(),
        "cargo build --release -p {package} failed ({status}): fix the build errors above"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = match linking {
        Linking::Static => target.join(&triple),
        Linking::Dynamic => target,
    };
    let binary = target.join("release").join(package);
    ensure!(
        binary.exists(),
        "cargo built {package} but {} does not exist: does the package have a binary named {package}?",
        display_path(root, &binary)
    );
    Ok(binary)
}

/// Runs a setup command, showing its output only if it fails.
pub(crate) fn run_quietly(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", command.get_program()))?;
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        bail!("{what} failed ({}): see its output above", output.status);
    }
    Ok(())
}

/// Run with sudo, the record (kept in the book) goes to the user who ran
/// sudo, not to root, so that their own edits and book-sync can rewrite it.
fn give_to_sudo_user(path: &Path) {
    let id = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID"))
        && let Err(err) = nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
    {
        eprintln!("bench: cannot give {} to uid {uid}: {err}", path.display());
    }
}

/// The first three fields of /proc/loadavg (1, 5 and 15 minute averages).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `uname -r`, for the JSON record (figures from different kernels differ).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
