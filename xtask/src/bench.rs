//! The generic benchmark runner: time commands start-to-exit, interleaved, and compare
//! their medians against the first (baseline) command.
//!
//! Each command runs [`WARMUP_RUNS`] times uncounted, then `runs` times counted, in
//! round-robin order (A B A B ...), so that a slow patch of the machine (another job,
//! a frequency change) hits every command alike instead of only the one running then.
//! Only ratios measured in the same call mean anything; absolute times are for scale.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Uncounted runs of each command before measuring: fill the page cache, warm the
/// dynamic loader's caches.
pub const WARMUP_RUNS: usize = 2;

/// One command to measure.
pub struct Bench {
    /// A short name for the table, e.g. `chroot(1)`.
    pub label: String,
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// A command run, untimed, before each run (to empty a store a pull
    /// fills, say).
    pub reset: Option<Vec<OsString>>,
}

impl Bench {
    pub fn new(label: &str, argv: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Bench {
            label: label.to_string(),
            argv: argv.into_iter().map(Into::into).collect(),
            reset: None,
        }
    }

    /// Run `argv` (untimed) before every run of this bench.
    pub fn with_reset(mut self, argv: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        self.reset = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// The command line as a user would type it (arguments with spaces quoted).
    pub fn command_line(&self) -> String {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|arg| {
                let arg = arg.to_string_lossy();
                if arg.is_empty() || arg.contains(char::is_whitespace) {
                    format!("'{arg}'")
                } else {
                    arg.into_owned()
                }
            })
            .collect();
        words.join(" ")
    }
}

/// The timings of one command.
#[derive(Debug)]
pub struct Measurement {
    pub label: String,
    pub command_line: String,
    /// Every counted run, in the order they ran.
    pub samples: Vec<Duration>,
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    /// `median / baseline median`; 1.0 for the baseline itself.
    pub ratio: f64,
    /// The largest resident set the command (and the children it waited
    /// for) reached, from untimed runs through `berth-peak-rss`; `None`
    /// when not measured.
    pub peak_rss: Option<PeakRss>,
}

/// A command's peak resident set, as `berth-peak-rss` reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakRss {
    /// The largest `ru_maxrss` of the runs, in KiB.
    pub kib: u64,
    /// `berth-peak-rss`'s own peak, which a command inherits at exec: a
    /// figure at or below it says only "at most this much".
    pub floor_kib: u64,
}

impl PeakRss {
    /// `PEAK_KIB FLOOR_KIB`, as berth-peak-rss writes it.
    fn parse(text: &str) -> Option<PeakRss> {
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(kib)), Some(Ok(floor_kib)), None) => Some(PeakRss { kib, floor_kib }),
            _ => None,
        }
    }

    /// True when the figure is the command's own, above the floor.
    pub fn above_floor(&self) -> bool {
        self.kib > self.floor_kib
    }

    /// `12.3 MiB`, or `≤ 1.3 MiB` at the floor.
    pub fn render(&self) -> String {
        if self.above_floor() {
            format!("{:.1} MiB", self.kib as f64 / 1024.0)
        } else {
            format!("≤ {:.1} MiB", self.floor_kib as f64 / 1024.0)
        }
    }
}

/// Untimed runs of each command through `berth-peak-rss`, after the timed
/// ones: its peak is the largest.
pub const PEAK_RSS_RUNS: usize = 3;

/// Runs every command `runs` times, interleaved, and summarises each; the first
/// command is the baseline the ratios are relative to. With `peak_rss_tool`
/// (the `berth-peak-rss` binary), each command then runs [`PEAK_RSS_RUNS`]
/// more times through it, untimed, for its peak resident set.
pub fn compare(
    benches: &[Bench],
    runs: usize,
    peak_rss_tool: Option<&Path>,
) -> Result<Vec<Measurement>> {
    if benches.is_empty() || runs == 0 {
        bail!("nothing to measure: give at least one command and one run");
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); benches.len()];
    for round in 0..WARMUP_RUNS + runs {
        for (bench, samples) in benches.iter().zip(&mut samples) {
            if let Some(reset) = &bench.reset {
                run_untimed(reset)?;
            }
            let elapsed = time_once(bench)?;
            if round >= WARMUP_RUNS {
                samples.push(elapsed);
            }
        }
    }
    let mut peaks = vec![None; benches.len()];
    if let Some(tool) = peak_rss_tool {
        for (bench, peak) in benches.iter().zip(&mut peaks) {
            *peak = Some(peak_rss(tool, bench)?);
        }
    }

    let baseline = median(&samples[0]);
    Ok(benches
        .iter()
        .zip(samples)
        .zip(peaks)
        .map(|((bench, samples), peak_rss)| {
            let median = median(&samples);
            Measurement {
                label: bench.label.clone(),
                command_line: bench.command_line(),
                median,
                min: *samples.iter().min().expect("runs > 0"),
                max: *samples.iter().max().expect("runs > 0"),
                ratio: median.as_secs_f64() / baseline.as_secs_f64(),
                peak_rss,
                samples,
            }
        })
        .collect())
}

/// The largest peak resident set of [`PEAK_RSS_RUNS`] runs of `bench`
/// through `berth-peak-rss` (its module header says why not our own wait4).
fn peak_rss(tool: &Path, bench: &Bench) -> Result<PeakRss> {
    let out = tempfile::NamedTempFile::new().context("cannot create a temp file")?;
    let mut peak: Option<PeakRss> = None;
    for _ in 0..PEAK_RSS_RUNS {
        if let Some(reset) = &bench.reset {
            run_untimed(reset)?;
        }
        let status = Command::new(tool)
            .arg(out.path())
            .args(&bench.argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot start {}", tool.display()))?;
        if !status.success() {
            bail!(
                "`{}` failed under {} ({status}); run it by hand to see why",
                bench.command_line(),
                tool.display()
            );
        }
        let text = std::fs::read_to_string(out.path()).context("read berth-peak-rss's result")?;
        let run = PeakRss::parse(&text)
            .with_context(|| format!("berth-peak-rss wrote {text:?}, not `PEAK FLOOR`"))?;
        peak = Some(match peak {
            Some(p) => PeakRss {
                kib: p.kib.max(run.kib),
                floor_kib: p.floor_kib.max(run.floor_kib),
            },
            None => run,
        });
    }
    peak.context("no runs")
}

/// Run a reset command, untimed; it must succeed.
fn run_untimed(argv: &[OsString]) -> Result<()> {
    let (program, args) = argv.split_first().context("a reset has an empty argv")?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
    if !status.success() {
        bail!(
            "the reset `{}` failed ({status})",
            program.to_string_lossy()
        );
    }
    Ok(())
}

/// Wall time from just before spawn to just after the command has been
/// reaped.
fn time_once(bench: &Bench) -> Result<Duration> {
    let (program, args) = bench
        .argv
        .split_first()
        .context("a bench has an empty argv")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());

    let start = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot start `{}`", bench.command_line()))?;
    let elapsed = start.elapsed();

    if !status.success() {
        bail!(
            "`{}` failed ({status}); its output is discarded while benchmarking, \
             so run it by hand to see why",
            bench.command_line()
        );
    }
    Ok(elapsed)
}

/// The middle sample (the mean of the two middle ones for an even count).
fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The results as a table, then the exact commands that were run.
pub fn render(results: &[Measurement], runs: usize) -> String {
    let width = results
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(0)
        .max("command".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>6}  {:>9}",
        "command", "median ms", "min ms", "max ms", "ratio", "peak RSS"
    );
    for m in results {
        let rss = m.peak_rss.map_or("-".to_string(), |p| p.render());
        let _ = writeln!(
            out,
            "{:<width$}  {:>10.3}  {:>10.3}  {:>10.3}  {:>5.2}×  {:>9}",
            m.label,
            ms(m.median),
            ms(m.min),
            ms(m.max),
            m.ratio,
            rss
        );
    }
    let _ = writeln!(
        out,
        "({runs} runs each, interleaved, after {WARMUP_RUNS} warm-up runs each; ratio = median / median of {})",
        results.first().map_or("", |m| m.label.as_str())
    );
    if results.iter().any(|m| m.peak_rss.is_some()) {
        let _ = writeln!(
            out,
            "(peak RSS: the largest of {PEAK_RSS_RUNS} more runs each, started through berth-peak-rss; \
             ≤ means at most its floor)"
        );
    }
    let _ = writeln!(out, "commands run:");
    for m in results {
        let _ = writeln!(out, "  {}", m.command_line);
    }
    out
}

/// The results as JSON values (times in milliseconds).
pub fn to_json(results: &[Measurement]) -> serde_json::Value {
    // Microsecond resolution is all the clock and the machine are good for.
    let ms = |d: Duration| (ms(d) * 1000.0).round() / 1000.0;
    results
        .iter()
        .map(|m| {
            serde_json::json!({
                "label": m.label,
                "command": m.command_line,
                "median_ms": ms(m.median),
                "min_ms": ms(m.min),
                "max_ms": ms(m.max),
                "ratio": (m.ratio * 10000.0).round() / 10000.0,
                "peak_rss_kib": m.peak_rss.map(|p| p.kib),
                "peak_rss_floor_kib": m.peak_rss.map(|p| p.floor_kib),
                "samples_ms": m.samples.iter().copied().map(ms).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&millis(&[5, 1, 3])), Duration::from_millis(3));
        assert_eq!(median(&millis(&[4, 1, 3, 2])), Duration::from_micros(2500));
    }

    #[test]
    fn compare_runs_commands_and_fails_on_nonzero_exit() {
        let ok = [Bench::new("true", ["true"]), Bench::new("again", ["true"])];
        let results = compare(&ok, 3, None).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].samples.len(), 3);
        assert_eq!(results[0].ratio, 1.0);
        assert!(render(&results, 3).contains("commands run:\n  true\n  true\n"));

        let err = compare(&[Bench::new("false", ["false"])], 1, None).unwrap_err();
        assert!(err.to_string().contains("`false` failed"), "{err}");
    }

    #[test]
    fn the_reset_runs_before_every_run() {
        // `rm` fails without the file, which only the reset makes.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("made-by-reset");
        let bench = Bench::new("rm", [OsString::from("rm"), marker.clone().into()])
            .with_reset([OsString::from("touch"), marker.into()]);
        let results = compare(&[bench], 3, None).unwrap();
        assert_eq!(results[0].samples.len(), 3);
        assert_eq!(results[0].peak_rss, None);
    }

    #[test]
    fn peak_rss_reads_and_renders() {
        let p = PeakRss::parse("2048 1300\n").unwrap();
        assert_eq!(
            p,
            PeakRss {
                kib: 2048,
                floor_kib: 1300
            }
        );
        assert_eq!(p.render(), "2.0 MiB");
        let at_floor = PeakRss::parse("1100 1300").unwrap();
        assert_eq!(at_floor.render(), "≤ 1.3 MiB");
        assert_eq!(PeakRss::parse("1 2 3"), None);
        assert_eq!(PeakRss::parse("x 2"), None);
    }

    #[test]
    fn command_line_quotes_arguments_with_spaces() {
        let bench = Bench::new("x", ["echo", "a b", "c"]);
        assert_eq!(bench.command_line(), "echo 'a b' c");
    }
}
