//! `berth-init [--] COMMAND [ARG...]`: the container's PID 1 for
//! `berth run --init`, as `docker-init` (tini) is for docker.
//!
//! Chapter 2's init (`ch02_namespaces::init::run_as_init`) as a program of
//! its own: it starts the command as its child, passes on the signals sent
//! to it, reaps every orphan, and exits with the command's status. The
//! engine bind-mounts it into the container at `/sbin/docker-init` and puts
//! it in front of the command, so it must run in any image: it is built as
//! a static program (`cargo xtask berth-init`), needing no library from the
//! image.
//!
//! Before it starts the command, it looks for it as the exec will (the
//! same candidates, chapter 1's `ExecPlan`), so that a missing or
//! unexecutable program is reported with docker's exit codes (127, 126)
//! and a message, rather than as the child's bare failure.
//!
//! Man pages: pid_namespaces(7), prctl(2) ("PR_SET_CHILD_SUBREAPER").

use std::ffi::CStr;

use ch01_chroot::error::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
use ch01_chroot::process::{ExecPlan, Process};
use ch01_chroot::start_pipe::StartPipe;
use nix::unistd::{AccessFlags, access};

fn main() {
    ch01_chroot::sigpipe::die_quietly_when_stdout_closes();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: berth-init [--] COMMAND [ARG...]");
        std::process::exit(1);
    }
    let process = Process {
        args,
        env: std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "/".into()),
        user: None,
    };
    let plan = match ExecPlan::new(&process) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("berth-init: {err}");
            std::process::exit(EXIT_NOT_FOUND);
        }
    };
    // The command, looked for as the exec will look.
    let command = process.args[0].as_str();
    let found: Vec<&CStr> = plan.candidates().filter(|c| exists(c)).collect();
    if found.is_empty() {
        eprintln!("berth-init: exec {command} failed: No such file or directory");
        std::process::exit(EXIT_NOT_FOUND);
    }
    if !found
        .iter()
        .any(|c| access(*c, AccessFlags::X_OK).is_ok() && !is_dir(c))
    {
        eprintln!("berth-init: exec {command} failed: Permission denied");
        std::process::exit(EXIT_CANNOT_EXECUTE);
    }
    // Not PID 1 (a container sharing the host's PID namespace): orphans
    // come to us all the same.
    if std::process::id() != 1 {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let pipe = match StartPipe::new() {
        Ok(pipe) => pipe,
        Err(errno) => {
            eprintln!("berth-init: pipe2: {errno}");
            std::process::exit(ch01_chroot::error::EXIT_ENGINE);
        }
    };
    // The runtime gave us the container's user and capabilities already:
    // the command keeps them (its identity step sets no user).
    ch02_namespaces::init::run_as_init(&plan, &pipe.child_end(), &ExecPlan::set_user)
}

fn exists(path: &CStr) -> bool {
    nix::sys::stat::stat(path).is_ok()
}

fn is_dir(path: &CStr) -> bool {
    nix::sys::stat::stat(path).is_ok_and(|s| s.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
}
