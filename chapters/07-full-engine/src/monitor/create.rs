//! Making the container: its standard streams, then the runtime's `create`.
//!
//! The monitor holds the container's stdio, so it makes them before the
//! runtime runs:
//!
//! - **Pipes** (no `-t`): one for stdout, one for stderr, one for stdin
//!   with `-i` (else `/dev/null`). The runtime is started with the
//!   container's ends as its own fds 0, 1 and 2, and `runc create` hands
//!   its standard streams to the container's process as they are. The
//!   monitor keeps the other ends, opened close-on-exec so that no copy
//!   reaches the container (the container's end of a pipe must be the only
//!   one, or the monitor would never read end-of-file).
//! - **A pty** (`-t`): the runtime makes it inside the container and sends
//!   the master back over a UNIX socket (`--console-socket`, runc's
//!   protocol; the receiving end is the runtime module's `recv_fd`).
//!
//! `create` exits once the container's first process exists, blocked
//! before the user's program. That process was the runtime's child; the
//! runtime is gone, so the kernel gives it to the nearest *child subreaper*
//! above it: the monitor (prctl(2) PR_SET_CHILD_SUBREAPER, set at start).
//! From then on the monitor is its parent, and wait(2) gives the monitor
//! its exit status.
//!
//! Why `create` failed is in the runtime's log (`--log`, JSON): its stderr
//! is the container's, already.
//!
//! Man pages: pipe(2), pty(7), unix(7) ("SCM_RIGHTS"), prctl(2), wait(2).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::config::{MonitorConfig, console_socket, container_pid_file, runtime_log};
use crate::engine::runtime_client::{RuntimeCli, last_logged_error};
use crate::runtime::console::{recv_fd, set_window_size};

/// How long `create` may take before the monitor gives up on it.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// The monitor's ends of the container's standard streams.
#[derive(Debug)]
pub enum ContainerIo {
    Pipes {
        stdout: OwnedFd,
        stderr: OwnedFd,
        /// With `-i`: where stdin bytes go.
        stdin: Option<OwnedFd>,
    },
    Pty {
        master: OwnedFd,
    },
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    pub io: ContainerIo,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))
}

/// Run the runtime's `create`; the container's pid and the monitor's ends
/// of its streams, or why it failed.
pub fn create(config: &MonitorConfig) -> Result<Created, String> {
    let run_dir = &config.run_dir;
    let (log, pid_file) = (runtime_log(run_dir), container_pid_file(run_dir));
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&pid_file);
    let runtime = RuntimeCli {
        path: config.runtime.clone(),
        root: config.runtime_root.clone(),
    };
    // 1. The streams: pipes, or a socket for the pty to come back on.
    let socket_path = console_socket(run_dir);
    let (listener, mut io, child_stdio) = if config.tty {
        let listener = super::config::bind_in(run_dir, super::config::CONSOLE_SOCKET)
            .map_err(|e| format!("bind {}: {e}", socket_path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        (
            Some(listener),
            None,
            [Stdio::null(), Stdio::null(), Stdio::null()],
        )
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_w, stdin_child) = if config.open_stdin {
            let (r, w) = pipe()?;
            (Some(w), Stdio::from(r))
        } else {
            (None, Stdio::null())
        };
        let io = ContainerIo::Pipes {
            stdout: out_r,
            stderr: err_r,
            stdin: stdin_w,
        };
        (
            None,
            Some(io),
            [stdin_child, Stdio::from(out_w), Stdio::from(err_w)],
        )
    };
    // 2. The runtime's create, with the container's ends as its stdio.
    let [stdin, stdout, stderr] = child_stdio;
    // The console socket's full path may be too long for a socket address:
    // the runtime is given it through our descriptor of the run directory,
    // /proc/OUR_PID/fd/N/console.sock (short whatever the path).
    let dir_fd = nix::fcntl::open(
        run_dir.as_path(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", run_dir.display()))?;
    let short_socket = PathBuf::from(format!(
        "/proc/{}/fd/{}/{}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&dir_fd),
        super::config::CONSOLE_SOCKET
    ));
    let mut cmd = runtime.create_command(
        &config.id,
        &config.bundle,
        &pid_file,
        listener.as_ref().map(|_| short_socket.as_path()),
        &log,
    );
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", config.runtime.display()))?;
    // Our copies of the container's ends go now (they live in `cmd`).
    drop(cmd);
    // 3. Wait for it, taking the pty's master when it comes.
    let deadline = Instant::now() + CREATE_TIMEOUT;
    let status = loop {
        if let Some(listener) = &listener
            && io.is_none()
        {
            let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(20u8));
            if let Ok((stream, _)) = listener.accept() {
                let _ = stream.set_nonblocking(false);
                let (_, master) = recv_fd(stream.as_fd()).map_err(|e| e.to_string())?;
                if let Some((rows, cols)) = config.console_size {
                    let _ = set_window_size(master.as_fd(), rows, cols);
                }
                io = Some(ContainerIo::Pty { master });
            }
        } else if listener.is_none() {
            // No pty to wait for: block until create exits.
            break child.wait().map_err(|e| e.to_string())?;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} create: timed out", config.runtime.display()));
        }
    };
    drop(dir_fd);
    let _ = std::fs::remove_file(&socket_path);
    if !status.success() {
        return Err(last_logged_error(&log)
            .unwrap_or_else(|| format!("{} create failed ({status})", config.runtime.display())));
    }
    // 4. The container's pid, from the runtime's pid file.
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .ok_or_else(|| format!("{}: no pid written by create", pid_file.display()))?;
    let io = io.ok_or_else(|| "the runtime sent no terminal on the console socket".to_string())?;
    Ok(Created { pid, io })
}
