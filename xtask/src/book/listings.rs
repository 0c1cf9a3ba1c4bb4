//! The book's listings: every anchor shown, none too long.
//!
//! The book shows code only through `{{#include FILE:ANCHOR}}`, so an anchor
//! that no page includes is code someone meant to show and nobody does, or a
//! leftover of a listing that moved; and a listing over [`MAX_LISTING_LINES`]
//! lines is more than a reader takes in at once (split it into named steps,
//! each its own anchor). A listing is an include of a file outside book/src
//! (sample outputs and generated tables there are not code).
//!
//! Anchors of a chapter the book has no part for yet (no `book/src/NN-*`)
//! are left out, with a note: a chapter being written gets its anchors
//! before its pages.
//!
//! Offenders that only a later change can fix are named in
//! [`ALLOW_LIST`]: reported as notes, not failures, and each entry must
//! still match an offender, so the list can only shrink.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::includes::{self, Selection};
use super::{Problem, walk};
use crate::display_path;

/// A listing longer than this fails book-check.
pub const MAX_LISTING_LINES: usize = 60;

/// The allow-list, relative to the workspace root.
pub const ALLOW_LIST: &str = "xtask/book-allow.txt";

/// What every entry of the allow-list must say it waits for.
const ALLOW_REASON: &str = "until issue 12's refactor";

/// One `ANCHOR: name` in a source file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Anchor {
    /// Relative to the workspace root.
    pub file: String,
    pub name: String,
    /// 1-based.
    pub line: usize,
}

/// One include of a source file (a listing) in a page.
#[derive(Debug)]
pub struct Listing {
    /// Relative to the workspace root.
    pub file: String,
    /// The anchor, if the include names one.
    pub anchor: Option<String>,
    pub page: String,
    pub page_line: usize,
    pub lines: usize,
}

impl Listing {
    /// `file:anchor` or `file:LINES`, as the allow-list and messages name it.
    fn key(&self, selector: &str) -> String {
        match &self.anchor {
            Some(anchor) => format!("{}:{anchor}", self.file),
            None => format!("{}:{selector}", self.file),
        }
    }
}

/// Every anchor in the files under `chapters/`, sorted.
pub fn anchors(root: &Path) -> Result<Vec<Anchor>> {
    let mut files = Vec::new();
    walk(&root.join("chapters"), &mut files)?;
    files.sort();
    let mut anchors = Vec::new();
    for file in files {
        // Sources only: skip what is not text (a snapshot is text, but has no anchors).
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            if let Some(name) = includes::marker_name(line, "ANCHOR:") {
                anchors.push(Anchor {
                    file: display_path(root, &file),
                    name: name.to_string(),
                    line: index + 1,
                });
            }
        }
    }
    Ok(anchors)
}

/// The listings of one page (includes of files outside `book_src`), with
/// their length; includes that do not resolve are left to `includes::check`.
pub fn listings(root: &Path, book_src: &Path, page: &Path, text: &str) -> Vec<(Listing, String)> {
    let dir = page.parent().unwrap_or(Path::new("."));
    let book_src = book_src.canonicalize().unwrap_or_else(|_| book_src.into());
    let mut found = Vec::new();
    for directive in includes::parse(text) {
        let Ok(path) = dir.join(&directive.path).canonicalize() else {
            continue;
        };
        if path.starts_with(&book_src) {
            continue;
        }
        let Ok(source) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(chosen) = includes::select(&source, &directive.selection) else {
            continue;
        };
        let root = root.canonicalize().unwrap_or_else(|_| root.into());
        found.push((
            Listing {
                file: display_path(&root, &path),
                anchor: match &directive.selection {
                    Selection::Anchor(name) => Some(name.clone()),
                    Selection::Lines { .. } => None,
                },
                page: display_path(&root, page),
                page_line: directive.line,
                lines: chosen.lines().count(),
            },
            directive.selector,
        ));
    }
    found
}

/// The allow-list: `long FILE:ANCHOR` and `unused FILE:ANCHOR` entries, each
/// with a `# until issue 12's refactor: why` comment.
struct AllowList {
    long: BTreeSet<String>,
    unused: BTreeSet<String>,
    /// Entry -> its line, for stale-entry messages.
    lines: Vec<(String, usize)>,
}

fn read_allow_list(root: &Path, problems: &mut Vec<Problem>) -> Result<AllowList> {
    let path = root.join(ALLOW_LIST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {ALLOW_LIST}")),
    };
    let mut list = AllowList {
        long: BTreeSet::new(),
        unused: BTreeSet::new(),
        lines: Vec::new(),
    };
    for (index, line) in text.lines().enumerate() {
        let (entry, comment) = line.split_once('#').unwrap_or((line, ""));
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let problem = |message: String| Problem {
            file: ALLOW_LIST.to_string(),
            line: Some(index + 1),
            message,
        };
        if !comment.contains(ALLOW_REASON) {
            problems.push(problem(format!(
                "every entry says why it waits: add `# {ALLOW_REASON}: WHY`"
            )));
        }
        match entry.split_once(char::is_whitespace) {
            Some(("long", key)) => {
                list.long.insert(key.trim().to_string());
            }
            Some(("unused", key)) => {
                list.unused.insert(key.trim().to_string());
            }
            _ => {
                problems.push(problem(format!(
                    "`{entry}`: an entry is `long FILE:ANCHOR` or `unused FILE:ANCHOR`"
                )));
                continue;
            }
        }
        list.lines.push((entry.to_string(), index + 1));
    }
    Ok(list)
}

/// What [`check`] found, for book-check's summary line.
pub struct Summary {
    pub anchors: usize,
    pub listings: usize,
    pub allowed: usize,
}

/// Checks every listing's length and that every anchor is included.
pub fn check(
    root: &Path,
    book_src: &Path,
    pages: &[PathBuf],
    problems: &mut Vec<Problem>,
) -> Result<Summary> {
    let allow = read_allow_list(root, problems)?;
    let mut used = BTreeSet::new();
    let mut matched = BTreeSet::new();
    let mut listing_count = 0;
    let mut notes = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(page)
            .with_context(|| format!("cannot read {}", page.display()))?;
        for (listing, selector) in listings(root, book_src, page, &text) {
            listing_count += 1;
            if let Some(anchor) = &listing.anchor {
                used.insert((listing.file.clone(), anchor.clone()));
            }
            if listing.lines <= MAX_LISTING_LINES {
                continue;
            }
            let key = listing.key(&selector);
            let message = format!(
                "the listing {key} is {} lines, over {MAX_LISTING_LINES}: split it into named steps, \
                 each an anchor of its own",
                listing.lines
            );
            if allow.long.contains(&key) {
                matched.insert(format!("long {key}"));
                notes.push(format!("{}:{}: {message}", listing.page, listing.page_line));
            } else {
                problems.push(Problem {
                    file: listing.page.clone(),
                    line: Some(listing.page_line),
                    message,
                });
            }
        }
    }

    let anchors = anchors(root)?;
    let mut unwritten = BTreeSet::new();
    for anchor in &anchors {
        if used.contains(&(anchor.file.clone(), anchor.name.clone())) {
            continue;
        }
        if let Some(chapter) = chapter_without_part(book_src, &anchor.file) {
            unwritten.insert(chapter);
            continue;
        }
        let key = format!("{}:{}", anchor.file, anchor.name);
        let message = format!(
            "anchor `{}` is included by no page: show it in the book, or remove its markers",
            anchor.name
        );
        if allow.unused.contains(&key) {
            matched.insert(format!("unused {key}"));
            notes.push(format!("{}:{}: {message}", anchor.file, anchor.line));
        } else {
            problems.push(Problem {
                file: anchor.file.clone(),
                line: Some(anchor.line),
                message,
            });
        }
    }

    for (entry, line) in &allow.lines {
        if !matched.contains(entry) {
            problems.push(Problem {
                file: ALLOW_LIST.to_string(),
                line: Some(*line),
                message: format!("`{entry}` matches nothing any more: remove it"),
            });
        }
    }
    for note in &notes {
        println!("book-check: allowed ({ALLOW_LIST}): {note}");
    }
    for chapter in &unwritten {
        println!(
            "book-check: {chapter} has no part in the book yet: its anchors are checked once \
             book/src has one"
        );
    }
    Ok(Summary {
        anchors: anchors.len(),
        listings: listing_count,
        allowed: notes.len(),
    })
}

/// `chapters/NN-name` if `file` is in a chapter whose part the book does
/// not have yet (no `book/src/NN-*` directory): a chapter being written has
/// anchors before it has pages, and they are checked once it has them.
fn chapter_without_part(book_src: &Path, file: &str) -> Option<String> {
    let mut parts = file.split('/');
    let (Some("chapters"), Some(chapter)) = (parts.next(), parts.next()) else {
        return None;
    };
    let (number, _) = chapter.split_once('-')?;
    let has_part = std::fs::read_dir(book_src).ok()?.flatten().any(|entry| {
        entry.path().is_dir()
            && entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.split_once('-').is_some_and(|(n, _)| n == number))
    });
    (!has_part).then(|| format!("chapters/{chapter}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source with three anchors, a page showing two, one of them long.
    #[test]
    fn unused_anchors_and_long_listings_fail_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let long_body: String = (0..61).map(|i| format!("let x{i} = {i};\n")).collect();
        write(
            "chapters/01-x/src/lib.rs",
            &format!(
                "// ANCHOR: short\nfn a() {{}}\n// ANCHOR_END: short\n\
                 // ANCHOR: long\n{long_body}// ANCHOR_END: long\n\
                 // ANCHOR: hidden\nfn b() {{}}\n// ANCHOR_END: hidden\n"
            ),
        );
        write(
            "book/src/01-x/index.md",
            "```rust\n{{#include ../../../chapters/01-x/src/lib.rs:short}}\n```\n\
             ```rust\n{{#include ../../../chapters/01-x/src/lib.rs:long}}\n```\n\
             ```text\n{{#include ../output/out.txt}}\n```\n",
        );
        write("book/src/output/out.txt", &long_body);
        // A chapter with no part in the book yet: its anchors wait for it.
        write(
            "chapters/02-y/src/lib.rs",
            "// ANCHOR: later\nfn c() {}\n// ANCHOR_END: later\n",
        );
        let book_src = root.join("book/src");
        let pages = vec![book_src.join("01-x/index.md")];

        let mut problems = Vec::new();
        let summary = check(root, &book_src, &pages, &mut problems).unwrap();
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(summary.listings, 2, "the output is not a listing");
        assert_eq!(summary.anchors, 4);
        assert_eq!(
            messages,
            [
                "book/src/01-x/index.md:5: the listing chapters/01-x/src/lib.rs:long is 61 lines, \
                 over 60: split it into named steps, each an anchor of its own",
                "chapters/01-x/src/lib.rs:67: anchor `hidden` is included by no page: show it \
                 in the book, or remove its markers",
            ]
        );

        write(
            ALLOW_LIST,
            "# comment\n\
             long chapters/01-x/src/lib.rs:long  # until issue 12's refactor: split later\n\
             unused chapters/01-x/src/lib.rs:hidden  # until issue 12's refactor: shown later\n\
             unused chapters/01-x/src/lib.rs:gone  # until issue 12's refactor: stale\n\
             unused chapters/01-x/src/lib.rs:short  # no reason\n",
        );
        let mut problems = Vec::new();
        let summary = check(root, &book_src, &pages, &mut problems).unwrap();
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(summary.allowed, 2);
        assert_eq!(
            messages,
            [
                "xtask/book-allow.txt:5: every entry says why it waits: add \
                 `# until issue 12's refactor: WHY`",
                "xtask/book-allow.txt:4: `unused chapters/01-x/src/lib.rs:gone` matches nothing \
                 any more: remove it",
                "xtask/book-allow.txt:5: `unused chapters/01-x/src/lib.rs:short` matches nothing \
                 any more: remove it",
            ]
        );
    }
}
