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
        // -t: the runtime sends the terminal's master to a socket of ours
        // (as conmon and dockerd's shim take it), whatever the runtime;
        // the socket lives in a short temporary directory (sun_path holds
        // 107 bytes, a run root may be deeper).
        // The runtime detaches (runc takes a console socket only so) and
        // we, a subreaper, become the process's parent: its exit code is
        // ours to wait for, as the shim's is.
        let console = match request.tty && !request.detach {
            true => Some(ConsoleSocket::new()?),
            false => None,
        };
        if let Some(console) = &console {
            cmd.arg("--detach")
                .arg("--console-socket")
                .arg(&console.path)
                .arg("--pid-file")
                .arg(&console.pid_file);
        }
        cmd.arg(id);
        if !request.interactive {
            cmd.stdin(Stdio::null());
        }
        self.event("exec_create", &c, &[("execID", exec_id.clone())]);
        self.event("exec_start", &c, &[("execID", exec_id.clone())]);
        let status = run_forwarding_signals(cmd, console.as_ref(), request.interactive);
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
/// A listening socket for the runtime's `--console-socket`.
struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    pid_file: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    fn new() -> Result<ConsoleSocket> {
        let failed = |e: std::io::Error| EngineError::msg(format!("make the console socket: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("berth-exec")
            .tempdir()
            .map_err(failed)?;
        let path = dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        Ok(ConsoleSocket {
            pid_file: dir.path().join("exec.pid"),
            _dir: dir,
            path,
            listener,
        })
    }

    /// The terminal's master, once the runtime (`child`) connects and
    /// sends it; `None` if the runtime exits first (it failed).
    fn receive(&self, child: &mut std::process::Child) -> Option<std::os::fd::OwnedFd> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    use std::os::fd::AsFd;
                    let _ = stream.set_nonblocking(false);
                    return crate::runtime::console::recv_fd(stream.as_fd())
                        .ok()
                        .map(|(_, fd)| fd);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !matches!(child.try_wait(), Ok(None)) {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
    }
}

fn run_forwarding_signals(
    mut cmd: Command,
    console: Option<&ConsoleSocket>,
    interactive: bool,
) -> std::io::Result<std::process::ExitStatus> {
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
    if console.is_some() {
        // The detached process comes to us when the runtime exits.
        // SAFETY: prctl(2) with integer arguments only.
        let _ = unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let mut child = cmd.spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    std::thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            let _ = kill(pid, signal);
        }
    });
    let Some(console) = console else {
        return child.wait();
    };
    // The terminal, relayed to our stdio until the process is done; then
    // its exit status, as its new parent.
    let master = console.receive(&mut child);
    let runtime = child.wait()?;
    let Some(pid) = std::fs::read_to_string(&console.pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(|_| runtime.success())
    else {
        return Ok(runtime);
    };
    if let Some(master) = master
        && let Ok(relay) = crate::runtime::console::Relay::start_with(master, interactive)
    {
        relay.finish();
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                std::process::ExitStatus::from_raw(code << 8)
            }
            Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => {
                std::process::ExitStatus::from_raw(signal as i32)
            }
            _ => runtime,
        },
    )
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
