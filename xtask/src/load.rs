//! Requests per second under many concurrent clients: oha against each
//! server in turn, interleaved, the median of several rounds.
//!
//! oha keeps [`CONNECTIONS`] keep-alive connections busy for a fixed time
//! and reports, as JSON, how many answers of each status came back, the
//! errors, and latency percentiles. Any error or status other than 2xx
//! fails the measurement: a server answering 404 very fast is not fast.
//! (wrk, the older tool, cannot measure HEAD: its parser waits for the body
//! that the answer's Content-Length announces and a HEAD answer never has.)
//!
//! As in [`crate::bench`], the servers take turns (A B A B ...) so that a
//! slow patch of the machine hits both, and only ratios from one run count.
//! Client and servers share this machine's cores: the figures are for
//! comparing the servers, not for a capacity plan.
//!
//! Needs oha: `cargo install oha` (a Rust HTTP load generator on hyper).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// Concurrent clients (keep-alive connections).
pub const CONNECTIONS: u32 = 32;
/// Seconds per measured run.
pub const SECONDS: u32 = 5;
/// Uncounted rounds before measuring (each [`WARMUP_SECONDS`] long).
pub const WARMUP_ROUNDS: usize = 1;
const WARMUP_SECONDS: u32 = 2;

/// One server to load.
pub struct Target {
    pub label: String,
    /// `http://127.0.0.1:PORT/v2/...`.
    pub url: String,
}

/// One request, sent over and over to every target.
pub struct LoadTest {
    pub title: String,
    pub method: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// The first is the baseline the ratios are relative to.
    pub targets: Vec<Target>,
}

/// What oha reported for one run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    /// Answered requests (all 2xx); those cut off at the deadline are not
    /// counted.
    requests: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// The runs against one target.
#[derive(Debug)]
pub struct LoadResult {
    pub label: String,
    pub url: String,
    /// Requests per second of every counted run, in order.
    pub samples: Vec<f64>,
    pub median_rps: f64,
    pub min_rps: f64,
    pub max_rps: f64,
    /// Medians over the runs of each run's 50th and 99th latency percentile.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// `median_rps / the baseline's median_rps`: above 1 is faster.
    pub ratio: f64,
}

/// Reads oha's JSON; fails on errors or answers other than 2xx.
fn parse_report(json: &str) -> Result<Run> {
    let report: serde_json::Value =
        serde_json::from_str(json).context("oha's output is not JSON")?;
    let mut requests = 0;
    for (status, count) in report["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution in oha's report")?
    {
        let count = count.as_u64().unwrap_or(0);
        ensure!(
            status.starts_with('2'),
            "{count} answers with status {status}"
        );
        requests += count;
    }
    // oha counts the requests in flight when the time is up as errors
    // "aborted due to deadline"; they are simply not counted here.
    for (error, count) in report["errorDistribution"]
        .as_object()
        .into_iter()
        .flatten()
    {
        ensure!(
            error == "aborted due to deadline",
            "{} requests failed: {error}",
            count.as_u64().unwrap_or(0)
        );
    }
    ensure!(requests > 0, "no request was answered");
    let seconds = report["summary"]["total"]
        .as_f64()
        .context("no summary.total in oha's report")?;
    let percentile = |p: &str| -> Result<u64> {
        let s = report["latencyPercentiles"][p]
            .as_f64()
            .with_context(|| format!("no latencyPercentiles.{p} in oha's report"))?;
        Ok((s * 1e6).round() as u64)
    };
    Ok(Run {
        requests,
        seconds,
        p50_us: percentile("p50")?,
        p99_us: percentile("p99")?,
    })
}

/// One oha run of `seconds` against `url`.
fn run_oha(test: &LoadTest, url: &str, seconds: u32) -> Result<Run> {
    let mut command = Command::new("oha");
    command
        .args(["--no-tui", "--output-format", "json", "-m", test.method])
        .arg("-c")
        .arg(CONNECTIONS.to_string())
        .arg("-z")
        .arg(format!("{seconds}s"));
    for (name, value) in &test.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command
        .arg(url)
        .output()
        .context("cannot run oha: cargo install oha")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "oha {url} failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_report(&stdout).with_context(|| format!("oha against {url}"))
}

/// One request by hand before the load, so that a wrong URL or header is
/// reported as the server's answer, not as a count of bad statuses.
pub fn check_ok(test: &LoadTest, target: &Target) -> Result<()> {
    let rest = target
        .url
        .strip_prefix("http://")
        .with_context(|| format!("{} is not an http:// URL", target.url))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut request = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        test.method
    );
    for (name, value) in &test.headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(host).with_context(|| format!("connect to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("read the answer of {host}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    ensure!(
        status.starts_with("HTTP/1.1 200"),
        "{} {} answered {status:?}, not 200:\n{answer}",
        test.method,
        target.url
    );
    Ok(())
}

/// Loads every target `rounds` times, interleaved, after a warm-up round.
pub fn compare(test: &LoadTest, rounds: usize) -> Result<Vec<LoadResult>> {
    ensure!(
        !test.targets.is_empty() && rounds > 0,
        "nothing to load: give a target and a round"
    );
    for target in &test.targets {
        check_ok(test, target)?;
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::with_capacity(rounds); test.targets.len()];
    for round in 0..WARMUP_ROUNDS + rounds {
        let seconds = if round < WARMUP_ROUNDS {
            WARMUP_SECONDS
        } else {
            SECONDS
        };
        for (target, runs) in test.targets.iter().zip(&mut runs) {
            let run = run_oha(test, &target.url, seconds)
                .with_context(|| format!("{}: {}", test.title, target.label))?;
            if round >= WARMUP_ROUNDS {
                runs.push(run);
            }
        }
    }
    let baseline = median(runs[0].iter().map(Run::rps).collect());
    Ok(test
        .targets
        .iter()
        .zip(runs)
        .map(|(target, runs)| {
            let samples: Vec<f64> = runs.iter().map(Run::rps).collect();
            let median_rps = median(samples.clone());
            LoadResult {
                label: target.label.clone(),
                url: target.url.clone(),
                min_rps: samples.iter().copied().fold(f64::INFINITY, f64::min),
                max_rps: samples.iter().copied().fold(0.0, f64::max),
                p50_ms: median(runs.iter().map(|r| r.p50_us as f64 / 1000.0).collect()),
                p99_ms: median(runs.iter().map(|r| r.p99_us as f64 / 1000.0).collect()),
                ratio: median_rps / baseline,
                median_rps,
                samples,
            }
        })
        .collect())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// The results as a table, then how they were measured.
pub fn render(test: &LoadTest, results: &[LoadResult], rounds: usize) -> String {
    let width = results
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .max("server".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>6}  {:>8}  {:>8}",
        "server", "median r/s", "min r/s", "max r/s", "ratio", "p50 ms", "p99 ms"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<width$}  {:>10.0}  {:>10.0}  {:>10.0}  {:>5.2}×  {:>8.3}  {:>8.3}",
            r.label, r.median_rps, r.min_rps, r.max_rps, r.ratio, r.p50_ms, r.p99_ms
        );
    }
    let _ = writeln!(
        out,
        "({rounds} runs of {SECONDS} s each, interleaved, after {WARMUP_ROUNDS} warm-up run of {WARMUP_SECONDS} s; \
         oha -c {CONNECTIONS}; ratio = median r/s / median r/s of {})",
        results.first().map_or("", |r| r.label.as_str())
    );
    let _ = writeln!(out, "requests: {}", test.method);
    for (name, value) in &test.headers {
        let _ = writeln!(out, "  {name}: {value}");
    }
    for r in results {
        let _ = writeln!(out, "  {}", r.url);
    }
    out
}

/// The results as JSON values.
pub fn to_json(test: &LoadTest, results: &[LoadResult]) -> serde_json::Value {
    let round = |x: f64, places: i32| {
        let scale = 10f64.powi(places);
        (x * scale).round() / scale
    };
    serde_json::json!({
        "title": test.title,
        "method": test.method,
        "headers": test.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>(),
        "tool": "oha",
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "results": results.iter().map(|r| serde_json::json!({
            "label": r.label,
            "url": r.url,
            "median_rps": round(r.median_rps, 1),
            "min_rps": round(r.min_rps, 1),
            "max_rps": round(r.max_rps, 1),
            "p50_ms": round(r.p50_ms, 3),
            "p99_ms": round(r.p99_ms, 3),
            "ratio": round(r.ratio, 4),
            "samples_rps": r.samples.iter().map(|&s| round(s, 1)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oha_reports_are_read_and_errors_fail() {
        let report = serde_json::json!({
            "summary": {"total": 2.0, "requestsPerSec": 505.0},
            "latencyPercentiles": {"p50": 0.0009, "p99": 0.004},
            "statusCodeDistribution": {"200": 1000},
            "errorDistribution": {"aborted due to deadline": 10},
        });
        let run = parse_report(&report.to_string()).unwrap();
        assert_eq!(run.rps(), 500.0);
        assert_eq!((run.p50_us, run.p99_us), (900, 4000));

        let mut bad = report.clone();
        bad["statusCodeDistribution"]["404"] = 3.into();
        let err = parse_report(&bad.to_string()).unwrap_err().to_string();
        assert!(err.contains("3 answers with status 404"), "{err}");
        let mut refused = report.clone();
        refused["errorDistribution"]["connection refused"] = 7.into();
        let err = parse_report(&refused.to_string()).unwrap_err().to_string();
        assert!(
            err.contains("7 requests failed: connection refused"),
            "{err}"
        );
        assert!(parse_report("not json").is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
