//! `events`: the engine's events log ([`crate::engine::events`]) as docker
//! prints its event stream: past events with `--since`, then new ones as
//! they are appended (the file is polled: a daemonless engine has no one
//! to push them), until `--until` or ctrl-c.

use std::io::{BufRead, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::format::{Format, render, template};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::events::Event;

/// The flags of `events`.
#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

/// A time as docker's flags take it: RFC 3339, Unix seconds (with a
/// fraction), or a duration back from now (`10m`).
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(seconds));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now.checked_sub(ago).unwrap_or(UNIX_EPOCH));
    }
    Err(format!(
        "invalid value for timestamp {text:?}: use RFC 3339 (2024-01-02T15:04:05Z), Unix seconds, or a duration such as 10m"
    ))
}

/// `KEY=VALUE` filters: values of one key are alternatives, keys must all
/// match (docker's rule).
fn matches(event: &Event, filters: &[(String, String)]) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    keys.iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, value)| match *key {
                "container" => {
                    event.id.starts_with(value.as_str())
                        || event.actor.attributes.get("name") == Some(value)
                }
                "event" => &event.action == value,
                "image" => event.actor.attributes.get("image") == Some(value),
                "type" => &event.kind == value,
                "label" => match value.split_once('=') {
                    Some((k, v)) => event.actor.attributes.get(k).is_some_and(|have| have == v),
                    None => event.actor.attributes.contains_key(value),
                },
                _ => false,
            })
    })
}

/// docker's line: `TIME TYPE ACTION ID (key=value, ...)`.
pub fn line(event: &Event) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(event.time_nano.max(0) as u64);
    let attributes: Vec<String> = event
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{} {} {} {} ({})",
        humantime::format_rfc3339_nanos(time),
        event.kind,
        event.action,
        event.id,
        attributes.join(", ")
    )
}

/// `events`.
pub fn events(engine: &Engine, args: &EventsArgs) -> Outcome {
    let now = SystemTime::now();
    let bad = |m: String| Failure::new(m, 1);
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()
        .map_err(bad)?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()
        .map_err(bad)?;
    let mut filters = Vec::new();
    for filter in &args.filters {
        let (key, value) = filter.split_once('=').ok_or_else(|| {
            bad(format!(
                "bad format of filter (expected name=value): {filter}"
            ))
        })?;
        if !matches!(key, "container" | "event" | "image" | "type" | "label") {
            return Err(bad(format!("invalid filter '{key}'")));
        }
        filters.push((key.to_string(), value.to_string()));
    }
    let format = Format::parse(args.format.as_deref());
    let tmpl = match &format {
        Format::Raw(text) | Format::Table(text) => Some(template(text).map_err(bad)?),
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let mut print = |event: &Event| -> std::io::Result<()> {
        let nanos =
            |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64;
        if since.is_some_and(|s| event.time_nano < nanos(s))
            || until.is_some_and(|u| event.time_nano > nanos(u))
            || !matches(event, &filters)
        {
            return Ok(());
        }
        let text = match (&format, &tmpl) {
            (Format::Json, _) => serde_json::to_string(event).unwrap_or_default(),
            (_, Some(tmpl)) => {
                let value = gotmpl::ser::to_value(event).map_err(std::io::Error::other)?;
                render(tmpl, &value).map_err(std::io::Error::other)?
            }
            _ => line(event),
        };
        writeln!(out, "{text}")?;
        out.flush()
    };
    let path = engine.roots().events();
    let mut offset = 0;
    // Past events only with --since; without, the stream starts now.
    if since.is_none() {
        offset = std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            let _ = file.seek(SeekFrom::Start(offset));
            let mut reader = std::io::BufReader::new(file);
            let mut text = String::new();
            // Whole lines only: a line being appended is read next time.
            while reader
                .read_line(&mut text)
                .map_err(|e| bad(e.to_string()))?
                > 0
            {
                if !text.ends_with('\n') {
                    break;
                }
                offset += text.len() as u64;
                if let Ok(event) = serde_json::from_str::<Event>(&text)
                    && print(&event).is_err()
                {
                    // The reader of stdout went away: done.
                    ch01_chroot::sigpipe::die_if_stdout_closed();
                    return Ok(0);
                }
                text.clear();
            }
        }
        if until.is_some_and(|u| SystemTime::now() >= u) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_docker_takes_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("100", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(100)
        );
        assert_eq!(
            parse_time("10m", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_000_000 - 600)
        );
        assert_eq!(
            parse_time("1970-01-01T00:01:40Z", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(100)
        );
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn filters_match_as_dockers() {
        let event = Event::container("start", "abcdef", "web", "busybox", &[]);
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches(&event, &f(&[("container", "web")])));
        assert!(matches(
            &event,
            &f(&[("container", "abc"), ("event", "start")])
        ));
        assert!(matches(&event, &f(&[("event", "die"), ("event", "start")])));
        assert!(!matches(&event, &f(&[("event", "die")])));
        assert!(!matches(&event, &f(&[("image", "alpine")])));
        assert!(line(&event).contains("container start abcdef (image=busybox, name=web)"));
    }
}
