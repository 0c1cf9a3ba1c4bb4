//! `book-sync` and `book-check`: keep the mdBook in book/ honest.
//!
//! The book shows real program output, copied from the insta snapshot files
//! ([`outputs`]), and real code, included from the sources by anchor ([`includes`]).
//! `book-check` fails when a copied output is out of date, an include points at
//! nothing, a link or SUMMARY.md entry names a missing file ([`links`]), an
//! anchor is shown by no page or a listing is too long ([`listings`]), or a
//! benchmark's table or plot differs from its JSON record ([`benchmarks`]),
//! so the book cannot silently drift from the code.

mod benchmarks;
mod figures;
mod includes;
mod links;
mod listings;
mod outputs;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::display_path;

/// The book's sources, relative to the workspace root.
const BOOK_SRC: &str = "book/src";

/// One thing wrong with the book, printed as `FILE:LINE: message`.
#[derive(Debug)]
pub struct Problem {
    /// Relative to the workspace root.
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// `cargo xtask book-sync`: write book/src/output/*.txt from tests/snapshots/*.snap.
pub fn sync(root: &Path) -> Result<ExitCode> {
    let report = outputs::sync(root)?;
    for path in &report.written {
        println!("wrote {}", display_path(root, path));
    }
    for path in &report.removed {
        println!("removed {}", display_path(root, path));
    }
    for path in benchmarks::sync(root)? {
        println!("wrote {}", display_path(root, path.as_path()));
    }
    println!(
        "book-sync: {} written, {} removed, {} unchanged",
        report.written.len(),
        report.removed.len(),
        report.unchanged
    );
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask book-check`: print every problem; fail if there is any.
pub fn check(root: &Path) -> Result<ExitCode> {
    let src = root.join(BOOK_SRC);
    let mut problems = Vec::new();

    let outputs = outputs::check(root, &mut problems)?;
    let records = benchmarks::check(root, &mut problems)?;
    let figures = figures::check(root, &src, &mut problems);
    let pages = markdown_files(&src)?;
    let mut include_count = 0;
    let mut link_count = 0;
    let summary = links::Summary::read(&src)?;
    if summary.is_none() {
        eprintln!(
            "book-check: note: {BOOK_SRC}/SUMMARY.md not found; skipping the SUMMARY.md checks"
        );
    }
    for page in &pages {
        let text = std::fs::read_to_string(page)
            .with_context(|| format!("cannot read {}", page.display()))?;
        let name = display_path(root, page);
        include_count += includes::check(page, &name, &text, &mut problems);
        link_count += links::check(page, &name, &text, &src, summary.as_ref(), &mut problems);
    }

    let listings = listings::check(root, &src, &pages, &mut problems)?;

    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!(
            "book-check: {include_count} includes, {link_count} links, {outputs} outputs, \
             {records} benchmark records, {figures} figures, {} listings (at most {} lines) and {} anchors ok \
             ({} allowed for now)",
            listings.listings,
            listings::MAX_LISTING_LINES,
            listings.anchors,
            listings.allowed
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("book-check: {} problem(s)", problems.len());
        Ok(ExitCode::FAILURE)
    }
}

/// Every `*.md` file under `dir`, sorted; none if `dir` does not exist.
fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "md"));
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// The 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole small book with one problem of each kind.
    #[test]
    fn check_reports_each_kind_of_problem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "tests/snapshots/ch01__a.snap",
            "---\nsource: x\n---\nhello\n",
        );
        write("book/src/output/ch01__a.txt", "stale\n");
        write("book/src/output/gone.txt", "old\n");
        write(
            "book/src/SUMMARY.md",
            "# Summary\n\n- [One](ch01/index.md)\n- [Two](ch02/index.md)\n- [Draft]()\n",
        );
        write(
            "src/lib.rs",
            "// ANCHOR: here\nfn f() {}\n// ANCHOR_END: here\n",
        );
        write(
            "book/src/ch01/index.md",
            "# One\n\n```rust\n{{#include ../../../src/lib.rs:here}}\n{{#include ../../../src/lib.rs:nope}}\n```\n\
             See [two](../ch02/index.md) and ![pic](pic.svg) and [web](https://example.com).\n\
             `[not](a-link.md)`\n",
        );

        let mut problems = Vec::new();
        let outputs = outputs::check(root, &mut problems).unwrap();
        assert_eq!(outputs, 1);
        let src = root.join(BOOK_SRC);
        let summary = links::Summary::read(&src).unwrap();
        for page in markdown_files(&src).unwrap() {
            let text = std::fs::read_to_string(&page).unwrap();
            let name = display_path(root, &page);
            includes::check(&page, &name, &text, &mut problems);
            links::check(&page, &name, &text, &src, summary.as_ref(), &mut problems);
        }
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expected = [
            "book/src/output/ch01__a.txt: differs from tests/snapshots/ch01__a.snap: run `cargo xtask book-sync`",
            "book/src/output/gone.txt: has no snapshot gone.snap any more: run `cargo xtask book-sync`",
            "book/src/ch01/index.md:5: anchor `nope` not found in ../../../src/lib.rs (no line containing `ANCHOR: nope`)",
            "book/src/ch01/index.md:7: link to ../ch02/index.md: no such file",
            "book/src/ch01/index.md:7: image pic.svg: no such file",
            "book/src/SUMMARY.md:4: SUMMARY.md lists ch02/index.md, which does not exist",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p == want),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }
}
