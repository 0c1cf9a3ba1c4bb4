//! The book's SVG figures: each must render, and be readable at its size.
//!
//! A figure with an XML error shows as a broken image, and mdBook does not
//! notice. So every `.svg` under book/src is parsed (with `roxmltree`), and
//! must be an `<svg>` with a `viewBox`, at most [`MAX_WIDTH`] wide (what
//! book/figures.css lets a figure use), with no text smaller than
//! [`MIN_FONT_PX`].

use std::path::{Path, PathBuf};

use super::{Problem, walk};
use crate::display_path;

/// The widest a figure may be drawn: book/figures.css shows it at this size.
pub const MAX_WIDTH: f64 = 940.0;

/// The smallest text a figure may have, in px at its drawn size.
pub const MIN_FONT_PX: f64 = 12.0;

/// Every `*.svg` under `dir`, sorted.
fn svg_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let _ = walk(dir, &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "svg"));
    files.sort();
    files
}

/// The font sizes (px) a figure asks for, in `font:`/`font-size` of its
/// style sheet and its `font-size` attributes.
fn font_sizes(doc: &roxmltree::Document<'_>) -> Vec<f64> {
    let mut sizes = Vec::new();
    for node in doc.descendants() {
        if let Some(size) = node.attribute("font-size") {
            sizes.extend(size.trim_end_matches("px").trim().parse::<f64>().ok());
        }
        let style = match (node.tag_name().name(), node.text(), node.attribute("style")) {
            ("style", Some(text), _) => text,
            (_, _, Some(style)) => style,
            _ => continue,
        };
        for rule in style.split([';', '{', '}']) {
            let rule = rule.trim();
            if let Some(value) = rule
                .strip_prefix("font-size:")
                .or_else(|| rule.strip_prefix("font:"))
            {
                sizes.extend(
                    value
                        .split_whitespace()
                        .filter_map(|word| word.strip_suffix("px"))
                        .filter_map(|n| n.parse::<f64>().ok()),
                );
            }
        }
    }
    sizes
}

/// What is wrong with one figure, if anything.
fn check_figure(text: &str) -> Option<String> {
    let doc = match roxmltree::Document::parse(text) {
        Ok(doc) => doc,
        Err(err) => return Some(format!("not well-formed XML, so it will not render: {err}")),
    };
    let svg = doc.root_element();
    if svg.tag_name().name() != "svg" {
        return Some("the root element is not <svg>".to_string());
    }
    if svg.attribute("viewBox").is_none() {
        return Some("no viewBox: the figure cannot scale with the page".to_string());
    }
    let width = svg
        .attribute("width")
        .and_then(|w| w.trim_end_matches("px").parse::<f64>().ok());
    if let Some(width) = width.filter(|w| *w > MAX_WIDTH) {
        return Some(format!(
            "{width} px wide, over {MAX_WIDTH}: it would be shrunk, and its labels with it"
        ));
    }
    let smallest = font_sizes(&doc).into_iter().fold(f64::INFINITY, f64::min);
    (smallest < MIN_FONT_PX)
        .then(|| format!("text of {smallest} px: make every label {MIN_FONT_PX} px or more"))
}

/// Checks every figure under `src`; returns how many there are.
pub fn check(root: &Path, src: &Path, problems: &mut Vec<Problem>) -> usize {
    let files = svg_files(src);
    for file in &files {
        let message = match std::fs::read_to_string(file) {
            Ok(text) => check_figure(&text),
            Err(err) => Some(format!("cannot read: {err}")),
        };
        if let Some(message) = message {
            problems.push(Problem {
                file: display_path(root, file),
                line: None,
                message,
            });
        }
    }
    files.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 700 100" width="700"><style>.a { font: bold 13px sans-serif; } .b { font-size: 12px; }</style><text class="a">x</text></svg>"#;

    #[test]
    fn a_good_figure_passes() {
        assert_eq!(check_figure(GOOD), None);
    }

    #[test]
    fn broken_wide_or_tiny_figures_fail() {
        let broken = GOOD.replace("</svg>", "");
        assert!(check_figure(&broken).unwrap().contains("not well-formed"));
        let wide = GOOD.replace(r#"width="700""#, r#"width="1200""#);
        assert!(check_figure(&wide).unwrap().contains("1200 px wide"));
        let tiny = GOOD.replace("font-size: 12px", "font-size: 9px");
        assert!(check_figure(&tiny).unwrap().contains("text of 9 px"));
        let attribute = GOOD.replace("<text class", r#"<text font-size="8" class"#);
        assert!(check_figure(&attribute).unwrap().contains("text of 8 px"));
        let no_box = GOOD.replace(r#"viewBox="0 0 700 100" "#, "");
        assert!(check_figure(&no_box).unwrap().contains("viewBox"));
    }
}
