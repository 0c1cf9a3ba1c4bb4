//! Reference solution for exercise 1: one pass over the file feeds two
//! hashers, one with the compressed bytes, one with the decompressed ones.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A reader that hashes every byte it passes on.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn name(hasher: Sha256) -> String {
    format!("sha256:{:x}", hasher.finalize())
}

/// `(digest, diff_id)` of the gzip layer blob at `blob`.
pub fn layer_digests(blob: &Path) -> io::Result<(String, String)> {
    let compressed = Hashing {
        inner: io::BufReader::new(File::open(blob)?),
        hasher: Sha256::new(),
    };
    let mut gunzip = flate2::read::GzDecoder::new(compressed);
    let mut uncompressed = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = gunzip.read(&mut buf)?;
        if n == 0 {
            break;
        }
        uncompressed.update(&buf[..n]);
    }
    // The decoder stops at the end of the gzip stream; anything after it
    // is part of the blob too.
    let mut compressed = gunzip.into_inner();
    io::copy(&mut compressed, &mut io::sink())?;
    Ok((name(compressed.hasher), name(uncompressed)))
}
