//! The attacks a root process in a container tries on the host, written
//! once and run by every chapter from 2 on against its own `run` (see
//! [`attack_tests!`](crate::attack_tests)). Each attack is tried for real,
//! as root, and the test asserts that it failed *and* that the host is
//! unchanged. A chapter describes how to start its containers with a
//! [`Chapter`].
//!
//! The attacks (issue 11): mount a filesystem; make a block device node of
//! the host's root disk and read or mount it; remount `/sys` read-write;
//! write `/proc/sys/kernel/core_pattern` or another read-only path; mount a cgroup hierarchy and raise
//! the container's own limits; read a host file through a descriptor the
//! engine inherited; read masked `/proc` paths; rewrite the engine binary
//! through `/proc/PID/exe` (CVE-2019-5736), through `exec` and through
//! `run`. And the other side: the expected capabilities and no_new_privs,
//! for `run` and `exec`, and what `--privileged` really gives.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::probe::{PROBE_IN_CONTAINER, ProbeRootfs, probe_rootfs};
use crate::{BackgroundEngine, LEAKED_FD, Run, leak_fd, require_root};

/// Start a container: `run` with `flags` on the rootfs at `rootfs`, running
/// `cmd`, in the chapter's own command-line shape.
pub type RunCommand = Box<dyn Fn(&Path, &[&str], &[&str]) -> Command>;

/// `exec PID CMD...` with the given engine binary (the attack uses a copy).
pub type ExecCommand = Box<dyn Fn(&Path, i32, &[&str]) -> Command>;

/// What the attacks need to know about a chapter.
pub struct Chapter {
    /// Its binary's name, for messages (`ch02-namespaces`).
    pub name: &'static str,
    /// The binary itself (the /proc/self/exe attack runs a copy of it).
    pub binary: PathBuf,
    pub run: RunCommand,
    /// `None` for the chapters without an `exec` command.
    pub exec: Option<ExecCommand>,
    /// The limit flags the chapter's `run` takes and the values they set,
    /// `None` before chapter 3.
    pub limits: Option<Limits>,
    /// The capabilities root in a default container keeps, as the probe
    /// prints them (`CHOWN,DAC_OVERRIDE,...`).
    pub default_capabilities: String,
    /// A state or store directory the chapter's commands use, removed with
    /// the chapter.
    pub state: Option<tempfile::TempDir>,
}

/// `--memory 64m --pids-limit 64`, and what the container's cgroup must
/// keep saying.
pub struct Limits {
    pub flags: Vec<&'static str>,
    pub memory_bytes: u64,
    pub pids: u64,
}

impl Limits {
    /// The limits every chapter from 3 on runs the attacks with.
    pub fn standard() -> Limits {
        Limits {
            flags: vec!["--memory", "64m", "--pids-limit", "64"],
            memory_bytes: 64 << 20,
            pids: 64,
        }
    }
}

impl Chapter {
    /// Run a container to its end and capture what it did.
    pub fn run_to_end(&self, rootfs: &Path, flags: &[&str], cmd: &[&str]) -> Run {
        Run::capture((self.run)(rootfs, flags, cmd))
    }

    /// The probe inside a default container.
    fn probe(&self, rootfs: &Path, flags: &[&str], facts: &[&str]) -> Run {
        let mut cmd = vec![PROBE_IN_CONTAINER];
        cmd.extend(facts);
        self.run_to_end(rootfs, flags, &cmd)
    }

    fn limit_flags(&self) -> Vec<&'static str> {
        self.limits
            .as_ref()
            .map(|l| l.flags.clone())
            .unwrap_or_default()
    }
}

/// The lines of `out` that start with `prefix`, without it.
fn values<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

// ---- the capability sets ----

/// Root in a default container has exactly the chapter's default set
/// (effective, permitted, bounding), nothing inheritable or ambient, and
/// no_new_privs; and `exec` joins with the same.
pub fn capabilities_are_the_default_set(ch: &Chapter) {
    if !require_root("capabilities_are_the_default_set") {
        return;
    }
    let r = probe_rootfs();
    let run = ch.probe(&r.path, &[], &["capabilities", "no_new_privs"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_default_restrictions(ch, &run.stdout(), "run");
    // A user other than root keeps no capability across its exec (docker's
    // behaviour too), though its bounding set is the same.
    let nobody = ch.probe(&r.path, &["-u", "65534:65534"], &["capabilities"]);
    let out = nobody.stdout();
    assert_eq!(
        values(&out, "capabilities: eff "),
        ["none"],
        "{}",
        nobody.transcript()
    );
    assert_eq!(
        values(&out, "capabilities: bnd "),
        [ch.default_capabilities.as_str()]
    );

    let Some(exec) = &ch.exec else { return };
    let script = "echo up; sleep 20";
    let engine = BackgroundEngine::start((ch.run)(&r.path, &[], &["sh", "-c", script]));
    let mut engine = engine;
    engine.expect_stdout(b"up\n");
    let joined = Run::capture(exec(
        &ch.binary,
        engine.pid,
        &[PROBE_IN_CONTAINER, "capabilities", "no_new_privs"],
    ));
    // Stopped as a user would, so the engine removes what it made (a
    // SIGKILL, which dropping it sends, would leave its cgroup behind).
    engine.terminate();
    drop(engine);
    assert_eq!(joined.code(), Some(0), "{}", joined.transcript());
    check_default_restrictions(ch, &joined.stdout(), "exec");
}

fn check_default_restrictions(ch: &Chapter, out: &str, how: &str) {
    let want = ch.default_capabilities.as_str();
    for set in ["bnd", "prm", "eff"] {
        assert_eq!(
            values(out, &format!("capabilities: {set} ")),
            [want],
            "{how}: the {set} set of root in the container:\n{out}"
        );
    }
    for set in ["inh", "amb"] {
        assert_eq!(
            values(out, &format!("capabilities: {set} ")),
            ["none"],
            "{how}:\n{out}"
        );
    }
    assert_eq!(values(out, "no_new_privs: "), ["1"], "{how}:\n{out}");
}

/// `--privileged` is what it says: every capability the engine holds, no
/// no_new_privs, /proc/sys and /sys writable, mounts allowed. (Checked
/// without changing the host: /proc/sys files are opened for writing, and
/// nothing is written.)
pub fn privileged_is_root_on_the_host(ch: &Chapter) {
    if !require_root("privileged_is_root_on_the_host") {
        return;
    }
    let r = probe_rootfs();
    let facts = [
        "capabilities",
        "no_new_privs",
        "write",
        "/proc/sys/kernel/core_pattern",
        "mount",
        "/tmp",
        "mounts",
    ];
    let run = ch.probe(&r.path, &["--privileged"], &facts);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout();
    let host = Run::new(crate::probe::probe_binary(), ["capabilities"]).stdout();
    assert_eq!(
        values(&out, "capabilities: eff "),
        values(&host, "capabilities: prm "),
        "--privileged gives what the engine holds:\n{out}"
    );
    assert_eq!(values(&out, "no_new_privs: "), ["0"]);
    assert_eq!(
        values(&out, "write /proc/sys/kernel/core_pattern: "),
        ["ok"],
        "{out}"
    );
    assert_eq!(values(&out, "mount /tmp: "), ["ok"], "{out}");
    let sys = values(&out, "mount: /sys sysfs ");
    assert!(
        sys.first().is_some_and(|o| o.starts_with("rw")),
        "/sys read-write:\n{out}"
    );
}

// ---- mounts, /sys, /proc/sys ----

/// No mount of any kind: a tmpfs, a remount of /sys read-write.
pub fn mounts_are_refused(ch: &Chapter) {
    if !require_root("mounts_are_refused") {
        return;
    }
    let r = probe_rootfs();
    let script = "mkdir -p /tmp/m; \
        mount -t tmpfs x /tmp/m 2>/dev/null && echo 'attack: mounted tmpfs'; \
        mount -o remount,rw /sys 2>/dev/null && echo 'attack: remounted /sys rw'; \
        mount -t proc proc /tmp/m 2>/dev/null && echo 'attack: mounted proc'; \
        PROBE mount /tmp/m; PROBE mounts";
    let script = script.replace("PROBE", PROBE_IN_CONTAINER);
    let run = ch.run_to_end(&r.path, &[], &["sh", "-c", &script]);
    let out = run.stdout();
    assert!(!out.contains("attack:"), "{}", run.transcript());
    assert_eq!(
        values(&out, "mount /tmp/m: "),
        ["EPERM"],
        "{}",
        run.transcript()
    );
    let sys = values(&out, "mount: /sys sysfs ");
    assert!(
        !sys.is_empty() && sys.iter().all(|o| o.starts_with("ro")),
        "/sys must be mounted read-only:\n{out}"
    );
}

/// `echo ... > /proc/sys/kernel/core_pattern` fails (the same value is
/// written back, so even an engine without the protection would leave the
/// host as it was), and the host's value is the same before and after.
pub fn core_pattern_is_not_writable(ch: &Chapter) {
    if !require_root("core_pattern_is_not_writable") {
        return;
    }
    let path = "/proc/sys/kernel/core_pattern";
    let before = std::fs::read(path).unwrap();
    let r = probe_rootfs();
    let script = format!(
        "v=$(cat {path}); echo \"$v\" > {path} && echo 'attack: wrote core_pattern'; \
         {PROBE_IN_CONTAINER} write {path}"
    );
    let run = ch.run_to_end(&r.path, &[], &["sh", "-c", &script]);
    assert!(!run.stdout().contains("attack:"), "{}", run.transcript());
    assert_eq!(
        values(&run.stdout(), &format!("write {path}: ")),
        ["EROFS"],
        "{}",
        run.transcript()
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the host's core_pattern changed"
    );
}

/// The other read-only paths (docker's `linux.readonlyPaths`: /proc/bus,
/// /proc/fs, /proc/irq, /proc/sys, /proc/sysrq-trigger) are read-only
/// mounts in the container, and a file in them cannot be opened for
/// writing (opened only: nothing is written, so a failing engine would
/// not change the host, whose sysrq-trigger would reboot it).
pub fn readonly_paths_cannot_be_written(ch: &Chapter) {
    if !require_root("readonly_paths_cannot_be_written") {
        return;
    }
    let paths: Vec<&str> = [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    let files: Vec<&str> = ["/proc/sysrq-trigger", "/proc/irq/default_smp_affinity"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(
        !paths.is_empty(),
        "the host has none of the read-only paths?"
    );
    let r = probe_rootfs();
    let mut script = format!("{PROBE_IN_CONTAINER} mounts; ");
    for f in &files {
        script.push_str(&format!("{PROBE_IN_CONTAINER} write {f}; "));
    }
    let run = ch.run_to_end(&r.path, &[], &["sh", "-c", &script]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout();
    for p in &paths {
        let options = values(&out, &format!("mount: {p} proc "));
        assert!(
            options
                .last()
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "{p} must be a read-only mount:\n{out}"
        );
    }
    for f in &files {
        assert_eq!(
            values(&out, &format!("write {f}: ")),
            ["EROFS"],
            "{}",
            run.transcript()
        );
    }
}

// ---- devices ----

/// A disk of the host's as (major, minor, openable): the first block
/// device that the test, as root on the host, can open for reading: the
/// one under the root filesystem if it can, else the first in /sys/block
/// (some sandboxes refuse their root disk even to root). With none, loop0
/// (7:0), which a container must not be able to use either.
pub fn host_disk() -> (u32, u32, bool) {
    let numbers = |text: &str| -> Option<(u32, u32)> {
        let (major, minor) = text.trim().split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .filter_map(|l| numbers(l.split(' ').nth(2)?))
        .next_back()
        .filter(|(major, _)| *major != 0);
    let mut disks: Vec<(u32, u32)> = root.into_iter().collect();
    let mut names: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    disks.extend(
        names
            .iter()
            .filter_map(|dir| numbers(&std::fs::read_to_string(dir.join("dev")).ok()?)),
    );
    for (major, minor) in disks {
        // The host's own node for it, wherever devtmpfs put it.
        let sys = format!("/sys/dev/block/{major}:{minor}");
        let Ok(name) = std::fs::read_link(&sys) else {
            continue;
        };
        let node = Path::new("/dev").join(name.file_name().unwrap_or_default());
        if std::fs::File::open(&node).is_ok() {
            return (major, minor, true);
        }
    }
    (7, 0, false)
}

/// mknod the host's root disk inside and read or mount it: either the node
/// cannot be made (no CAP_MKNOD, chapter 2) or it cannot be opened (a
/// devices cgroup, chapter 3 on); both stop the attack. The node is made in
/// /dev, the container's own tmpfs (not mounted nodev, like docker's), and
/// in /tmp. Where the chapter's default set has no CAP_MKNOD, the mknod
/// itself must fail: on a host that cannot open its own disk either (some
/// sandboxes), that is the only part of the attack that shows anything.
pub fn host_disk_is_out_of_reach(ch: &Chapter) {
    if !require_root("host_disk_is_out_of_reach") {
        return;
    }
    let (major, minor, openable) = host_disk();
    let with_mknod = ch.default_capabilities.split(',').any(|c| c == "MKNOD");
    let r = probe_rootfs();
    if with_mknod && !openable {
        // No disk the host itself can open (a VM booted from an initramfs,
        // as cg2vm's): the node of loop0 is made, and only the reason the
        // open fails tells: EPERM is the devices cgroup's answer, where
        // the kernel itself would say ENXIO (no such loop device bound).
        let script = format!(
            "mknod /dev/berth-disk b {major} {minor} && exec {PROBE_IN_CONTAINER} read /dev/berth-disk"
        );
        let run = ch.run_to_end(&r.path, &ch.limit_flags(), &["sh", "-c", &script]);
        assert_eq!(
            values(&run.stdout(), "read /dev/berth-disk: "),
            ["EPERM"],
            "the devices cgroup must refuse the node:\n{}",
            run.transcript()
        );
        return;
    }
    let script = format!(
        "mkdir -p /tmp/m; for node in /dev/berth-disk /tmp/berth-disk; do \
           mknod $node b {major} {minor} 2>/dev/null && echo \"made $node\"; \
           if [ -b $node ]; then \
             head -c 512 $node > /dev/null 2>&1 && echo \"attack: read the disk through $node\"; \
             mount $node /tmp/m 2>/dev/null && echo \"attack: mounted the disk through $node\"; \
           fi; \
         done; echo done"
    );
    let run = ch.run_to_end(&r.path, &ch.limit_flags(), &["sh", "-c", &script]);
    assert!(run.stdout().ends_with("done\n"), "{}", run.transcript());
    assert!(!run.stdout().contains("attack:"), "{}", run.transcript());
    if !with_mknod {
        assert!(
            !run.stdout().contains("made"),
            "without CAP_MKNOD no device node can be made:\n{}",
            run.transcript()
        );
    }
}

// ---- cgroups ----

/// The host's file for `control` (`memory.limit_in_bytes`, `memory.max`,
/// `pids.max`) of the cgroup process `pid` is in, if the host has it.
fn host_cgroup_file(
    pid: i32,
    v1_controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == v1_controller) {
            let file = Path::new("/sys/fs/cgroup")
                .join(v1_controller)
                .join(path)
                .join(v1_file);
            if file.exists() {
                return Some(file);
            }
        }
        if controllers.is_empty() {
            let file = Path::new("/sys/fs/cgroup").join(path).join(v2_file);
            if file.exists() {
                return Some(file);
            }
        }
    }
    None
}

/// Mount a cgroup hierarchy inside (v1 memory and pids, and v2) and write
/// the container's own limits, through it and through /sys/fs/cgroup: every
/// mount and write must fail, and the host's limit files must be unchanged.
/// With limits (chapter 3 on) the script tries to raise them; without, it
/// writes back the value it read, so that even an unprotected engine leaves
/// the host's cgroups as they were.
pub fn cgroup_limits_cannot_be_raised(ch: &Chapter) {
    if !require_root("cgroup_limits_cannot_be_raised") {
        return;
    }
    let r = probe_rootfs();
    let (memory, pids) = match &ch.limits {
        Some(_) => ("4294967296".to_string(), "max".to_string()),
        None => ("\"$v\"".to_string(), "\"$v\"".to_string()),
    };
    let script = format!(
        r#"mkdir -p /tmp/cgm /tmp/cgp /tmp/cg2
mount -t cgroup -o memory cgm /tmp/cgm 2>/dev/null && echo 'attack: mounted memory'
mount -t cgroup -o pids cgp /tmp/cgp 2>/dev/null && echo 'attack: mounted pids'
mount -t cgroup2 cg2 /tmp/cg2 2>/dev/null && echo 'attack: mounted cgroup2'
for d in /tmp/cgm /tmp/cgp /tmp/cg2 /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
  for f in memory.limit_in_bytes memory.max; do
    v=$(cat $d/$f 2>/dev/null) || continue
    {{ echo {memory} > $d/$f; }} 2>/dev/null && echo "attack: wrote $d/$f"
  done
  v=$(cat $d/pids.max 2>/dev/null) && {{ {{ echo {pids} > $d/pids.max; }} 2>/dev/null && echo "attack: wrote $d/pids.max"; }}
done
echo done
sleep 20"#
    );
    let mut engine =
        BackgroundEngine::start((ch.run)(&r.path, &ch.limit_flags(), &["sh", "-c", &script]));
    // The host's files, read while the container runs.
    let memory_file = host_cgroup_file(engine.pid, "memory", "memory.limit_in_bytes", "memory.max");
    let pids_file = host_cgroup_file(engine.pid, "pids", "pids.max", "pids.max");
    let read = |f: &Option<PathBuf>| f.as_ref().map(|f| std::fs::read_to_string(f).unwrap());
    let (memory_before, pids_before) = (read(&memory_file), read(&pids_file));
    let mut out = String::new();
    let stdout = engine.child.stdout.as_mut().unwrap();
    let mut lines = std::io::BufReader::new(stdout);
    while !out.ends_with("done\n") {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out.push_str(&line);
    }
    let (memory_after, pids_after) = (read(&memory_file), read(&pids_file));
    // Stopped as a user would, so the engine removes its cgroup and mounts.
    engine.terminate();
    drop(engine);
    assert!(out.ends_with("done\n"), "{out}");
    assert!(!out.contains("attack:"), "{out}");
    assert_eq!(memory_after, memory_before, "{memory_file:?}");
    assert_eq!(pids_after, pids_before, "{pids_file:?}");
    if let Some(limits) = &ch.limits {
        let memory = memory_after.expect("the container's memory limit file on the host");
        assert_eq!(
            memory.trim(),
            limits.memory_bytes.to_string(),
            "{memory_file:?}"
        );
        let pids = pids_after.expect("the container's pids limit file on the host");
        assert_eq!(pids.trim(), limits.pids.to_string(), "{pids_file:?}");
    }
}

// ---- descriptors ----

/// A host directory left open at descriptor 7 by the engine's parent gives
/// the container nothing: `/proc/self/fd/7/secret` is not there, and the
/// command starts with descriptors 0, 1 and 2 only.
pub fn inherited_descriptors_reach_nothing(ch: &Chapter) {
    if !require_root("inherited_descriptors_reach_nothing") {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "host only\n").unwrap();
    let r = probe_rootfs();
    let path = format!("/proc/self/fd/{LEAKED_FD}/secret");
    let mut cmd = (ch.run)(&r.path, &[], &[PROBE_IN_CONTAINER, "read", &path, "fds"]);
    let dir = std::fs::File::open(host.path()).unwrap();
    leak_fd(&mut cmd, dir);
    let run = Run::capture(cmd);
    let out = run.stdout();
    assert!(!out.contains("host only"), "{}", run.transcript());
    assert_eq!(
        values(&out, &format!("read {path}: ")),
        ["ENOENT"],
        "{}",
        run.transcript()
    );
    assert_eq!(values(&out, "fds: "), ["0 1 2"], "{}", run.transcript());
}

// ---- masked paths ----

/// The masked files of /proc read empty and the masked directories list
/// empty, where the host has them.
pub fn masked_paths_show_nothing(ch: &Chapter) {
    if !require_root("masked_paths_show_nothing") {
        return;
    }
    let files: Vec<&str> = [
        "/proc/interrupts",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/kcore",
        "/proc/timer_stats",
    ]
    .into_iter()
    .filter(|f| Path::new(f).exists())
    .collect();
    let dirs: Vec<&str> = [
        "/proc/acpi",
        "/proc/scsi",
        "/proc/asound",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .into_iter()
    .filter(|d| Path::new(d).is_dir())
    .collect();
    assert!(!files.is_empty(), "the host has none of the masked files?");
    let r = probe_rootfs();
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!("{PROBE_IN_CONTAINER} read {f}; "));
    }
    for d in &dirs {
        script.push_str(&format!("echo \"ls {d}: $(ls -A {d} | wc -l)\"; "));
    }
    let run = ch.run_to_end(&r.path, &[], &["sh", "-c", &script]);
    let out = run.stdout();
    for f in &files {
        assert_eq!(
            values(&out, &format!("read {f}: ")),
            ["ok"],
            "{f} must read empty:\n{out}"
        );
    }
    for d in &dirs {
        assert_eq!(
            values(&out, &format!("ls {d}: ")),
            ["0"],
            "{d} must be empty:\n{out}"
        );
    }
}

// ---- /proc/self/exe (CVE-2019-5736) ----

/// A rootfs with the probe, the engine's loader and libraries (so the engine
/// binary can run in it) and `/evil`, a script whose interpreter is
/// `/proc/self/exe`.
fn exe_attack_rootfs(engine: &Path) -> ProbeRootfs {
    let r = probe_rootfs();
    install_libraries(&r.path, engine);
    let evil = r.path.join("evil");
    std::fs::write(&evil, "#!/proc/self/exe --help\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    r
}

/// Copy `program`'s ELF interpreter and the libraries it loads (and theirs)
/// into `rootfs`, at the same paths as on the host.
pub fn install_libraries(rootfs: &Path, program: &Path) {
    use ch01_chroot::elf::{find_library, loader_dirs, read_needs};
    let host = Path::new("/");
    let dirs = loader_dirs(host);
    let mut todo = vec![program.to_string_lossy().into_owned()];
    let mut done = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        let needs = read_needs(host, &path).unwrap();
        let mut wanted: Vec<String> = needs.interpreter.clone().into_iter().collect();
        for lib in &needs.needed {
            wanted.extend(find_library(host, lib, &needs, &dirs));
        }
        for lib in wanted {
            if done.insert(lib.clone()) {
                let dest = rootfs.join(lib.trim_start_matches('/'));
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                if !dest.exists() {
                    std::fs::copy(&lib, &dest).unwrap();
                }
                todo.push(lib);
            }
        }
    }
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!("{:x}", Sha256::digest(bytes))
}

/// A copy of the chapter's binary that nothing else runs (so that, were the
/// attack to work, it would not be stopped by ETXTBSY).
fn engine_copy(ch: &Chapter) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join(ch.name);
    std::fs::copy(&ch.binary, &copy).unwrap();
    (dir, copy)
}

/// The host binary still is the engine: same digest, and running it prints
/// the engine's version, nothing of the container's.
fn assert_engine_intact(copy: &Path, digest: &str, transcript: &str) {
    assert_eq!(
        sha256(copy),
        digest,
        "the container rewrote the engine binary:\n{transcript}"
    );
    let version = Command::new(copy).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        !text.contains("PWNED"),
        "the host ran the container's code: {text}"
    );
}

/// CVE-2019-5736 through `exec`: a container process holds the
/// `/proc/PID/exe` of an `exec` that ran `#!/proc/self/exe`, waits for the
/// engine to exit, and writes through it. The engine binary must be
/// unchanged, and the write refused (EROFS from the read-only clone, EPERM
/// from a sealed memfd).
pub fn engine_binary_cannot_be_rewritten_through_exec(ch: &Chapter) {
    if !require_root("engine_binary_cannot_be_rewritten_through_exec") {
        return;
    }
    let Some(exec) = &ch.exec else {
        return; // this chapter has no exec: see the run variant
    };
    let (_dir, copy) = engine_copy(ch);
    let digest = sha256(&copy);
    let r = exe_attack_rootfs(&copy);
    let hijack = [PROBE_IN_CONTAINER, "hijack", "exec"];
    let mut engine = BackgroundEngine::start((ch.run)(&r.path, &[], &hijack));
    engine.expect_stdout(b"hijack: ready\n");
    // The exec's output goes into a pipe that is already full: the engine
    // run as /evil's interpreter blocks printing its help, and the hijacker
    // has all the time it needs.
    let (read_end, write_end) = full_pipe();
    let mut cmd = exec(&copy, engine.pid, &["/evil"]);
    cmd.stdout(Stdio::from(write_end)).stderr(Stdio::null());
    let mut exec_child = cmd.spawn().unwrap();
    let mut out = String::new();
    engine
        .child
        .stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // If nothing killed it, /evil's engine ends on the closed pipe.
    drop(read_end);
    let _ = exec_child.wait();
    drop(engine);
    assert!(
        out.contains("hijack: holding"),
        "the attack never got hold of the engine:\n{out}"
    );
    let handle = values(&out, "hijack: handle ");
    assert!(
        handle == ["read-only"] || handle == ["sealed"],
        "the handle must be to an unwritable copy:\n{out}"
    );
    let result = values(&out, "hijack: ");
    assert!(
        result
            .last()
            .is_some_and(|r| ["EROFS", "EPERM"].contains(r)),
        "writing the engine binary must be refused as read-only:\n{out}"
    );
    assert_engine_intact(&copy, &digest, &out);
}

/// The same attack on `run`: the engine's own process inside every
/// container is its init (PID 1), a copy of the engine that never execs.
/// Its `/proc/1/exe` must be out of reach (init is not dumpable: EACCES),
/// or else lead to an unwritable copy. And the engine binary is unchanged.
pub fn engine_binary_cannot_be_rewritten_through_run(ch: &Chapter) {
    if !require_root("engine_binary_cannot_be_rewritten_through_run") {
        return;
    }
    let (_dir, copy) = engine_copy(ch);
    let digest = sha256(&copy);
    let r = probe_rootfs();
    let cmd = (ch.run)(&r.path, &[], &[PROBE_IN_CONTAINER, "hijack", "init"]);
    // Run the copy, so that the digest checked is of the binary that ran.
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut run_copy = crate::command(&copy);
    run_copy.args(args);
    let run = Run::capture(run_copy);
    let out = run.stdout();
    let result = values(&out, "hijack: ");
    let handle = values(&out, "hijack: handle ");
    assert!(
        result.last() == Some(&"EACCES") || handle == ["read-only"] || handle == ["sealed"],
        "the container reached the engine binary through its init:\n{}",
        run.transcript()
    );
    assert!(!out.contains("hijack: wrote"), "{}", run.transcript());
    assert_engine_intact(&copy, &digest, &run.transcript());
}

/// A pipe whose buffer is full: a write to `.1` blocks until `.0` is read.
fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let size = fcntl(&write_end, FcntlArg::F_SETPIPE_SZ(4096)).unwrap() as usize;
    fcntl(&write_end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let mut file = std::fs::File::from(write_end.try_clone().unwrap());
    let filler = vec![b'.'; size];
    let _ = file.write(&filler);
    fcntl(&write_end, FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    (read_end, write_end)
}

/// One `#[test]` per attack, for a chapter: `attack_tests!(chapter);` where
/// `chapter()` returns the chapter's [`Chapter`].
#[macro_export]
macro_rules! attack_tests {
    ($chapter:path) => {
        mod attacks {
            #[allow(unused_imports)]
            use super::*;
            use $crate::attacks;
            #[test]
            fn capabilities_are_the_default_set() {
                attacks::capabilities_are_the_default_set(&$chapter());
            }
            #[test]
            fn privileged_is_root_on_the_host() {
                attacks::privileged_is_root_on_the_host(&$chapter());
            }
            #[test]
            fn mounts_are_refused() {
                attacks::mounts_are_refused(&$chapter());
            }
            #[test]
            fn core_pattern_is_not_writable() {
                attacks::core_pattern_is_not_writable(&$chapter());
            }
            #[test]
            fn readonly_paths_cannot_be_written() {
                attacks::readonly_paths_cannot_be_written(&$chapter());
            }
            #[test]
            fn host_disk_is_out_of_reach() {
                attacks::host_disk_is_out_of_reach(&$chapter());
            }
            #[test]
            fn cgroup_limits_cannot_be_raised() {
                attacks::cgroup_limits_cannot_be_raised(&$chapter());
            }
            #[test]
            fn inherited_descriptors_reach_nothing() {
                attacks::inherited_descriptors_reach_nothing(&$chapter());
            }
            #[test]
            fn masked_paths_show_nothing() {
                attacks::masked_paths_show_nothing(&$chapter());
            }
            #[test]
            fn engine_binary_cannot_be_rewritten_through_exec() {
                attacks::engine_binary_cannot_be_rewritten_through_exec(&$chapter());
            }
            #[test]
            fn engine_binary_cannot_be_rewritten_through_run() {
                attacks::engine_binary_cannot_be_rewritten_through_run(&$chapter());
            }
        }
    };
}
