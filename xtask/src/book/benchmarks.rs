//! The Benchmarks page's tables and plots, made from the benchmarks' JSON.
//!
//! `cargo xtask bench chNN --json book/src/benchmarks/chNN.json` keeps a
//! benchmark's record in the book. From each record, `book-sync` writes
//! `chNN.md` (the tables, with the command, date, kernel, load and goal) and
//! `chNN.svg` (a bar per command: the median, a line from the fastest to
//! the slowest run), which the page includes; `book-check` fails when either
//! differs from what the record gives, so neither can go stale, and when one
//! has outlived its record.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use super::Problem;
use crate::display_path;

/// Where the records live, and their tables and plots beside them.
pub const DIR: &str = "book/src/benchmarks";

/// One bar of a plot.
struct Bar {
    label: String,
    value: f64,
    /// The fastest-slowest (or lowest-highest) spread, in the value's unit.
    low: f64,
    high: f64,
    baseline: bool,
    goal: bool,
}

/// One plot section: a measure of several commands.
struct Section {
    title: String,
    unit: &'static str,
    bars: Vec<Bar>,
}

/// The generated files for `record`: (table markdown, plot SVG).
pub fn render(name: &str, record: &Value) -> Result<(String, String)> {
    let mut table = String::new();
    let mut sections = Vec::new();
    let groups: Vec<&Value> = match record["groups"].as_array() {
        Some(groups) => groups.iter().collect(),
        None => vec![record],
    };
    for group in groups {
        plan_table(group, &mut table, &mut sections)
            .with_context(|| format!("{name}: a measurement without results"))?;
    }
    if let Some(disk) = record["disk_ten_containers_mib"].as_object() {
        let _ = writeln!(
            table,
            "| ten containers on the {} MiB layer | disk used |\n| --- | --- |",
            number(&record["layer_mib"], 0)
        );
        for (driver, mib) in disk {
            let _ = writeln!(table, "| {driver} | {} MiB |", number(mib, 1));
        }
        table.push('\n');
    }
    for load in record["load"].as_array().into_iter().flatten() {
        load_table(load, &mut table, &mut sections);
    }
    if let Some(rss) = record["server_peak_rss_kib"].as_object() {
        table.push_str("| server | peak RSS over the whole run |\n| --- | --- |\n");
        for (server, kib) in rss {
            let mib = kib.as_f64().unwrap_or(0.0) / 1024.0;
            let _ = writeln!(table, "| {server} | {mib:.1} MiB |");
        }
        table.push('\n');
        let goal = &record["server_peak_rss_goal"];
        if let (Some(text), Some(met)) = (goal["text"].as_str(), goal["met"].as_bool()) {
            let met = if met { "met" } else { "not met" };
            let _ = writeln!(table, "Goal: peak RSS {text}: {met}.\n");
        }
    }
    table.push_str(&caption(record));
    Ok((table, plot(name, &sections)))
}

/// The table of one measured plan, and its plot section.
fn plan_table(plan: &Value, table: &mut String, sections: &mut Vec<Section>) -> Option<()> {
    let results = plan["results"].as_array()?;
    let bytes = plan["content_bytes"].as_f64();
    let goal = plan["goal"]["label"].as_str().unwrap_or_default();
    let title = plan["title"]
        .as_str()
        .unwrap_or("start-to-exit of /bin/true");
    if let Some(title) = plan["title"].as_str() {
        let _ = writeln!(table, "**{title}**\n");
    }
    table.push_str("| measured | median (ms) | fastest–slowest (ms) | ratio |");
    if bytes.is_some() {
        table.push_str(" MB/s |");
    }
    table.push_str(" peak RSS |\n| --- | --- | --- | --- |");
    if bytes.is_some() {
        table.push_str(" --- |");
    }
    table.push_str(" --- |\n");
    let mut bars = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let label = result["label"].as_str().unwrap_or_default();
        let median = result["median_ms"].as_f64().unwrap_or(0.0);
        let min = result["min_ms"].as_f64().unwrap_or(0.0);
        let max = result["max_ms"].as_f64().unwrap_or(0.0);
        let shown = match i {
            0 => format!("{label} (baseline)"),
            _ => label.to_string(),
        };
        let _ = write!(
            table,
            "| {shown} | {median:.3} | {min:.3}–{max:.3} | {:.2} |",
            result["ratio"].as_f64().unwrap_or(0.0)
        );
        let rate = |ms: f64| bytes.unwrap_or(0.0) / 1e6 / (ms / 1000.0);
        if bytes.is_some() {
            let _ = write!(table, " {:.1} |", rate(median));
        }
        let _ = writeln!(table, " {} |", peak_rss(result));
        bars.push(match bytes {
            Some(_) => Bar {
                label: label.to_string(),
                value: rate(median),
                low: rate(max),
                high: rate(min),
                baseline: i == 0,
                goal: label == goal,
            },
            None => Bar {
                label: label.to_string(),
                value: median,
                low: min,
                high: max,
                baseline: i == 0,
                goal: label == goal,
            },
        });
    }
    table.push('\n');
    if let Some(text) = plan["goal"]["text"].as_str() {
        let _ = writeln!(
            table,
            "Goal: {text}: {} (ratio {}).\n",
            if plan["goal"]["met"].as_bool() == Some(true) {
                "met"
            } else {
                "not met"
            },
            number(&plan["goal"]["ratio"], 2)
        );
    }
    sections.push(Section {
        title: title.to_string(),
        unit: if bytes.is_some() { "MB/s" } else { "ms" },
        bars,
    });
    Some(())
}

/// A load test's table (requests per second), and its plot section.
fn load_table(load: &Value, table: &mut String, sections: &mut Vec<Section>) {
    let title = load["title"].as_str().unwrap_or("requests per second");
    let _ = writeln!(
        table,
        "**{title}**\n\n| server | median requests/s | lowest–highest | ratio of rates | p99 latency (ms) |\n\
         | --- | --- | --- | --- | --- |"
    );
    let mut bars = Vec::new();
    for (i, result) in load["results"].as_array().into_iter().flatten().enumerate() {
        let label = result["label"].as_str().unwrap_or_default();
        let rps = result["median_rps"].as_f64().unwrap_or(0.0);
        let low = result["min_rps"].as_f64().unwrap_or(0.0);
        let high = result["max_rps"].as_f64().unwrap_or(0.0);
        let ratio = result["ratio"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            table,
            "| {label}{} | {rps:.0} | {low:.0}–{high:.0} | {ratio:.2} | {} |",
            if i == 0 { " (baseline)" } else { "" },
            number(&result["p99_ms"], 2)
        );
        bars.push(Bar {
            label: label.to_string(),
            value: rps,
            low,
            high,
            baseline: i == 0,
            goal: i != 0,
        });
    }
    table.push('\n');
    if let Some(met) = load["goal"]["met"].as_bool() {
        let _ = writeln!(
            table,
            "Goal: at least {}'s rate: {} (ratio {}).\n",
            load["results"][0]["label"]
                .as_str()
                .unwrap_or("the baseline"),
            if met { "met" } else { "not met" },
            number(&load["goal"]["ratio"], 2)
        );
    }
    sections.push(Section {
        title: title.to_string(),
        unit: "requests/s",
        bars,
    });
}

fn peak_rss(result: &Value) -> String {
    let (Some(kib), floor) = (
        result["peak_rss_kib"].as_f64(),
        result["peak_rss_floor_kib"].as_f64(),
    ) else {
        return "–".to_string();
    };
    match floor {
        Some(floor) if kib <= floor => format!("≤ {:.1} MiB", floor / 1024.0),
        _ => format!("{:.1} MiB", kib / 1024.0),
    }
}

/// A JSON number with `places` decimals, or `?`.
fn number(value: &Value, places: usize) -> String {
    value
        .as_f64()
        .map_or_else(|| "?".to_string(), |n| format!("{n:.places$}"))
}

/// How, when and where the record was measured.
fn caption(record: &Value) -> String {
    let when = record["unix_time"]
        .as_u64()
        .map_or_else(|| "an unknown date".to_string(), date);
    let first = |v: &Value| {
        v.as_str()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "Measured with `sudo … {}` on {when}, Linux {}, {} runs each after {} warm-up runs; \
         load average (1 minute) {} at the start, {} at the end.\n",
        record["invocation"].as_str().unwrap_or("cargo xtask bench"),
        record["kernel"].as_str().unwrap_or("?"),
        record["runs"],
        record["warmup_runs"],
        first(&record["load_average_start"]),
        first(&record["load_average_end"]),
    )
}

/// `YYYY-MM-DD` of a Unix time (UTC), by the civil-from-days algorithm.
fn date(unix: u64) -> String {
    let days = (unix / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The plot: one section per measure, a horizontal bar per command.
fn plot(name: &str, sections: &[Section]) -> String {
    const WIDTH: f64 = 720.0;
    const ROW: f64 = 28.0;
    // The labels' column fits the longest (13 px sans-serif: about 7.3 px
    // a character); the bars get what is left but room for their value.
    let longest = sections
        .iter()
        .flat_map(|s| &s.bars)
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_column = (longest as f64 * 7.3 + 24.0).max(120.0);
    let bars_width = WIDTH - label_column - 150.0;
    let height = 40.0
        + sections
            .iter()
            .map(|s| 34.0 + ROW * s.bars.len() as f64 + 14.0)
            .sum::<f64>();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="bench {name}: {}">"##,
        sections
            .iter()
            .map(|s| s.title.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    svg.push_str(
        "  <style>\n    .heading { font: bold 15px sans-serif; fill: #222222; }\n    \
         .label { font: 13px sans-serif; fill: #222222; }\n    \
         .value { font: 13px sans-serif; fill: #444444; }\n    \
         .note { font: 13px sans-serif; fill: #666666; }\n    \
         .baseline { fill: #fdf6e3; stroke: #8a7440; stroke-width: 1.5; }\n    \
         .goal { fill: #e8f0fb; stroke: #1f5fa8; stroke-width: 1.5; }\n    \
         .other { fill: #e3f4e1; stroke: #3d8b37; stroke-width: 1.5; }\n    \
         .spread { stroke: #333333; stroke-width: 1.5; }\n  </style>\n",
    );
    let _ = writeln!(
        svg,
        r##"  <rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"  <text class="note" x="10" y="24">bar: the median; line: fastest to slowest run (brown: the baseline, blue: the one the goal is about)</text>"##
    );
    let mut y = 40.0;
    for section in sections {
        let top = section
            .bars
            .iter()
            .map(|b| b.high.max(b.value))
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let scale = bars_width / top;
        let _ = writeln!(
            svg,
            r##"  <text class="heading" x="10" y="{:.1}">{} ({})</text>"##,
            y + 20.0,
            escape(&section.title),
            section.unit
        );
        y += 34.0;
        for bar in &section.bars {
            let class = match (bar.baseline, bar.goal) {
                (true, _) => "baseline",
                (false, true) => "goal",
                _ => "other",
            };
            let width = (bar.value * scale).max(1.0);
            let mid = y + ROW / 2.0 - 2.0;
            let _ = writeln!(
                svg,
                r##"  <text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                label_column - 8.0,
                mid + 5.0,
                escape(&bar.label)
            );
            let _ = writeln!(
                svg,
                r##"  <rect class="{class}" x="{label_column}" y="{:.1}" width="{width:.1}" height="{:.1}"/>"##,
                y + 3.0,
                ROW - 10.0
            );
            let (low, high) = (
                label_column + bar.low * scale,
                label_column + bar.high * scale,
            );
            let _ = writeln!(
                svg,
                r##"  <path class="spread" d="M {low:.1} {mid:.1} H {high:.1} M {low:.1} {:.1} V {:.1} M {high:.1} {:.1} V {:.1}"/>"##,
                mid - 5.0,
                mid + 5.0,
                mid - 5.0,
                mid + 5.0
            );
            let value = if section.unit == "ms" {
                format!("{:.2} {}", bar.value, section.unit)
            } else {
                format!("{:.0} {}", bar.value, section.unit)
            };
            let _ = writeln!(
                svg,
                r##"  <text class="value" x="{:.1}" y="{:.1}">{value}</text>"##,
                label_column + (bar.value * scale).max(bar.high * scale) + 8.0,
                mid + 5.0
            );
            y += ROW;
        }
        y += 14.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every record, `chNN.json`, sorted.
fn records(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(DIR);
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// What each record's files should hold: (path, contents).
fn expected(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for record in records(root)? {
        let text = std::fs::read_to_string(&record)
            .with_context(|| format!("cannot read {}", record.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", display_path(root, &record)))?;
        let name = record
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (table, svg) = render(&name, &value)?;
        files.push((record.with_extension("md"), table));
        files.push((record.with_extension("svg"), svg));
    }
    Ok(files)
}

/// `book-sync`: write every record's table and plot; returns those written.
pub fn sync(root: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, text) in expected(root)? {
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            continue;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `book-check`: every table and plot is what its record gives, and none
/// is left without a record. Returns how many records there are.
pub fn check(root: &Path, problems: &mut Vec<Problem>) -> Result<usize> {
    let expected = expected(root)?;
    for (path, text) in &expected {
        let message = match std::fs::read_to_string(path) {
            Ok(old) if old == *text => continue,
            Ok(_) => "differs from what its JSON record gives: run `cargo xtask book-sync`",
            Err(_) => "is missing: run `cargo xtask book-sync`",
        };
        problems.push(Problem {
            file: display_path(root, path),
            line: None,
            message: message.to_string(),
        });
    }
    if let Ok(entries) = std::fs::read_dir(root.join(DIR)) {
        for entry in entries.flatten() {
            let path = entry.path();
            let generated = path.extension().is_some_and(|e| e == "md" || e == "svg");
            if generated && !expected.iter().any(|(p, _)| *p == path) {
                problems.push(Problem {
                    file: display_path(root, &path),
                    line: None,
                    message: "has no JSON record beside it: remove it".to_string(),
                });
            }
        }
    }
    Ok(expected.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        serde_json::json!({
            "scenario": "ch01",
            "invocation": "cargo xtask bench ch01 --runs 5",
            "unix_time": 1_764_892_800u64,
            "kernel": "6.18.0",
            "load_average_start": "0.10 0.20 0.30",
            "load_average_end": "1.50 0.40 0.30",
            "runs": 5,
            "warmup_runs": 2,
            "content_bytes": null,
            "goal": {"label": "ours", "max_ratio": 1.2, "met": true, "ratio": 0.9, "text": "ours ≤ 1.2× peer"},
            "results": [
                {"label": "peer", "median_ms": 2.0, "min_ms": 1.5, "max_ms": 3.0, "ratio": 1.0,
                 "peak_rss_kib": 1600, "peak_rss_floor_kib": 1300},
                {"label": "ours", "median_ms": 1.8, "min_ms": 1.7, "max_ms": 2.5, "ratio": 0.9,
                 "peak_rss_kib": 1200, "peak_rss_floor_kib": 1300},
            ],
        })
    }

    #[test]
    fn a_record_gives_its_table_and_plot() {
        let (table, svg) = render("ch01", &record()).unwrap();
        assert!(
            table.contains("| peer (baseline) | 2.000 | 1.500–3.000 | 1.00 | 1.6 MiB |"),
            "{table}"
        );
        assert!(
            table.contains("| ours | 1.800 | 1.700–2.500 | 0.90 | ≤ 1.3 MiB |"),
            "{table}"
        );
        assert!(table.contains("Goal: ours ≤ 1.2× peer: met (ratio 0.90)."));
        assert!(
            table.contains("on 2025-12-05, Linux 6.18.0, 5 runs each after 2 warm-up runs"),
            "{table}"
        );
        assert!(table.contains("0.10 at the start, 1.50 at the end"));
        assert_eq!(svg.matches("<rect class=").count(), 2);
        assert!(
            svg.contains(">2.00 ms<") && svg.contains(">1.80 ms<"),
            "{svg}"
        );
        // Deterministic: the same record, the same bytes.
        assert_eq!(render("ch01", &record()).unwrap().1, svg);
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_764_892_800), "2025-12-05");
    }

    #[test]
    fn check_finds_stale_and_orphaned_files() {
        let dir = tempfile::tempdir().unwrap();
        let bench = dir.path().join(DIR);
        std::fs::create_dir_all(&bench).unwrap();
        std::fs::write(bench.join("ch01.json"), record().to_string()).unwrap();
        std::fs::write(bench.join("ch09.svg"), "old").unwrap();
        let mut problems = Vec::new();
        assert_eq!(check(dir.path(), &mut problems).unwrap(), 1);
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(messages[0].ends_with("ch01.md: is missing: run `cargo xtask book-sync`"));
        assert!(messages[2].ends_with("ch09.svg: has no JSON record beside it: remove it"));

        sync(dir.path()).unwrap();
        std::fs::remove_file(bench.join("ch09.svg")).unwrap();
        let mut problems = Vec::new();
        check(dir.path(), &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        std::fs::write(bench.join("ch01.svg"), "edited by hand").unwrap();
        check(dir.path(), &mut problems).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .message
                .starts_with("differs from what its JSON record gives")
        );
    }
}
