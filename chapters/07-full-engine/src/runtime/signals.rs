//! `kill`'s signal argument: a name or a number, as runc reads it.
//!
//! `KILL`, `SIGKILL`, `kill` and `9` are the same signal. A number may be
//! any signal the kernel has, the real-time ones (34 to 64) included, which
//! have no names of their own.
//!
//! Man pages: signal(7), kill(2).

use std::str::FromStr;

use nix::sys::signal::Signal;

/// The highest signal number (SIGRTMAX on Linux).
const SIGRTMAX: i32 = 64;

/// Parse a signal name or number into its number.
// ANCHOR: parse_signal
pub fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "invalid signal number {n}: signals are 1 to {SIGRTMAX}"
            ))
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| format!("unknown signal {text:?}: use a name like TERM or KILL, or a number"))
}
// ANCHOR_END: parse_signal

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for text in ["KILL", "SIGKILL", "kill", "sigkill", "9"] {
            assert_eq!(parse_signal(text), Ok(9), "{text}");
        }
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("SIGUSR1"), Ok(10));
        assert_eq!(parse_signal("40"), Ok(40));
        assert_eq!(
            parse_signal("FOO").unwrap_err(),
            "unknown signal \"FOO\": use a name like TERM or KILL, or a number"
        );
        assert_eq!(
            parse_signal("0").unwrap_err(),
            "invalid signal number 0: signals are 1 to 64"
        );
        assert!(parse_signal("65").is_err());
    }
}
