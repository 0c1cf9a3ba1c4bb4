//! `cargo xtask cg2vm -p PACKAGE`: run a package's tests on a real cgroup-v2
//! kernel.
//!
//! These machines run cgroup v1 (hybrid). `../shared/cg2vm/run-in-cg2vm.sh`
//! boots a stock Debian kernel under qemu with cgroup v2 as the only
//! hierarchy and runs one static program in it (`$BERTH_CG2VM` names the
//! script if it lives elsewhere; without it, the task says what is missing
//! and what to do instead). So this task:
//!
//! 1. builds the package's test binaries, its binaries and the probe as
//!    static executables (`-C target-feature=+crt-static` with an explicit
//!    `--target`, which keeps the flag away from build scripts and proc
//!    macros), into `target/cg2vm`;
//! 2. runs each test binary in the VM, with the repository shared at
//!    /mnt/host, and tells the tests where the binaries, the probe and the
//!    snapshots are (`BERTH_BIN_DIR`, `BERTH_PROBE`, `INSTA_WORKSPACE_ROOT`)
//!    — their compile-time paths do not exist in the guest;
//! 3. sets `BERTH_STRICT=1` in the guest, so a test that skips there fails.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail, ensure};

/// Where the guest sees the shared target directory.
const GUEST_SHARE: &str = "/mnt/host";

pub fn run(root: &Path, package: &str, test: Option<&str>) -> Result<ExitCode> {
    let script = find_script(root)?;
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "cargo xtask cg2vm needs root (the tests inside run as root, and the \
         tool's first run fetches qemu and kernels with apt-get): run it with \
         sudo -E env \"PATH=$PATH\" CARGO_TARGET_DIR=target/root cargo xtask cg2vm -p {package}"
    );
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = root.join("target/cg2vm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let static_build = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.args(args)
            .args(["--target", &triple])
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(root);
        cmd
    };

    // 1. Static binaries: the package's own, the probe, and the tests.
    eprintln!("cg2vm: building {package} statically for {triple}");
    let status = static_build(&["build", "--quiet", "-p", package, "--bins"])
        .status()
        .context("run cargo build")?;
    ensure!(
        status.success(),
        "cargo build -p {package} (static) failed: see above"
    );
    let status = static_build(&["build", "--quiet", "--release", "-p", "berth-probe"])
        .status()
        .context("run cargo build")?;
    ensure!(
        status.success(),
        "cargo build -p berth-probe (static) failed: see above"
    );
    let mut args = vec!["test", "-p", package, "--no-run", "--message-format=json"];
    if let Some(test) = test {
        args.extend(["--test", test]);
    } else {
        args.push("--tests");
    }
    let output = static_build(&args)
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo test --no-run")?;
    ensure!(
        output.status.success(),
        "building the tests of {package} failed: see above"
    );
    let tests = test_executables(&String::from_utf8_lossy(&output.stdout))?;
    ensure!(!tests.is_empty(), "{package} has no test binaries");

    // 2. Run each in the VM.
    let guest = |host: &Path| -> Result<String> {
        let rel = host
            .strip_prefix(root)
            .with_context(|| format!("{} is outside the repository", host.display()))?;
        Ok(format!("{GUEST_SHARE}/{}", rel.display()))
    };
    let bin_dir = guest(&target_dir.join(&triple).join("debug"))?;
    let probe = guest(&target_dir.join(&triple).join("release/berth-probe"))?;
    let mut failed = Vec::new();
    for exe in &tests {
        let name = exe
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        eprintln!("cg2vm: running {name} on a cgroup-v2 kernel");
        let status = Command::new(&script)
            .arg(exe)
            .args(["--test-threads=1"])
            .env("CG2VM_SHARE", root)
            .env(
                "CG2VM_ENV",
                format!(
                    "BERTH_STRICT=1 BERTH_BIN_DIR={bin_dir} BERTH_PROBE={probe} \
                     INSTA_WORKSPACE_ROOT={GUEST_SHARE} INSTA_UPDATE=no RUST_BACKTRACE=1"
                ),
            )
            .env("CG2VM_CWD", "/tmp")
            .status()
            .context("run run-in-cg2vm.sh")?;
        if !status.success() {
            failed.push(format!("{name} ({status})"));
        }
    }
    if failed.is_empty() {
        println!(
            "cg2vm: {} test binaries of {package} passed on cgroup v2",
            tests.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("on cgroup v2, failed: {}", failed.join(", "))
    }
}

/// Where the tool is: `$BERTH_CG2VM`, else `../shared/cg2vm/run-in-cg2vm.sh`
/// beside the repository (the workshop's machines). Not found: say what it
/// is and what to do without it.
fn find_script(root: &Path) -> Result<PathBuf> {
    let (script, from_env) = match std::env::var_os("BERTH_CG2VM") {
        Some(path) => (PathBuf::from(path), true),
        None => (root.join("../shared/cg2vm/run-in-cg2vm.sh"), false),
    };
    if script.is_file() {
        return Ok(script);
    }
    let looked = if from_env {
        format!(
            "BERTH_CG2VM names {}, which does not exist",
            script.display()
        )
    } else {
        format!(
            "it is not part of this repository: the workshop's machines keep it \
             beside it, in ../shared/cg2vm/run-in-cg2vm.sh, and there is none at {}",
            script.display()
        )
    };
    bail!(
        "cargo xtask cg2vm needs the cg2vm tool (a script that boots a cgroup-v2 \
         kernel under qemu and runs one static program in it), and {looked}. \
         If you have the tool elsewhere, set BERTH_CG2VM to its run-in-cg2vm.sh. \
         Without it, run the tests on a machine that boots with cgroup v2 (most \
         current distributions do): chapter 3's tests use whichever version the \
         machine has, so `cargo test -p ch03-cgroups` as root tests v2 there."
    )
}

/// The test executables in cargo's JSON messages.
pub fn test_executables(messages: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message: serde_json::Value =
            serde_json::from_str(line).context("parse cargo's JSON output")?;
        let is_test = message["profile"]["test"].as_bool() == Some(true);
        if message["reason"] == "compiler-artifact"
            && is_test
            && let Some(exe) = message["executable"].as_str()
        {
            found.push(PathBuf::from(exe));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("berth");
        std::fs::create_dir(&root).unwrap();
        let err = find_script(&root).unwrap_err().to_string();
        for part in [
            "needs the cg2vm tool",
            "not part of this repository",
            "../shared/cg2vm/run-in-cg2vm.sh",
            "set BERTH_CG2VM",
            "cargo test -p ch03-cgroups",
        ] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
        let script = dir.path().join("shared/cg2vm/run-in-cg2vm.sh");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(
            find_script(&root).unwrap(),
            root.join("../shared/cg2vm/run-in-cg2vm.sh")
        );
    }
}
