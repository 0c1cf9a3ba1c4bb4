//! `cargo xtask rootfs DIR`: the rootfs the book's pages run, with the probe.
//!
//! Parts 2 to 4 show what `berth-probe` (tests/probe: a small static program
//! that prints facts about its environment as labelled lines) sees inside a
//! container. This task makes a rootfs as `ch01-chroot mkrootfs` does, if DIR
//! is new or empty, then builds the probe as a static program (as the tests
//! do) and copies it to `/usr/local/bin/berth-probe` in DIR. Given a rootfs
//! that exists already, it only adds (or refreshes) the probe.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_test_support::probe::install_probe;
use ch01_chroot::rootfs::{Source, mkrootfs};

pub fn run(dir: &Path, from: Source) -> Result<ExitCode> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    if empty {
        let report = mkrootfs(dir, from, Path::new("/")).context("mkrootfs")?;
        for program in &report.missing {
            eprintln!("xtask rootfs: note: the host has no {program}; the rootfs has none either");
        }
        println!(
            "rootfs {}: {} entries, programs from {}",
            dir.display(),
            report.entries,
            match report.source {
                Source::Busybox => "busybox",
                _ => "the host",
            }
        );
    } else if !dir.join("bin/sh").exists() {
        bail!(
            "{} is neither empty nor a rootfs (it has no bin/sh): give a new directory, \
             or one made by mkrootfs",
            dir.display()
        );
    } else {
        println!("rootfs {}: exists, adding the probe", dir.display());
    }
    eprintln!(
        "xtask rootfs: building the probe as a static program (the first time takes a minute)"
    );
    let probe = install_probe(dir);
    println!("probe: {} (in the container)", probe.display());
    Ok(ExitCode::SUCCESS)
}
