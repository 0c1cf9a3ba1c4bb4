//! Sizes as docker writes them: `32m`, `1g`, `512k`, `1.5g`, `1024`.
//!
//! Kernel feature: none yet — but every memory file of a cgroup counts in
//! bytes (`memory.max`, `memory.limit_in_bytes`, `memory.current`), and
//! nobody wants to type 33554432. Docker's rule (its `go-units` package,
//! `RAMInBytes`) is: a decimal number, an optional space, an optional unit
//! letter `b k m g t p` (either case), an optional `i` and an optional `b`.
//! The units are binary: `1k` is 1024 bytes, `1m` is 1024², so `32m`,
//! `32M`, `32mb` and `32MiB` are all 33554432.
//!
//! Man pages: none; see docker-run(1) `--memory` and the kernel's
//! Documentation/admin-guide/cgroup-v2.rst ("memory.max").

/// A size that is not one: carries the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: not a size: write a number and an optional unit b, k, m, g, t or p (1k = 1024), e.g. 32m or 1.5g"
)]
pub struct SizeError(pub String);

const UNITS: [(&str, u64); 6] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
];

/// Parse a size the way `docker run --memory` does, into bytes.
///
/// Fractions are exact up to the byte, then rounded down: `1.5g` is
/// 1610612736, `0.5k` is 512.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(text.to_string());
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    // One space may separate the number from a unit, but not end the text.
    let unit = match unit.strip_prefix(' ') {
        Some("") => return Err(bad()),
        Some(rest) => rest,
        None => unit,
    }
    .to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        _ => {
            // The letter, then an optional "i", then an optional "b".
            let mut chars = unit.chars();
            let power = match chars.next() {
                Some('k') => 1,
                Some('m') => 2,
                Some('g') => 3,
                Some('t') => 4,
                Some('p') => 5,
                _ => return Err(bad()),
            };
            let rest = chars.as_str();
            if !matches!(rest, "" | "i" | "b" | "ib") {
                return Err(bad());
            }
            1u64 << (10 * power)
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(bad());
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    // Exact arithmetic: whole × unit + fraction × unit / 10^digits.
    let digits = u32::try_from(fraction.len()).map_err(|_| bad())?;
    let scale = 10u128.checked_pow(digits).ok_or_else(bad)?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    let multiplier = u128::from(multiplier);
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|b| b.checked_add(fraction * multiplier / scale))
        .ok_or_else(bad)?;
    // The kernel's counters are signed 64-bit numbers of bytes.
    u64::try_from(bytes)
        .ok()
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or_else(bad)
}

/// Format bytes for people, in binary units: `32 MiB`, `1.5 GiB`, `100 B`.
/// At most two decimals, rounded, without trailing zeros.
pub fn format_size(bytes: u64) -> String {
    let (name, unit) = UNITS
        .iter()
        .rev()
        .find(|(_, unit)| bytes >= *unit)
        .copied()
        .unwrap_or(UNITS[0]);
    let unit = u128::from(unit);
    let hundredths = (u128::from(bytes) * 100 + unit / 2) / unit;
    let (whole, fraction) = (hundredths / 100, hundredths % 100);
    match fraction {
        0 => format!("{whole} {name}"),
        f if f % 10 == 0 => format!("{whole}.{} {name}", f / 10),
        f => format!("{whole}.{f:02} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        let mib = 1u64 << 20;
        for (text, bytes) in [
            ("1024", 1024),
            ("0", 0),
            ("100b", 100),
            ("512k", 512 * 1024),
            ("32m", 32 * mib),
            ("32M", 32 * mib),
            ("32mb", 32 * mib),
            ("32MiB", 32 * mib),
            ("32 m", 32 * mib),
            ("1g", 1 << 30),
            ("1.5g", 1_610_612_736),
            ("0.5k", 512),
            ("1.0000001k", 1024),
            ("2t", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_name_the_text() {
        for text in [
            "", "m", "32x", "-1", "1.2.3", "1.", ".5m", "32mm", "32 ", "32  m", "1e3", "32mbb",
            "9e", "8p8",
        ] {
            let err = parse_size(text).unwrap_err();
            assert_eq!(err, SizeError(text.to_string()));
            assert!(
                err.to_string()
                    .starts_with(&format!("{text:?}: not a size: ")),
                "{err}"
            );
        }
        // Too big for the kernel's signed 64-bit counters.
        assert!(parse_size("8192p").is_err());
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn sizes_format_in_binary_units() {
        assert_eq!(format_size(32 << 20), "32 MiB");
        assert_eq!(format_size(6 << 20), "6 MiB");
        assert_eq!(format_size(1_610_612_736), "1.5 GiB");
        assert_eq!(format_size(100), "100 B");
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(1_431_655_765), "1.33 GiB");
        assert_eq!(format_size(parse_size("1.25g").unwrap()), "1.25 GiB");
    }
}
