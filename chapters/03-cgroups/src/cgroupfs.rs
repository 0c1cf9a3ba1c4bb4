//! cgroupfs: the whole kernel interface of cgroups is small text files.
//!
//! Kernel feature: the cgroup filesystems, `cgroup` (v1) and `cgroup2`. A
//! cgroup is a directory: mkdir(2) creates one, and the kernel fills it
//! with interface files; rmdir(2) removes it, once no process is left in
//! it. Reading a file asks the kernel a question (`memory.current`),
//! writing one turns a knob (`memory.max`), and writing a PID into
//! `cgroup.procs` moves that process into the cgroup. There is no other
//! system call for any of it.
//!
//! The files come in a few formats (cgroup-v2.rst, "Interface Files"): a
//! single value, where `max` means unlimited; "flat keyed" lines of
//! `key value` (`cpu.stat`, `memory.events`, v1's `memory.oom_control`);
//! and newline-separated PIDs (`cgroup.procs`).
//!
//! Unit tests run against a fake tree of plain files in a temporary
//! directory, where two things differ, so in `cfg(test)` builds only: the
//! kernel's files do not appear by themselves after mkdir, so a write
//! creates a missing file; and rmdir refuses a directory holding regular
//! files, so they are deleted first. Real builds never create or delete a
//! file on a cgroup filesystem.
//!
//! Man pages: cgroups(7); the kernel's
//! Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/cgroups.rst.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{AccessFlags, Pid, access};

use crate::error::{CgroupError, errno_of};
use crate::mapping::{CgroupFile, Setting, missing_file_hint};
use crate::resources::{ResourceError, format_id_list, parse_id_list};

/// How long to wait for the kernel to freeze, or for killed processes to
/// leave, before giving up.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// Read a whole interface file.
pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::Read {
        path: path.to_path_buf(),
        errno: errno_of(&e),
    })
}

/// Read a single-value file, without its newline.
pub fn read_value(path: &Path) -> Result<String, CgroupError> {
    Ok(read(path)?.trim().to_string())
}

/// Read a file holding one number.
pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_value(path)?;
    text.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        text,
        expected: "a number",
    })
}

/// Read a limit: a number, or `max` (v2) / a huge number (v1) for none.
pub fn read_limit(path: &Path) -> Result<Option<u64>, CgroupError> {
    let text = read_value(path)?;
    if text == "max" || text == "-1" {
        return Ok(None);
    }
    let value: u64 = text.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        text,
        expected: "a number or \"max\"",
    })?;
    // v1 shows "unlimited" as the largest page-aligned i64 (9223372036854771712).
    Ok((value < 1 << 62).then_some(value))
}

/// The value of `key` in a flat-keyed file (`cpu.stat`, `memory.events`):
/// `None` when the file has no such line.
pub fn read_keyed(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let text = read(path)?;
    let Some(value) = text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().to_string())
    }) else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        text: format!("{key} {value}"),
        expected: "a number after the key",
    })
}

/// The line `file.key` of the flat-keyed `file` in cgroup `dir`.
pub fn read_entry(dir: &Path, file: CgroupFile) -> Result<Option<u64>, CgroupError> {
    read_keyed(&dir.join(file.name), file.key.unwrap_or_default())
}

/// Write `value` to an interface file in one write(2), as the kernel wants.
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let error = |e: std::io::Error| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        errno: errno_of(&e),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(cfg!(test))
        .open(path)
        .map_err(error)?;
    file.write_all(value.as_bytes()).map_err(error)
}

/// Whether this process may write `path` (access(2) with W_OK).
pub fn writable(path: &Path) -> bool {
    access(path, AccessFlags::W_OK).is_ok()
}

/// The processes in cgroup `dir` (its `cgroup.procs`; none if the cgroup
/// is gone). v1 does not promise them sorted or unique; these are both.
pub fn procs(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(CgroupError::Read {
                path,
                errno: errno_of(&e),
            });
        }
    };
    let mut pids = text
        .split_whitespace()
        .map(|pid| {
            pid.parse()
                .map(Pid::from_raw)
                .map_err(|_| CgroupError::Parse {
                    path: path.clone(),
                    text: pid.to_string(),
                    expected: "a PID",
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    pids.sort();
    pids.dedup();
    Ok(pids)
}

/// The child cgroups of `dir` (its subdirectories).
pub fn children(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(CgroupError::Syscall {
                call: "opendir",
                path: dir.to_path_buf(),
                errno: errno_of(&e),
            });
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The processes in `dir` and in every cgroup below it.
pub fn procs_in_subtree(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let mut pids = procs(dir)?;
    for child in children(dir)? {
        pids.extend(procs_in_subtree(&child)?);
    }
    Ok(pids)
}

/// mkdir(2) a cgroup. `Ok(false)` when it already existed.
pub fn make_dir(path: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::Syscall {
            call: "mkdir",
            path: path.to_path_buf(),
            errno: errno_of(&e),
        }),
    }
}

/// rmdir(2) a cgroup and, first, any cgroups the container made below it.
/// The kernel answers EBUSY while a process is still leaving, so that is
/// retried for a while. A cgroup that is already gone is fine.
pub fn remove_dir(path: &Path) -> Result<(), CgroupError> {
    for child in children(path)? {
        remove_dir(&child)?;
    }
    if cfg!(test) {
        // A fake tree: the "interface files" are plain files.
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let errno = match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => errno_of(&e),
        };
        if errno != Errno::EBUSY || start.elapsed() > WAIT_LIMIT {
            return Err(CgroupError::Syscall {
                call: "rmdir",
                path: path.to_path_buf(),
                errno,
            });
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Poll `done` until it says yes or `limit` has passed: `Ok(false)` then.
/// cgroupfs can also be watched with poll(2) on `cgroup.events`; polling
/// with a short sleep is simpler and fast enough for a CLI.
pub fn wait_until(
    limit: Duration,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Send SIGKILL to each of `pids` (found in `dir`). A process that is
/// already gone (ESRCH) is fine.
pub fn kill_each(dir: &Path, pids: &[Pid]) -> Result<(), CgroupError> {
    for &pid in pids {
        match kill(pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => {
                return Err(CgroupError::Kill {
                    pid: pid.as_raw(),
                    path: dir.to_path_buf(),
                    errno,
                });
            }
        }
    }
    Ok(())
}

/// Apply one [`Setting`] in cgroup `dir`: write its value, or its
/// fallback's when the kernel offers only that file. A missing file is
/// [`CgroupError::Unsupported`], or skipped when the setting is optional.
pub fn apply(dir: &Path, setting: &Setting) -> Result<(), CgroupError> {
    let path = dir.join(setting.file.name);
    if let Some((fallback, value)) = &setting.fallback {
        let other = dir.join(fallback.name);
        if !path.exists() && other.exists() {
            return write(&other, value);
        }
    }
    match write(&path, &setting.value) {
        Err(CgroupError::Write { errno, .. })
            if errno == Errno::ENOENT && dir.is_dir() && !path.exists() =>
        {
            if setting.required {
                Err(CgroupError::Unsupported {
                    what: setting.flag,
                    path,
                    hint: missing_file_hint(setting.file.name),
                })
            } else {
                Ok(())
            }
        }
        other => other,
    }
}

/// Check that the CPUs (or memory nodes) in `wanted` are all in the list
/// in `allowed_path`: the kernel would refuse the write with EINVAL, and
/// this says which ones and why.
pub fn check_within(
    flag: &'static str,
    wanted: &str,
    allowed_path: &Path,
) -> Result<(), CgroupError> {
    let allowed_text = read_value(allowed_path)?;
    let allowed = parse_id_list(&allowed_text).map_err(|_| CgroupError::Parse {
        path: allowed_path.to_path_buf(),
        text: allowed_text.clone(),
        expected: "a list like 0-3,5",
    })?;
    let asked = parse_id_list(wanted).map_err(|why| ResourceError::Invalid {
        flag,
        value: wanted.to_string(),
        why,
    })?;
    let outside: BTreeSet<u32> = asked.difference(&allowed).copied().collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(CgroupError::CpusetOutside {
        flag,
        wanted: wanted.to_string(),
        outside: format_id_list(&outside),
        path: allowed_path.to_path_buf(),
        allowed: allowed_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_formats_read_as_the_kernel_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        assert_eq!(read_u64(&file("memory.current", "4096\n")).unwrap(), 4096);
        assert_eq!(read_limit(&file("memory.max", "max\n")).unwrap(), None);
        assert_eq!(
            read_limit(&file("memory.limit_in_bytes", "9223372036854771712\n")).unwrap(),
            None
        );
        assert_eq!(read_limit(&file("pids.max", "64\n")).unwrap(), Some(64));
        let stat = file(
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nnr_throttled 3\n",
        );
        assert_eq!(read_keyed(&stat, "usage_usec").unwrap(), Some(1500));
        assert_eq!(read_keyed(&stat, "nr_throttled").unwrap(), Some(3));
        assert_eq!(read_keyed(&stat, "nr_periods").unwrap(), None);
        assert_eq!(read_keyed(&stat, "usage").unwrap(), None);
        let procs_dir = dir.path().join("leaf");
        std::fs::create_dir(&procs_dir).unwrap();
        assert!(procs(&procs_dir).unwrap().is_empty());
        std::fs::write(procs_dir.join("cgroup.procs"), "12\n7\n12\n").unwrap();
        assert_eq!(
            procs(&procs_dir).unwrap(),
            [Pid::from_raw(7), Pid::from_raw(12)]
        );
        let err = read_u64(&file("bad", "lots\n")).unwrap_err().to_string();
        assert!(
            err.ends_with("bad: unexpected contents \"lots\": expected a number"),
            "{err}"
        );
        let err = read(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(
            err.starts_with("read ") && err.ends_with("missing: ENOENT: No such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn writes_name_the_file_and_the_errno() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("gone/memory.max"), "4096")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("write "), "{err}");
        assert!(
            err.ends_with("gone/memory.max: ENOENT: No such file or directory (writing \"4096\")"),
            "{err}"
        );
    }

    #[test]
    fn cpusets_are_checked_against_the_allowed_list() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("cpuset.cpus.effective");
        std::fs::write(&allowed, "0-1\n").unwrap();
        check_within("--cpuset-cpus", "0,1", &allowed).unwrap();
        let err = check_within("--cpuset-cpus", "1-4", &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--cpuset-cpus 1-4: 2-4 not available here: "),
            "{err}"
        );
        assert!(
            err.ends_with("cpuset.cpus.effective allows only 0-1"),
            "{err}"
        );
    }

    #[test]
    fn cgroup_dirs_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("berth");
        assert!(make_dir(&cg).unwrap());
        assert!(!make_dir(&cg).unwrap());
        std::fs::create_dir(cg.join("nested")).unwrap();
        write(&cg.join("memory.max"), "max").unwrap();
        remove_dir(&cg).unwrap();
        assert!(!cg.exists());
        remove_dir(&cg).unwrap();
        assert!(wait_until(Duration::from_millis(5), || Ok(false)).is_ok_and(|done| !done));
    }
}
