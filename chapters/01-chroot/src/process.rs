//! What to run: the OCI runtime spec calls it the `process` — arguments,
//! environment and working directory.
//!
//! Kernel feature: `execve(2)` replaces the calling process's program with
//! another. It takes a *path*, not a command name: finding `ls` on `PATH` is
//! the caller's job (`execvp(3)` does it in libc). We do it ourselves, because
//! the search must happen *after* the process has changed its root — `/bin/ls`
//! means the container's `ls`, not the host's.
//!
//! Everything here is prepared in the parent, before `fork(2)`, so the child
//! only makes system calls: after a fork in a multi-threaded program the child
//! must not allocate (another thread may have held the allocator's lock).
//!
//! Man pages: execve(2), execvp(3), environ(7).

use std::ffi::{CStr, CString, c_char};

use nix::errno::Errno;
use nix::libc;
use nix::sys::stat::stat;
use nix::unistd::{Gid, Uid, chdir, setgroups, setresgid, setresuid};

use crate::error::StartError;

/// The `PATH` Docker gives a container that sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process to start (OCI runtime spec: `process.args`, `process.env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `args[0]` is the command: a path, or a name looked up on `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` strings, exactly what the program will see in `environ`.
    pub env: Vec<String>,
    /// The working directory inside the root filesystem (OCI: `process.cwd`).
    pub cwd: String,
    /// Who the command runs as (OCI: `process.user`); `None`: the engine's
    /// own identity inside (root, in later chapters root of the container).
    pub user: Option<User>,
}

/// The identity a command runs as (OCI runtime spec: `process.user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

impl Process {
    /// A process with the minimal environment every chapter gives a container:
    /// `PATH`, `HOME`, `TERM` and `HOSTNAME`.
    pub fn new(args: Vec<String>, hostname: &str, term: Option<&str>) -> Self {
        let env = vec![
            format!("PATH={DEFAULT_PATH}"),
            "HOME=/root".to_string(),
            format!("TERM={}", term.unwrap_or("xterm")),
            format!("HOSTNAME={hostname}"),
        ];
        Process {
            args,
            env,
            cwd: "/".to_string(),
            user: None,
        }
    }

    /// The value of `PATH` in this process's environment.
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

/// A [`Process`] turned into the C strings `execve(2)` wants, with every
/// candidate path for the command already spelled out.
#[derive(Debug)]
pub struct ExecPlan {
    argv: Vec<CString>,
    #[expect(dead_code, reason = "owns the strings `envp_ptrs` points into")]
    envp: Vec<CString>,
    candidates: Vec<CString>,
    // NULL-terminated pointer arrays into `argv` and `envp`, built before the
    // fork. (nix's `execve` builds them on every call, which allocates.)
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    cwd: CString,
    user: Option<(Gid, Uid, Vec<Gid>)>,
}

/// Why the exec step failed, as found in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFailure<'a> {
    /// No candidate exists (`ENOENT` everywhere).
    NotFound,
    /// A candidate exists but `execve` said `ENOENT`: its ELF interpreter
    /// (or a `#!` interpreter) is missing.
    InterpreterMissing(&'a CStr),
    /// A candidate exists but may not be executed (`EACCES`, `ENOEXEC`).
    NotExecutable(&'a CStr, Errno),
    /// Anything else (`E2BIG`, `ENOMEM`, ...).
    Other(&'a CStr, Errno),
}

impl ExecPlan {
    /// Prepare `process` for exec. Fails on an empty command or a NUL byte.
    pub fn new(process: &Process) -> Result<Self, StartError> {
        let command = process.args.first().ok_or(StartError::NoCommand)?;
        let cstring = |s: &str| CString::new(s).map_err(|_| StartError::NulByte(s.to_string()));
        let argv: Vec<CString> = process
            .args
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = process
            .env
            .iter()
            .map(|e| cstring(e))
            .collect::<Result<_, _>>()?;
        let null_terminated = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        let (argv_ptrs, envp_ptrs) = (null_terminated(&argv), null_terminated(&envp));
        // ANCHOR: path_search
        // A name with a slash is a path; anything else is looked up in each
        // directory of PATH, in order — the rule execvp(3) and every shell use.
        let candidates = if command.contains('/') {
            vec![cstring(command)?]
        } else {
            process
                .path_var()
                .split(':')
                .filter(|dir| !dir.is_empty())
                .map(|dir| cstring(&format!("{}/{command}", dir.trim_end_matches('/'))))
                .collect::<Result<_, _>>()?
        };
        // ANCHOR_END: path_search
        let cwd = cstring(&process.cwd)?;
        let user = process.user.as_ref().map(|u| {
            let groups = u
                .additional_gids
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect();
            (Gid::from_raw(u.gid), Uid::from_raw(u.uid), groups)
        });
        Ok(ExecPlan {
            argv,
            envp,
            candidates,
            argv_ptrs,
            envp_ptrs,
            cwd,
            user,
        })
    }

    /// The working directory the command starts in.
    pub fn cwd(&self) -> &CStr {
        &self.cwd
    }

    /// The command as the user typed it.
    pub fn command(&self) -> &CStr {
        &self.argv[0]
    }

    /// The paths the exec will try, in order (the command itself if it
    /// has a slash, else each `PATH` directory's): for an init that must
    /// say "not found" before it starts the command (chapter 7's
    /// `berth-init`).
    pub fn candidates(&self) -> impl Iterator<Item = &CStr> {
        self.candidates.iter().map(CString::as_c_str)
    }

    /// Enter the working directory. Done while the child is still root of
    /// its namespace, so a directory only root may enter still works.
    /// Allocation-free, like [`ExecPlan::exec`].
    // ANCHOR: enter
    pub fn enter_cwd(&self) -> Result<(), (&'static str, Errno)> {
        chdir(self.cwd.as_c_str()).map_err(|e| ("chdir to the working directory", e))
    }

    /// Take on the process's identity (OCI: `process.user`), groups first,
    /// since after setuid(2) to a non-root user there is no right left to
    /// change them. Nothing to do when no user was asked for.
    pub fn set_user(&self) -> Result<(), (&'static str, Errno)> {
        if let Some((gid, uid, groups)) = &self.user {
            // An empty list drops the engine's supplementary groups. A user
            // namespace whose setgroups is "deny" refuses even that: fine
            // when there were none to give.
            match setgroups(groups) {
                Ok(()) => {}
                Err(Errno::EPERM) if groups.is_empty() => {}
                Err(e) => return Err(("setgroups", e)),
            }
            setresgid(*gid, *gid, *gid).map_err(|e| ("setresgid to the user's group", e))?;
            setresuid(*uid, *uid, *uid).map_err(|e| ("setresuid to the user", e))?;
        }
        Ok(())
    }

    /// True when the command runs as someone other than root of the
    /// container (a `process.user` with a non-zero uid).
    pub fn changes_user(&self) -> bool {
        self.user.as_ref().is_some_and(|(_, uid, _)| !uid.is_root())
    }
    // ANCHOR_END: enter

    /// Replace this process's program. Returns only on failure, saying why.
    /// Allocation-free: safe to call in a child after `fork(2)`.
    // ANCHOR: exec
    pub fn exec(&self) -> ExecFailure<'_> {
        let mut failure = ExecFailure::NotFound;
        for path in &self.candidates {
            // SAFETY: `path` is a NUL-terminated string, and both pointer
            // arrays point into CStrings owned by `self` and end with NULL.
            // On success execve never returns: the process is now `path`.
            unsafe {
                libc::execve(
                    path.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                )
            };
            let errno = Errno::last();
            failure = match errno {
                // Nothing there: try the next directory on PATH.
                Errno::ENOENT | Errno::ENOTDIR if stat(path.as_c_str()).is_err() => continue,
                // The file is there, yet ENOENT: the loader it names is not.
                Errno::ENOENT => ExecFailure::InterpreterMissing(path),
                // Found but not runnable: remember it, but keep looking, as
                // execvp(3) does — a later PATH entry may have a good one.
                Errno::EACCES | Errno::ENOEXEC | Errno::EPERM => {
                    ExecFailure::NotExecutable(path, errno)
                }
                other => return ExecFailure::Other(path, other),
            };
        }
        failure
    }
    // ANCHOR_END: exec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str], path: &str) -> ExecPlan {
        let mut p = Process::new(args.iter().map(|s| s.to_string()).collect(), "h", None);
        p.env[0] = format!("PATH={path}");
        ExecPlan::new(&p).unwrap()
    }

    #[test]
    fn names_are_searched_on_path_in_order() {
        let plan = plan(&["ls", "-l"], "/usr/bin:/bin/:");
        let c: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap())
            .collect();
        assert_eq!(c, ["/usr/bin/ls", "/bin/ls"]);
    }

    #[test]
    fn paths_are_used_as_given() {
        let plan = plan(&["./run.sh"], "/bin");
        assert_eq!(plan.candidates, [CString::new("./run.sh").unwrap()]);
    }

    #[test]
    fn empty_command_and_nul_bytes_are_refused() {
        let p = Process::new(vec![], "h", None);
        assert!(matches!(ExecPlan::new(&p), Err(StartError::NoCommand)));
        let p = Process::new(vec!["a\0b".into()], "h", None);
        assert!(matches!(ExecPlan::new(&p), Err(StartError::NulByte(_))));
    }

    #[test]
    fn minimal_environment() {
        let p = Process::new(vec!["sh".into()], "box", Some("vt100"));
        assert_eq!(
            p.env,
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOME=/root".into(),
                "TERM=vt100".into(),
                "HOSTNAME=box".into()
            ]
        );
    }
}
