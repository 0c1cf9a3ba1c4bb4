//! `logs`: reading what the monitor wrote (`crate::monitor::jsonlog`).
//!
//! Entries come back on the stream they were written to (stdout or
//! stderr), oldest rotated file first. `--since` and `--until` take
//! docker's three forms: an RFC 3339 time, a Unix time in seconds (with a
//! fraction if wanted), or a duration back from now (`10m`, `1h30m`).
//! `--tail N` keeps the last N entries. `-f` goes on reading as the monitor
//! writes, across rotations, until the container stops.
//!
//! Man pages: inotify(7) would wake a follower at once; polling every
//! 100 ms is what docker's json-file reader falls back to, and enough.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::Status;
use super::{Engine, EngineError, Result};
use crate::monitor::jsonlog::{LogEntry, files_oldest_first, read_file};

/// What `logs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// `--tail N`; `None`: all.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

/// Parse `--since`/`--until`.
pub fn parse_time_filter(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    if let Ok(secs) = text.parse::<f64>()
        && secs >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return now
            .checked_sub(ago)
            .ok_or_else(|| format!("invalid value for \"since\": {text}"));
    }
    Err(format!(
        "invalid value for time filter: {text:?}: give an RFC 3339 time, a Unix time, or a duration such as 10m"
    ))
}

fn entry_time(entry: &LogEntry) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(&entry.time).ok()
}

fn keep(entry: &LogEntry, options: &LogOptions) -> bool {
    let Some(time) = entry_time(entry) else {
        return options.since.is_none() && options.until.is_none();
    };
    options.since.is_none_or(|since| time >= since)
        && options.until.is_none_or(|until| time <= until)
}

fn write_entry(
    entry: &LogEntry,
    options: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let target: &mut dyn Write = if entry.stream == "stderr" { err } else { out };
    if options.timestamps {
        write!(target, "{} ", entry.time)?;
    }
    target.write_all(entry.log.as_bytes())?;
    target.flush()
}

/// A reader that picks up where it left off, across rotations.
struct Follower {
    path: PathBuf,
    reader: BufReader<File>,
    inode: u64,
}

impl Follower {
    fn open(path: &Path, at_end: bool) -> Option<Follower> {
        let mut file = File::open(path).ok()?;
        let inode = file.metadata().ok()?.ino();
        if at_end {
            file.seek(SeekFrom::End(0)).ok()?;
        }
        Some(Follower {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            inode,
        })
    }

    /// Whole lines written since the last call.
    fn read_new(&mut self) -> Vec<LogEntry> {
        let mut entries = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if !line.ends_with('\n') => {
                    // A line being written: read it again next time.
                    let back = -(line.len() as i64);
                    let _ = self.reader.seek_relative(back);
                    break;
                }
                Ok(_) => {
                    if let Ok(entry) = serde_json::from_str(&line) {
                        entries.push(entry);
                    }
                }
            }
        }
        // Rotated: what is left of the old file is read; now the new one.
        if let Ok(meta) = std::fs::metadata(&self.path)
            && meta.ino() != self.inode
            && let Some(next) = Follower::open(&self.path, false)
        {
            *self = next;
            entries.extend(self.read_new());
        }
        entries
    }
}

impl Engine {
    /// `logs` of container `id`.
    pub fn logs(
        &self,
        id: &str,
        options: &LogOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let c = self.load_checked(id)?;
        let path = PathBuf::from(&c.log_path);
        let io = |e: std::io::Error| EngineError::msg(format!("write the logs: {e}"));
        // The current file through a reader that then goes on from where it
        // stopped; the rotated files before it.
        let mut current = Follower::open(&path, false);
        let mut files = files_oldest_first(&path);
        files.pop();
        let mut entries: Vec<LogEntry> = files.iter().flat_map(|file| read_file(file)).collect();
        if let Some(current) = current.as_mut() {
            entries.extend(current.read_new());
        }
        entries.retain(|e| keep(e, options));
        if let Some(tail) = options.tail {
            let skip = entries.len().saturating_sub(tail);
            entries.drain(..skip);
        }
        for entry in &entries {
            write_entry(entry, options, out, err).map_err(io)?;
        }
        if !options.follow {
            return Ok(());
        }
        let mut follower = current;
        loop {
            let running = matches!(
                self.load_checked(id).map(|c| c.state.status),
                Ok(Status::Running | Status::Paused | Status::Restarting | Status::Created)
            );
            if follower.is_none() {
                follower = Follower::open(&path, false);
            }
            for entry in follower
                .as_mut()
                .map(Follower::read_new)
                .unwrap_or_default()
            {
                if keep(&entry, options) {
                    write_entry(&entry, options, out, err).map_err(io)?;
                }
            }
            if !running {
                return Ok(());
            }
            if let Some(until) = options.until
                && SystemTime::now() > until
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_take_dockers_three_forms() {
        let now = humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        assert_eq!(
            parse_time_filter("2026-01-01T11:00:00Z", now).unwrap(),
            humantime::parse_rfc3339("2026-01-01T11:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time_filter("10m", now).unwrap(),
            humantime::parse_rfc3339("2026-01-01T11:50:00Z").unwrap()
        );
        assert_eq!(
            parse_time_filter("1767268800", now).unwrap(),
            humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap()
        );
        assert!(parse_time_filter("yesterday", now).is_err());
    }
}
