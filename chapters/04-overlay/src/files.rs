//! Files written so that a crash never leaves half of one: temporary
//! names, atomic replacement, and reads with a bound.
//!
//! rename(2) within one filesystem is atomic: a reader sees the old file or
//! the new one, never a mix. So content is written under a temporary name,
//! fsynced, renamed over its final name, and the directory fsynced so the
//! rename itself survives a crash. A temporary file or directory has an
//! owner ([`TempPath`]) that removes it if anything fails first.
//!
//! Not a kernel or format idea: the one home of these helpers, used by
//! every chapter that stores content (chapter 5's store, its archives).
//! Man pages: rename(2), fsync(2), open(2) (`O_EXCL`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other writer (thread or process) is using right now: the pid,
/// a per-process counter and the clock. Creation still uses O_EXCL/mkdir, so
/// a collision is an error to retry, never a shared file.
pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// fsync a directory, so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// A temporary file or directory, removed (however deep) when dropped
/// unless [`TempPath::keep`] was called, after it was renamed into place.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    /// Takes ownership of `path`, which the caller has just created.
    pub fn new(path: PathBuf) -> TempPath {
        TempPath { path, armed: true }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// It was renamed into place: leave it.
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            let _ = crate::walk::remove_tree(&self.path);
        }
    }
}

/// A new, empty file with a [`unique_name`] in `dir`, created with
/// `O_EXCL` and `mode`, and its owner.
pub fn create_temp_file(dir: &Path, mode: u32) -> io::Result<(File, TempPath)> {
    loop {
        let path = dir.join(unique_name());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
            Ok(file) => return Ok((file, TempPath::new(path))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A new, empty directory with a [`unique_name`] in `dir`, and its owner.
pub fn create_temp_dir(dir: &Path) -> io::Result<TempPath> {
    loop {
        let path = dir.join(unique_name());
        match fs::create_dir(&path) {
            Ok(()) => return Ok(TempPath::new(path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Replaces `target` with `bytes` atomically: `<target>.tmp` written with
/// `mode` and fsynced, renamed over `target`, the directory fsynced.
/// Writers of the same `target` must hold a lock (they share the
/// temporary name); on error the temporary file is removed and the path
/// that failed returned with the error.
pub fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<(), (PathBuf, io::Error)> {
    let mut name = target.as_os_str().to_owned();
    name.push(".tmp");
    let temp = TempPath::new(PathBuf::from(name));
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(temp.path())
        .map_err(at(temp.path()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(at(temp.path()))?;
    drop(file);
    fs::rename(temp.path(), target).map_err(at(target))?;
    temp.keep();
    let dir = target.parent().unwrap_or(Path::new("."));
    sync_dir(dir).map_err(at(dir))
}

/// Reads `reader` to its end, but no more than `limit` bytes: `None` as
/// soon as it passes the limit (having read one byte past it, never more),
/// so an oversized document costs neither memory nor time.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write_atomic(&target, b"one", 0o600).unwrap();
        write_atomic(&target, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let (path, _) = write_atomic(&dir.path().join("no/such"), b"x", 0o600).unwrap_err();
        assert_eq!(path, dir.path().join("no/such.tmp"));
    }

    #[test]
    fn temporaries_are_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = create_temp_file(dir.path(), 0o644).unwrap();
        let sub = create_temp_dir(dir.path()).unwrap();
        fs::write(sub.path().join("inside"), b"x").unwrap();
        let kept = create_temp_dir(dir.path()).unwrap();
        let kept_path = kept.path().to_path_buf();
        kept.keep();
        drop((file, sub));
        let left: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, vec![kept_path]);
    }

    #[test]
    fn bounded_reads_stop_past_the_limit() {
        assert_eq!(read_bounded(&b"abc"[..], 3).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read_bounded(&b"abcd"[..], 3).unwrap(), None);
        let mut endless = io::repeat(0);
        assert_eq!(read_bounded(&mut endless, 1000).unwrap(), None);
    }
}
