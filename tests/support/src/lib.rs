//! What every chapter's tests share.
//!
//! - [`rootfs`]: the mkrootfs rootfs, built once per test run and shared
//!   read-only; [`fresh_rootfs`] for a test that writes into one.
//! - [`require_root`] and [`skip`]: the privilege probe. A test that cannot
//!   run prints `SKIPPED <test>: <why>` and returns — unless `BERTH_STRICT=1`
//!   (CI), where a skip is a failure, so CI can never pass by skipping, or
//!   the test is an exercise's check run by `cargo xtask exercise`, where a
//!   skip is a failure too (the xtask then says what to do).
//! - [`Run`]: run a chapter binary in a fixed environment and render what it
//!   did (command, exit code, stdout, stderr) as a stable transcript for insta.
//! - [`snapshot_settings`]: insta filters for what must vary (paths, hostname).
//! - [`ChildGuard`]: kills and reaps a background child when a test ends.
//! - [`test_host::in_test_host`]: run a network test in a throwaway
//!   network namespace that plays the host.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use ch01_chroot::rootfs::{Source, mkrootfs};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Uid;

pub mod attacks;
pub mod layout;
pub mod probe;
pub mod registry;
pub mod test_host;

/// True when skips must fail (CI sets `BERTH_STRICT=1`).
pub fn strict() -> bool {
    std::env::var("BERTH_STRICT").is_ok_and(|v| v == "1")
}

/// Why [`require_root`] skips. `cargo xtask exercise` recognises it and
/// prints the exact `sudo` command that runs the check as root.
pub const NEEDS_ROOT: &str = "needs root";

/// Set by `cargo xtask exercise` (to `mine` or `solution`): this test binary
/// is an exercise's check.
pub const EXERCISE_ENV: &str = "BERTH_EXERCISE";

/// Set by `cargo xtask exercise`: a file where a check that could not run
/// writes why, one line per skipped test, so the xtask can say what to do.
pub const NOT_CHECKED_ENV: &str = "BERTH_NOT_CHECKED";

/// Skip `test` because of `why`: print `SKIPPED` and return, so that a
/// plain `cargo test` without root still runs everything else. Two cases
/// turn the skip into a failure instead: `BERTH_STRICT=1` (CI can never be
/// green by skipping), and an exercise check run by `cargo xtask exercise`,
/// where a learner must never read "passed" for work that was not checked.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(EXERCISE_ENV).is_some() {
        if let Some(report) = std::env::var_os(NOT_CHECKED_ENV) {
            use std::io::Write;
            // Appended, one line per test: several tests of one check
            // may each find something missing.
            let _ = OpenOptions::new()
                .create(true)
                .append(true)
                .open(report)
                .and_then(|mut file| writeln!(file, "{why}"));
        }
        panic!("{test} was not checked, so it cannot pass: {why}");
    }
    if strict() {
        panic!("{test} cannot run here and BERTH_STRICT=1 forbids skipping: {why}");
    }
    // Straight to fd 2, past the test harness's output capture, so the
    // line shows even when the test passes.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Probe for root; if absent, skip `test` and return false.
pub fn require_root(test: &str) -> bool {
    if Uid::effective().is_root() {
        return true;
    }
    skip(
        test,
        &format!("{NEEDS_ROOT} (run the tests with sudo, as CI does)"),
    );
    false
}

/// The target directory this test binary was built into (`target/debug`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/*/deps")
        .to_path_buf()
}

/// The shared rootfs, made by `ch01-chroot mkrootfs` (busybox when the host
/// has it). Built once per target directory — mkrootfs is deterministic, so
/// every run would build the same tree — under a lock, so parallel test
/// binaries do not race. Tests must not write into it: use [`fresh_rootfs`].
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = target_profile_dir().join("berth-fixtures");
        std::fs::create_dir_all(&dir).expect("create berth-fixtures");
        let _lock = lock_file(&dir.join("lock"));
        let rootfs = dir.join("rootfs");
        if !rootfs.join("bin").exists() {
            let building = dir.join(format!("rootfs.building-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&building);
            mkrootfs(&building, Source::Auto, Path::new("/")).expect("mkrootfs for the tests");
            let _ = std::fs::remove_dir_all(&rootfs);
            std::fs::rename(&building, &rootfs).expect("rename the built rootfs");
        }
        rootfs
    })
}

/// Take an exclusive flock(2) on `path` (created if missing), held until the
/// returned guard drops. Read-only is enough for flock, so a normal user can
/// share fixtures that a root run already built.
pub fn lock_file(path: &Path) -> Flock<std::fs::File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .or_else(|_| OpenOptions::new().read(true).open(path))
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    Flock::lock(file, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock {}: {e}", path.display()))
}

/// A shell script for signal tests: prints `ready`, then waits; on SIGTERM
/// prints `got TERM` and exits 7. Its loop ends by itself after ~10 s, so a
/// broken engine fails the test instead of leaving a shell that holds the
/// pipe open forever.
pub const TRAP_TERM_SCRIPT: &str = r#"trap 'echo got TERM; exit 7' TERM; echo ready; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done"#;

/// Start `engine` (which runs [`TRAP_TERM_SCRIPT`] in a container), wait for
/// `ready`, send SIGTERM to the *engine*, and return what the container
/// printed afterwards and the engine's exit code.
pub fn sigterm_round_trip(mut engine: Command) -> (String, Option<i32>) {
    use std::io::Read;
    engine.stdout(Stdio::piped());
    let mut guard = ChildGuard(engine.spawn().expect("spawn the engine"));
    let mut stdout = guard.0.stdout.take().expect("piped stdout");
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).expect("read ready");
    assert_eq!(&ready, b"ready\n");
    let engine_pid = nix::unistd::Pid::from_raw(guard.0.id() as i32);
    nix::sys::signal::kill(engine_pid, nix::sys::signal::Signal::SIGTERM)
        .expect("kill -TERM the engine");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the rest");
    let code = guard.0.wait().expect("wait for the engine").code();
    (rest, code)
}

/// The descriptor number [`leak_fd`] gives the engine: what a shell's
/// `exec 7</some/dir` would leave open.
pub const LEAKED_FD: i32 = 7;

/// Start `cmd` with `file` open at descriptor [`LEAKED_FD`], *not* marked
/// close-on-exec: the engine inherits it the way it would from a careless
/// parent. The engine must not hand it on to the container.
pub fn leak_fd(cmd: &mut Command, file: std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure makes one dup2(2) call (which
    // clears close-on-exec on the copy) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::dup2(file.as_raw_fd(), LEAKED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A rootfs of the test's own, removed when the returned guard drops.
pub fn fresh_rootfs(source: Source) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rootfs");
    mkrootfs(&dir, source, Path::new("/")).expect("mkrootfs");
    (tmp, dir)
}

/// True if the host has a static busybox that mkrootfs can use.
pub fn host_has_busybox() -> bool {
    let tmp = tempfile::tempdir().expect("tempdir");
    mkrootfs(&tmp.path().join("r"), Source::Busybox, Path::new("/")).is_ok()
}

/// A chapter binary: `compiled` is its `env!("CARGO_BIN_EXE_...")` path,
/// unless `BERTH_BIN_DIR` says where the binaries are (the cgroup-v2 VM
/// runs test binaries far from the paths they were built with).
pub fn bin_path(compiled: &str) -> PathBuf {
    match std::env::var_os("BERTH_BIN_DIR") {
        Some(dir) => Path::new(&dir).join(Path::new(compiled).file_name().expect("a binary name")),
        None => PathBuf::from(compiled),
    }
}

/// Run `cmd` with its standard output a pipe whose reader has already
/// gone (what `cmd | head` meets once head has read enough); return how it
/// ended and what it wrote to stderr.
pub fn run_into_closed_pipe(mut cmd: Command) -> (std::process::ExitStatus, String) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let output = cmd
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A chapter binary run in a fixed environment, and what it did.
pub struct Run {
    /// The command line as shown in the transcript (binary name, not path).
    pub shown: String,
    pub output: Output,
}

/// The environment every test run gets: no locale, no colour, a fixed TERM.
pub fn command(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::null());
    cmd
}

impl Run {
    /// Run `binary` with `args` and capture everything.
    pub fn new<I, S>(binary: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = command(binary);
        cmd.args(args);
        Run::capture(cmd)
    }

    /// Capture a prepared command (for stdin, uid or env changes).
    pub fn capture(mut cmd: Command) -> Run {
        let name = Path::new(cmd.get_program())
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect();
        let shown = std::iter::once(name)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ");
        let output = cmd.output().unwrap_or_else(|e| panic!("run {shown}: {e}"));
        Run { shown, output }
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The transcript a snapshot stores and the book shows:
    /// the command, its exit code, then stdout and stderr (when not empty).
    pub fn transcript(&self) -> String {
        let mut t = format!("$ {}\n", self.shown);
        let out = self.stdout();
        t.push_str(&out);
        if !out.is_empty() && !out.ends_with('\n') {
            t.push('\n');
        }
        for line in self.stderr().lines() {
            t.push_str(&format!("[stderr] {line}\n"));
        }
        match self.code() {
            Some(code) => t.push_str(&format!("[exit {code}]\n")),
            None => t.push_str("[killed by a signal]\n"),
        }
        t
    }
}

/// Quote a word the way a reader would type it in a shell.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%[]".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// insta settings with the filters every chapter needs: the shared rootfs
/// path, temp directories, and the host's name.
pub fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let rootfs = rootfs().to_string_lossy().into_owned();
    settings.add_filter(&regex_escape(&rootfs), "[ROOTFS]");
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    if let Ok(host) = nix::unistd::gethostname() {
        let host = host.to_string_lossy().into_owned();
        if !host.is_empty() {
            settings.add_filter(&format!(r"\b{}\b", regex_escape(&host)), "[HOSTNAME]");
        }
    }
    settings
}

/// [`snapshot_settings`] plus what every container-running chapter prints
/// that varies: the test's own rootfs and the `container ID started, pid N`
/// line.
pub fn container_snapshot_settings() -> insta::Settings {
    let mut settings = snapshot_settings();
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+/rootfs", "[ROOTFS]");
    settings.add_filter(
        r"container [0-9a-z]+ started, pid \d+",
        "container [ID] started, pid [PID]",
    );
    settings
}

/// Escape `text` for use in an insta filter (a regex).
pub fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if r"\.+*?()|[]{}^$#&-~".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A container engine started in the background for a test, in a process
/// group of its own, with stdout and stderr piped. [`BackgroundEngine::start`]
/// returns once the engine has printed `container ID started, pid PID`.
/// Dropping it kills the whole group and reaps the engine.
pub struct BackgroundEngine {
    pub child: Child,
    /// The container's id, from the "started" line.
    pub id: String,
    /// The host PID of the container's first process, from the same line.
    pub pid: i32,
}

impl BackgroundEngine {
    pub fn start(mut cmd: Command) -> BackgroundEngine {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn the engine");
        let mut started = String::new();
        let stderr = child.stderr.take().expect("piped stderr");
        std::io::BufReader::new(stderr)
            .read_line(&mut started)
            .expect("read the started line");
        // "ENGINE: container ID started, pid PID"
        let words: Vec<&str> = started.split_whitespace().collect();
        let (id, pid) = match words.as_slice() {
            [_, "container", id, "started,", "pid", pid] => {
                (id.to_string(), pid.parse().unwrap_or(0))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the engine did not start a container: {started:?}");
            }
        };
        BackgroundEngine { child, id, pid }
    }

    /// Read exactly `expected.len()` bytes of the container's stdout and
    /// check them (a script's "ready" line, say).
    pub fn expect_stdout(&mut self, expected: &[u8]) {
        use std::io::Read;
        let mut got = vec![0u8; expected.len()];
        self.child
            .stdout
            .as_mut()
            .expect("piped stdout")
            .read_exact(&mut got)
            .expect("read stdout");
        assert_eq!(
            got,
            expected,
            "the container printed {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    /// Stop it the way a user would — SIGTERM to the engine, which passes it
    /// on — and return the engine's exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let engine = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(engine, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("wait for the engine").code()
    }
}

impl Drop for BackgroundEngine {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A background child that is killed and reaped when the test ends, even when
/// an assertion fails first.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `cmd` with at most `n` open file descriptors (RLIMIT_NOFILE, soft and
/// hard, set in the child before exec): the way `ulimit -n N` would. Only
/// lowers the limit, which needs no privilege.
pub fn limit_descriptors(cmd: &mut Command, n: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit(2) is async-signal-safe, and the closure touches
    // nothing but its own copy of `n`.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)?;
            Ok(())
        })
    }
}

/// The directories of the cgroup named `id` that exist on this host: one
/// per v1 hierarchy, or one on v2 (the engines put theirs under `berth/`).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut candidates = vec![Path::new("/sys/fs/cgroup/berth").join(id)];
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        candidates.push(entry.path().join("berth").join(id));
    }
    for dir in candidates {
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found
}

/// Whether process `pid` exists (a zombie counts as gone).
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}
