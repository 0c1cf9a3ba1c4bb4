//! The console: a terminal for the container, handed to the engine.
//!
//! Kernel feature: pseudo-terminals and passing file descriptors. With
//! `process.terminal: true` the container's program must run on a terminal
//! of its own: a pty pair, made by opening `/dev/ptmx` (inside the
//! container, from its own devpts instance). The program gets the *slave*
//! end as stdin, stdout and stderr and its controlling terminal; whoever
//! shows it to a user needs the *master* end. But the runtime exits after
//! `create`, so the master goes to a longer-lived process (conmon, a
//! containerd shim, our monitor) that listens on a UNIX socket named by
//! `--console-socket`: the runtime connects and sends the fd in an
//! `SCM_RIGHTS` control message. runc sends the pty's file name,
//! `/dev/ptmx`, as the message's bytes; receivers check it is there and
//! take the one fd.
//!
//! `process.consoleSize` sets the terminal's rows and columns before the
//! program starts (TIOCSWINSZ).
//!
//! Man pages: pty(7), pts(4) (`/dev/ptmx`, TIOCSPTLCK, TIOCGPTN),
//! unix(7) (`SCM_RIGHTS`), sendmsg(2), recvmsg(2), ioctl_tty(2).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::stat::Mode;

/// The name runc sends with the master: the file it was opened from.
pub const PTY_NAME: &str = "/dev/ptmx";
/// The longest name a receiver accepts (runc's `MaxNameLen`).
pub const MAX_NAME_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console socket {}: connect: {reason}", path.display())]
    Connect { path: PathBuf, reason: String },
    #[error("{step}: {errno}")]
    Syscall { step: &'static str, errno: Errno },
    #[error("console socket: {0}")]
    Protocol(String),
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> ConsoleError {
    move |errno| ConsoleError::Syscall { step, errno }
}

/// A new pty from `ptmx` (the container's `/dev/ptmx`): the master, and
/// the path of its slave.
// ANCHOR: open_pty
pub fn open_pty(ptmx: &Path) -> Result<(OwnedFd, PathBuf), ConsoleError> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = open(ptmx, flags, Mode::empty()).map_err(sys("open /dev/ptmx"))?;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, valid here.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } < 0 {
        return Err(sys("unlock the pty (TIOCSPTLCK)")(Errno::last()));
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } < 0 {
        return Err(sys("get the pty number (TIOCGPTN)")(Errno::last()));
    }
    // The slave lives in the devpts instance beside this ptmx.
    let pts_dir = ptmx.parent().unwrap_or(Path::new("/dev")).join("pts");
    Ok((master, pts_dir.join(number.to_string())))
}
// ANCHOR_END: open_pty

/// Set the terminal's size (`process.consoleSize`).
pub fn set_window_size(tty: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(sys("set the window size (TIOCSWINSZ)")(Errno::last()));
    }
    Ok(())
}

/// Send `fd` with `name` over a connected UNIX socket: runc's `SendFile`.
// ANCHOR: send_fd
pub fn send_fd(socket: BorrowedFd<'_>, name: &str, fd: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    if name.len() >= MAX_NAME_LEN {
        return Err(ConsoleError::Protocol(format!("name too long: {name}")));
    }
    let fds = [fd.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    let data = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &data, &control, MsgFlags::empty(), None)
        .map_err(sys("sendmsg the console fd"))?;
    Ok(())
}
// ANCHOR_END: send_fd

/// Receive one fd and its name: what conmon or a shim does on its end.
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<(String, OwnedFd), ConsoleError> {
    let mut name = vec![0u8; MAX_NAME_LEN];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("recvmsg the console fd"))?;
    let mut received = Vec::new();
    for cmsg in msg.cmsgs().map_err(sys("read the control messages"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            received.extend(fds);
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let len = msg.bytes;
    // Own every fd we got before judging the message, so none leaks.
    let owned: Vec<OwnedFd> = received
        .into_iter()
        // SAFETY: SCM_RIGHTS installed these fds in our table just now;
        // nothing else owns them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if truncated || owned.len() != 1 {
        return Err(ConsoleError::Protocol(format!(
            "expected one file descriptor, got {}",
            owned.len()
        )));
    }
    let name = String::from_utf8_lossy(&name[..len]).into_owned();
    Ok((name, owned.into_iter().next().expect("one fd")))
}

/// Connect to `--console-socket` and send the pty master, as runc does.
pub fn send_console(socket_path: &Path, master: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let stream = UnixStream::connect(socket_path).map_err(|e| ConsoleError::Connect {
        path: socket_path.to_path_buf(),
        reason: super::config::io_reason(&e),
    })?;
    send_fd(stream.as_fd(), PTY_NAME, master)
}

/// The container's terminal, made by its init after `pivot_root` (so
/// from the container's own devpts): a new pty whose slave becomes the
/// init's controlling terminal, its stdin, stdout and stderr, and
/// `/dev/console`; the master goes to the runtime over `socket` (made
/// before the clone), which hands it to `--console-socket`.
/// System calls only, on data prepared before the clone.
// ANCHOR: set_up_console
pub fn set_up_console(
    socket: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    bind_dev_console: bool,
) -> Result<(), (&'static str, Errno)> {
    use nix::libc;
    // 1. A pty from the container's devpts: master, unlocked; the slave
    //    opened from the master (TIOCGPTPEER), so no path is looked up.
    let master = open(
        c"/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ("open /dev/ptmx", e))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer we pass.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })
        .map_err(|e| ("unlock the pty (TIOCSPTLCK)", e))?;
    let flags = libc::O_RDWR | libc::O_NOCTTY;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })
        .map_err(|e| ("open the pty's slave (TIOCGPTPEER)", e))?;
    // SAFETY: the ioctl just returned this descriptor; nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass.
        Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) })
            .map_err(|e| ("set the console size (TIOCSWINSZ)", e))?;
    }
    // ANCHOR_END: set_up_console
    // ANCHOR: console_bind
    // 2. /dev/console is that terminal (the container's first process
    //    only; an exec's terminal is its own): the slave bound on an
    //    empty file.
    if bind_dev_console {
        bind_console(&slave)?;
    }
    // 3. The master to the runtime.
    send_fd(socket, PTY_NAME, master.as_fd()).map_err(|_| ("send the pty master", Errno::EPIPE))?;
    drop(master);
    // 4. A session of our own, with the slave as its controlling terminal
    //    and as stdin, stdout and stderr.
    nix::unistd::setsid().map_err(|e| ("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int argument.
    Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .map_err(|e| ("make the console our controlling terminal (TIOCSCTTY)", e))?;
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which we mean to replace.
        Errno::result(unsafe { libc::dup2(slave.as_raw_fd(), target) })
            .map_err(|e| ("dup2 the console onto stdio", e))?;
    }
    Ok(())
}

/// `/dev/console` made the container's terminal: `slave` bound on an
/// empty file created there.
fn bind_console(slave: &OwnedFd) -> Result<(), (&'static str, Errno)> {
    let console = open(
        c"/dev/console",
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| ("create /dev/console", e))?;
    drop(console);
    let source = ch02_namespaces::in_root::ProcFdPath::of(slave);
    nix::mount::mount(
        Some(source.as_cstr()),
        c"/dev/console",
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| ("bind the console on /dev/console", e))?;
    Ok(())
}
// ANCHOR_END: console_bind

/// A foreground terminal: the pty master relayed to our own stdin and
/// stdout (runc's `exec -t` without a console socket), our terminal in
/// raw mode meanwhile so that keys reach the container as typed. One
/// thread with poll(2): having joined the container's PID namespace, this
/// process may start no thread (clone(2) refuses CLONE_THREAD there).
pub struct Relay {
    master: OwnedFd,
    saved: Option<nix::sys::termios::Termios>,
    forward_stdin: bool,
}

impl Relay {
    pub fn start(master: OwnedFd) -> Result<Relay, ConsoleError> {
        Relay::start_with(master, true)
    }

    /// [`Relay::start`]; with `forward_stdin` false (docker's `exec -t`
    /// without `-i`), our stdin is left alone.
    pub fn start_with(master: OwnedFd, forward_stdin: bool) -> Result<Relay, ConsoleError> {
        let stdin = std::io::stdin();
        // Our terminal's size for theirs, and raw mode for the relay.
        let saved = nix::sys::termios::tcgetattr(&stdin)
            .ok()
            .filter(|_| forward_stdin);
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes a winsize through the pointer.
            if unsafe { libc::ioctl(stdin.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0 {
                let _ = set_window_size(master.as_fd(), size.ws_row, size.ws_col);
            }
        }
        Ok(Relay {
            master,
            saved,
            forward_stdin,
        })
    }

    /// Relay until the terminal's last slave is closed (the process and
    /// its children are done: EIO), then give our terminal back.
    pub fn finish(self) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let stdin = std::io::stdin();
        let mut stdin_open = self.forward_stdin;
        let mut buf = [0u8; 8192];
        loop {
            let mut fds = vec![PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                break;
            }
            let ready = |fd: &PollFd| {
                fd.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let (master_ready, stdin_ready) = (ready(&fds[0]), fds.get(1).is_some_and(ready));
            if master_ready {
                match nix::unistd::read(&self.master, &mut buf) {
                    Ok(n) if n > 0 => {
                        if write_all(std::io::stdout().as_fd(), &buf[..n]).is_err() {
                            break;
                        }
                    }
                    _ => break, // EIO: every slave closed
                }
            }
            if stdin_ready {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = write_all(self.master.as_fd(), &buf[..n]);
                    }
                    _ => stdin_open = false,
                }
            }
        }
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}

/// write(2) all of `bytes` to `fd`.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        let n = nix::unistd::write(fd, bytes)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::io::{Read, Write};

    fn pty() -> (OwnedFd, PathBuf) {
        open_pty(Path::new("/dev/ptmx")).unwrap()
    }

    #[test]
    fn a_pty_master_crosses_a_socket_and_still_talks_to_its_slave() {
        let (runtime, monitor) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (master, slave_path) = pty();
        assert!(
            slave_path.starts_with("/dev/pts"),
            "{}",
            slave_path.display()
        );
        send_fd(runtime.as_fd(), PTY_NAME, master.as_fd()).unwrap();
        let (name, received) = recv_fd(monitor.as_fd()).unwrap();
        assert_eq!(name, "/dev/ptmx");
        assert_ne!(received.as_raw_fd(), master.as_raw_fd());
        drop(master);

        // The program side writes to the slave; the monitor reads the
        // master it received (the line discipline turns \n into \r\n).
        let mut slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave_path)
            .unwrap();
        slave.write_all(b"hello\n").unwrap();
        let mut master = std::fs::File::from(received);
        let mut buf = [0u8; 16];
        let n = master.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello\r\n");
        // And the other way: typed on the master, read on the slave.
        master.write_all(b"ls\n").unwrap();
        let n = slave.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ls\n");

        set_window_size(master.as_fd(), 40, 120).unwrap();
        let mut size: libc::winsize = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
        let got = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(got, 0);
        assert_eq!((size.ws_row, size.ws_col), (40, 120));
    }

    #[test]
    fn the_runtime_connects_to_the_console_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            recv_fd(stream.as_fd()).map(|(name, fd)| (name, fd.as_raw_fd() >= 0))
        });
        let (master, _) = pty();
        send_console(&path, master.as_fd()).unwrap();
        assert_eq!(
            server.join().unwrap().unwrap(),
            ("/dev/ptmx".to_string(), true)
        );

        let err = send_console(&dir.path().join("nosuch.sock"), master.as_fd())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "console socket {}/nosuch.sock: connect: no such file or directory",
                dir.path().display()
            )
        );
    }

    #[test]
    fn a_message_without_a_descriptor_is_refused() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let mut a = std::fs::File::from(a);
        a.write_all(b"/dev/ptmx").unwrap();
        let err = recv_fd(b.as_fd()).unwrap_err().to_string();
        assert_eq!(err, "console socket: expected one file descriptor, got 0");
        // Two descriptors where one is expected: refused, and both closed.
        let (master, _) = pty();
        let fds = [master.as_raw_fd(), master.as_raw_fd()];
        let control = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"x")],
            &control,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let err = recv_fd(b.as_fd()).unwrap_err().to_string();
        assert!(err.contains("expected one file descriptor"), "{err}");
    }
}
