//! mdBook include directives: `{{#include PATH}}`, `{{#include PATH:ANCHOR}}`,
//! `{{#include PATH:START:END}}` and the same for `{{#rustdoc_include ...}}`.
//!
//! mdBook replaces a directive it cannot resolve with nothing more than a warning, so
//! a renamed file or anchor would leave a hole in the book. We parse the directives the
//! way mdBook does and check that each one resolves to some non-blank text.

use std::path::Path;

use super::{Problem, line_of};

/// Which part of the file a directive includes.
#[derive(Debug, PartialEq)]
pub enum Selection {
    /// Lines `start..end`, 0-based, end exclusive; `None` is open.
    Lines {
        start: Option<usize>,
        end: Option<usize>,
    },
    /// The lines between `ANCHOR: name` and `ANCHOR_END: name`.
    Anchor(String),
}

/// One `{{#include ...}}` or `{{#rustdoc_include ...}}` in a page.
#[derive(Debug, PartialEq)]
pub struct Directive {
    /// The 1-based line of the page it starts on.
    pub line: usize,
    /// As written, relative to the page's directory.
    pub path: String,
    /// What follows the path, as written (`main`, `2:5`, or empty).
    pub selector: String,
    pub selection: Selection,
}

/// Finds the include directives in a page; `\{{#include ...}}` is escaped and skipped.
pub fn parse(text: &str) -> Vec<Directive> {
    let mut directives = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("{{#") {
        let start = from + found;
        let Some(len) = text[start..].find("}}") else {
            break;
        };
        from = start + len + 2;
        if text[..start].ends_with('\\') {
            continue;
        }
        let inner = text[start + 3..start + len].trim();
        let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        if name != "include" && name != "rustdoc_include" {
            continue;
        }
        // mdBook: the path is everything up to the first `:`.
        let (path, selector) = args.trim().split_once(':').unwrap_or((args.trim(), ""));
        directives.push(Directive {
            line: line_of(text, start),
            path: path.trim().to_string(),
            selector: selector.trim().to_string(),
            selection: parse_selection(selector.trim()),
        });
    }
    directives
}

/// mdBook's rules: `N` is line N only, `N:` line N on, `:M` up to line M, `N:M` both,
/// anything else non-numeric is an anchor name. Lines count from 1.
fn parse_selection(selector: &str) -> Selection {
    let mut parts = selector.splitn(2, ':');
    let first = parts.next().unwrap_or_default();
    let end = parts.next().map(str::parse::<usize>);
    let start = match first.parse::<usize>() {
        Ok(n) => Some(n.saturating_sub(1)),
        Err(_) if first.is_empty() => None,
        Err(_) => return Selection::Anchor(first.to_string()),
    };
    match (start, end) {
        (Some(start), None) => Selection::Lines {
            start: Some(start),
            end: Some(start + 1),
        },
        (start, Some(Ok(end))) => Selection::Lines {
            start,
            end: Some(end),
        },
        (start, _) => Selection::Lines { start, end: None },
    }
}

/// The name in a marker such as `// ANCHOR: name`, if `line` has `marker` (`ANCHOR:`
/// or `ANCHOR_END:`) in it.
pub fn marker_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let after = &line[line.find(marker)? + marker.len()..];
    let after = after.trim_start();
    let len = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    (len > 0).then(|| &after[..len])
}

/// The text a selection picks out of `text`, or what is wrong with it.
pub fn select(text: &str, selection: &Selection) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    match selection {
        Selection::Lines { start, end } => {
            let start = start.unwrap_or(0).min(lines.len());
            let end = end.unwrap_or(lines.len()).clamp(start, lines.len());
            Ok(lines[start..end].join("\n"))
        }
        Selection::Anchor(name) => {
            let begin = lines
                .iter()
                .position(|line| marker_name(line, "ANCHOR:") == Some(name))
                .ok_or_else(|| format!("no line containing `ANCHOR: {name}`"))?;
            let len = lines[begin + 1..]
                .iter()
                .position(|line| marker_name(line, "ANCHOR_END:") == Some(name))
                .ok_or_else(|| format!("`ANCHOR: {name}` has no `ANCHOR_END: {name}` after it"))?;
            Ok(lines[begin + 1..begin + 1 + len]
                .iter()
                .filter(|line| !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

/// Checks every include directive of the page at `page` (shown as `name`); returns
/// how many there are.
pub fn check(page: &Path, name: &str, text: &str, problems: &mut Vec<Problem>) -> usize {
    let dir = page.parent().unwrap_or(Path::new("."));
    let directives = parse(text);
    for directive in &directives {
        let path = &directive.path;
        let message = match std::fs::read_to_string(dir.join(path)) {
            Err(err) => Some(format!("cannot include {path}: {err}")),
            Ok(included) => match select(&included, &directive.selection) {
                Err(why) => match &directive.selection {
                    Selection::Anchor(anchor) => {
                        Some(format!("anchor `{anchor}` not found in {path} ({why})"))
                    }
                    Selection::Lines { .. } => Some(why),
                },
                Ok(chosen) if chosen.trim().is_empty() => match &directive.selection {
                    Selection::Anchor(anchor) => {
                        Some(format!("anchor `{anchor}` in {path} is empty"))
                    }
                    Selection::Lines { .. } if directive.selector.is_empty() => {
                        Some(format!("{path} is empty"))
                    }
                    Selection::Lines { .. } => Some(format!(
                        "lines `{}` of {path} are empty or past its end",
                        directive.selector
                    )),
                },
                Ok(_) => None,
            },
        };
        // mdBook pastes what it includes as it is, unindented: an
        // indented include (a listing inside a list item) ends the item at
        // its second line, and the rest of the listing shows as text.
        let indented = text
            .lines()
            .nth(directive.line - 1)
            .is_some_and(|line| line.starts_with([' ', '\t']));
        let message = message.or_else(|| {
            indented.then(|| {
                format!(
                    "the include of {path} is indented: mdBook pastes it unindented, which ends \
                     the list item it is in; start the line (and its code fence) at column 0"
                )
            })
        });
        if let Some(message) = message {
            problems.push(Problem {
                file: name.to_string(),
                line: Some(directive.line),
                message,
            });
        }
    }
    directives.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(start: Option<usize>, end: Option<usize>) -> Selection {
        Selection::Lines { start, end }
    }

    #[test]
    fn parses_every_directive_form() {
        let page = "# Title\n\
            {{#include ../src/a.rs}}\n\
            {{#include ../src/a.rs:main}}\n\
            {{#include ../src/a.rs:2}}\n\
            {{#include ../src/a.rs:2:}}\n\
            {{#include ../src/a.rs::5}}\n\
            {{#include ../src/a.rs:2:5}}\n\
            {{#rustdoc_include  ../src/b.rs:run }}\n\
            \\{{#include escaped.rs}} {{#title Not an include}} {{#playground x.rs}}\n";
        let parsed: Vec<(usize, String, Selection)> = parse(page)
            .into_iter()
            .map(|d| (d.line, d.path, d.selection))
            .collect();
        let a = || "../src/a.rs".to_string();
        assert_eq!(
            parsed,
            vec![
                (2, a(), lines(None, None)),
                (3, a(), Selection::Anchor("main".into())),
                (4, a(), lines(Some(1), Some(2))),
                (5, a(), lines(Some(1), None)),
                (6, a(), lines(None, Some(5))),
                (7, a(), lines(Some(1), Some(5))),
                (8, "../src/b.rs".into(), Selection::Anchor("run".into())),
            ]
        );
    }

    const SOURCE: &str = "\
use std::io;
// ANCHOR: outer
fn outer() {
    // ANCHOR: inner
    inner();
    // ANCHOR_END: inner
}
// ANCHOR_END: outer
// ANCHOR: empty
   
// ANCHOR_END: empty
// ANCHOR: open
";

    #[test]
    fn anchors_exclude_every_marker_line() {
        let outer = select(SOURCE, &Selection::Anchor("outer".into())).unwrap();
        assert_eq!(outer, "fn outer() {\n    inner();\n}");
        let inner = select(SOURCE, &Selection::Anchor("inner".into())).unwrap();
        assert_eq!(inner, "    inner();");
    }

    #[test]
    fn anchor_names_match_whole_words() {
        // `ANCHOR: inner` must not satisfy a search for `inn`.
        assert!(select(SOURCE, &Selection::Anchor("inn".into())).is_err());
        assert_eq!(marker_name("# ANCHOR:  a-b_c  ", "ANCHOR:"), Some("a-b_c"));
        assert_eq!(marker_name("// ANCHOR_END: x", "ANCHOR:"), None);
    }

    #[test]
    fn missing_or_unclosed_anchors_are_errors() {
        let err = select(SOURCE, &Selection::Anchor("nope".into())).unwrap_err();
        assert!(err.contains("ANCHOR: nope"), "{err}");
        let err = select(SOURCE, &Selection::Anchor("open".into())).unwrap_err();
        assert!(err.contains("ANCHOR_END: open"), "{err}");
    }

    #[test]
    fn line_ranges_are_clamped() {
        assert_eq!(
            select(SOURCE, &lines(Some(0), Some(1))).unwrap(),
            "use std::io;"
        );
        assert_eq!(select(SOURCE, &lines(Some(100), None)).unwrap(), "");
        assert_eq!(select(SOURCE, &lines(Some(5), Some(2))).unwrap(), "");
    }

    #[test]
    fn check_reports_blank_and_missing_includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), SOURCE).unwrap();
        let page = dir.path().join("page.md");
        let text = "{{#include a.rs:outer}}\n{{#include a.rs:empty}}\n{{#include a.rs:99}}\n\
                    {{#include b.rs}}\n";
        let mut problems = Vec::new();
        assert_eq!(check(&page, "page.md", text, &mut problems), 4);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4)], "{problems:?}");
        assert!(problems[2].message.starts_with("cannot include b.rs"));
    }

    /// A listing inside a list item: the include is indented, and mdBook
    /// would end the item at the listing's second line.
    #[test]
    fn an_indented_include_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), SOURCE).unwrap();
        let page = dir.path().join("page.md");
        let text = "- an item:\n\n  ```rust\n  {{#include a.rs:outer}}\n  ```\n\n\
                    ```rust\n{{#include a.rs:outer}}\n```\n";
        let mut problems = Vec::new();
        assert_eq!(check(&page, "page.md", text, &mut problems), 2);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(4));
        assert!(problems[0].message.contains("is indented"), "{problems:?}");
    }
}
