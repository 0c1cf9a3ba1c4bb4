//! `exec`: one more process in a running container.
//!
//! The runtime does the joining (setns(2) into the container's namespaces,
//! its cgroup, its capabilities and seccomp filter): the engine writes the
//! process as the runtime spec describes it, starting from the container's
//! own (in its bundle's config.json), with the command, the environment
//! (the container's, `-e` over it, the exec user's HOME), the user (looked
//! up in the image, as for `run`), the working directory and the terminal
//! asked for, and runs `RUNTIME exec --process FILE ID`. The runtime's exit
//! code is the process's; if the runtime itself failed (no such program in
//! the container), its log says why, and the exit code is docker's 126 or
//! 127.
//!
//! Man pages: setns(2); runc-exec(8).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use ch05_images::user::{apply_image_env, resolve_user_in_layers};
use serde_json::Value;

use super::record::{Container, Status, write_atomic};
use super::security::capabilities;
use super::start::process_env;
use super::{Engine, EngineError, Result};

/// What `exec` is asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
    /// The terminal's size, for `-t`.
    pub console_size: Option<(u16, u16)>,
}

impl Engine {
    /// The process JSON for `request` in container `c`.
    pub fn exec_process(&self, c: &Container, request: &ExecRequest) -> Result<Value> {
        let bundle = self.dir(&c.id).bundle().join("config.json");
        let spec: Value = std::fs::read(&bundle)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| EngineError::msg(format!("{}: no bundle config", bundle.display())))?;
        let mut process = spec["process"].clone();
        let user_spec = request
            .user
            .clone()
            .unwrap_or_else(|| c.config.user.clone());
        let user = resolve_user_in_layers(&c.berth.layers, &user_spec).map_err(|e| {
            EngineError::Start {
                code: 126,
                message: format!("unable to find user {user_spec}: {e}"),
            }
        })?;
        let mut env = process_env(c, &user);
        apply_image_env(&mut env, &request.env, None);
        process["args"] = request.cmd.clone().into();
        process["env"] = env.into();
        process["user"] = serde_json::json!({"uid": user.uid, "gid": user.gid});
        if !user.additional_gids.is_empty() {
            process["user"]["additionalGids"] = user.additional_gids.clone().into();
        }
        if let Some(dir) = &request.workdir {
            process["cwd"] = dir.clone().into();
        }
        process["terminal"] = request.tty.into();
        match request.console_size {
            Some((rows, cols)) if request.tty => {
                process["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
            }
            _ => {
                if let Some(map) = process.as_object_mut() {
                    map.remove("consoleSize");
                }
            }
        }
        if request.privileged {
            let caps = capabilities(true, &[], &[]).map_err(EngineError::Message)?;
            process["capabilities"] = serde_json::json!({
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": [],
            });
        }
        Ok(process)
    }

    /// `exec`: run `request` in container `id`; its exit code.
    pub fn exec(&self, id: &str, request: &ExecRequest) -> Result<i32> {
        let c = self.load_checked(id)?;
        match c.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::msg(format!(
                    "Container {id} is paused, unpause the container before exec"
                )));
            }
            _ => return Err(EngineError::msg(format!("container {id} is not running"))),
        }
        if request.tty && request.detach {
            return Err(EngineError::msg(
                "exec -d -t is not supported: a detached terminal would need a console socket holder",
            ));
        }
        let process = self.exec_process(&c, request)?;
        let run_dir = self.roots.run_dir(id);
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| EngineError::msg(format!("{}: {e}", run_dir.display())))?;
        let exec_id = super::ids::new_id();
        let file = run_dir.join(format!("exec-{}.json", &exec_id[..12]));
        let log = run_dir.join(format!("exec-{}.log", &exec_id[..12]));
        write_atomic(&file, &serde_json::to_vec(&process).expect("JSON"))?;
        let runtime = self.runtime_of(&c);
        let mut cmd = Command::new(&runtime.path);
        cmd.arg("--root")
            .arg(&runtime.root)
            .args(runtime.log_args(&log))
            .arg("exec")
            .arg("--process")
            .arg(&file);
        if request.detach {
            cmd.arg("--detach");
        }
        cmd.arg(id);
        if !request.interactive {
            cmd.stdin(Stdio::null());
        }
        self.event("exec_create", &c, &[("execID", exec_id.clone())]);
        self.event("exec_start", &c, &[("execID", exec_id.clone())]);
        let status = run_forwarding_signals(cmd);
        let logged = super::runtime_client::last_logged_error(&log);
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&log);
        let status =
            status.map_err(|e| EngineError::msg(format!("{}: {e}", runtime.path.display())))?;
        let code = match status.code() {
            Some(code) => code,
            None => {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            }
        };
        self.event(
            "exec_die",
            &c,
            &[("execID", exec_id), ("exitCode", code.to_string())],
        );
        if let Some(message) = logged.filter(|_| code != 0) {
            return Err(EngineError::Start {
                code: match crate::monitor::serve::exit_code_for_error(&message) {
                    127 => 127,
                    _ => 126,
                },
                message: format!("OCI runtime exec failed: {message}"),
            });
        }
        Ok(code)
    }
}

/// Run `cmd`, passing SIGINT, SIGTERM, SIGHUP and SIGQUIT we get on to it
/// (the runtime passes them to the process).
fn run_forwarding_signals(mut cmd: Command) -> std::io::Result<std::process::ExitStatus> {
    use nix::sys::signal::{SigSet, Signal, kill};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(signal);
    }
    let _ = set.thread_block();
    let mut child = cmd.spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    std::thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            let _ = kill(pid, signal);
        }
    });
    child.wait()
}

/// Where the exec's process file would go (for tests that look).
pub fn exec_files(run_dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("exec-"))
        })
        .collect()
}
