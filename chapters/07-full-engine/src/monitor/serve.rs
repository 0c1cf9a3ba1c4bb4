//! The monitor's loop: one thread, one poll(2), everything in turn.
//!
//! What the loop waits on:
//!
//! - a signalfd for SIGCHLD: the container's first process (or an orphan
//!   of it) has exited; wait(2) says how;
//! - the container's stdout and stderr (or the pty's master): bytes go to
//!   the json-file log and to every attached client;
//! - the container's stdin, when bytes from clients wait to go in;
//! - the monitor's socket: new clients, and the requests of those there;
//! - a deadline: the end of the restart back-off, or of draining the
//!   output after an exit.
//!
//! One thread means no locks: a request, an exit and a restart happen one
//! after the other, in the order they came, so the monitor can never
//! start a container that has just exited, nor record an exit twice.
//!
//! Man pages: poll(2), signalfd(2), wait(2), unix(7), pty(7).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::config::MonitorConfig;
use super::create::{ContainerIo, create};
use super::jsonlog::{JsonLogWriter, Stream};
use super::protocol::{AttachRequest, FrameBuffer, Kind, Request, frame};
use super::restart::Backoff;
use super::state::{
    Exit, manually_stopped, oom_killed, record_exit, record_given_up, record_running,
    record_start_failure,
};
use crate::engine::record::now_rfc3339;
use crate::engine::runtime_client::RuntimeCli;
use crate::runtime::console::set_window_size;

/// After the container's exit, how long its output may take to drain
/// (until every copy of its stdout is closed).
pub const DRAIN_TIME: Duration = Duration::from_secs(2);
/// A client that lets this much output pile up is dropped.
pub const MAX_CLIENT_BACKLOG: usize = 8 << 20;

/// Where the container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Created, waiting for `start`.
    Created {
        pid: i32,
    },
    Running {
        pid: i32,
    },
    /// Exited with `code`; the output drains until `until`.
    Exiting {
        code: i32,
        until: Instant,
    },
    /// Exited; restarts at `until`.
    Backoff {
        until: Instant,
    },
    Done,
}

#[derive(Debug)]
enum ClientState {
    /// Reading the request line.
    Request(Vec<u8>),
    Attach(AttachRequest, FrameBuffer),
    Waiter,
    /// Answered: goes once its output is written.
    Closing,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    state: ClientState,
    out: Vec<u8>,
}

/// The container's streams, as the loop holds them.
#[derive(Debug, Default)]
struct Streams {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    pty: bool,
}

impl Streams {
    fn from_io(io: ContainerIo) -> Streams {
        match io {
            ContainerIo::Pipes {
                stdout,
                stderr,
                stdin,
            } => Streams {
                stdout: Some(stdout),
                stderr: Some(stderr),
                stdin,
                pty: false,
            },
            ContainerIo::Pty { master } => {
                let input = master.try_clone().ok();
                Streams {
                    stdout: Some(master),
                    stderr: None,
                    stdin: input,
                    pty: true,
                }
            }
        }
    }
}

/// The monitor.
pub struct Monitor {
    config: MonitorConfig,
    runtime: RuntimeCli,
    listener: UnixListener,
    signals: SignalFd,
    log: Option<JsonLogWriter>,
    phase: Phase,
    streams: Streams,
    stdin_pending: Vec<u8>,
    clients: Vec<Client>,
    started: Instant,
    backoff: Backoff,
}

/// What one poll entry stands for.
#[derive(Debug, Clone, Copy)]
enum Source {
    Signals,
    Listener,
    Out(Stream),
    In,
    Client(usize),
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// docker's exit codes for a container that could not start: 127 when the
/// program is missing, 126 when it cannot be run, else 128.
pub fn exit_code_for_error(message: &str) -> i32 {
    // "permission denied" first: berth-runtime's message for it also says
    // "not a directory" (in its advice).
    if message.contains("permission denied") || message.contains("Permission denied") {
        126
    } else if message.contains("executable file not found")
        || message.contains("command not found") // berth-runtime's words
        || message.contains("no such file or directory")
        || message.contains("No such file or directory")
        || message.contains("not a directory")
    {
        127
    } else {
        128
    }
}

impl Monitor {
    /// A monitor around a freshly created container.
    pub fn new(
        config: MonitorConfig,
        listener: UnixListener,
        signals: SignalFd,
        pid: i32,
        io: ContainerIo,
    ) -> Monitor {
        let runtime = RuntimeCli {
            path: config.runtime.clone(),
            root: config.runtime_root.clone(),
        };
        let log = match JsonLogWriter::open(
            &config.log_path,
            config.log_max_size,
            config.log_max_files,
        ) {
            Ok(log) => Some(log),
            Err(err) => {
                eprintln!("berth-monitor: log {}: {err}", config.log_path.display());
                None
            }
        };
        let streams = Streams::from_io(io);
        for fd in [&streams.stdout, &streams.stderr, &streams.stdin]
            .into_iter()
            .flatten()
        {
            set_nonblocking(fd.as_fd());
        }
        let _ = listener.set_nonblocking(true);
        Monitor {
            config,
            runtime,
            listener,
            signals,
            log,
            phase: Phase::Created { pid },
            streams,
            stdin_pending: Vec::new(),
            clients: Vec::new(),
            started: Instant::now(),
            backoff: Backoff::default(),
        }
    }

    /// The container's pid while it has one.
    fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Created { pid } | Phase::Running { pid } => Some(pid),
            _ => None,
        }
    }

    /// `runtime start`; the record says running (unless `record` is false:
    /// the engine's first start of `run -d` records it itself, holding the
    /// container's lock while it waits for us).
    pub fn start(&mut self, record: bool) -> Result<(), String> {
        match self.phase {
            Phase::Running { .. } => Ok(()),
            Phase::Created { pid } => {
                self.runtime
                    .start(&self.config.id)
                    .map_err(|e| runtime_message(&e))?;
                self.started = Instant::now();
                self.phase = Phase::Running { pid };
                if record {
                    record_running(&self.config, pid)?;
                }
                Ok(())
            }
            _ => Err(format!("container {} is not running", self.config.id)),
        }
    }

    /// The container could not start: it is given up, the error recorded,
    /// the engine's cleanup run (its `runtime delete --force` ends the
    /// created process).
    pub fn give_up(&mut self, message: &str) {
        record_start_failure(&self.config, message);
        self.finish(None);
    }

    fn start_or_give_up(&mut self) -> Result<(), String> {
        self.start(true)
            .inspect_err(|message| self.give_up(message))
    }

    /// Serve until the container is done for good.
    pub fn run(&mut self) {
        while self.phase != Phase::Done {
            self.step();
        }
        self.flush_clients();
    }

    fn step(&mut self) {
        // 1. What to wait on.
        let mut sources = vec![Source::Signals, Source::Listener];
        let mut fds: Vec<PollFd> = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(fd) = &self.streams.stdout {
            sources.push(Source::Out(Stream::Stdout));
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &self.streams.stderr {
            sources.push(Source::Out(Stream::Stderr));
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &self.streams.stdin
            && !self.stdin_pending.is_empty()
        {
            sources.push(Source::In);
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
        }
        for (i, client) in self.clients.iter().enumerate() {
            let mut flags = PollFlags::empty();
            if !matches!(client.state, ClientState::Closing) {
                flags |= PollFlags::POLLIN;
            }
            if !client.out.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            sources.push(Source::Client(i));
            fds.push(PollFd::new(client.stream.as_fd(), flags));
        }
        let deadline = match self.phase {
            Phase::Exiting { until, .. } | Phase::Backoff { until } => Some(until),
            _ => None,
        };
        let timeout = match deadline {
            Some(until) => {
                let ms = until.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::ZERO)
            }
            None => PollTimeout::NONE,
        };
        // 2. Wait.
        let ready: Vec<(Source, PollFlags)> = match poll(&mut fds, timeout) {
            Ok(_) => fds
                .iter()
                .zip(&sources)
                .filter_map(|(fd, source)| {
                    fd.revents().filter(|r| !r.is_empty()).map(|r| (*source, r))
                })
                .collect(),
            Err(Errno::EINTR) => vec![],
            Err(errno) => {
                eprintln!("berth-monitor: poll: {errno}");
                std::thread::sleep(Duration::from_millis(10));
                vec![]
            }
        };
        drop(fds);
        // 3. Each ready source in turn; clients last, from the highest
        //    index, so removing one keeps the others' indexes.
        let mut client_events = Vec::new();
        for (source, revents) in ready {
            match source {
                Source::Signals => self.reap(),
                Source::Listener => self.accept(),
                Source::Out(stream) => self.read_output(stream),
                Source::In => self.write_stdin(),
                Source::Client(i) => client_events.push((i, revents)),
            }
        }
        client_events.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (i, revents) in client_events {
            self.serve_client(i, revents);
        }
        // 4. Deadlines and ends.
        self.advance();
    }

    /// SIGCHLD: reap everything; the container's first process among them
    /// means it exited.
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let code = match status {
                        WaitStatus::Exited(_, code) => code,
                        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
                        _ => continue,
                    };
                    if status.pid().map(Pid::as_raw) == self.pid() {
                        self.phase = Phase::Exiting {
                            code,
                            until: Instant::now() + DRAIN_TIME,
                        };
                    }
                }
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(true);
            self.clients.push(Client {
                stream,
                state: ClientState::Request(Vec::new()),
                out: Vec::new(),
            });
        }
    }

    /// Output of the container: to the log and to attached clients.
    fn read_output(&mut self, stream: Stream) {
        let slot = match stream {
            Stream::Stdout => &mut self.streams.stdout,
            Stream::Stderr => &mut self.streams.stderr,
        };
        let Some(fd) = slot else { return };
        let mut buf = [0u8; 65536];
        let n = match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            // EIO: a pty whose other side is all closed.
            Err(_) => 0,
        };
        if n == 0 {
            *slot = None;
            if let Some(log) = &mut self.log {
                let _ = log.finish(stream, &now_rfc3339());
            }
            return;
        }
        let data = &buf[..n];
        if let Some(log) = &mut self.log
            && let Err(err) = log.push(stream, data, &now_rfc3339())
        {
            eprintln!("berth-monitor: log: {err}");
        }
        let kind = match stream {
            Stream::Stdout => Kind::Stdout,
            Stream::Stderr => Kind::Stderr,
        };
        let bytes = frame(kind, data);
        for client in &mut self.clients {
            if let ClientState::Attach(request, _) = &client.state {
                let wanted = match stream {
                    Stream::Stdout => request.stdout,
                    Stream::Stderr => request.stderr,
                };
                if wanted {
                    client.out.extend_from_slice(&bytes);
                }
            }
        }
    }

    fn write_stdin(&mut self) {
        let Some(fd) = &self.streams.stdin else {
            self.stdin_pending.clear();
            return;
        };
        match nix::unistd::write(fd, &self.stdin_pending) {
            Ok(n) => {
                self.stdin_pending.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                self.stdin_pending.clear();
                self.streams.stdin = None;
            }
        }
    }

    /// Close the container's stdin (docker's StdinOnce): never a pty's.
    fn close_stdin(&mut self) {
        if !self.streams.pty && self.config.stdin_once {
            self.write_stdin();
            self.stdin_pending.clear();
            self.streams.stdin = None;
        }
    }

    fn serve_client(&mut self, i: usize, revents: PollFlags) {
        if revents.contains(PollFlags::POLLOUT) {
            let client = &mut self.clients[i];
            match client.stream.write(&client.out) {
                Ok(n) => {
                    client.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return self.drop_client(i),
            }
        }
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let mut buf = [0u8; 16384];
            let n = match self.clients[i].stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => 0,
            };
            if n == 0 {
                return self.drop_client(i);
            }
            self.client_input(i, &buf[..n]);
        }
        let client = &self.clients[i];
        if client.out.len() > MAX_CLIENT_BACKLOG
            || (matches!(client.state, ClientState::Closing) && client.out.is_empty())
        {
            self.drop_client(i);
        }
    }

    fn drop_client(&mut self, i: usize) {
        let client = self.clients.remove(i);
        if let ClientState::Attach(request, _) = client.state
            && request.stdin
        {
            self.close_stdin();
        }
    }

    fn client_input(&mut self, i: usize, data: &[u8]) {
        let mut state = std::mem::replace(&mut self.clients[i].state, ClientState::Closing);
        match &mut state {
            ClientState::Request(line) => {
                line.extend_from_slice(data);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    let rest = line.split_off(end + 1);
                    let text = String::from_utf8_lossy(line).into_owned();
                    state = self.request(i, &text);
                    if let ClientState::Attach(_, frames) = &mut state {
                        frames.push(&rest);
                    }
                } else if line.len() > 4096 {
                    state = ClientState::Closing;
                }
            }
            ClientState::Attach(_, frames) => frames.push(data),
            ClientState::Waiter | ClientState::Closing => {}
        }
        // Frames from an attached client: stdin, its end, window sizes.
        if let ClientState::Attach(request, frames) = &mut state {
            let stdin_allowed = request.stdin;
            loop {
                match frames.next_frame() {
                    Ok(Some((Kind::Stdin, bytes))) if stdin_allowed => {
                        if self.streams.stdin.is_some() {
                            self.stdin_pending.extend_from_slice(&bytes);
                        }
                    }
                    Ok(Some((Kind::StdinEof, _))) if stdin_allowed => self.close_stdin(),
                    Ok(Some((Kind::Resize, size))) if size.len() == 4 => {
                        let rows = u16::from_be_bytes([size[0], size[1]]);
                        let cols = u16::from_be_bytes([size[2], size[3]]);
                        if self.streams.pty
                            && let Some(master) = &self.streams.stdout
                        {
                            let _ = set_window_size(master.as_fd(), rows, cols);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        state = ClientState::Closing;
                        break;
                    }
                }
            }
            if !self.stdin_pending.is_empty() {
                self.write_stdin();
            }
        }
        self.clients[i].state = state;
    }

    /// Answer a request line; the client's new state.
    fn request(&mut self, i: usize, line: &str) -> ClientState {
        let reply = |client: &mut Client, text: String| {
            client.out.extend_from_slice(text.as_bytes());
            ClientState::Closing
        };
        match Request::parse(line) {
            None => reply(&mut self.clients[i], "error bad request\n".into()),
            Some(Request::Attach(request)) => {
                if request.start
                    && let Err(message) = self.start_or_give_up()
                {
                    self.clients[i]
                        .out
                        .extend_from_slice(&frame(Kind::Error, message.as_bytes()));
                    return ClientState::Closing;
                }
                ClientState::Attach(request, FrameBuffer::default())
            }
            Some(Request::Start) => {
                let text = match self.start_or_give_up() {
                    Ok(()) => "ok\n".to_string(),
                    Err(message) => format!("error {message}\n"),
                };
                reply(&mut self.clients[i], text)
            }
            Some(Request::Kill(signal)) => {
                let text = match (self.pid(), Signal::try_from(signal)) {
                    (Some(pid), Ok(signal)) => match kill(Pid::from_raw(pid), signal) {
                        Ok(()) => "ok\n".to_string(),
                        Err(errno) => format!("error kill: {errno}\n"),
                    },
                    (Some(_), Err(_)) => format!("error invalid signal: {signal}\n"),
                    (None, _) => format!("error container {} is not running\n", self.config.id),
                };
                reply(&mut self.clients[i], text)
            }
            Some(Request::Wait) => ClientState::Waiter,
            Some(Request::CancelRestart) => {
                if matches!(self.phase, Phase::Backoff { .. }) {
                    let _ = record_given_up(&self.config, None);
                    self.finish(None);
                }
                reply(&mut self.clients[i], "ok\n".into())
            }
        }
    }

    /// Deadlines: the end of draining, the end of a back-off.
    fn advance(&mut self) {
        match self.phase {
            Phase::Exiting { code, until } => {
                let drained = self.streams.stdout.is_none() && self.streams.stderr.is_none();
                if drained || Instant::now() >= until {
                    self.exited(code);
                }
            }
            Phase::Backoff { until } if Instant::now() >= until => self.restart(),
            _ => {}
        }
    }

    /// The container exited and its output is in: record it, then restart
    /// later or finish.
    fn exited(&mut self, code: i32) {
        let time = now_rfc3339();
        if let Some(log) = &mut self.log {
            let _ = log.finish(Stream::Stdout, &time);
            let _ = log.finish(Stream::Stderr, &time);
        }
        self.streams = Streams::default();
        self.stdin_pending.clear();
        let exit = Exit {
            code,
            oom_killed: oom_killed(&self.config.oom_files),
        };
        let restart = record_exit(&self.config, exit).unwrap_or_else(|err| {
            eprintln!("berth-monitor: record the exit: {err}");
            false
        });
        if restart {
            self.notify_exit(code);
            if let Err(err) = self.runtime.delete(&self.config.id) {
                eprintln!("berth-monitor: {err}");
            }
            let delay = self.backoff.next_delay(self.started.elapsed());
            self.phase = Phase::Backoff {
                until: Instant::now() + delay,
            };
        } else {
            self.finish(Some(code));
        }
    }

    /// The back-off is over: create and start the container again, unless
    /// the user stopped it meanwhile.
    fn restart(&mut self) {
        if manually_stopped(&self.config) {
            let _ = record_given_up(&self.config, None);
            return self.finish(None);
        }
        let result = create(&self.config).and_then(|created| {
            let mut streams = Streams::from_io(created.io);
            for fd in [&streams.stdout, &streams.stderr, &streams.stdin]
                .into_iter()
                .flatten()
            {
                set_nonblocking(fd.as_fd());
            }
            std::mem::swap(&mut self.streams, &mut streams);
            self.phase = Phase::Created { pid: created.pid };
            self.start(true)
        });
        if let Err(message) = result {
            let _ = record_given_up(&self.config, Some(&message));
            self.finish(None);
        }
    }

    /// The end: the engine's cleanup (unmount, runtime delete, `--rm`),
    /// then the exit code to every client.
    fn finish(&mut self, code: Option<i32>) {
        run_cleanup(&self.config);
        let code = code.unwrap_or_else(|| {
            crate::engine::record::ContainerDir(self.config.container_dir.clone())
                .load()
                .map(|c| c.state.exit_code)
                .unwrap_or(255)
        });
        self.notify_exit(code);
        self.phase = Phase::Done;
    }

    /// Tell attached clients and waiters how the container ended.
    fn notify_exit(&mut self, code: i32) {
        for client in &mut self.clients {
            match client.state {
                ClientState::Attach(..) => {
                    client
                        .out
                        .extend_from_slice(&frame(Kind::Exit, code.to_string().as_bytes()));
                    client.state = ClientState::Closing;
                }
                ClientState::Waiter => {
                    client
                        .out
                        .extend_from_slice(format!("exit {code}\n").as_bytes());
                    client.state = ClientState::Closing;
                }
                _ => {}
            }
        }
    }

    /// Before the monitor exits: what clients are owed, written out.
    fn flush_clients(&mut self) {
        for client in &mut self.clients {
            let _ = client.stream.set_nonblocking(false);
            let _ = client
                .stream
                .set_write_timeout(Some(Duration::from_secs(2)));
            let _ = client.stream.write_all(&client.out);
        }
        self.clients.clear();
    }

    pub fn listener_fd(&self) -> i32 {
        self.listener.as_raw_fd()
    }
}

/// The message of a runtime error, without the program's name.
fn runtime_message(err: &crate::engine::runtime_client::RuntimeError) -> String {
    match err {
        crate::engine::runtime_client::RuntimeError::Failed { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Run the engine's cleanup command and wait for it.
pub fn run_cleanup(config: &MonitorConfig) {
    let Some((program, args)) = config.cleanup.split_first() else {
        return;
    };
    let status = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("berth-monitor: cleanup: {status}"),
        Err(err) => eprintln!("berth-monitor: cleanup {program}: {err}"),
    }
}

/// SIGCHLD, blocked and taken through a signalfd.
pub fn child_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )
}
