//! The monitor's socket: what clients ask, and the frames of an attach.
//!
//! A client connects to `RUN/ID/monitor.sock` (a UNIX stream socket, only
//! root's: the directory is 0700) and sends one request line:
//!
//! | request | answer |
//! | --- | --- |
//! | `attach STDIN STDOUT STDERR START` (0 or 1 each) | frames, both ways, until the container exits |
//! | `start` | `ok` or `error MESSAGE`, once the runtime has started it |
//! | `kill SIGNAL` | `ok`, or `error MESSAGE` |
//! | `wait` | `exit CODE` when the container next exits |
//! | `cancel-restart` | `ok`: a container waiting to restart stays exited |
//!
//! An attach is framed, as docker's multiplexed attach stream is: one byte
//! of kind, four bytes of length (big-endian), the payload. From the
//! monitor: stdout, stderr, the exit code (decimal text, once the container
//! is done) or an error. From the client: stdin bytes, the end of stdin,
//! a window size (rows, columns: two big-endian u16). A pty's output comes
//! as stdout: a terminal has one stream.
//!
//! Man pages: unix(7).

use std::io::{self, Read, Write};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    Exit = 3,
    Error = 4,
    Resize = 5,
    StdinEof = 6,
}

impl Kind {
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Exit,
            4 => Kind::Error,
            5 => Kind::Resize,
            6 => Kind::StdinEof,
            _ => return None,
        })
    }
}

/// The largest payload a frame may carry (a sanity bound: the monitor
/// reads 64 KiB at a time).
pub const MAX_FRAME: usize = 1 << 20;

/// One frame's bytes.
pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Write one frame.
pub fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    w.write_all(&frame(kind, payload))
}

/// Read one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read(&mut head[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut head[1..])?,
    }
    let kind = Kind::from_byte(head[0])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown frame kind"))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

/// Frames taken one at a time out of bytes that arrive in pieces (the
/// monitor's side: it never blocks on a client).
#[derive(Debug, Default)]
pub struct FrameBuffer {
    bytes: Vec<u8>,
}

impl FrameBuffer {
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// The next whole frame, if one is there; `Err` for garbage.
    pub fn next_frame(&mut self) -> Result<Option<(Kind, Vec<u8>)>, &'static str> {
        if self.bytes.len() < 5 {
            return Ok(None);
        }
        let kind = Kind::from_byte(self.bytes[0]).ok_or("unknown frame kind")?;
        let len = u32::from_be_bytes([self.bytes[1], self.bytes[2], self.bytes[3], self.bytes[4]])
            as usize;
        if len > MAX_FRAME {
            return Err("frame too long");
        }
        if self.bytes.len() < 5 + len {
            return Ok(None);
        }
        let payload = self.bytes[5..5 + len].to_vec();
        self.bytes.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// The attach request's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Start the container once this client is attached (`run`, `start -a`).
    pub start: bool,
}

/// A request line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Attach(AttachRequest),
    Start,
    Kill(i32),
    Wait,
    CancelRestart,
}

impl Request {
    pub fn to_line(&self) -> String {
        let b = |v: bool| if v { "1" } else { "0" };
        match self {
            Request::Attach(a) => format!(
                "attach {} {} {} {}\n",
                b(a.stdin),
                b(a.stdout),
                b(a.stderr),
                b(a.start)
            ),
            Request::Start => "start\n".into(),
            Request::Kill(signal) => format!("kill {signal}\n"),
            Request::Wait => "wait\n".into(),
            Request::CancelRestart => "cancel-restart\n".into(),
        }
    }

    pub fn parse(line: &str) -> Option<Request> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let flag = |w: &str| match w {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        Some(match words.as_slice() {
            ["attach", i, o, e, s] => Request::Attach(AttachRequest {
                stdin: flag(i)?,
                stdout: flag(o)?,
                stderr: flag(e)?,
                start: flag(s)?,
            }),
            ["start"] => Request::Start,
            ["kill", signal] => Request::Kill(signal.parse().ok()?),
            ["wait"] => Request::Wait,
            ["cancel-restart"] => Request::CancelRestart,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_requests_round_trip() {
        let mut bytes = frame(Kind::Stdout, b"hello\n");
        bytes.extend(frame(Kind::Exit, b"3"));
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Stdout, b"hello\n".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Exit, b"3".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);

        let mut buffer = FrameBuffer::default();
        buffer.push(&bytes[..3]);
        assert_eq!(buffer.next_frame(), Ok(None));
        buffer.push(&bytes[3..]);
        assert_eq!(
            buffer.next_frame(),
            Ok(Some((Kind::Stdout, b"hello\n".to_vec())))
        );
        assert_eq!(buffer.next_frame(), Ok(Some((Kind::Exit, b"3".to_vec()))));
        assert_eq!(buffer.next_frame(), Ok(None));
        buffer.push(&[9, 0, 0, 0, 0]);
        assert!(buffer.next_frame().is_err());

        for request in [
            Request::Attach(AttachRequest {
                stdin: true,
                stdout: true,
                stderr: false,
                start: true,
            }),
            Request::Start,
            Request::Kill(15),
            Request::Wait,
            Request::CancelRestart,
        ] {
            assert_eq!(Request::parse(&request.to_line()), Some(request));
        }
        assert_eq!(Request::parse("attach 1 2 0 0"), None);
        assert_eq!(Request::parse("rm -rf /"), None);
    }
}
