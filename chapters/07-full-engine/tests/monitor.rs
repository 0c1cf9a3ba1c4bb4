//! What the monitor does for a container: its terminal (`-it` on a real
//! pty, window sizes, detach with ctrl-p ctrl-q and attach again), its
//! stdin (`-i`), and its restart policy.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, IMAGE, envs};

/// `berth ARGS` on a terminal of its own: the slave of a new pty is its
/// controlling terminal and its three streams; the test holds the master.
struct OnTerminal {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl OnTerminal {
    fn start(env: &Env, args: &[&str], rows: u16, cols: u16) -> OnTerminal {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let mut cmd = env.cmd(args);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn berth on a pty");
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shared.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnTerminal {
            child,
            master,
            screen,
        }
    }

    fn type_in(&mut self, text: &[u8]) {
        self.master.write_all(text).unwrap();
    }

    /// Wait (at most 20 s) until the screen shows `text`.
    fn expect(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned();
            if screen.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = nix::libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize; the kernel then sends
        // SIGWINCH to the terminal's foreground process group (berth).
        unsafe { nix::libc::ioctl(self.master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
    }

    /// berth's exit code, waiting at most 20 s.
    fn exit_code(mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("berth did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn run_it_gives_a_real_terminal_that_follows_the_window_and_detaches() {
    for env in envs("run_it_gives_a_real_terminal_that_follows_the_window_and_detaches") {
        let mut term =
            OnTerminal::start(&env, &["run", "-it", "--name", "tty", IMAGE, "sh"], 30, 100);
        term.expect("# ");
        term.type_in(b"tty; stty size\r");
        term.expect("/dev/pts/0");
        term.expect("30 100");
        // The window changes: SIGWINCH to berth, the new size to the pty.
        term.resize(40, 120);
        std::thread::sleep(Duration::from_millis(200));
        term.type_in(b"stty size\r");
        term.expect("40 120");
        // Ctrl-C reaches the container's shell, not berth.
        term.type_in(b"sleep 30\r");
        std::thread::sleep(Duration::from_millis(300));
        term.type_in(b"\x03echo after-interrupt\r");
        term.expect("after-interrupt");
        // ctrl-p ctrl-q: berth goes, the container stays.
        term.type_in(b"\x10\x11");
        assert_eq!(term.exit_code(), Some(0));
        assert_eq!(env.inspect("tty", "{{.State.Status}}"), "running");
        // attach again, and leave by exiting the shell: its code.
        let mut term = OnTerminal::start(&env, &["attach", "tty"], 30, 100);
        std::thread::sleep(Duration::from_millis(300));
        term.type_in(b"echo attached-again\r");
        term.expect("attached-again");
        term.type_in(b"exit 5\r");
        assert_eq!(term.exit_code(), Some(5));
        assert_eq!(env.inspect("tty", "{{.State.ExitCode}}"), "5");
        // The terminal's output was logged, as one stream.
        assert!(env.ok(&["logs", "tty"]).contains("attached-again"));
        // Other detach keys.
        let mut term = OnTerminal::start(
            &env,
            &[
                "run",
                "-it",
                "--rm",
                "--detach-keys",
                "ctrl-a,x",
                "--name",
                "keys",
                IMAGE,
                "sh",
            ],
            24,
            80,
        );
        term.expect("# ");
        term.type_in(b"\x01x");
        assert_eq!(term.exit_code(), Some(0));
        env.ok(&["rm", "-f", "tty", "keys"]);
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    }
}

#[test]
fn stdin_reaches_the_container_with_i() {
    for env in envs("stdin_reaches_the_container_with_i") {
        let mut cmd = env.cmd(&[
            "run",
            "-i",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "tr a-z A-Z; echo done",
        ]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello\nworld\n")
            .unwrap();
        // stdin closed: the container's stdin ends too (StdinOnce).
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\nWORLD\ndone\n");
        assert_eq!(out.status.code(), Some(0));
        // Without -i the container's stdin is /dev/null.
        assert_eq!(
            env.ok(&["run", "--rm", IMAGE, "sh", "-c", "cat; echo eof"]),
            "eof\n"
        );
        // exec -i.
        let id = env.run_d(&[IMAGE, "sleep", "60"]);
        let mut cmd = env.cmd(&["exec", "-i", &id, "sh", "-c", "read line; echo got $line"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"x1\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got x1\n");
        env.ok(&["rm", "-f", &id]);
    }
}

#[test]
fn exec_runs_in_the_container_as_asked() {
    for env in envs("exec_runs_in_the_container_as_asked") {
        let id = env.run_d(&["-e", "BASE=1", IMAGE, "sleep", "60"]);
        assert_eq!(
            env.ok(&["exec", &id, "hostname"]),
            format!("{}\n", &id[..12])
        );
        assert_eq!(
            env.ok(&["exec", "-e", "X=2", &id, "sh", "-c", "echo $BASE$X"]),
            "12\n"
        );
        assert_eq!(
            env.ok(&["exec", "-u", "nobody", &id, "sh", "-c", "id -u; echo $HOME"]),
            "65534\n/nonexistent\n"
        );
        assert_eq!(env.ok(&["exec", "-w", "/tmp", &id, "pwd"]), "/tmp\n");
        let run = env.berth(&["exec", &id, "sh", "-c", "exit 9"]);
        assert_eq!(run.code(), Some(9));
        let run = env.berth(&["exec", &id, "/nonexistent"]);
        assert_eq!(run.code(), Some(127), "{}", run.transcript());
        // (runc prints its own line first: its stderr is the process's.)
        assert!(
            run.stderr().contains("Error: OCI runtime exec failed: "),
            "{}",
            run.transcript()
        );
        // Its processes are the container's: same PID namespace.
        assert_eq!(
            env.ok(&["exec", &id, "sh", "-c", "ps -o pid,comm | grep -c sleep"]),
            "1\n"
        );
        // -d: in the background.
        env.ok(&["exec", "-d", &id, "sh", "-c", "sleep 1; touch /tmp/bg"]);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(env.ok(&["exec", &id, "ls", "/tmp/bg"]), "/tmp/bg\n");
        env.ok(&["rm", "-f", &id]);
    }
}

#[test]
fn restart_policies_restart_as_dockers_do() {
    for env in envs("restart_policies_restart_as_dockers_do") {
        // on-failure:2: the first run and two restarts, then exited.
        env.run_d(&[
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            IMAGE,
            "sh",
            "-c",
            "echo run; exit 3",
        ]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.inspect("flaky", "{{.State.Status}} {{.RestartCount}}") != "exited 2" {
            assert!(
                Instant::now() < deadline,
                "{}",
                env.inspect("flaky", "{{.State.Status}} {{.RestartCount}}")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(env.ok(&["logs", "flaky"]), "run\nrun\nrun\n");
        assert_eq!(env.inspect("flaky", "{{.State.ExitCode}}"), "3");
        // on-failure does not restart a success.
        env.run_d(&["--name", "fine", "--restart", "on-failure", IMAGE, "true"]);
        env.wait_status("fine", "exited");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            env.inspect("fine", "{{.State.Status}} {{.RestartCount}}"),
            "exited 0"
        );
        // always: restarted after each exit, until the user stops it.
        env.run_d(&[
            "--name",
            "loop",
            "--restart",
            "always",
            IMAGE,
            "sh",
            "-c",
            "sleep 0.2",
        ]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while env
            .inspect("loop", "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap()
            < 2
        {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
        env.ok(&["stop", "loop"]);
        let count = env.inspect("loop", "{{.RestartCount}}");
        assert_eq!(env.inspect("loop", "{{.State.Status}}"), "exited");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            env.inspect("loop", "{{.RestartCount}}"),
            count,
            "stopped for good"
        );
        assert!(common::monitors_of(&env.run).is_empty());
        // Events were logged for each start and death.
        let events = std::fs::read_to_string(env.root.join("events.log")).unwrap();
        assert!(
            events
                .lines()
                .filter(|l| l.contains("\"Action\":\"die\""))
                .count()
                >= 5
        );
        env.ok(&["rm", "flaky", "fine", "loop"]);
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    }
}

#[test]
fn init_is_pid_1_passes_signals_and_reaps() {
    for mut env in envs("init_is_pid_1_passes_signals_and_reaps") {
        env.use_init();
        // docker's place and name; the command is its child.
        let ps = env.ok(&["run", "--rm", "--init", IMAGE, "ps", "-o", "pid,ppid,comm"]);
        let rows: Vec<Vec<&str>> = ps
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["1", "0", "docker-init"], "{ps}");
        assert_eq!(rows[1][1..], ["1", "ps"], "{ps}");
        // A program that ignores SIGTERM as PID 1 gets it under init: stop
        // returns its 143 at once instead of the 10 s and SIGKILL.
        env.run_d(&["--name", "calm", "--init", IMAGE, "sleep", "60"]);
        let start = Instant::now();
        env.ok(&["stop", "calm"]);
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no SIGKILL was needed"
        );
        assert_eq!(
            env.inspect("calm", "{{.State.ExitCode}} {{.HostConfig.Init}}"),
            "143 true"
        );
        // Orphans are reaped: no zombie stays.
        let zombies = env.ok(&[
            "run",
            "--rm",
            "--init",
            IMAGE,
            "sh",
            "-c",
            "sh -c 'sleep 0.1 &' ; sleep 0.5; ps -o stat | grep -c Z || true",
        ]);
        assert_eq!(zombies, "0\n");
        // Missing and unexecutable programs: docker's codes, and why.
        let run = env.berth(&["run", "--rm", "--init", IMAGE, "nosuch"]);
        assert_eq!(run.code(), Some(127));
        assert_eq!(
            run.stderr(),
            "berth-init: exec nosuch failed: No such file or directory\n"
        );
        let run = env.berth(&["run", "--rm", "--init", IMAGE, "/etc/passwd"]);
        assert_eq!(run.code(), Some(126));
        env.ok(&["rm", "calm"]);
        // Without a static berth-init, --init says what to do.
        env.init = Some(berth_bin_path());
        let run = env.berth(&["run", "--rm", "--init", IMAGE, "true"]);
        assert_eq!(run.code(), Some(125), "{}", run.transcript());
        assert!(
            run.stderr().contains("cargo xtask berth-init"),
            "{}",
            run.transcript()
        );
        assert_eq!(env.leftovers(&[]), Vec::<String>::new());
    }
}

fn berth_bin_path() -> std::path::PathBuf {
    common::berth_bin()
}
