//! `mkrootfs`: the small root filesystem every chapter, test and page of the
//! book runs, made from what this machine already has — no network.
//!
//! A root filesystem is just a directory tree that looks like `/`: programs
//! in `/bin`, the files they load, `/etc/passwd`, and empty mount points
//! (`/proc`, `/dev`, `/sys`) for later chapters. Two ways to fill it:
//!
//! - **busybox**: one static binary that is `sh`, `ls`, `ps` and 300 more
//!   programs, chosen by the name it is called as (`argv[0]`). The rootfs is
//!   that binary plus one symlink per program — about 2 MB.
//! - **host**: the host's own `sh`, `ls`, `cat`, ... plus every shared library
//!   and the dynamic loader they need, found by reading their ELF headers
//!   (see [`crate::elf`]).
//!
//! The result is deterministic: same host, same tree, byte for byte (sorted
//! work, fixed modes, and every timestamp set to `SOURCE_DATE_EPOCH` or 0), so
//! the layer digests of later chapters are stable.
//!
//! Man pages: busybox(1), hier(7), ld.so(8), utimensat(2).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::elf::{self, ElfError};

/// Where to take the programs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// busybox if the host has a static one, else the host's programs.
    Auto,
    /// The host's static busybox; an error if there is none.
    Busybox,
    /// The host's programs and the libraries they load.
    Host,
}

/// The programs a host-made rootfs gets. `sh` is required; the rest are
/// copied when the host has them.
pub const HOST_PROGRAMS: [&str; 17] = [
    "sh", "ls", "cat", "echo", "env", "hostname", "id", "ps", "mount", "umount", "sleep", "true",
    "false", "mkdir", "rm", "touch", "kill",
];

/// Where static busybox lives on common distributions.
const BUSYBOX_PATHS: [&str; 4] = [
    "/bin/busybox",
    "/usr/bin/busybox",
    "/sbin/busybox",
    "/usr/bin/busybox-static",
];

/// What `mkrootfs` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The source actually used (never `Auto`).
    pub source: Source,
    /// Host programs that were asked for but not found.
    pub missing: Vec<String>,
    /// Number of entries (files, directories, links) in the new tree.
    pub entries: usize,
}

impl Report {
    /// The line the `mkrootfs` commands print: where, how big, from what.
    pub fn summary(&self, dir: &Path) -> String {
        let from = match self.source {
            Source::Busybox => "busybox",
            _ => "host programs and their libraries",
        };
        format!(
            "rootfs {}: {} entries, from {from}",
            dir.display(),
            self.entries
        )
    }

    /// A note for each program the host lacks, so the rootfs lacks it too.
    pub fn notes(&self) -> impl Iterator<Item = String> + '_ {
        self.missing
            .iter()
            .map(|program| format!("note: the host has no {program}; the rootfs has none either"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{0}: exists and is not empty: choose a new directory, or remove it first")]
    NotEmpty(PathBuf),
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error(
        "no static busybox on this host (looked in {0}): install busybox-static, or use --from host"
    )]
    NoBusybox(String),
    #[error("no /bin/sh on this host: a rootfs needs a shell; install busybox-static or dash")]
    NoShell,
    #[error("{library} (needed by {needed_by}): not found in {dirs}")]
    LibraryNotFound {
        library: String,
        needed_by: String,
        dirs: String,
    },
    #[error("{path}: a symlink loop (more than 40 links)")]
    SymlinkLoop { path: String },
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("run {path} --list-full: {reason}")]
    BusyboxList { path: String, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |cause| RootfsError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Build a rootfs in `target` (created if needed; must be empty) from the
/// host whose `/` is `host_root`. On error, everything created is removed.
// ANCHOR: mkrootfs
pub fn mkrootfs(target: &Path, source: Source, host_root: &Path) -> Result<Report, RootfsError> {
    let existed = target.exists();
    if existed
        && fs::read_dir(target)
            .map_err(io_err(target))?
            .next()
            .is_some()
    {
        return Err(RootfsError::NotEmpty(target.to_path_buf()));
    }
    let result = build(target, source, host_root);
    if result.is_err() {
        // Leave nothing half-built behind: remove what we made.
        let _ = if existed {
            fs::read_dir(target)
                .into_iter()
                .flatten()
                .flatten()
                .try_for_each(|e| {
                    let p = e.path();
                    if p.is_dir() && !p.is_symlink() {
                        fs::remove_dir_all(p)
                    } else {
                        fs::remove_file(p)
                    }
                })
        } else {
            fs::remove_dir_all(target)
        };
    }
    result
}
// ANCHOR_END: mkrootfs

// ANCHOR: mkrootfs_build
fn build(target: &Path, source: Source, host_root: &Path) -> Result<Report, RootfsError> {
    let mut tree = Tree {
        host: host_root.to_path_buf(),
        target: target.to_path_buf(),
    };
    // The skeleton: empty mount points for later chapters, a sticky /tmp.
    tree.dir("/", 0o755)?;
    for (dir, mode) in [
        ("/etc", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/dev", 0o755),
        ("/tmp", 0o1777),
        ("/root", 0o700),
    ] {
        tree.dir(dir, mode)?;
    }
    tree.file(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    tree.file("/etc/group", "root:x:0:\nnogroup:x:65534:\n")?;
    tree.file("/etc/hostname", "berth\n")?;

    let busybox = find_static_busybox(host_root);
    let (used, missing) = match (source, busybox) {
        (Source::Auto | Source::Busybox, Some(busybox)) => {
            (Source::Busybox, add_busybox(&mut tree, &busybox)?)
        }
        (Source::Busybox, None) => return Err(RootfsError::NoBusybox(BUSYBOX_PATHS.join(", "))),
        (Source::Auto | Source::Host, _) => (Source::Host, add_host_programs(&mut tree)?),
    };
    let entries = set_fixed_times(target, fixed_time())?;
    Ok(Report {
        source: used,
        missing,
        entries,
    })
}
// ANCHOR_END: mkrootfs_build

/// The first static busybox on the host, as an absolute host path.
fn find_static_busybox(host_root: &Path) -> Option<String> {
    BUSYBOX_PATHS.iter().find_map(|path| {
        let needs = elf::read_needs(host_root, path).ok()?;
        elf::is_static(&needs).then(|| path.to_string())
    })
}

/// busybox at /bin/busybox, and one relative symlink per applet.
// ANCHOR: add_busybox
fn add_busybox(tree: &mut Tree, busybox: &str) -> Result<Vec<String>, RootfsError> {
    let host_path = tree.host_path(busybox);
    tree.copy_file(&host_path, "/bin/busybox")?;
    // busybox knows where each applet belongs: "bin/ls", "usr/bin/env", ...
    let out = Command::new(&host_path)
        .arg("--list-full")
        .output()
        .map_err(|e| RootfsError::BusyboxList {
            path: busybox.into(),
            reason: e.to_string(),
        })?;
    let list = String::from_utf8_lossy(&out.stdout);
    let applets: BTreeSet<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for applet in applets {
        let path = format!("/{applet}");
        // /linuxrc is for initramfs images, not containers.
        if path == "/bin/busybox" || path == "/linuxrc" || !is_clean(&path) {
            continue;
        }
        // "usr/bin/env" -> "../../bin/busybox": relative links work both inside
        // the container and when the tree is looked at from the host.
        let depth = path.matches('/').count() - 1;
        let link = format!("{}bin/busybox", "../".repeat(depth));
        tree.parent_dirs(&path)?;
        tree.symlink(&link, &path)?;
    }
    Ok(vec![])
}
// ANCHOR_END: add_busybox

/// The host's programs, their loader and their libraries.
fn add_host_programs(tree: &mut Tree) -> Result<Vec<String>, RootfsError> {
    let mut missing = Vec::new();
    let mut elves = Vec::new();
    for program in HOST_PROGRAMS {
        let found = ["/bin", "/usr/bin", "/sbin", "/usr/sbin"]
            .iter()
            .map(|dir| format!("{dir}/{program}"))
            .find(|p| tree.host_path(p).is_file());
        match found {
            Some(path) => elves.push(tree.mirror(&path)?),
            None if program == "sh" => return Err(RootfsError::NoShell),
            None => missing.push(program.to_string()),
        }
    }
    // Follow DT_NEEDED from every program, breadth first, each library once.
    let dirs = elf::loader_dirs(&tree.host);
    let mut seen = BTreeSet::new();
    while let Some(path) = elves.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let needs = elf::read_needs(&tree.host, &path)?;
        if let Some(interpreter) = &needs.interpreter {
            elves.push(tree.mirror(interpreter)?);
        }
        for library in &needs.needed {
            let found = elf::find_library(&tree.host, library, &needs, &dirs).ok_or_else(|| {
                RootfsError::LibraryNotFound {
                    library: library.clone(),
                    needed_by: path.clone(),
                    dirs: dirs.join(":"),
                }
            })?;
            elves.push(tree.mirror(&found)?);
        }
    }
    Ok(missing)
}

/// The host tree we copy from and the rootfs we copy into.
struct Tree {
    host: PathBuf,
    target: PathBuf,
}

impl Tree {
    fn host_path(&self, abs: &str) -> PathBuf {
        self.host.join(abs.trim_start_matches('/'))
    }
    fn target_path(&self, abs: &str) -> PathBuf {
        self.target.join(abs.trim_start_matches('/'))
    }

    fn dir(&self, abs: &str, mode: u32) -> Result<(), RootfsError> {
        let path = self.target_path(abs);
        if !path.is_dir() {
            fs::create_dir(&path).map_err(io_err(&path))?;
        }
        // Set the mode explicitly: create_dir is subject to the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_err(&path))
    }

    fn parent_dirs(&self, abs: &str) -> Result<(), RootfsError> {
        let mut dir = String::new();
        let parents: Vec<&str> = abs.trim_start_matches('/').split('/').collect();
        for part in &parents[..parents.len() - 1] {
            dir = format!("{dir}/{part}");
            if !self.target_path(&dir).exists() {
                self.dir(&dir, 0o755)?;
            }
        }
        Ok(())
    }

    fn file(&self, abs: &str, contents: &str) -> Result<(), RootfsError> {
        let path = self.target_path(abs);
        fs::write(&path, contents).map_err(io_err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io_err(&path))
    }

    fn symlink(&self, link: &str, abs: &str) -> Result<(), RootfsError> {
        let path = self.target_path(abs);
        if path.symlink_metadata().is_err() {
            symlink(link, &path).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Copy a host file; setuid/setgid bits are dropped (a rootfs made by
    /// root must not hand out set-user-ID-root programs).
    fn copy_file(&self, host: &Path, abs: &str) -> Result<(), RootfsError> {
        let path = self.target_path(abs);
        self.parent_dirs(abs)?;
        fs::copy(host, &path).map_err(io_err(host))?;
        let mode = fs::metadata(host)
            .map_err(io_err(host))?
            .permissions()
            .mode()
            & 0o777;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_err(&path))
    }

    /// Copy the host file at absolute path `abs` to the same path in the
    /// rootfs, recreating every symlink met on the way (so `/bin/sh` stays a
    /// link to `dash`, and a merged-/usr host's `/lib64 -> usr/lib64` stays a
    /// link). Returns the file's real path, with no symlinks left in it.
    fn mirror(&self, abs: &str) -> Result<String, RootfsError> {
        let mut path = abs.to_string();
        'restart: for _ in 0..40 {
            let parts: Vec<String> = normalize(&path);
            let mut done = String::new();
            for (i, part) in parts.iter().enumerate() {
                let here = format!("{done}/{part}");
                let host = self.host_path(&here);
                let meta = host.symlink_metadata().map_err(io_err(&host))?;
                if meta.file_type().is_symlink() {
                    let link = fs::read_link(&host).map_err(io_err(&host))?;
                    self.symlink(&link.to_string_lossy(), &here)?;
                    // Go on from where the link points, then the rest.
                    let base = if link.is_absolute() {
                        String::new()
                    } else {
                        done.clone()
                    };
                    path = format!(
                        "{base}/{}/{}",
                        link.to_string_lossy(),
                        parts[i + 1..].join("/")
                    );
                    continue 'restart;
                }
                if i + 1 == parts.len() {
                    if !self.target_path(&here).exists() {
                        self.copy_file(&host, &here)?;
                    }
                } else if !self.target_path(&here).exists() {
                    self.dir(&here, 0o755)?;
                }
                done = here;
            }
            return Ok(done);
        }
        Err(RootfsError::SymlinkLoop {
            path: abs.to_string(),
        })
    }
}

/// Split an absolute path into components, resolving `.` and `..` lexically
/// (sound here: every prefix was already checked to be a real directory).
fn normalize(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts
}

/// A path with only plain components (no `..`, no empty parts).
fn is_clean(path: &str) -> bool {
    Path::new(path)
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// `SOURCE_DATE_EPOCH` if set (the reproducible-builds convention), else 0.
fn fixed_time() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Give every entry under `root` (links included) the same atime and mtime.
/// Returns how many entries there are.
fn set_fixed_times(root: &Path, secs: i64) -> Result<usize, RootfsError> {
    // Collect the whole tree first (parents before children), then set the
    // times deepest first: creating nothing more, nothing touches them again.
    let mut all = vec![root.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        let path = all[i].clone();
        if path.symlink_metadata().map_err(io_err(&path))?.is_dir() {
            let mut children = Vec::new();
            for entry in fs::read_dir(&path).map_err(io_err(&path))? {
                children.push(entry.map_err(io_err(&path))?.path());
            }
            children.sort();
            all.extend(children);
        }
        i += 1;
    }
    let t = TimeSpec::new(secs, 0);
    for path in all.iter().rev() {
        utimensat(AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| io_err(path)(io::Error::from(e)))?;
    }
    Ok(all.len() - 1)
}
