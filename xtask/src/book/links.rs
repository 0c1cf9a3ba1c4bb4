//! Links and images in the book, and the pages SUMMARY.md lists.
//!
//! mdBook renders only the pages SUMMARY.md lists and turns `page.md` links into
//! `page.html`, so a link breaks in the rendered book when its file is missing, when
//! it leaves book/src, or when it names a page SUMMARY.md does not list. Web links
//! (`https:`, `mailto:` and other schemes) and links within the page (`#section`) are
//! not checked.
//!
//! The parser is a small approximation of CommonMark that is enough for this book:
//! inline links and images `[text](target "title")`, reference definitions
//! `[name]: target`, skipping fenced code blocks and `code spans`.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use super::Problem;

/// A link or image in a page.
#[derive(Debug, PartialEq)]
pub struct Link {
    /// 1-based.
    pub line: usize,
    pub target: String,
    pub image: bool,
}

/// Finds the links and images in a page, outside code.
pub fn parse(text: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut fence: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim_start();
        if let Some(open) = &fence {
            if trimmed.starts_with(open.as_str()) {
                fence = None;
            }
            continue;
        }
        if let Some(marker) = fence_marker(trimmed) {
            fence = Some(marker);
            continue;
        }
        if let Some(target) = reference_definition(trimmed) {
            links.push(Link {
                line: line_no,
                target,
                image: false,
            });
            continue;
        }
        let line = blank_code_spans(line);
        let bytes = line.as_bytes();
        let mut from = 0;
        while let Some(found) = line[from..].find("](") {
            let close = from + found;
            from = close + 2;
            let Some(open) = matching_open_bracket(bytes, close) else {
                continue;
            };
            let image = open > 0 && bytes[open - 1] == b'!';
            links.push(Link {
                line: line_no,
                target: link_destination(&line[close + 2..]),
                image,
            });
        }
    }
    links
}

/// The run of backticks or tildes that opens a fenced code block, if `line` opens one.
fn fence_marker(line: &str) -> Option<String> {
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = line.chars().take_while(|c| *c == ch).count();
    (len >= 3).then(|| ch.to_string().repeat(len))
}

/// The target of a reference definition such as `[name]: path.md "title"`.
fn reference_definition(line: &str) -> Option<String> {
    let rest = line.strip_prefix('[')?;
    let (label, after) = rest.split_once("]:")?;
    if label.is_empty() || label.contains(']') {
        return None;
    }
    let target = after.split_whitespace().next()?;
    Some(
        target
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    )
}

/// `line` with every `code span` replaced by spaces (byte offsets stay the same).
fn blank_code_spans(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = line.to_string().into_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
        // Look for a closing run of exactly the same length.
        let mut j = i + run;
        let mut closed = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let len = bytes[j..].iter().take_while(|b| **b == b'`').count();
                if len == run {
                    closed = Some(j + len);
                    break;
                }
                j += len;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                out[i..end].fill(b' ');
                i = end;
            }
            None => i += run,
        }
    }
    // Only whole code spans (which start and end at ASCII backticks) were blanked,
    // so the bytes are still UTF-8.
    String::from_utf8(out).expect("blanking code spans keeps UTF-8")
}

/// The `[` that matches the `]` at `close`, skipping nested brackets.
fn matching_open_bracket(bytes: &[u8], close: usize) -> Option<usize> {
    let mut depth = 0;
    for j in (0..close).rev() {
        match bytes[j] {
            b']' => depth += 1,
            b'[' if depth == 0 => return Some(j),
            b'[' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The destination at the start of `rest` (what follows `](`): `<...>`, or up to
/// whitespace or the `)` that closes the link.
fn link_destination(rest: &str) -> String {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        return inner.split('>').next().unwrap_or_default().to_string();
    }
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return rest[..i].to_string(),
            ')' => depth -= 1,
            c if c.is_whitespace() => return rest[..i].to_string(),
            _ => {}
        }
    }
    rest.to_string()
}

/// Whether a target is a web (or other scheme) address rather than a file.
fn is_external(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && !scheme.contains('/')
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// The file part of a target: without `#fragment` and `?query`.
fn file_part(target: &str) -> &str {
    let end = target.find(['#', '?']).unwrap_or(target.len());
    &target[..end]
}

/// Where a local target points, resolved against the page (or book/src for `/...`).
fn resolve(src: &Path, page: &Path, file: &str) -> PathBuf {
    match file.strip_prefix('/') {
        Some(from_src) => normalize(&src.join(from_src)),
        None => normalize(&page.parent().unwrap_or(src).join(file)),
    }
}

/// `path` with `.` and `..` removed without touching the file system (the file may
/// not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The pages SUMMARY.md lists.
pub struct Summary {
    path: PathBuf,
    pages: BTreeSet<PathBuf>,
}

impl Summary {
    /// Reads book/src/SUMMARY.md; `None` if there is none.
    pub fn read(src: &Path) -> Result<Option<Summary>> {
        let path = normalize(&src.join("SUMMARY.md"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let pages = parse(&text)
            .iter()
            .map(|link| file_part(&link.target))
            .filter(|file| !file.is_empty() && !is_external(file))
            .map(|file| resolve(src, &path, file))
            .collect();
        Ok(Some(Summary { path, pages }))
    }
}

/// Checks the local links of the page at `page` (shown as `name`); returns how many
/// were checked.
pub fn check(
    page: &Path,
    name: &str,
    text: &str,
    src: &Path,
    summary: Option<&Summary>,
    problems: &mut Vec<Problem>,
) -> usize {
    let page = normalize(page);
    let src = normalize(src);
    let in_summary = summary.is_some_and(|s| s.path == page);
    let mut checked = 0;
    for link in parse(text) {
        let target = link.target.as_str();
        let file = file_part(target);
        if is_external(target) || (file.is_empty() && target.starts_with('#')) {
            continue;
        }
        if file.is_empty() && in_summary {
            // `- [Title]()` is a draft chapter.
            continue;
        }
        checked += 1;
        let what = if link.image { "image" } else { "link to" };
        let resolved = resolve(&src, &page, file);
        let message = if file.is_empty() {
            Some(format!("{what} nothing: the target is empty"))
        } else if !resolved.starts_with(&src) {
            Some(format!(
                "{what} {target}: it is outside book/src, so it breaks in the rendered book"
            ))
        } else if !resolved.exists() {
            Some(if in_summary {
                format!("SUMMARY.md lists {target}, which does not exist")
            } else {
                format!("{what} {target}: no such file")
            })
        } else if !in_summary
            && file.ends_with(".md")
            && summary.is_some_and(|s| !s.pages.contains(&resolved))
        {
            Some(format!(
                "{what} {target}: that page is not listed in SUMMARY.md, so mdBook does not render it"
            ))
        } else {
            None
        };
        if let Some(message) = message {
            problems.push(Problem {
                file: name.to_string(),
                line: Some(link.line),
                message,
            });
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str) -> Vec<(usize, &'static str, String)> {
        parse(text)
            .into_iter()
            .map(|l| (l.line, if l.image { "image" } else { "link" }, l.target))
            .collect()
    }

    #[test]
    fn finds_links_images_and_definitions() {
        let text = "See [one](a.md) and ![pic](img/x.svg \"title\").\n\
                    [![badge](b.png)](c.md#top) [nested [brackets]](d.md)\n\
                    [ref]: e.md\n\
                    [<angle>](<f g.md>) [paren](h_(1).md)\n";
        assert_eq!(
            targets(text),
            vec![
                (1, "link", "a.md".into()),
                (1, "image", "img/x.svg".into()),
                (2, "image", "b.png".into()),
                (2, "link", "c.md#top".into()),
                (2, "link", "d.md".into()),
                (3, "link", "e.md".into()),
                (4, "link", "f g.md".into()),
                (4, "link", "h_(1).md".into()),
            ]
        );
    }

    #[test]
    fn skips_code() {
        let text = "`[a](x.md)` ``[b](y.md)`` [c](z.md)\n\
                    ```rust\nlet v = [1](2);\n```\n\
                    ~~~~\n[d](w.md)\n~~~~\n[e](v.md)\n";
        let found: Vec<String> = parse(text).into_iter().map(|l| l.target).collect();
        assert_eq!(found, ["z.md", "v.md"]);
    }

    #[test]
    fn classifies_targets() {
        assert!(is_external("https://example.com/a.md"));
        assert!(is_external("mailto:someone@example.com"));
        assert!(!is_external("ch01/index.md"));
        assert!(!is_external("./a:b/c.md"));
        assert_eq!(file_part("a.md#section"), "a.md");
        assert_eq!(file_part("#section"), "");
        assert_eq!(
            normalize(Path::new("/b/src/ch01/../img/./x.svg")),
            PathBuf::from("/b/src/img/x.svg")
        );
    }

    #[test]
    fn check_resolves_against_the_page_and_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("book/src");
        std::fs::create_dir_all(src.join("ch01")).unwrap();
        std::fs::write(
            src.join("SUMMARY.md"),
            "- [One](ch01/index.md)\n- [Draft]()\n",
        )
        .unwrap();
        std::fs::write(src.join("ch01/index.md"), "").unwrap();
        std::fs::write(src.join("ch01/extra.md"), "").unwrap();
        std::fs::write(src.join("logo.png"), "").unwrap();
        let summary = Summary::read(&src).unwrap().unwrap();

        let page = src.join("ch01/index.md");
        let text = "[ok](index.md#x) ![ok](../logo.png) [ok](/ch01/index.md) [web](http://x)\n\
                    [frag](#x) [gone](missing.md) [unlisted](extra.md) [out](../../../Cargo.toml)\n";
        let mut problems = Vec::new();
        let checked = check(&page, "p.md", text, &src, Some(&summary), &mut problems);
        assert_eq!(checked, 6);
        let messages: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(messages[0].starts_with("link to missing.md: no such file"));
        assert!(messages[1].contains("not listed in SUMMARY.md"));
        assert!(messages[2].contains("outside book/src"));
    }
}
