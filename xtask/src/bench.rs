//! The generic benchmark runner: time commands start-to-exit, interleaved, and compare
//! their medians against the first (baseline) command.
//!
//! Each command runs [`WARMUP_RUNS`] times uncounted, then `runs` times counted, in
//! round-robin order (A B A B ...), so that a slow patch of the machine (another job,
//! a frequency change) hits every command alike instead of only the one running then.
//! Only ratios measured in the same call mean anything; absolute times are for scale.

use std::ffi::OsString;
use std::fmt::Write as _;
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
    /// The largest resident set any run reached (the command and the
    /// children it waited for), in KiB.
    pub peak_rss_kib: u64,
}

/// Runs every command `runs` times, interleaved, and summarises each; the first
/// command is the baseline the ratios are relative to.
pub fn compare(benches: &[Bench], runs: usize) -> Result<Vec<Measurement>> {
    if benches.is_empty() || runs == 0 {
        bail!("nothing to measure: give at least one command and one run");
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); benches.len()];
    let mut peaks = vec![0u64; benches.len()];
    for round in 0..WARMUP_RUNS + runs {
        for ((bench, samples), peak) in benches.iter().zip(&mut samples).zip(&mut peaks) {
            if let Some(reset) = &bench.reset {
                run_untimed(reset)?;
            }
            let (elapsed, rss) = time_once(bench)?;
            if round >= WARMUP_RUNS {
                samples.push(elapsed);
                *peak = (*peak).max(rss);
            }
        }
    }

    let baseline = median(&samples[0]);
    Ok(benches
        .iter()
        .zip(samples)
        .zip(peaks)
        .map(|((bench, samples), peak_rss_kib)| {
            let median = median(&samples);
            Measurement {
                label: bench.label.clone(),
                command_line: bench.command_line(),
                median,
                min: *samples.iter().min().expect("runs > 0"),
                max: *samples.iter().max().expect("runs > 0"),
                ratio: median.as_secs_f64() / baseline.as_secs_f64(),
                peak_rss_kib,
                samples,
            }
        })
        .collect())
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
/// reaped, and its peak resident set in KiB (from wait4's rusage, which
/// covers the children it waited for too). std spawns with vfork, so the
/// figure never goes below this process's own peak at the time: keep it
/// small (a few MiB) before measuring.
fn time_once(bench: &Bench) -> Result<(Duration, u64)> {
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
    let child = command
        .spawn()
        .with_context(|| format!("cannot start `{}`", bench.command_line()))?;
    let (status, rss) = wait4(child.id() as libc::pid_t)
        .with_context(|| format!("wait for `{}`", bench.command_line()))?;
    let elapsed = start.elapsed();

    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "`{}` failed (wait status {status:#x}); its output is discarded while benchmarking, \
             so run it by hand to see why",
            bench.command_line()
        );
    }
    Ok((elapsed, rss))
}

/// wait4(2): reap `pid` and return its wait status and ru_maxrss (KiB).
/// std's Child::wait has no rusage, and nix wraps wait4 without it.
fn wait4(pid: libc::pid_t) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, writable and live for the
        // call; `pid` is our own child, not yet reaped (std never waits on
        // a Child we don't ask it to).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
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
        let _ = writeln!(
            out,
            "{:<width$}  {:>10.3}  {:>10.3}  {:>10.3}  {:>5.2}×  {:>5.1} MiB",
            m.label,
            ms(m.median),
            ms(m.min),
            ms(m.max),
            m.ratio,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        out,
        "({runs} runs each, interleaved, after {WARMUP_RUNS} warm-up runs each; ratio = median / median of {})",
        results.first().map_or("", |m| m.label.as_str())
    );
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
                "peak_rss_kib": m.peak_rss_kib,
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
        let results = compare(&ok, 3).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].samples.len(), 3);
        assert_eq!(results[0].ratio, 1.0);
        assert!(render(&results, 3).contains("commands run:\n  true\n  true\n"));

        let err = compare(&[Bench::new("false", ["false"])], 1).unwrap_err();
        assert!(err.to_string().contains("`false` failed"), "{err}");
    }

    #[test]
    fn the_reset_runs_before_every_run_and_rss_is_measured() {
        // `rm` fails without the file, which only the reset makes.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("made-by-reset");
        let bench = Bench::new("rm", [OsString::from("rm"), marker.clone().into()])
            .with_reset([OsString::from("touch"), marker.into()]);
        let results = compare(&[bench], 3).unwrap();
        assert_eq!(results[0].samples.len(), 3);
        assert!(results[0].peak_rss_kib > 0, "rm has a resident set");
    }

    #[test]
    fn command_line_quotes_arguments_with_spaces() {
        let bench = Bench::new("x", ["echo", "a b", "c"]);
        assert_eq!(bench.command_line(), "echo 'a b' c");
    }
}
