//! docker's `json-file` logs: one JSON object per line of output.
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-12-05T15:00:00.123456789Z"}
//! ```
//!
//! The container writes bytes, not lines: the monitor keeps what came
//! after the last newline of each stream and writes it once the line is
//! complete. A line longer than 16 KiB is written in pieces (docker's
//! buffer size; a piece without a final `\n` is a partial line), and what
//! is left when the stream ends is written as it is.
//!
//! Rotation (`--log-opt max-size=10m --log-opt max-file=3`): before a
//! write would take the file past `max-size`, `ID-json.log.1` becomes
//! `.2` and so on (the oldest beyond `max-file` is deleted), the file
//! becomes `.1`, and a new one is started. With `max-file=1` the file is
//! simply started again. `logs` reads the rotated files oldest first.
//!
//! Man pages: rename(2); docker's `json-file` logging driver documentation.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// docker's line buffer: a longer line is split.
pub const MAX_LINE: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// The rotated file `n` (1 is the newest) of the log at `path`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every file of the log at `path`, oldest first.
pub fn files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    files
}

/// Read every entry of one log file (a torn last line is skipped).
pub fn read_file(path: &Path) -> Vec<LogEntry> {
    let Ok(file) = File::open(path) else {
        return vec![];
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

/// The writer, with each stream's unfinished line.
pub struct JsonLogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
    pending: [Vec<u8>; 2],
}

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl JsonLogWriter {
    /// Open (append to) the log at `path`.
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<JsonLogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Bytes the container wrote on `stream`: complete lines are logged.
    pub fn push(&mut self, stream: Stream, data: &[u8], time: &str) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending[stream as usize]);
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(newline) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + newline + 1;
            self.write_pieces(stream, &pending[start..end], time)?;
            start = end;
        }
        let rest = pending.split_off(start);
        if rest.len() >= MAX_LINE {
            self.write_pieces(stream, &rest, time)?;
        } else {
            self.pending[stream as usize] = rest;
        }
        Ok(())
    }

    /// The stream ended: what is left of its line is logged as it is.
    pub fn finish(&mut self, stream: Stream, time: &str) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending[stream as usize]);
        if !rest.is_empty() {
            self.write_pieces(stream, &rest, time)?;
        }
        Ok(())
    }

    fn write_pieces(&mut self, stream: Stream, line: &[u8], time: &str) -> io::Result<()> {
        for piece in line.chunks(MAX_LINE) {
            let entry = LogEntry {
                log: String::from_utf8_lossy(piece).into_owned(),
                stream: stream.name().to_string(),
                time: time.to_string(),
            };
            let mut bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
            bytes.push(b'\n');
            if let Some(max) = self.max_size
                && self.size > 0
                && self.size + bytes.len() as u64 > max
            {
                self.rotate()?;
            }
            self.file.write_all(&bytes)?;
            self.size += bytes.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files > 1 {
            let _ = std::fs::remove_file(rotated(&self.path, self.max_files - 1));
            for n in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logged_whole_and_long_ones_in_pieces() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c-json.log");
        let mut w = JsonLogWriter::open(&path, None, 1).unwrap();
        w.push(Stream::Stdout, b"hel", "T1").unwrap();
        w.push(Stream::Stderr, b"oops\n", "T2").unwrap();
        w.push(Stream::Stdout, b"lo\nwor", "T3").unwrap();
        w.push(Stream::Stdout, &vec![b'x'; MAX_LINE + 10], "T4")
            .unwrap();
        w.finish(Stream::Stdout, "T5").unwrap();
        let entries = read_file(&path);
        let logs: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(logs[0], ("stderr", "oops\n"));
        assert_eq!(logs[1], ("stdout", "hello\n"));
        assert_eq!(entries[1].time, "T3");
        assert_eq!(logs[2].1.len(), MAX_LINE);
        assert!(logs[2].1.starts_with("worxx"));
        assert_eq!(logs[3].1.len(), 13);
        assert_eq!(logs.len(), 4);
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            first.starts_with("{\"log\":\"oops\\n\",\"stream\":\"stderr\",\"time\":\"T2\"}\n"),
            "{first}"
        );
    }

    #[test]
    fn files_rotate_at_max_size_keeping_max_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c-json.log");
        let mut w = JsonLogWriter::open(&path, Some(200), 3).unwrap();
        for i in 0..20 {
            w.push(Stream::Stdout, format!("line {i:02}\n").as_bytes(), "T")
                .unwrap();
        }
        let files = files_oldest_first(&path);
        assert_eq!(files, [rotated(&path, 2), rotated(&path, 1), path.clone()]);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 200);
        }
        let all: Vec<String> = files
            .iter()
            .flat_map(|f| read_file(f))
            .map(|e| e.log)
            .collect();
        // The newest lines, in order, none lost between the kept files.
        assert_eq!(all.last().unwrap(), "line 19\n");
        let first: usize = all[0][5..7].parse().unwrap();
        let expected: Vec<String> = (first..20).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(all, expected);
        assert!(!rotated(&path, 3).exists());

        // max-file=1: the file starts again.
        let one = tmp.path().join("one-json.log");
        let mut w = JsonLogWriter::open(&one, Some(100), 1).unwrap();
        for i in 0..10 {
            w.push(Stream::Stdout, format!("line {i}\n").as_bytes(), "T")
                .unwrap();
        }
        assert_eq!(files_oldest_first(&one), std::slice::from_ref(&one));
        assert!(std::fs::metadata(&one).unwrap().len() <= 100);
    }
}
