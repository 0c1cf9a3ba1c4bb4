//! Content addresses: `sha256:<hex>` digests, and checking content against them.
//!
//! Everything in an image is named by the hash of its bytes: each layer
//! tarball, the configuration, the manifest itself. A name like
//! `sha256:e3b0c442…` is therefore also a checksum: whoever hands us the
//! bytes cannot change them without changing the name, so a pulled blob is
//! trusted only once its bytes hash back to the digest we asked for. This
//! module parses and prints digests, hashes bytes ([`Digest::of_bytes`]),
//! hashes a stream as it is written ([`Verifier`]), hashes what a reader
//! or writer passes on ([`Hashing`], the one hash-while-streaming adapter
//! every chapter uses) and checks a reader against an expected digest
//! ([`Digest::verify_reader`]).
//!
//! Specs: the OCI image-spec, `descriptor.md` section "Digests" (the
//! grammar `algorithm ":" encoded`, and the registered algorithms sha256 —
//! 64 lowercase hex digits — and sha512 — 128); FIPS 180-4 for the hashes.

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;

use sha2::Digest as _;

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used before the ':' in a digest.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many hex digits the encoded part has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed, validated digest such as `sha256:e3b0c442…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest {text:?}: expected ALGORITHM:HEX, such as sha256:<64 lowercase hex digits>")]
    MissingColon { text: String },
    #[error("digest {text:?}: unknown algorithm {algorithm:?}: use sha256 or sha512")]
    UnknownAlgorithm { text: String, algorithm: String },
    #[error(
        "digest {text:?}: the hex part must be {} lowercase hex digits",
        .algorithm.hex_len()
    )]
    BadHex { text: String, algorithm: Algorithm },
    #[error(
        "content does not match its digest: expected {expected}, got {actual}: \
         the download or the stored file is corrupt; remove it and fetch it again"
    )]
    Mismatch { expected: Digest, actual: Digest },
    #[error("reading content to check against {expected}: {cause}")]
    Io {
        expected: Digest,
        cause: std::io::Error,
    },
}

impl Digest {
    /// Parses `ALGORITHM:HEX`, insisting on the exact length and lowercase.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let Some((name, hex)) = text.split_once(':') else {
            return Err(DigestError::MissingColon {
                text: text.to_string(),
            });
        };
        let Some(algorithm) = Algorithm::from_name(name) else {
            return Err(DigestError::UnknownAlgorithm {
                text: text.to_string(),
                algorithm: name.to_string(),
            });
        };
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(lower_hex) {
            return Err(DigestError::BadHex {
                text: text.to_string(),
                algorithm,
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes`.
    pub fn of_bytes(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut verifier = Verifier::new(algorithm);
        verifier.update(bytes);
        verifier.finish().0
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part, after the ':'.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Where a content store keeps this blob, relative to its `blobs/`
    /// directory: `sha256/<hex>` (the OCI image layout's scheme).
    pub fn blob_path(&self) -> PathBuf {
        PathBuf::from(self.algorithm.name()).join(&self.hex)
    }

    /// Reads `reader` to its end, hashing as it goes, and returns how many
    /// bytes it held if they hash to this digest.
    pub fn verify_reader(&self, mut reader: impl Read) -> Result<u64, DigestError> {
        let mut verifier = Verifier::new(self.algorithm);
        std::io::copy(&mut reader, &mut verifier).map_err(|cause| DigestError::Io {
            expected: self.clone(),
            cause,
        })?;
        let (actual, len) = verifier.finish();
        if actual != *self {
            return Err(DigestError::Mismatch {
                expected: self.clone(),
                actual,
            });
        }
        Ok(len)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Digest, DigestError> {
        Digest::parse(text)
    }
}

/// Digests appear in JSON (manifests, indexes) as plain strings.
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// A sink that hashes and counts what is written to it, so content can be
/// checked while it is being copied (`io::copy(&mut body, &mut tee)`)
/// rather than read twice.
pub struct Verifier {
    hasher: Hasher,
    len: u64,
}

impl Verifier {
    pub fn new(algorithm: Algorithm) -> Verifier {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        };
        Verifier { hasher, len: 0 }
    }

    /// Hashes `bytes` (what `write` does, without the `io::Result`).
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
        self.len += bytes.len() as u64;
    }

    /// The digest of everything written, and how many bytes that was.
    pub fn finish(self) -> (Digest, u64) {
        let (algorithm, hash) = match self.hasher {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = hash.iter().map(|b| format!("{b:02x}")).collect();
        (Digest { algorithm, hex }, self.len)
    }
}

impl Write for Verifier {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader or a writer that hashes and counts every byte passing through
/// it to or from `inner`: a layer is hashed while it is written (chapter
/// 4's commit), a blob while it is downloaded or unpacked (chapter 5), so
/// content is never read twice.
pub struct Hashing<T> {
    inner: T,
    verifier: Verifier,
}

impl<T> Hashing<T> {
    /// Wraps `inner`, hashing with `algorithm`.
    pub fn new(inner: T, algorithm: Algorithm) -> Hashing<T> {
        Hashing {
            inner,
            verifier: Verifier::new(algorithm),
        }
    }

    /// The wrapped reader or writer (reading or writing through it directly
    /// bypasses the hash).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The digest of what passed through, and how many bytes that was.
    pub fn finish(self) -> (Digest, u64) {
        self.verifier.finish()
    }

    /// [`Hashing::finish`], and the wrapped reader or writer back.
    pub fn into_parts(self) -> (Digest, u64, T) {
        let (digest, len) = self.verifier.finish();
        (digest, len, self.inner)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn parses_good_digests() {
        let d = Digest::parse(ABC).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(&d.hex()[..8], "ba7816bf");
        assert_eq!(d.to_string(), ABC);
        assert_eq!(
            d.blob_path(),
            PathBuf::from("sha256").join(&ABC["sha256:".len()..])
        );
        let long = format!("sha512:{}", "0a".repeat(64));
        let d = Digest::parse(&long).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.to_string(), long);
    }

    #[test]
    fn refuses_bad_digests() {
        let cases = [
            (
                "sha256:ABC",
                "digest \"sha256:ABC\": the hex part must be 64 lowercase hex digits",
            ),
            (
                &ABC.to_uppercase().replace("SHA256", "sha256"),
                "the hex part must be 64 lowercase hex digits",
            ),
            (&ABC[..ABC.len() - 1], "must be 64 lowercase hex digits"),
            (&format!("{ABC}0"), "must be 64 lowercase hex digits"),
            (
                &format!("sha512:{}", "a".repeat(64)),
                "must be 128 lowercase hex digits",
            ),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "digest \"md5:d41d8cd98f00b204e9800998ecf8427e\": unknown algorithm \"md5\": use sha256 or sha512",
            ),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "expected ALGORITHM:HEX",
            ),
            ("", "digest \"\": expected ALGORITHM:HEX"),
        ];
        for (text, want) in cases {
            let err = Digest::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn hashes_known_values() {
        assert_eq!(Digest::of_bytes(Algorithm::Sha256, b"").to_string(), EMPTY);
        assert_eq!(Digest::of_bytes(Algorithm::Sha256, b"abc").to_string(), ABC);
        assert!(
            Digest::of_bytes(Algorithm::Sha512, b"abc")
                .to_string()
                .starts_with("sha512:ddaf35a193617aba")
        );
    }

    #[test]
    fn verifier_streams_like_of_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut v = Verifier::new(Algorithm::Sha256);
        for chunk in data.chunks(777) {
            v.write_all(chunk).unwrap();
        }
        let (digest, len) = v.finish();
        assert_eq!(digest, Digest::of_bytes(Algorithm::Sha256, &data));
        assert_eq!(len, data.len() as u64);
        assert_eq!(digest.verify_reader(&data[..]).unwrap(), 100_000);
    }

    #[test]
    fn hashing_sees_what_passes_both_ways() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
        let mut reader = Hashing::new(&data[..], Algorithm::Sha512);
        let mut copied = Vec::new();
        std::io::copy(&mut reader, &mut copied).unwrap();
        assert_eq!(copied, data);
        let want = Digest::of_bytes(Algorithm::Sha512, &data);
        assert_eq!(reader.finish(), (want.clone(), 50_000));
        let mut writer = Hashing::new(Vec::new(), Algorithm::Sha512);
        writer.write_all(&data).unwrap();
        let (digest, len, out) = writer.into_parts();
        assert_eq!((digest, len), (want, 50_000));
        assert_eq!(out, data);
    }

    #[test]
    fn verify_reader_reports_mismatch() {
        let expected = Digest::parse(EMPTY).unwrap();
        match expected.verify_reader(&b"abc"[..]) {
            Err(DigestError::Mismatch {
                expected: e,
                actual,
            }) => {
                assert_eq!(e.to_string(), EMPTY);
                assert_eq!(actual.to_string(), ABC);
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let err = expected.verify_reader(&b"abc"[..]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("expected {EMPTY}, got {ABC}")),
            "{err}"
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let d = Digest::parse(ABC).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:x\"").is_err());
    }
}
