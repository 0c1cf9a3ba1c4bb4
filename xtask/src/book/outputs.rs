//! Sample output in the book comes from the insta snapshots.
//!
//! A snapshot file `tests/snapshots/NAME.snap` or
//! `chapters/*/tests/snapshots/NAME.snap` is a header between two `---` lines,
//! then the recorded output. `book-sync` copies that output to
//! `book/src/output/NAME.txt`, which the chapters include; `book-check` fails when a
//! copy differs, is missing, or has outlived its snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::Problem;
use crate::display_path;

/// Where snapshots live: the root package's cross-chapter tests, and each
/// chapter's own tests (and, later, its exercises).
fn snapshot_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    // The root package's and the xtask's own (what `cargo xtask` prints).
    let mut dirs = vec![
        root.join("tests/snapshots"),
        root.join("xtask/tests/snapshots"),
    ];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root.join("chapters"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    chapters.sort();
    for chapter in chapters {
        dirs.push(chapter.join("tests/snapshots"));
        dirs.push(chapter.join("exercises/tests/snapshots"));
    }
    Ok(dirs)
}
const OUTPUT: &str = "book/src/output";

/// What `sync` did.
pub struct SyncReport {
    pub written: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub unchanged: usize,
}

/// The output of a snapshot file: everything after the header's closing `---` line,
/// ending in a newline.
pub fn snapshot_body(snap: &str) -> Result<String> {
    let mut lines = snap.split_inclusive('\n');
    let opening = lines.next().unwrap_or_default();
    if opening.trim_end() != "---" {
        bail!("the first line is not `---`, so this is not an insta snapshot");
    }
    // Bytes consumed so far: the opening line, then the header lines.
    let mut offset = opening.len();
    for line in lines {
        offset += line.len();
        if line.trim_end() == "---" {
            let mut body = snap[offset..].to_string();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            return Ok(body);
        }
    }
    bail!("no closing `---` line after the header")
}

/// What book/src/output should hold: output file name -> (snapshot path, contents).
fn expected(root: &Path) -> Result<BTreeMap<String, (PathBuf, String)>> {
    let mut expected = BTreeMap::new();
    let mut snaps = Vec::new();
    for dir in snapshot_dirs(root)? {
        snaps.extend(files_with_extension(&dir, "snap")?);
    }
    for snap in snaps {
        let text = std::fs::read_to_string(&snap)
            .with_context(|| format!("cannot read {}", snap.display()))?;
        let body = snapshot_body(&text).with_context(|| {
            format!(
                "{}: cannot find the output: fix or delete the file",
                display_path(root, &snap)
            )
        })?;
        let stem = snap
            .file_stem()
            .context("a snapshot file has no name")?
            .to_string_lossy();
        if let Some((first, _)) = expected.insert(format!("{stem}.txt"), (snap.clone(), body)) {
            bail!(
                "{} and {} have the same name: rename one snapshot (names are global in the book)",
                display_path(root, &first),
                display_path(root, &snap)
            );
        }
    }
    Ok(expected)
}

/// The files in `dir` (not below) whose name ends in `.ext`, sorted; none if `dir`
/// does not exist.
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Brings book/src/output in line with the snapshots.
pub fn sync(root: &Path) -> Result<SyncReport> {
    let expected = expected(root)?;
    let output = root.join(OUTPUT);
    let mut report = SyncReport {
        written: Vec::new(),
        removed: Vec::new(),
        unchanged: 0,
    };
    if !expected.is_empty() {
        std::fs::create_dir_all(&output)
            .with_context(|| format!("cannot create {}", output.display()))?;
    }
    for (name, (_, body)) in &expected {
        let path = output.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *body) {
            report.unchanged += 1;
            continue;
        }
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
        report.written.push(path);
    }
    for path in files_with_extension(&output, "txt")? {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !expected.contains_key(name.as_ref()) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            report.removed.push(path);
        }
    }
    Ok(report)
}

/// Adds a problem for every output that `sync` would change; returns how many
/// outputs there should be.
pub fn check(root: &Path, problems: &mut Vec<Problem>) -> Result<usize> {
    let expected = expected(root)?;
    let output = root.join(OUTPUT);
    let mut problem = |file: String, message: String| {
        problems.push(Problem {
            file,
            line: None,
            message: format!("{message}: run `cargo xtask book-sync`"),
        });
    };
    for (name, (snap, body)) in &expected {
        let path = output.join(name);
        let snap = display_path(root, snap);
        match std::fs::read_to_string(&path) {
            Ok(text) if text == *body => {}
            Ok(_) => problem(display_path(root, &path), format!("differs from {snap}")),
            Err(_) => problem(
                display_path(root, &path),
                format!("missing (made from {snap})"),
            ),
        }
    }
    for path in files_with_extension(&output, "txt")? {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !expected.contains_key(name.as_ref()) {
            let stem = name.trim_end_matches(".txt");
            problem(
                display_path(root, &path),
                format!("has no snapshot {stem}.snap any more"),
            );
        }
    }
    Ok(expected.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_everything_after_the_header() {
        let snap = "---\nsource: tests/ch01.rs\nexpression: out\n---\nline 1\n---\nline 3\n";
        assert_eq!(snapshot_body(snap).unwrap(), "line 1\n---\nline 3\n");
    }

    #[test]
    fn body_gets_a_trailing_newline_and_may_be_empty() {
        assert_eq!(
            snapshot_body("---\na: b\n---\nno newline").unwrap(),
            "no newline\n"
        );
        assert_eq!(snapshot_body("---\na: b\n---\n").unwrap(), "\n");
    }

    #[test]
    fn body_keeps_leading_blank_lines_and_spaces() {
        assert_eq!(snapshot_body("---\na: b\n---\n\n  x\n").unwrap(), "\n  x\n");
    }

    #[test]
    fn files_without_a_header_are_rejected() {
        assert!(snapshot_body("hello\n").is_err());
        assert!(snapshot_body("---\nsource: x\n").is_err());
    }

    #[test]
    fn sync_writes_outputs_and_removes_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tests/snapshots")).unwrap();
        std::fs::create_dir_all(root.join(OUTPUT)).unwrap();
        std::fs::write(
            root.join("tests/snapshots").join("ch01__a.snap"),
            "---\nx: y\n---\nout\n",
        )
        .unwrap();
        std::fs::write(
            root.join("tests/snapshots").join("ch01__a.snap.new"),
            "pending",
        )
        .unwrap();
        std::fs::write(root.join(OUTPUT).join("old.txt"), "old\n").unwrap();

        let mut problems = Vec::new();
        check(root, &mut problems).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");

        let report = sync(root).unwrap();
        assert_eq!(report.written.len(), 1);
        assert_eq!(report.removed.len(), 1);
        let written = std::fs::read_to_string(root.join(OUTPUT).join("ch01__a.txt")).unwrap();
        assert_eq!(written, "out\n");

        let mut problems = Vec::new();
        assert_eq!(check(root, &mut problems).unwrap(), 1);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(sync(root).unwrap().unchanged, 1);
    }

    #[test]
    fn missing_directories_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let mut problems = Vec::new();
        assert_eq!(check(dir.path(), &mut problems).unwrap(), 0);
        assert!(problems.is_empty());
        let report = sync(dir.path()).unwrap();
        assert!(report.written.is_empty() && report.removed.is_empty());
    }
}
