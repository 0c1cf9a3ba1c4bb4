//! The client's side of an attach: your terminal (or pipes) on the
//! container's streams, through its monitor.
//!
//! - Output frames go to our stdout and stderr; the exit frame ends it,
//!   with the container's exit code.
//! - Our stdin goes in as frames (with `-i`); at its end, the end of the
//!   container's stdin.
//! - With `-t`, our terminal is put in raw mode (termios: no echo, no line
//!   editing, no signals from keys: Ctrl-C goes to the container as a
//!   byte, and the container's pty does the rest), restored at the end;
//!   SIGWINCH (the window changed size) sends the new size, and the
//!   monitor sets it on the container's pty.
//! - The detach keys (ctrl-p ctrl-q, or `--detach-keys`) leave the
//!   container running: the bytes are not sent, we just go.
//! - Without `-t`, signals we get (SIGINT, SIGTERM...) are passed to the
//!   container (`--sig-proxy`, on by default).
//!
//! Man pages: termios(3) ("Raw mode"), tty_ioctl(4) ("TIOCGWINSZ"),
//! signal(7).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use clap::Args;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::record::Status;
use crate::monitor::protocol::{AttachRequest, Kind, Request, frame, read_frame};

/// docker's default detach keys: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Parse docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`...).
pub fn parse_detach_keys(text: Option<&str>) -> Result<Vec<u8>, String> {
    let Some(text) = text else {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    };
    let bad = || format!("Invalid detach keys ({text}) provided");
    let mut keys = Vec::new();
    for key in text.split(',') {
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                }
            }
            Some(_) => return Err(bad()),
            None if key.len() == 1 => key.as_bytes()[0],
            None => return Err(bad()),
        };
        keys.push(byte);
    }
    if keys.is_empty() {
        return Err(bad());
    }
    Ok(keys)
}

/// How to attach.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub stdin: bool,
    pub tty: bool,
    pub detach_keys: Vec<u8>,
    pub sig_proxy: bool,
    /// The container's run directory (its monitor's socket).
    pub run_dir: PathBuf,
}

/// Our terminal in raw mode until dropped.
struct RawTerminal(Option<Termios>);

impl RawTerminal {
    fn enter(enabled: bool) -> RawTerminal {
        let stdin = std::io::stdin();
        if !enabled || !std::io::IsTerminal::is_terminal(&stdin) {
            return RawTerminal(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

/// What ended an attach.
enum Event {
    Exit(i32),
    Error(String),
    Detached,
    Closed,
}

/// Finds the detach keys in a stream of bytes, holding back a partial match.
struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    /// The bytes to send on, and whether the keys were typed.
    fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &byte in data {
            if byte == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if byte == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(byte);
                }
            }
        }
        (out, false)
    }
}

/// How an attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    /// The exit code for berth: the container's, or 0 after a detach.
    pub code: i32,
    /// The container exited (rather than we detached).
    pub exited: bool,
}

/// Pump an attach `stream` until the container exits (its exit code) or
/// we detach (0).
pub fn pump(stream: UnixStream, options: &AttachOptions) -> Result<Pumped, String> {
    // Signals: blocked here (and so in every thread we start), taken by
    // one thread with sigwait.
    let mut signals = SigSet::empty();
    for signal in [
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        signals.add(signal);
    }
    let _ = signals.thread_block();
    let writer = Arc::new(Mutex::new(
        stream.try_clone().map_err(|e| format!("attach: {e}"))?,
    ));
    let _raw = RawTerminal::enter(options.tty && options.stdin);
    let (events, done) = mpsc::channel::<Event>();

    // Output: frames to our stdout and stderr.
    {
        let events = events.clone();
        let mut reader = stream;
        std::thread::spawn(move || {
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            loop {
                match read_frame(&mut reader) {
                    Ok(Some((Kind::Stdout, data))) => {
                        let _ = stdout.write_all(&data);
                        let _ = stdout.flush();
                    }
                    Ok(Some((Kind::Stderr, data))) => {
                        let _ = stderr.write_all(&data);
                        let _ = stderr.flush();
                    }
                    Ok(Some((Kind::Exit, code))) => {
                        let code = String::from_utf8_lossy(&code).parse().unwrap_or(255);
                        let _ = events.send(Event::Exit(code));
                        return;
                    }
                    Ok(Some((Kind::Error, message))) => {
                        let _ = events.send(Event::Error(String::from_utf8_lossy(&message).into()));
                        return;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        let _ = events.send(Event::Closed);
                        return;
                    }
                }
            }
        });
    }

    // Input: our stdin, watching for the detach keys.
    if options.stdin {
        let events = events.clone();
        let writer = writer.clone();
        let keys = options.detach_keys.clone();
        let tty = options.tty;
        std::thread::spawn(move || {
            let mut matcher = DetachMatcher { keys, matched: 0 };
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    if !tty {
                        let _ = writer
                            .lock()
                            .map(|mut w| w.write_all(&frame(Kind::StdinEof, b"")));
                    }
                    return;
                }
                let (data, detach) = matcher.feed(&buf[..n]);
                if !data.is_empty() {
                    let _ = writer
                        .lock()
                        .map(|mut w| w.write_all(&frame(Kind::Stdin, &data)));
                }
                if detach {
                    let _ = events.send(Event::Detached);
                    return;
                }
            }
        });
    }

    // Signals: window sizes for a terminal, the rest passed on.
    {
        let writer = writer.clone();
        let tty = options.tty;
        let sig_proxy = options.sig_proxy;
        let run_dir = options.run_dir.clone();
        let send_size = move |writer: &Arc<Mutex<UnixStream>>| {
            if let Some((rows, cols)) = super::run::terminal_size() {
                let mut size = rows.to_be_bytes().to_vec();
                size.extend_from_slice(&cols.to_be_bytes());
                let _ = writer
                    .lock()
                    .map(|mut w| w.write_all(&frame(Kind::Resize, &size)));
            }
        };
        if tty {
            send_size(&writer);
        }
        std::thread::spawn(move || {
            loop {
                let Ok(signal) = signals.wait() else { continue };
                match signal {
                    Signal::SIGWINCH if tty => send_size(&writer),
                    Signal::SIGWINCH => {}
                    signal if sig_proxy => {
                        let _ = crate::engine::monitor_client::request(
                            &run_dir,
                            std::path::Path::new("/proc"),
                            &Request::Kill(signal as i32),
                        );
                    }
                    _ => {}
                }
            }
        });
    }
    drop(events);

    match done.recv() {
        Ok(Event::Exit(code)) => Ok(Pumped { code, exited: true }),
        Ok(Event::Detached) => Ok(Pumped {
            code: 0,
            exited: false,
        }),
        Ok(Event::Error(message)) => Err(message),
        Ok(Event::Closed) | Err(_) => Err("the container's monitor went away".into()),
    }
}

/// The flags of `attach`.
#[derive(Args, Debug, Clone)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, value_name = "bool", default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `attach`.
pub fn attach(engine: &Engine, args: &AttachArgs) -> Outcome {
    let detach_keys =
        parse_detach_keys(args.detach_keys.as_deref()).map_err(|m| Failure::new(m, 1))?;
    let c = engine.container(&args.container)?;
    match c.state.status {
        Status::Running => {}
        Status::Paused => {
            return Err(Failure::new(
                "You cannot attach to a paused container, unpause it first",
                1,
            ));
        }
        _ => {
            return Err(Failure::new(
                "You cannot attach to a stopped container, start it first",
                1,
            ));
        }
    }
    let request = AttachRequest {
        stdin: c.config.open_stdin && !args.no_stdin,
        stdout: true,
        stderr: true,
        start: false,
    };
    let stream = engine.attach_stream(&c.id, request)?;
    let options = AttachOptions {
        stdin: request.stdin,
        tty: c.config.tty,
        detach_keys,
        sig_proxy: args.sig_proxy && !c.config.tty,
        run_dir: engine.roots().run_dir(&c.id),
    };
    pump(stream, &options)
        .map(|p| p.code)
        .map_err(|m| Failure::new(m, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_dockers() {
        assert_eq!(parse_detach_keys(None).unwrap(), [0x10, 0x11]);
        assert_eq!(parse_detach_keys(Some("ctrl-a,x")).unwrap(), [1, b'x']);
        assert_eq!(parse_detach_keys(Some("ctrl-@,ctrl-_")).unwrap(), [0, 31]);
        assert_eq!(
            parse_detach_keys(Some("ctrl-aa")).unwrap_err(),
            "Invalid detach keys (ctrl-aa) provided"
        );
    }

    #[test]
    fn the_detach_keys_are_held_back_and_found() {
        let mut m = DetachMatcher {
            keys: vec![0x10, 0x11],
            matched: 0,
        };
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // Not the second key: the held-back byte goes on after all.
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"x\x10\x10"), (b"x\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (vec![], true));
    }
}
