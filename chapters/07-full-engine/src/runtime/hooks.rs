//! Hooks: programs the runtime runs at the lifecycle's points.
//!
//! config.json's `hooks` name programs to run around the container's life:
//! `createRuntime` and `createContainer` during create (the first in the
//! runtime's namespaces, the second in the container's), `startContainer`
//! in the container just before the user's program, `poststart` after
//! start, `poststop` after delete (`prestart` is the deprecated ancestor of
//! createRuntime). podman's network setup, NVIDIA's GPU injection and
//! Kubernetes' device plugins are hooks.
//!
//! Each hook is `path`, `args` (argv, `args[0]` included, as execv(3)
//! takes them), `env` (the whole environment) and `timeout` in seconds. The
//! runtime writes the container's state (the spec's JSON: id, status, pid,
//! bundle, annotations) to the hook's stdin, and a hook that fails, or is
//! still running at its timeout, fails the step — it is killed then, with
//! whatever it started (it runs in a process group of its own).
//!
//! Which namespace each kind runs in is the start sequence's business; this
//! module only runs one hook and reports how it went.
//!
//! Man pages: execve(2), setpgid(2), kill(2); runtime-spec `config.md`
//! ("POSIX-platform Hooks") and `runtime.md` ("Lifecycle").

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// A hook that did not succeed. `name` is its place in config.json, like
/// `hooks.poststop[1]`.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{name} {path}: {reason}")]
    Start {
        name: String,
        path: String,
        reason: String,
    },
    #[error("{name} {path}: {status}{}", output_tail(.stderr, .stdout))]
    Failed {
        name: String,
        path: String,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("{name} {path}: still running after its timeout of {timeout}s: killed")]
    TimedOut {
        name: String,
        path: String,
        timeout: i64,
    },
}

fn output_tail(stderr: &str, stdout: &str) -> String {
    let mut tail = String::new();
    for (what, text) in [("stderr", stderr), ("stdout", stdout)] {
        let text = text.trim();
        if !text.is_empty() {
            tail.push_str(&format!(", {what}: {text}"));
        }
    }
    tail
}

/// How often a waiting runtime looks at a hook.
const POLL: Duration = Duration::from_millis(2);

/// Run `hook` with `state` (the spec's state JSON) on its stdin; wait for
/// it, at most its timeout.
// ANCHOR: run_hook
pub fn run_hook(hook: &Hook, name: &str, state: &[u8]) -> Result<(), HookError> {
    run_hook_in(hook, name, state, &[])
}

/// [`run_hook`], with the hook process joining the namespaces `join`
/// (descriptors of nsfs files, in setns order, mount last) before its exec:
/// createContainer's hooks run in the container's namespaces.
pub fn run_hook_in(
    hook: &Hook,
    name: &str,
    state: &[u8],
    join: &[std::os::fd::RawFd],
) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    // 1. The process: the hook's own arguments and environment only, a
    //    process group of its own, in the namespaces `join` names.
    let mut child = spawn_hook(hook, join).map_err(|err| HookError::Start {
        name: name.to_string(),
        path: path.clone(),
        reason: super::config::io_reason(&err),
    })?;
    // 2. Its stdin fed and its output drained on threads, started before
    //    we wait: a hook that reads nothing, or writes a lot, must not
    //    block us.
    let io = HookIo::start(&mut child, state);
    // 3. Wait, at most its timeout; then kill its whole process group.
    let waited = wait_for_hook(&mut child, hook.timeout());
    let (stdout, stderr) = io.finish();
    match waited {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(HookError::Failed {
            name: name.to_string(),
            path,
            status: status.to_string(),
            stdout,
            stderr,
        }),
        Ok(None) => Err(HookError::TimedOut {
            name: name.to_string(),
            path,
            timeout: hook.timeout().unwrap_or_default(),
        }),
        Err(err) => Err(HookError::Start {
            name: name.to_string(),
            path,
            reason: format!("wait: {}", super::config::io_reason(&err)),
        }),
    }
}
// ANCHOR_END: run_hook

/// Start the hook's process: args[0] as argv[0], only the hook's own
/// environment, its own process group (so a timeout kills whatever it
/// started too), its three standard streams piped.
// ANCHOR: spawn_hook
fn spawn_hook(hook: &Hook, join: &[std::os::fd::RawFd]) -> std::io::Result<Child> {
    let mut cmd = Command::new(hook.path());
    if !join.is_empty() {
        let join = join.to_vec();
        // SAFETY: the closure runs in the forked child before its exec and
        // only makes setns(2) calls on descriptors we keep open.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &join {
                    if nix::libc::setns(fd, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    // args[0] is argv[0]; with no args, the path is.
    if let Some((first, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for pair in hook.env().iter().flatten() {
        if let Some((key, value)) = pair.split_once('=') {
            cmd.env(key, value);
        }
    }
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}
// ANCHOR_END: spawn_hook

/// The threads that feed a hook's stdin and collect (the first 64 KiB of)
/// its stdout and stderr.
struct HookIo {
    feeder: JoinHandle<()>,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl HookIo {
    fn start(child: &mut Child, state: &[u8]) -> HookIo {
        let stdin = child.stdin.take();
        let state = state.to_vec();
        let feeder = std::thread::spawn(move || {
            // EPIPE when the hook does not read its stdin: allowed.
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&state);
            }
        });
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(pipe) = pipe {
                    let _ = pipe.take(64 * 1024).read_to_string(&mut text);
                }
                text
            })
        };
        HookIo {
            feeder,
            stdout: drain(
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            stderr: drain(
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        }
    }

    /// Join the threads: the hook's stdout and stderr.
    fn finish(self) -> (String, String) {
        let _ = self.feeder.join();
        (
            self.stdout.join().unwrap_or_default(),
            self.stderr.join().unwrap_or_default(),
        )
    }
}

/// Wait for the hook, at most `timeout` seconds (none: for as long as it
/// takes). `None`: it timed out, and its process group was killed and the
/// hook reaped.
// ANCHOR: wait_for_hook
fn wait_for_hook(
    child: &mut Child,
    timeout: Option<i64>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = timeout.map(|secs| Instant::now() + Duration::from_secs(secs.max(0) as u64));
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}
// ANCHOR_END: wait_for_hook

/// Run the hooks of one kind in the namespaces of process `pid` (under
/// `proc_root`) that differ from ours: user, ipc, uts, net, pid (for the
/// hook's children: setns(2) moves no process into a PID namespace, it
/// places the ones it forks there), cgroup, mount.
pub fn run_hooks_in_namespaces_of(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &[u8],
    proc_root: &std::path::Path,
    pid: i32,
) -> Result<(), HookError> {
    if hooks.is_none_or(|h| h.is_empty()) {
        return Ok(());
    }
    let mut files = Vec::new();
    for ns in ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"] {
        let theirs = proc_root.join(pid.to_string()).join("ns").join(ns);
        let ours = proc_root.join("self/ns").join(ns);
        if std::fs::read_link(&theirs).ok() == std::fs::read_link(&ours).ok() {
            continue;
        }
        let file = std::fs::File::open(&theirs).map_err(|err| HookError::Start {
            name: format!("hooks.{kind}"),
            path: theirs.display().to_string(),
            reason: super::config::io_reason(&err),
        })?;
        files.push(file);
    }
    let join: Vec<_> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        run_hook_in(hook, &format!("hooks.{kind}[{i}]"), state, &join)?;
    }
    Ok(())
}

/// Run the hooks of one kind (`poststop`, ...) in order; the first failure
/// stops the rest.
pub fn run_hooks(kind: &str, hooks: Option<&Vec<Hook>>, state: &[u8]) -> Result<(), HookError> {
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        run_hook(hook, &format!("hooks.{kind}[{i}]"), state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_hook_gets_its_args_env_and_the_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["my-hook", "-c", "head -c 8 /proc/$$/cmdline > \"$1\"; echo \" $0 $GREETING\" >> \"$1\"; cat >> \"$1\"", "first", out],
            "env": ["GREETING=hello"]
        }));
        run_hook(
            &h,
            "hooks.createRuntime[0]",
            br#"{"id":"c1","status":"creating"}"#,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "my-hook\0 first hello\n{\"id\":\"c1\",\"status\":\"creating\"}"
        );
    }

    #[test]
    fn only_the_given_environment_reaches_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", "env > \"$0\"", out],
            "env": ["A=1", "B=two words"]
        }));
        run_hook(&h, "hooks.poststart[0]", b"{}").unwrap();
        let mut lines: Vec<String> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
            .map(String::from)
            .collect();
        lines.sort();
        assert_eq!(lines, ["A=1", "B=two words"]);
    }

    #[test]
    fn a_failing_hook_names_itself_and_shows_its_output() {
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", "echo partial; echo broken >&2; exit 3"]
        }));
        let err = run_hook(&h, "hooks.prestart[2]", b"{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.prestart[2] /bin/sh: exit status: 3, stderr: broken, stdout: partial"
        );
        let missing = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        let err = run_hook(&missing, "hooks.poststop[0]", b"{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.poststop[0] /nonexistent/hook: no such file or directory"
        );
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child");
        // The hook starts a grandchild that holds stdout open, then waits.
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", "sleep 60 & echo $! > \"$0\"; wait", pidfile],
            "timeout": 1
        }));
        let started = Instant::now();
        let err = run_hook(&h, "hooks.createContainer[0]", b"{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.createContainer[0] /bin/sh: still running after its timeout of 1s: killed"
        );
        // It returned (the grandchild's open stdout did not hold us), and the
        // grandchild is gone.
        assert!(started.elapsed() < Duration::from_secs(30));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..500).any(|_| {
            let state = crate::runtime::state::proc_stat(std::path::Path::new("/proc"), pid);
            if state.is_none_or(|s| s.state == 'Z') {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
            false
        });
        assert!(gone, "the hook's child {pid} survived the timeout");
    }

    #[test]
    fn hooks_run_in_order_and_stop_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let step = |n: &str, code: i32| {
            hook(serde_json::json!({
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("echo {n} >> \"$0\"; exit {code}"), log]
            }))
        };
        let list = vec![step("one", 0), step("two", 1), step("three", 0)];
        let err = run_hooks("poststop", Some(&list), b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("hooks.poststop[1] /bin/sh: exit status: 1"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
        run_hooks("poststop", None, b"{}").unwrap();
    }
}
