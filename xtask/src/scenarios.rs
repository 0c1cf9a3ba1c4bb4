//! What each chapter's benchmark measures: the commands, their peer, and the goal.
//!
//! A scenario is a function that prepares what its commands need (release binaries, a
//! rootfs) and returns a [`Plan`]; [`run`] does the rest (measure, print, check the
//! goal, write JSON). To add `bench ch02`, add a `Ch02` variant to [`Scenario`] and a
//! `fn ch02(root) -> Result<Plan>` next to [`ch01`].

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::bench::{self, Bench};
use crate::display_path;

/// The chapters that have a benchmark.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Scenario {
    Ch01,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ch01 => "ch01",
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
    let plan = match scenario {
        Scenario::Ch01 => ch01(root)?,
    };
    eprintln!(
        "bench {}: measuring {} commands, {runs} runs each",
        scenario.name(),
        plan.benches.len()
    );
    let results = bench::compare(&plan.benches, runs)?;
    print!("{}", bench::render(&results, runs));

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

    if let Some(path) = json {
        let value = serde_json::json!({
            "scenario": scenario.name(),
            "invocation": format!("cargo xtask bench {} --runs {runs}", scenario.name()),
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "kernel": kernel_release(),
            "runs": runs,
            "warmup_runs": bench::WARMUP_RUNS,
            "goal": {
                "text": goal,
                "label": plan.goal_label,
                "max_ratio": plan.goal_max_ratio,
                "ratio": (ratio * 10000.0).round() / 10000.0,
                "met": met,
            },
            "results": bench::to_json(&results),
        });
        let text = serde_json::to_string_pretty(&value)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench {}: wrote {}", scenario.name(), path.display());
    }
    Ok(ExitCode::SUCCESS)
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
    let scratch = tempfile::Builder::new()
        .prefix("berth-bench-ch01-")
        .tempdir()
        .context("cannot create a temporary directory for the rootfs")?;
    let rootfs = scratch.path().join("rootfs");
    run_quietly(
        Command::new(&ch01).arg("mkrootfs").arg(&rootfs),
        "building the rootfs",
    )?;

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
    })
}

/// Fails unless we run as root; `why` says which privilege the scenario needs.
fn require_root(task: &str, why: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{task} needs root ({why}): run with sudo");
    }
    Ok(())
}

/// How a benchmarked binary is linked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Linking {
    /// Against the host's libc.so, as `cargo build` does by default.
    Dynamic,
    /// With `-C target-feature=+crt-static`: no loader, no libraries to map.
    /// Needs an explicit `--target`, so the flag skips proc-macro crates.
    Static,
}

/// `cargo build --release -p PACKAGE`, returning the path of its binary of the same name.
fn build_release(root: &Path, package: &str, linking: Linking) -> Result<PathBuf> {
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
fn run_quietly(command: &mut Command, what: &str) -> Result<()> {
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

/// `uname -r`, for the JSON record (figures from different kernels differ).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
