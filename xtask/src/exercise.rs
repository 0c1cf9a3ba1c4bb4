//! `cargo xtask exercise`: run the check for a chapter's exercise.
//!
//! Each chapter's exercises are a crate `chapters/NN-*/exercises/`, and the check for
//! exercise `ex1_leaky_fd` is its integration test `tests/ex1_leaky_fd.rs`. The test
//! reads `BERTH_EXERCISE` to know whether to test the learner's code (`mine`) or the
//! reference solution (`solution`). So `cargo xtask exercise ch01/ex1_leaky_fd` is
//! `BERTH_EXERCISE=mine cargo test -p ch01-exercises --test ex1_leaky_fd`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::display_path;

/// One exercise, found on disk.
struct Exercise {
    /// `ch01`.
    chapter: String,
    /// `ex1_leaky_fd`: the test's name.
    name: String,
    /// The exercises crate's package name, e.g. `ch01-exercises`.
    package: String,
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

/// `cargo xtask exercise NAME [--solution]`: runs one exercise's check, or all of a
/// chapter's; the exit status is the (first failing) check's.
pub fn run(root: &Path, name: &str, solution: bool) -> Result<ExitCode> {
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

    let mode = if solution { "solution" } else { "mine" };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut outcomes = Vec::new();
    for exercise in &chosen {
        eprintln!(
            "exercise {}: BERTH_EXERCISE={mode} cargo test -p {} --test {}",
            exercise.id(),
            exercise.package,
            exercise.name
        );
        let status = Command::new(&cargo)
            .args(["test", "-p", &exercise.package, "--test", &exercise.name])
            .env("BERTH_EXERCISE", mode)
            .current_dir(root)
            .status()
            .context("cannot run cargo")?;
        outcomes.push((exercise, status));
    }

    let mut code = ExitCode::SUCCESS;
    for (exercise, status) in &outcomes {
        let what = if solution { " (solution)" } else { "" };
        if status.success() {
            println!("exercise {}{what}: passed", exercise.id());
        } else {
            println!(
                "exercise {}{what}: not yet: read the failure above, then the hints in {}",
                exercise.id(),
                hints_page(root, &exercise.name)
            );
            if code == ExitCode::SUCCESS {
                code = status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .filter(|c| *c != 0)
                    .map_or(ExitCode::FAILURE, ExitCode::from);
            }
        }
    }
    Ok(code)
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

    #[test]
    fn no_exercises_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path(), "ch01/ex1", false).unwrap_err();
        assert!(
            err.to_string().contains("there are no exercises yet"),
            "{err}"
        );
    }
}
