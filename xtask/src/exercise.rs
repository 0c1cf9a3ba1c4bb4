//! `cargo xtask exercise`: run the check for a chapter's exercise.
//!
//! Each chapter's exercises are a crate `chapters/NN-*/exercises/`, and the check for
//! exercise `ex1_leaky_fd` is its integration test `tests/ex1_leaky_fd.rs`. The test
//! reads `BERTH_EXERCISE` to know whether to test the learner's code (`mine`) or the
//! reference solution (`solution`). So `cargo xtask exercise ch01/ex1_leaky_fd` is
//! `BERTH_EXERCISE=mine cargo test -p ch01-exercises --test ex1_leaky_fd`.
//!
//! A check that cannot run here (it needs root, or a tool such as skopeo is
//! missing) must never read as a pass: under `BERTH_EXERCISE`, the test
//! support's `skip` fails the test and writes why to the file named by
//! `BERTH_NOT_CHECKED`, and this task turns that into one line saying what to
//! do (the exact `sudo` command, or the package to install).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use berth_test_support::{EXERCISE_ENV, NEEDS_ROOT, NOT_CHECKED_ENV};

use crate::cg2vm::test_executables;
use crate::display_path;

/// One exercise, found on disk.
struct Exercise {
    /// `ch01`.
    chapter: String,
    /// `ex1_leaky_fd`: the test's name.
    name: String,
    /// The exercises crate's package name, e.g. `ch01-exercises`.
    package: String,
    /// The exercises crate, relative to the root: `chapters/01-chroot/exercises`.
    crate_dir: PathBuf,
}

impl Exercise {
    fn id(&self) -> String {
        format!("{}/{}", self.chapter, self.name)
    }
}

/// Every `chapters/NN-*/exercises/tests/*.rs`, sorted by chapter and name.
fn discover(root: &Path) -> Result<Vec<Exercise>> {
    let mut exercises = Vec::new();
    for chapter_dir in sorted_entries(&root.join("chapters"))? {
        let dir_name = chapter_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let Some((number, _)) = dir_name.split_once('-') else {
            continue;
        };
        let crate_dir = chapter_dir.join("exercises");
        let tests = sorted_entries(&crate_dir.join("tests"))?;
        if tests.is_empty() {
            continue;
        }
        let chapter = format!("ch{number}");
        let package = package_name(&crate_dir.join("Cargo.toml"))
            .unwrap_or_else(|| format!("{chapter}-exercises"));
        for test in tests {
            if test.extension().is_some_and(|ext| ext == "rs") {
                let name = test.file_stem().unwrap_or_default().to_string_lossy();
                exercises.push(Exercise {
                    chapter: chapter.clone(),
                    name: name.into_owned(),
                    package: package.clone(),
                    crate_dir: crate_dir
                        .strip_prefix(root)
                        .unwrap_or(&crate_dir)
                        .to_path_buf(),
                });
            }
        }
    }
    Ok(exercises)
}

/// The entries of `dir`, sorted; none if it does not exist.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

/// The `name = "..."` of a Cargo.toml's `[package]` table.
fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}

/// `cargo xtask exercise --list`.
pub fn list(root: &Path) -> Result<ExitCode> {
    for exercise in discover(root)? {
        println!("{}", exercise.id());
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask exercise NAME [--solution] [--as-user USER]`: runs one
/// exercise's check, or all of a chapter's; the exit status is the (first
/// failing) check's. A check that could not run (no root, a missing tool) is
/// a failure that says what to do, never a pass.
pub fn run(root: &Path, name: &str, solution: bool, as_user: Option<&str>) -> Result<ExitCode> {
    let all = discover(root)?;
    let chosen: Vec<&Exercise> = all
        .iter()
        .filter(|e| e.id() == name || e.chapter == name)
        .collect();
    if chosen.is_empty() {
        if all.is_empty() {
            bail!(
                "no exercise `{name}`: there are no exercises yet (none under chapters/*/exercises/tests/)"
            );
        }
        bail!(
            "no exercise `{name}`: give `chNN/NAME` or `chNN`; `cargo xtask exercise --list` lists them"
        );
    }
    let user = as_user.map(RunAs::lookup).transpose()?;

    let mode = if solution { "solution" } else { "mine" };
    let mut outcomes = Vec::new();
    for exercise in &chosen {
        eprintln!(
            "exercise {}: checking with the test {} of {} (BERTH_EXERCISE={mode})",
            exercise.id(),
            exercise.name,
            exercise.package,
        );
        let exe = build_check(root, exercise)?;
        // Where the check writes why it could not run, if it could not.
        let report = tempfile::Builder::new()
            .prefix("berth-not-checked-")
            .tempfile()
            .context("cannot create a temp file")?;
        let env = [
            (EXERCISE_ENV, mode.into()),
            (NOT_CHECKED_ENV, report.path().as_os_str().to_owned()),
        ];
        let mut cmd = match &user {
            Some(user) => user.command(&exe, &env, report.path())?,
            None => {
                let mut cmd = Command::new(&exe);
                cmd.envs(env);
                cmd
            }
        };
        let status = cmd
            .current_dir(root.join(&exercise.crate_dir))
            .status()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        let not_checked = std::fs::read_to_string(report.path()).unwrap_or_default();
        outcomes.push((exercise, status, not_checked));
    }

    let mut code = ExitCode::SUCCESS;
    for (exercise, status, not_checked) in &outcomes {
        let passed = status.success() && not_checked.trim().is_empty();
        println!(
            "{}",
            verdict(exercise, solution, passed, not_checked, || {
                hints_page(root, &exercise.name)
            })
        );
        if !passed && code == ExitCode::SUCCESS {
            code = status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c != 0)
                .map_or(ExitCode::FAILURE, ExitCode::from);
        }
    }
    Ok(code)
}

/// The last line (or two) of a check: passed, not yet, or not checked and
/// what to do about it.
fn verdict(
    exercise: &Exercise,
    solution: bool,
    passed: bool,
    not_checked: &str,
    hints: impl FnOnce() -> String,
) -> String {
    let what = if solution { " (solution)" } else { "" };
    let id = exercise.id();
    if !not_checked.trim().is_empty() {
        let todo = what_to_do(exercise, solution, not_checked);
        format!("exercise {id}{what}: NOT CHECKED, so not passed: {todo}")
    } else if passed {
        format!("exercise {id}{what}: passed")
    } else {
        let hints = hints();
        format!("exercise {id}{what}: not yet: read the failure above, then the hints in {hints}")
    }
}

/// Builds an exercise's check (`cargo test --no-run`) and returns its test
/// executable. Compiler errors in the learner's code go to stderr, as with
/// `cargo test`.
fn build_check(root: &Path, exercise: &Exercise) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(["-p", &exercise.package, "--test", &exercise.name])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!(
            "exercise {}: your code does not build yet: read cargo's errors above",
            exercise.id()
        );
    }
    test_executables(&String::from_utf8_lossy(&output.stdout))?
        .into_iter()
        .next()
        .with_context(|| format!("cargo built no test executable for {}", exercise.id()))
}

/// The one line that says what to do about a check that could not run.
/// `not_checked` is what the check reported, one reason per line.
fn what_to_do(exercise: &Exercise, solution: bool, not_checked: &str) -> String {
    let mut reasons: Vec<&str> = not_checked.lines().map(str::trim).collect();
    reasons.retain(|line| !line.is_empty());
    reasons.dedup();
    if reasons.iter().any(|r| r.starts_with(NEEDS_ROOT)) {
        let flag = if solution { " --solution" } else { "" };
        // Root's build goes to a target directory of its own, so that
        // target/debug stays the learner's (see Setting up).
        return format!(
            "it needs root. Run it as root, from the repository's top directory:\n    \
             sudo -E env \"PATH=$PATH\" CARGO_TARGET_DIR=target/root cargo xtask exercise {}{flag}",
            exercise.id()
        );
    }
    format!("{}; then run the check again", reasons.join("; "))
}

/// A user to run the checks as (`--as-user`): what a learner without sudo
/// sees, checked by CI, which runs as root. The check is built as root and
/// run as the user, with a clean environment.
struct RunAs {
    name: String,
    uid: nix::unistd::Uid,
    home: PathBuf,
}

impl RunAs {
    fn lookup(name: &str) -> Result<RunAs> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("--as-user needs root (it runs the check with runuser)");
        }
        let user = nix::unistd::User::from_name(name)
            .with_context(|| format!("cannot look up user {name}"))?
            .with_context(|| {
                format!("no user {name}: create it, e.g. useradd --create-home {name}")
            })?;
        Ok(RunAs {
            name: name.to_string(),
            uid: user.uid,
            home: user.dir,
        })
    }

    /// `runuser -u USER -- env -i ... EXE`, with `env` added to the clean
    /// environment; the report file becomes the user's.
    fn command(&self, exe: &Path, env: &[(&str, OsString)], report: &Path) -> Result<Command> {
        nix::unistd::chown(report, Some(self.uid), None)
            .with_context(|| format!("chown {}", report.display()))?;
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.name, "--", "env", "-i"])
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg(format!("HOME={}", self.home.display()))
            .args(["LC_ALL=C", "NO_COLOR=1"]);
        for (key, value) in env {
            let mut pair = OsString::from(format!("{key}="));
            pair.push(value);
            cmd.arg(pair);
        }
        cmd.arg(exe);
        Ok(cmd)
    }
}

/// The book page that mentions the exercise (where its hints are), or book/src/.
fn hints_page(root: &Path, name: &str) -> String {
    let mut pages = Vec::new();
    collect_markdown(&root.join("book/src"), &mut pages);
    pages.sort();
    pages
        .into_iter()
        .find(|page| std::fs::read_to_string(page).is_ok_and(|text| text.contains(name)))
        .map_or_else(
            || "the chapter's exercises page under book/src/".to_string(),
            |page| display_path(root, &page),
        )
}

fn collect_markdown(dir: &Path, pages: &mut Vec<PathBuf>) {
    for path in sorted_entries(dir).unwrap_or_default() {
        if path.is_dir() {
            collect_markdown(&path, pages);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            pages.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_exercises_and_their_package() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("chapters/01-chroot/exercises");
        std::fs::create_dir_all(crate_dir.join("tests")).unwrap();
        std::fs::write(
            crate_dir.join("Cargo.toml"),
            "[package]\nname = \"ch01-exercises\"\nedition.workspace = true\n",
        )
        .unwrap();
        std::fs::write(crate_dir.join("tests/ex2_b.rs"), "").unwrap();
        std::fs::write(crate_dir.join("tests/ex1_a.rs"), "").unwrap();
        std::fs::write(crate_dir.join("tests/README.md"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("chapters/02-namespaces/src")).unwrap();

        let found: Vec<(String, String)> = discover(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| (e.id(), e.package))
            .collect();
        let package = || "ch01-exercises".to_string();
        assert_eq!(
            found,
            [
                ("ch01/ex1_a".into(), package()),
                ("ch01/ex2_b".into(), package())
            ]
        );
    }

    /// What a learner reads after a check that could not run: the book
    /// shows it (Setting up), from this snapshot.
    #[test]
    fn a_check_that_could_not_run_says_what_to_do() {
        let exercise = Exercise {
            chapter: "ch01".into(),
            name: "ex1_leaky_fd".into(),
            package: "ch01-exercises".into(),
            crate_dir: "chapters/01-chroot/exercises".into(),
        };
        let hints = || unreachable!("no hints for a check that did not run");
        let root = format!("{NEEDS_ROOT} (run the tests with sudo, as CI does)\n");
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_snapshot_path("../tests/snapshots");
        settings.bind(|| {
            insta::assert_snapshot!(
                "xtask_exercise_not_checked",
                verdict(&exercise, false, false, &root, hints)
            );
        });
        assert!(
            verdict(&exercise, true, false, &root, hints)
                .ends_with("exercise ch01/ex1_leaky_fd --solution")
        );
        let tools = "skopeo is not installed: sudo apt-get install skopeo\n\
                     skopeo is not installed: sudo apt-get install skopeo\n";
        assert_eq!(
            verdict(&exercise, false, false, tools, hints),
            "exercise ch01/ex1_leaky_fd: NOT CHECKED, so not passed: skopeo is not installed: \
             sudo apt-get install skopeo; then run the check again"
        );
        assert_eq!(
            verdict(&exercise, true, true, "", hints),
            "exercise ch01/ex1_leaky_fd (solution): passed"
        );
        assert_eq!(
            verdict(&exercise, false, false, "", || "book/src/x.md".into()),
            "exercise ch01/ex1_leaky_fd: not yet: read the failure above, then the hints in book/src/x.md"
        );
    }

    #[test]
    fn no_exercises_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path(), "ch01/ex1", false, None).unwrap_err();
        assert!(
            err.to_string().contains("there are no exercises yet"),
            "{err}"
        );
    }
}
