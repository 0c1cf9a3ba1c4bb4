//! runc's log lines: engines read them.
//!
//! A runtime is run by another program, which must tell its user why a
//! container did not start. runc writes its errors through logrus, and the
//! engines parse what it writes:
//!
//! - containerd runs `runc --log BUNDLE/log.json --log-format json` and, on
//!   failure, reads the file as a stream of JSON objects
//!   (`{"level":"error","msg":"...","time":"RFC 3339"}`) and reports the
//!   last `error` one; `time` must parse as RFC 3339.
//! - podman (through conmon) passes `--log-format=json --log FILE` to the
//!   runtimes it knows speak JSON, and on failure parses the *whole file*
//!   as one object: a run that fails must write its error as the only line.
//!   So nothing below `error` is written unless `--debug` asks for it, and
//!   warnings go to the file only with `--debug` too, but always to stderr.
//! - Without `--log`, lines go to stderr: `time="..." level=error msg="..."`
//!   (logrus's text format), or `ERRO[0000] message` on a terminal.
//!
//! When the log goes to a file, the error is also printed to stderr as a
//! plain line, as runc does: whoever ran the command sees it.
//!
//! Man page: runc(8) (`--log`, `--log-format`, `--debug`).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// logrus's levels, those we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
    /// On a terminal logrus shows four letters.
    fn short(self) -> &'static str {
        match self {
            Level::Debug => "DEBU",
            Level::Warning => "WARN",
            Level::Error => "ERRO",
        }
    }
}

/// Where lines go and how they look.
#[derive(Debug)]
pub struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    debug: bool,
    /// stderr is a terminal (and no `--log`): `ERRO[0000] message`.
    terminal: bool,
    color: bool,
    started: Instant,
}

impl Logger {
    /// A logger writing to `path` (appended to, created 0644 as runc does)
    /// or to stderr.
    pub fn new(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<Logger> {
        let file = match path {
            // runc treats --log /dev/stderr as stderr: so do we.
            Some(p) if p != Path::new("/dev/stderr") => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o644)
                    .open(p)?,
            )),
            _ => None,
        };
        let terminal =
            file.is_none() && format == LogFormat::Text && std::io::stderr().is_terminal();
        Ok(Logger {
            file,
            format,
            debug,
            terminal,
            color: std::env::var_os("NO_COLOR").is_none(),
            started: Instant::now(),
        })
    }

    /// A logger to stderr in text format (before the flags are parsed).
    pub fn stderr() -> Logger {
        Logger {
            file: None,
            format: LogFormat::Text,
            debug: false,
            terminal: false,
            color: false,
            started: Instant::now(),
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.log(Level::Debug, msg);
        }
    }

    /// A warning: always on stderr; in a log file only with `--debug`
    /// (podman reads a failed run's log file as one JSON object).
    pub fn warn(&self, msg: &str) {
        if self.file.is_none() || self.debug {
            self.log(Level::Warning, msg);
        }
        if self.file.is_some() {
            eprintln!("warning: {msg}");
        }
    }

    /// The error that ends the command: logged, and printed plainly on
    /// stderr when the log goes to a file.
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg);
        if self.file.is_some() {
            eprintln!("{msg}");
        }
    }

    fn log(&self, level: Level, msg: &str) {
        let line = if self.terminal {
            let secs = self.started.elapsed().as_secs();
            let tag = level.short();
            if self.color {
                let code = if level == Level::Error {
                    31
                } else if level == Level::Warning {
                    33
                } else {
                    37
                };
                format!("\x1b[{code}m{tag}\x1b[0m[{secs:04}] {msg}\n")
            } else {
                format!("{tag}[{secs:04}] {msg}\n")
            }
        } else {
            format_line(self.format, level, msg, SystemTime::now())
        };
        match &self.file {
            Some(file) => {
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

/// One line in logrus's text or JSON format, newline included.
// ANCHOR: format_line
pub fn format_line(format: LogFormat, level: Level, msg: &str, time: SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(time).to_string();
    match format {
        // Keys in logrus's (alphabetical) order.
        LogFormat::Json => {
            let line = serde_json::json!({"level": level.name(), "msg": msg, "time": time});
            format!("{line}\n")
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}\n",
            quote(&time),
            level.name(),
            quote(msg)
        ),
    }
}
// ANCHOR_END: format_line

/// Go's `%q`, which logrus's text format uses: a double-quoted string with
/// `"`, `\` and control characters escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_940_250)
    }

    #[test]
    fn lines_look_like_logrus_lines() {
        assert_eq!(
            format_line(
                LogFormat::Text,
                Level::Error,
                "container does not exist",
                at()
            ),
            "time=\"2025-12-05T13:10:50Z\" level=error msg=\"container does not exist\"\n"
        );
        assert_eq!(
            format_line(
                LogFormat::Json,
                Level::Error,
                "container does not exist",
                at()
            ),
            "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2025-12-05T13:10:50Z\"}\n"
        );
        assert_eq!(
            format_line(LogFormat::Text, Level::Warning, "a \"b\"\n\\c", at()),
            "time=\"2025-12-05T13:10:50Z\" level=warning msg=\"a \\\"b\\\"\\n\\\\c\"\n"
        );
    }

    #[test]
    fn a_log_file_holds_one_json_object_per_line_and_only_the_error_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let logger = Logger::new(Some(&path), LogFormat::Json, false).unwrap();
        logger.debug("not shown");
        logger.warn("a warning");
        logger.error("it failed: \"x\"");
        let text = std::fs::read_to_string(&path).unwrap();
        // podman parses the whole file as one object: it must be exactly one.
        let one: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(one["level"], "error");
        assert_eq!(one["msg"], "it failed: \"x\"");
        assert!(humantime::parse_rfc3339(one["time"].as_str().unwrap()).is_ok());

        // With --debug, every line, each a JSON object (containerd's reader).
        let logger = Logger::new(Some(&path), LogFormat::Json, true).unwrap();
        logger.debug("step");
        logger.warn("careful");
        let text = std::fs::read_to_string(&path).unwrap();
        let levels: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["level"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(levels, ["error", "debug", "warning"]);
    }
}
