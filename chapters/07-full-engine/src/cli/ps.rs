//! `ps`: the containers, as docker's table shows them.
//!
//! ```text
//! CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS                     PORTS     NAMES
//! 1c4d0d6f2a0e   busybox   "sh -c 'while true; …"   5 seconds ago   Up 4 seconds                         web
//! ```
//!
//! Without `-a`, only containers with a process (running, paused,
//! restarting). `--filter` takes docker's keys (`id`, `name`, `label`,
//! `status`, `exited`, `ancestor`, `before`, `since`, `network`), values of
//! one key or'ed, keys and'ed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use clap::Args;
use gotmpl::Value;

use super::format::{Format, print_items};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::ids::short;
use crate::engine::record::{Container, Status, parse_time};

/// The flags of `ps`.
#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

/// go-units' HumanDuration, docker's words for a duration.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds as i64;
    let minutes = (seconds / 60.0) as i64;
    let hours = (seconds / 3600.0 + 0.5) as i64;
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", (seconds / 3600.0) as i64 / 24 / 365),
    }
}

/// Go's `%.4g` for sizes below 10000: four significant digits, no
/// trailing zeros.
pub fn four_digits(size: f64) -> String {
    let digits = if size >= 1000.0 {
        0
    } else if size >= 100.0 {
        1
    } else if size >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{size:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// go-units' HumanSize: decimal units, four significant digits.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < units.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let text = four_digits(size);
    format!("{text}{}", units[unit])
}

fn since(time: &str, now: SystemTime) -> f64 {
    parse_time(time)
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// docker's STATUS column.
pub fn status_text(c: &Container, now: SystemTime) -> String {
    let s = &c.state;
    match s.status {
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&s.started_at, now))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at, now))
        ),
        Status::Running => format!("Up {}", human_duration(since(&s.started_at, now))),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        _ if parse_time(&s.started_at).is_none() => "Created".into(),
        _ if parse_time(&s.finished_at).is_none() => String::new(),
        _ => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at, now))
        ),
    }
}

/// docker's COMMAND column: path and args, cut to 20 characters, quoted.
pub fn command_text(c: &Container, trunc: bool) -> String {
    let mut command = c.path.clone();
    if !c.args.is_empty() {
        command = format!("{command} {}", c.args.join(" "));
    }
    if trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    format!("{command:?}")
}

/// Go's `time.Time.String()` in UTC.
fn go_time(text: &str) -> String {
    match parse_time(text) {
        Some(time) => {
            let rfc = humantime::format_rfc3339_seconds(time).to_string();
            format!("{} {} +0000 UTC", &rfc[..10], &rfc[11..19])
        }
        None => String::new(),
    }
}

/// The size of a directory tree's files, counted once each (lstat).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if meta.is_file() {
            total += meta.size();
        }
    }
    total
}

/// One container as `ps` templates see it.
pub fn ps_value(engine: &Engine, c: &Container, args: &PsArgs, now: SystemTime) -> Value {
    let trunc = !args.no_trunc;
    let labels = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let size = if args.size {
        let rw = dir_size(&engine.dir(&c.id).0.join("upper"));
        let image: u64 = c.berth.layers.iter().map(|l| dir_size(l)).sum::<u64>();
        format!("{} (virtual {})", human_size(rw), human_size(rw + image))
    } else {
        String::new()
    };
    let mut map = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        map.insert(key.to_string(), Value::String(value.into()));
    };
    put(
        "ID",
        if trunc {
            short(&c.id).to_string()
        } else {
            c.id.clone()
        },
    );
    put("Image", c.config.image.clone());
    put("Command", command_text(c, trunc));
    put("CreatedAt", go_time(&c.created));
    put(
        "RunningFor",
        format!("{} ago", human_duration(since(&c.created, now))),
    );
    put("Ports", super::network::ports_text(c));
    put("State", c.state.status.as_str().to_string());
    put("Status", status_text(c, now));
    put("Size", size);
    put("Names", c.name().to_string());
    put("Labels", labels);
    put("Mounts", String::new());
    put("Networks", super::network::networks_text(c));
    put("LocalVolumes", "0".into());
    Value::from(map)
}

/// The column names docker gives each field.
pub fn headers() -> Value {
    let pairs = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ];
    let map: BTreeMap<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String((*v).into())))
        .collect();
    Value::from(map)
}

/// `--filter KEY=VALUE`s, grouped by key.
fn parse_filters(filters: &[String]) -> Result<BTreeMap<String, Vec<String>>, Failure> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for filter in filters {
        let Some((key, value)) = filter.split_once('=') else {
            return Err(Failure::new(
                format!("bad format of filter (expected name=value): {filter}"),
                1,
            ));
        };
        if !matches!(
            key,
            "id" | "name"
                | "label"
                | "status"
                | "exited"
                | "ancestor"
                | "before"
                | "since"
                | "network"
        ) {
            return Err(Failure::new(format!("invalid filter '{key}'"), 1));
        }
        if key == "status"
            && !matches!(
                value,
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            )
        {
            return Err(Failure::new(format!("invalid filter 'status={value}'"), 1));
        }
        out.entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    Ok(out)
}

fn matches_filters(
    engine: &Engine,
    c: &Container,
    filters: &BTreeMap<String, Vec<String>>,
    all: &[Container],
) -> bool {
    let created_of = |text: &str| -> Option<String> {
        let id = engine.resolve(text).ok()?;
        all.iter().find(|x| x.id == id).map(|x| x.created.clone())
    };
    filters.iter().all(|(key, values)| {
        values.iter().any(|value| match key.as_str() {
            "id" => c.id.starts_with(value.as_str()),
            "name" => c.name().contains(value.as_str()),
            "label" => match value.split_once('=') {
                Some((k, v)) => c.config.labels.get(k).is_some_and(|x| x == v),
                None => c.config.labels.contains_key(value),
            },
            "status" => c.state.status.as_str() == value,
            "exited" => c.state.status == Status::Exited && value.parse() == Ok(c.state.exit_code),
            "ancestor" => {
                c.config.image == *value
                    || c.image
                        .trim_start_matches("sha256:")
                        .starts_with(value.as_str())
            }
            "before" => created_of(value).is_some_and(|t| c.created < t),
            "since" => created_of(value).is_some_and(|t| c.created > t),
            "network" => {
                c.host_config.network_mode == *value
                    || c.network_settings.networks.contains_key(value.as_str())
            }
            _ => false,
        })
    })
}

/// `ps`.
pub fn ps(engine: &Engine, args: &PsArgs) -> Outcome {
    let filters = parse_filters(&args.filter)?;
    let all = engine.containers()?;
    // What a killed engine left on the networks goes, now that each
    // container's record has been checked.
    if let Err(err) = engine.reconcile_networks() {
        eprintln!("berth: warning: reconcile the networks: {err}");
    }
    let limit = if args.latest { 1 } else { args.last };
    let show_all =
        args.all || limit > 0 || filters.contains_key("status") || filters.contains_key("exited");
    let mut shown: Vec<&Container> = all
        .iter()
        .filter(|c| {
            show_all
                || matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                )
        })
        .filter(|c| matches_filters(engine, c, &filters, &all))
        .collect();
    if limit > 0 {
        shown.truncate(limit as usize);
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        use std::io::Write;
        for c in shown {
            let id = if args.no_trunc {
                c.id.as_str()
            } else {
                short(&c.id)
            };
            let _ = writeln!(out, "{id}");
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    let items: Vec<Value> = shown
        .iter()
        .map(|c| ps_value(engine, c, args, now))
        .collect();
    let mut default = String::from(
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
    );
    if args.size {
        default.push_str("\t{{.Size}}");
    }
    print_items(
        &mut out,
        &Format::parse(args.format.as_deref()),
        &default,
        &headers(),
        &items,
    )
    .map_err(|m| Failure::new(m, 1))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_dockers() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(59.0), "59 seconds");
        assert_eq!(human_duration(61.0), "About a minute");
        assert_eq!(human_duration(600.0), "10 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5.0 * 3600.0), "5 hours");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(12_345), "12.35kB");
        assert_eq!(human_size(4_860_000), "4.86MB");
    }

    #[test]
    fn commands_are_quoted_and_cut_as_dockers() {
        let c = Container {
            path: "sh".into(),
            args: vec!["-c".into(), "while true; do sleep 1; done".into()],
            ..Container::default()
        };
        assert_eq!(command_text(&c, true), "\"sh -c while true; d…\"");
        assert_eq!(
            command_text(&c, false),
            "\"sh -c while true; do sleep 1; done\""
        );
    }
}
