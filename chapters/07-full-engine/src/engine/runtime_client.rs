//! Speaking to an OCI runtime: runc's command line, as engines speak it.
//!
//! The engine never runs a container itself: it writes a bundle and asks
//! a runtime, through the command line runc defined and crun and
//! berth-runtime copy: `create --bundle B --pid-file P [--console-socket S]
//! ID`, `start ID`, `state ID`, `kill ID SIGNAL`, `pause`, `resume`, `ps
//! --format json ID`, `exec --process FILE ID`, `delete [--force] ID`. Each
//! runtime gets its own `--root` (its state directories) under the run root.
//! That the engine speaks only this is what lets `--runtime` swap runc,
//! crun and berth-runtime.
//!
//! Errors: runc prints one logrus line on stderr (`time="…" level=error
//! msg="container does not exist"`), crun a plain line. [`error_message`]
//! takes the message out of either.
//!
//! Man pages: runc(8), runc-create(8), runc-state(8), runc-kill(8),
//! runc-delete(8); crun(1).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The runtime used when none is asked for.
pub const DEFAULT_RUNTIME: &str = "berth-runtime";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime {0}: not found: install it, or give --runtime runc|crun|PATH")]
    NotFound(String),
    #[error("{runtime} {command}: {message}")]
    Failed {
        runtime: String,
        command: String,
        message: String,
    },
    #[error("{runtime} {command}: {cause}")]
    Spawn {
        runtime: String,
        command: String,
        cause: std::io::Error,
    },
    #[error("{runtime} state: not JSON: {cause}")]
    BadState {
        runtime: String,
        cause: serde_json::Error,
    },
}

/// A runtime program and its state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCli {
    /// The program.
    pub path: PathBuf,
    /// Its `--root`.
    pub root: PathBuf,
}

/// What `state` says (the runtime-spec's state, runc's extra fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuntimeState {
    pub id: String,
    pub pid: i32,
    /// `created`, `running`, `paused`, `stopped` (runc adds `creating`).
    pub status: String,
}

/// Find runtime `name`: a path, or a program on `PATH`, or beside our own
/// binary (where cargo puts berth-runtime beside berth).
pub fn find_runtime(name: &str) -> Result<PathBuf, RuntimeError> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return if path.is_file() {
            Ok(std::fs::canonicalize(&path).unwrap_or(path))
        } else {
            Err(RuntimeError::NotFound(name.to_string()))
        };
    }
    let beside_us = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside_us
        .into_iter()
        .chain(on_path)
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| RuntimeError::NotFound(name.to_string()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The runtime's short name (`runc`), for messages and its state root.
pub fn runtime_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl RuntimeCli {
    fn name(&self) -> String {
        runtime_name(&self.path)
    }

    /// `RUNTIME --root ROOT ARGS...`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// The runtime's error log option: runc and berth-runtime take
    /// `--log PATH --log-format json`, crun `--log=file:PATH`.
    pub fn log_args(&self, log: &Path) -> Vec<String> {
        if self.name() == "crun" {
            vec![
                format!("--log=file:{}", log.display()),
                "--log-format=json".into(),
            ]
        } else {
            vec![
                "--log".into(),
                log.display().to_string(),
                "--log-format".into(),
                "json".into(),
            ]
        }
    }

    /// `create`: the command (its standard streams become the
    /// container's, so the monitor sets them before it spawns it).
    pub fn create_command(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        log: &Path,
    ) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.root).args(self.log_args(log));
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(socket) = console_socket {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id);
        cmd
    }

    /// Run `args` to completion; its stdout, or its error message.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let what = args.first().copied().unwrap_or_default().to_string();
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|cause| RuntimeError::Spawn {
                runtime: self.name(),
                command: what.clone(),
                cause,
            })?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(RuntimeError::Failed {
                runtime: self.name(),
                command: what,
                message: error_message(&String::from_utf8_lossy(&output.stderr)),
            })
        }
    }

    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["start", id]).map(drop)
    }

    pub fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        self.run(&["kill", id, &signal.to_string()]).map(drop)
    }

    /// `update -r -`: the running container's new `linux.resources`.
    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<(), RuntimeError> {
        use std::io::Write;
        let spawned = self
            .command(["update", "-r", "-", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.map_err(|cause| RuntimeError::Spawn {
            runtime: self.name(),
            command: "update".into(),
            cause,
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(resources.to_string().as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|cause| RuntimeError::Spawn {
                runtime: self.name(),
                command: "update".into(),
                cause,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(RuntimeError::Failed {
            runtime: self.name(),
            command: "update".into(),
            message: error_message(&String::from_utf8_lossy(&output.stderr)),
        })
    }

    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["resume", id]).map(drop)
    }

    /// `delete --force`: the container's state, cgroup and processes go.
    /// A container the runtime does not know is already deleted.
    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self.run(&["delete", "--force", id]) {
            Err(RuntimeError::Failed { message, .. }) if does_not_exist(&message) => Ok(()),
            other => other.map(drop),
        }
    }

    /// `state`, or `None` if the runtime knows no such container.
    pub fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        match self.run(&["state", id]) {
            Ok(json) => {
                serde_json::from_slice(&json)
                    .map(Some)
                    .map_err(|cause| RuntimeError::BadState {
                        runtime: self.name(),
                        cause,
                    })
            }
            Err(RuntimeError::Failed { message, .. }) if does_not_exist(&message) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The host pids of the container's processes (`ps --format json`).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        let json = self.run(&["ps", "--format", "json", id])?;
        serde_json::from_slice(&json).map_err(|cause| RuntimeError::BadState {
            runtime: self.name(),
            cause,
        })
    }
}

/// runc's "container does not exist", crun's "No such file or directory"
/// on the state file, berth-runtime's runc wording.
pub fn does_not_exist(message: &str) -> bool {
    message.contains("does not exist") || message.contains("No such file or directory")
}

/// The message in a runtime's error output: the last non-empty line, out
/// of its logrus text (`msg="…"`) or JSON (`"msg":"…"`) wrapping if any.
pub fn error_message(stderr: &str) -> String {
    let Some(line) = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
        return "failed (no message)".to_string();
    };
    if line.starts_with('{')
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
        && let Some(msg) = value.get("msg").and_then(|m| m.as_str())
    {
        return msg.to_string();
    }
    if let Some(start) = line.find("msg=\"") {
        let rest = &line[start + 5..];
        let mut msg = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => msg.extend(chars.next()),
                '"' => break,
                c => msg.push(c),
            }
        }
        return msg;
    }
    line.to_string()
}

/// The last error message a runtime wrote to its JSON log (`--log`), if
/// any: how the monitor learns why `create` failed.
pub fn last_logged_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    // crun writes no newline between entries: split on "}{" too.
    let text = text.replace("}{", "}\n{");
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .find(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_of_runc_and_crun_lines() {
        assert_eq!(
            error_message(
                "time=\"2026-01-01T00:00:00Z\" level=error msg=\"container does not exist\"\n"
            ),
            "container does not exist"
        );
        assert_eq!(
            error_message("time=\"x\" level=error msg=\"exec: \\\"nosuch\\\": not found\"\n"),
            "exec: \"nosuch\": not found"
        );
        assert_eq!(
            error_message("warning\nerror opening file `/r/x/status`: No such file or directory\n"),
            "error opening file `/r/x/status`: No such file or directory"
        );
        assert_eq!(
            error_message("{\"level\":\"error\",\"msg\":\"boom\"}"),
            "boom"
        );
        assert!(does_not_exist("container does not exist"));
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}{\"msg\":\"first\",\"level\":\"error\"}\n{\"level\":\"error\",\"msg\":\"last\"}\n",
        )
        .unwrap();
        assert_eq!(last_logged_error(&log).as_deref(), Some("last"));
        assert_eq!(last_logged_error(&tmp.path().join("none")), None);
    }

    #[test]
    fn runtimes_are_found_by_path_or_name() {
        assert!(matches!(
            find_runtime("/nonexistent/runc"),
            Err(RuntimeError::NotFound(_))
        ));
        let sh = find_runtime("sh").unwrap();
        assert!(sh.is_absolute() && runtime_name(&sh) == "sh");
        let err = find_runtime("no-such-runtime-berth").unwrap_err();
        assert_eq!(
            err.to_string(),
            "runtime no-such-runtime-berth: not found: install it, or give --runtime runc|crun|PATH"
        );
    }
}
