//! `cargo xtask`: the workshop's chores, written in Rust so they run wherever cargo does.
//!
//! - `bench ch01 [--runs N] [--json PATH]` measures a chapter's binary against its peer
//!   (see [`scenarios`] for what each chapter measures, [`bench`] for how).
//! - `book-sync` copies snapshot bodies into the book; `book-check` checks the book's
//!   includes, links and copied outputs (see [`book`]).
//! - `exercise NAME [--solution] [--as-user USER]` runs an exercise's check (see [`exercise`]).
//! - `rootfs DIR` makes the book's rootfs, with the probe in it (see [`rootfs`]).
//! - `berth-init` builds chapter 7's container init as a static program, where
//!   `berth run --init` finds it (`target/static/`).
//! - `msrv` checks the stated minimum Rust version against Cargo.lock (see [`msrv`]).
//! - `cg2vm -p PACKAGE` runs a package's tests on a cgroup-v2 kernel (see [`cg2vm`]).

mod bench;
mod book;
mod cg2vm;
mod exercise;
mod load;
mod mirror_bench;
mod msrv;
mod rootfs;
mod scenarios;
mod servers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Berth workshop tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmark a chapter's binary against its peer (needs root).
    Bench {
        /// Which chapter's scenario to run.
        scenario: scenarios::Scenario,
        /// Measured runs per command (after 2 warm-up runs each; default 30,
        /// or 5 for ch05 and ch06, whose runs each move 200 MB, and 10 for
        /// ch07-build, whose runs are builds). At least 5.
        #[arg(long, value_parser = clap::value_parser!(u32).range(5..))]
        runs: Option<u32>,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Copy every snapshot body in tests/snapshots/ to book/src/output/<name>.txt.
    BookSync,
    /// Check the book: outputs up to date, includes resolve, links and SUMMARY.md entries exist.
    BookCheck,
    /// Run an exercise's check, e.g. `ch01/ex1_leaky_fd`, or all of `ch01`.
    Exercise {
        /// `chNN/NAME` for one exercise, `chNN` for all of a chapter's.
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// Check the reference solution instead of your code.
        #[arg(long)]
        solution: bool,
        /// List the exercises instead of running one.
        #[arg(long, conflicts_with_all = ["name", "solution"])]
        list: bool,
        /// Run the check as this user (from root): what a learner without
        /// sudo sees. CI uses it to check that a check which cannot run fails.
        #[arg(long, value_name = "USER", conflicts_with = "list")]
        as_user: Option<String>,
    },
    /// Make a rootfs as `ch01-chroot mkrootfs` does (if DIR is new or empty)
    /// and put the static probe in it, at /usr/local/bin/berth-probe.
    Rootfs {
        /// The rootfs directory, e.g. /tmp/berth-rootfs.
        dir: PathBuf,
        /// Where to take the programs from (as mkrootfs's --from).
        #[arg(long, value_enum, default_value_t = ch01_chroot::rootfs::Source::Auto)]
        from: ch01_chroot::rootfs::Source,
    },
    /// Build berth-init (the init `berth run --init` mounts into containers)
    /// as a static program, into target/static/, where berth looks for it.
    BerthInit,
    /// Check that `rust-version` is at least every locked dependency's, and
    /// that the README and Setting up state it.
    Msrv,
    /// Run a package's tests on a real cgroup-v2 kernel under qemu (needs root).
    Cg2vm {
        /// The package whose tests to run, e.g. ch03-cgroups.
        #[arg(short, long)]
        package: String,
        /// Only this integration test (a file in the package's tests/).
        #[arg(long)]
        test: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.task {
        Task::Bench {
            scenario,
            runs,
            json,
        } => {
            let runs = runs.unwrap_or(match scenario {
                scenarios::Scenario::Ch05
                | scenarios::Scenario::Ch06
                | scenarios::Scenario::Ch06Mirror => 5,
                scenarios::Scenario::Ch07Build => 10,
                _ => 30,
            });
            scenarios::run(&root, scenario, runs as usize, json.as_deref())
        }
        Task::BookSync => book::sync(&root),
        Task::Cg2vm { package, test } => cg2vm::run(&root, &package, test.as_deref()),
        Task::BookCheck => book::check(&root),
        Task::Msrv => msrv::run(&root),
        Task::Rootfs { dir, from } => rootfs::run(&dir, from),
        Task::BerthInit => {
            eprintln!(
                "xtask berth-init: building a static berth-init (the first time takes a minute)"
            );
            let init = berth_test_support::probe::init_binary();
            println!("berth-init: {}", init.display());
            Ok(ExitCode::SUCCESS)
        }
        Task::Exercise {
            name,
            solution,
            list,
            as_user,
        } => {
            if list {
                exercise::list(&root)
            } else {
                // clap guarantees a name when --list is absent.
                let name = name.unwrap_or_default();
                exercise::run(&root, &name, solution, as_user.as_deref())
            }
        }
    };
    match result {
        // A failure code here means the task has already said what failed.
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest dir has a parent")
        .to_path_buf()
}

/// `path` relative to the workspace root when it is inside it, for messages.
fn display_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
