//! The events log: one JSON line per state change, for `berth events`.
//!
//! docker's daemon keeps events in memory and streams them; a daemonless
//! engine has no memory between commands, so every command that changes a
//! container appends a line to `ROOT/events.log` (podman's `file` events
//! backend works the same way). The line is docker's event message:
//! `{"status":"start","id":…,"from":IMAGE,"Type":"container","Action":"start",
//! "Actor":{"ID":…,"Attributes":{"image":…,"name":…}},"scope":"local",
//! "time":…,"timeNano":…}`.
//!
//! Each event is one write(2) to a file opened with O_APPEND: the kernel
//! moves to the end and writes in one step, so lines from processes
//! writing at once never interleave (for writes of this size, on local
//! filesystems). A failed append is reported on stderr and otherwise
//! ignored: losing an event must never fail a `stop`.
//!
//! Man pages: open(2) ("O_APPEND"), write(2).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// `Actor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as docker's `events --format '{{json .}}'` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub status: String,
    pub id: String,
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// A container event: `action` (`create`, `start`, `die`...) of
    /// container `id` named `name`, made from `image`, with `extra`
    /// attributes (`exitCode`, `signal`...).
    pub fn container(
        action: &str,
        id: &str,
        name: &str,
        image: &str,
        extra: &[(&str, String)],
    ) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut attributes = BTreeMap::from([
            ("image".to_string(), image.to_string()),
            ("name".to_string(), name.to_string()),
        ]);
        for (key, value) in extra {
            attributes.insert(key.to_string(), value.clone());
        }
        Event {
            status: action.to_string(),
            id: id.to_string(),
            from: image.to_string(),
            kind: "container".to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".to_string(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
        }
    }
}

/// Append `event` to the log at `path`.
pub fn append(path: &Path, event: &Event) {
    let mut line = serde_json::to_vec(event).expect("an event serializes");
    line.push(b'\n');
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(&line));
    if let Err(err) = result {
        eprintln!("berth: warning: events log {}: {err}", path.display());
    }
}

/// Every event in the log at `path`, oldest first (lines that do not
/// parse are skipped: a torn last line after a crash).
pub fn read_all(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_as_dockers_json_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("events.log");
        append(
            &log,
            &Event::container("die", "abc", "web", "busybox", &[("exitCode", "3".into())]),
        );
        append(
            &log,
            &Event::container("destroy", "abc", "web", "busybox", &[]),
        );
        let events = read_all(&log);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].action, "die");
        assert_eq!(events[0].actor.attributes["exitCode"], "3");
        let line = std::fs::read_to_string(&log).unwrap();
        assert!(line.starts_with(r#"{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"3","image":"busybox","name":"web"}},"scope":"local","time":"#), "{line}");
    }
}
