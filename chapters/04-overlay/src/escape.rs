//! Names from images and containers, printed safely.
//!
//! A file name may hold any byte but `/` and NUL. A layer can name a file
//! `ESC ] 0 ; pwned BEL` (an escape sequence that retitles the terminal,
//! or worse) or `x NEWLINE A /etc/shadow` (a fake line in `diff`'s
//! output). Printed raw, such a name talks to the terminal, or to whatever
//! reads our output. So every name or path that comes from untrusted
//! content (a layer, an archive, a container's writable layer) goes
//! through [`shown`] before it is printed: control characters, a
//! backslash, Unicode's direction overrides and bytes that are not UTF-8
//! are written as escapes (`\n`, `\x1b`, `\\`, `\u{202e}`, `\xff`), the
//! way `ls --quoting-style=escape` and Rust's `{:?}` do. Everything else,
//! spaces and non-ASCII letters included, prints as it is.
//!
//! Man pages: console_codes(4) (what a terminal does with escapes),
//! ls(1) (`--quoting-style`).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// A name or path to print: its `Display` escapes what could reach the
/// terminal as anything but text.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(&'a [u8]);

/// `name`, ready to print: `format!("{}", shown(&path))`.
pub fn shown<S: AsRef<OsStr> + ?Sized>(name: &S) -> Shown<'_> {
    Shown(name.as_ref().as_bytes())
}

/// Characters that reorder the text around them on screen (the "Trojan
/// Source" trick): shown escaped, like control characters.
fn reorders(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    c if c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() || reorders(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn text_stays_and_everything_else_is_escaped() {
        let show = |bytes: &[u8]| shown(OsStr::from_bytes(bytes)).to_string();
        assert_eq!(show(b"etc/hosts"), "etc/hosts");
        assert_eq!(show("café menu.txt".as_bytes()), "café menu.txt");
        assert_eq!(show(b"\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(show(b"x\nA /etc/shadow"), "x\\nA /etc/shadow");
        assert_eq!(show(b"tab\there\r"), "tab\\there\\r");
        assert_eq!(show(b"back\\slash"), "back\\\\slash");
        assert_eq!(show(b"\x7f\xff\xfe"), "\\x7f\\xff\\xfe");
        assert_eq!(show("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(show("txt.\u{202e}exe".as_bytes()), "txt.\\u{202e}exe");
    }
}
