//! seccomp: `linux.seccomp` compiled into a BPF filter on system calls.
//!
//! Kernel feature: seccomp in filter mode (Linux 3.5). A process installs a
//! small BPF program that the kernel runs on *every* system call it makes
//! from then on, with the call's number, architecture and six arguments as
//! input; the program's answer is allow, fail with an errno, kill, trap,
//! log, or ask a supervisor (`SECCOMP_RET_USER_NOTIF`). The filter is
//! inherited across fork and execve and can never be removed, so a runtime
//! installs it as the very last step before executing the container's
//! program. Docker's default profile refuses some 50 calls (`mount`,
//! `kexec_load`, `bpf`, `keyctl`, ...) that a container has no business
//! making and that have carried kernel exploits.
//!
//! Writing BPF by hand is error-prone: a filter must check the architecture
//! first (the same number is another call on i386 or x32), compare 64-bit
//! arguments as two 32-bit halves, and name calls by number per
//! architecture. libseccomp does all of that, and runc, crun and youki use
//! it: we compile with libseccomp (the `libseccomp` crate) in the runtime,
//! *before* the container's process exists, export the BPF program, and the
//! child loads it with one `seccomp(2)` call. That keeps the child to plain
//! system calls (no allocation after fork), and lets us pass every flag the
//! spec names, `SECCOMP_FILTER_FLAG_NEW_LISTENER` included.
//!
//! The spec's rules, as runc applies them: a call name this libseccomp does
//! not know is skipped (profiles list calls of newer kernels); a rule whose
//! action is the default action is redundant and skipped; several
//! conditions on *different* arguments must all hold, while conditions that
//! repeat an argument each make a rule of their own (either may match).
//!
//! Man pages: seccomp(2), seccomp_rule_add(3), seccomp_export_bpf(3),
//! seccomp_unotify(2); runtime-spec `config-linux.md` ("Seccomp").

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

/// A profile that cannot be compiled; `field` is its JSON path.
#[derive(Debug, thiserror::Error)]
#[error("config.json: {field}: {why}")]
pub struct SeccompError {
    pub field: String,
    pub why: String,
}

fn error(field: impl Into<String>, why: impl Into<String>) -> SeccompError {
    SeccompError {
        field: field.into(),
        why: why.into(),
    }
}

// The seccomp(2) flags (linux/seccomp.h).
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: u32 = 1 << 0;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    /// The BPF program: `struct sock_filter` entries.
    program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    pub flags: u32,
    /// Some rule answers `SCMP_ACT_NOTIFY`: loading returns the listener
    /// fd, which the runtime sends to `listenerPath`.
    pub notify: bool,
}

/// The spec's action, with its errno where it has one.
fn action(act: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(op: LinuxSeccompOperator, index: u32, value: u64, two: Option<u64>) -> ScmpArgCompare {
    let op_datum = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // The spec: `value` is the mask, `valueTwo` what the masked
        // argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), two.unwrap_or(0))
        }
    };
    ScmpArgCompare::new(index, op_datum.0, op_datum.1)
}

/// The spec's name of a serde enum value ("SCMP_ARCH_X86_64").
fn spec_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Compile `linux.seccomp`.
// ANCHOR: compile
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    // 1. The default action, which every call not named below gets; a
    //    default of NOTIFY would stop the runtime's own calls too.
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(error(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY would stop every call, the runtime's own included: notify on named calls only",
        ));
    }
    let default = action(spec.default_action(), spec.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("linux.seccomp.defaultAction"))?;
    // 2. The architectures: libseccomp checks each call's architecture
    //    first, since one number is another call on i386 or x32.
    for (i, arch) in spec.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let arch = ScmpArch::from_str(&spec_name(arch)).map_err(lib(&field))?;
        ctx.add_arch(arch).map_err(lib(&field))?;
    }
    // 3. The rules, in order.
    let mut notify = false;
    for (i, rule) in spec.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        notify |= add_rule(&mut ctx, rule, default, &field)?;
    }
    if notify && spec.listener_path().is_none() {
        return Err(error(
            "linux.seccomp.listenerPath",
            "missing: SCMP_ACT_NOTIFY needs a listener to receive the notification fd",
        ));
    }
    // 4. The flags seccomp(2) is given, and the BPF program itself.
    Ok(Filter {
        program: export(&ctx).map_err(|why| error("linux.seccomp", why))?,
        flags: filter_flags(spec, notify),
        notify,
    })
}
// ANCHOR_END: compile

/// libseccomp's error, as an error about `field`.
fn lib(field: &str) -> impl Fn(libseccomp::error::SeccompError) -> SeccompError {
    let field = field.to_string();
    move |e| error(field.clone(), format!("libseccomp: {e}"))
}

/// Add one of the spec's rules (at JSON path `field`) to `ctx`. True if
/// its action is NOTIFY.
// ANCHOR: add_rule
fn add_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
    field: &str,
) -> Result<bool, SeccompError> {
    let act = action(rule.action(), rule.errno_ret());
    let notify = rule.action() == LinuxSeccompAction::ScmpActNotify;
    // The runtime's child reports a failed exec by writing to a pipe: a
    // notified write would wait forever for a supervisor.
    if notify && rule.names().iter().any(|n| n == "write") {
        return Err(error(field, "SCMP_ACT_NOTIFY cannot be used for write"));
    }
    if act == default {
        return Ok(notify);
    }
    let args: Vec<_> = rule.args().iter().flatten().collect();
    for (j, arg) in args.iter().enumerate() {
        if arg.index() > 5 {
            return Err(error(
                format!("{field}.args[{j}].index"),
                format!("{}: a system call has arguments 0 to 5", arg.index()),
            ));
        }
    }
    let conditions: Vec<ScmpArgCompare> = args
        .iter()
        .map(|a| compare(a.op(), a.index() as u32, a.value(), a.value_two()))
        .collect();
    let repeats = args
        .iter()
        .enumerate()
        .any(|(j, a)| args[..j].iter().any(|b| b.index() == a.index()));
    for name in rule.names() {
        // Not a call this libseccomp knows: skipped, as runc does.
        let Ok(call) = ScmpSyscall::from_name(name) else {
            continue;
        };
        if conditions.is_empty() {
            ctx.add_rule(act, call).map_err(lib(field))?;
        } else if repeats {
            for condition in &conditions {
                ctx.add_rule_conditional(act, call, std::slice::from_ref(condition))
                    .map_err(lib(field))?;
            }
        } else {
            ctx.add_rule_conditional(act, call, &conditions)
                .map_err(lib(field))?;
        }
    }
    Ok(notify)
}
// ANCHOR_END: add_rule

/// The `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
// ANCHOR: filter_flags
fn filter_flags(spec: &LinuxSeccomp, notify: bool) -> u32 {
    let mut flags = if notify { FLAG_NEW_LISTENER } else { 0 };
    for flag in spec.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    // TSYNC and NEW_LISTENER both want the return value: the kernel
    // needs TSYNC_ESRCH to allow the pair.
    if flags & FLAG_TSYNC != 0 && flags & FLAG_NEW_LISTENER != 0 {
        flags |= FLAG_TSYNC_ESRCH;
    }
    flags
}
// ANCHOR_END: filter_flags

/// The BPF program libseccomp made, as `sock_filter` entries. (libseccomp
/// 2.5 exports only to a file descriptor: an unlinked temporary file.)
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, String> {
    let mut file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
    ctx.export_bpf(&file)
        .map_err(|e| format!("libseccomp: export: {e}"))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| format!("read the exported filter: {e}"))?;
    let size = std::mem::size_of::<libc::sock_filter>();
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Filter {
    /// How many BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Install the filter on the calling thread (its process, with TSYNC):
    /// one seccomp(2) call, no allocation, so a child may call it between
    /// fork and exec. Needs no_new_privs, or CAP_SYS_ADMIN. Returns the
    /// notification listener when the filter has one.
    // ANCHOR: load
    pub fn load(&self) -> Result<Option<OwnedFd>, Errno> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points into `self.program`, alive for the call;
        // the kernel copies the program before returning.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        if self.flags & FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER, seccomp(2) returns a new fd that
            // nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }));
        }
        Ok(None)
    }
    // ANCHOR_END: load
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    /// In a forked child: set no_new_privs, load `filter`, run `probe`
    /// (plain system calls only), exit with what it returns.
    fn in_child(filter: &Filter, probe: fn() -> i32) -> WaitStatus {
        // SAFETY: the child makes system calls only (prctl, seccomp, the
        // probe's calls, _exit): nothing that could need a lock another
        // thread held at the fork.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // SAFETY: plain system calls.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        libc::_exit(100);
                    }
                }
                let code = match filter.load() {
                    Ok(_) => probe(),
                    Err(_) => 101,
                };
                // SAFETY: ends the child without running the parent's atexit
                // handlers or flushing its buffers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    }

    fn errno_of(ret: libc::c_long) -> i32 {
        if ret < 0 { Errno::last_raw() } else { 0 }
    }

    #[test]
    fn a_denied_call_fails_with_its_errno_and_others_work() {
        let filter = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_call_in_any_kernel"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}
            ]
        })))
        .unwrap();
        assert!(!filter.is_empty() && !filter.notify);
        let status = in_child(&filter, || {
            // SAFETY: plain system calls with valid arguments; errno is
            // read right after each.
            let mkdir = errno_of(unsafe {
                libc::syscall(
                    libc::SYS_mkdirat,
                    libc::AT_FDCWD,
                    c"/nonexistent-dir/x".as_ptr(),
                    0o755,
                )
            });
            // SAFETY: as above.
            let ppid = errno_of(unsafe { libc::syscall(libc::SYS_getppid) });
            // SAFETY: as above.
            let pid = unsafe { libc::syscall(libc::SYS_getpid) };
            // EXDEV (18) from mkdirat, EPERM (the default errnoRet) from
            // getppid, and getpid still works.
            if mkdir == libc::EXDEV && ppid == libc::EPERM && pid > 0 {
                0
            } else {
                1
            }
        });
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0));
    }

    #[test]
    fn without_the_filter_the_probe_sees_the_plain_results() {
        // The same probe, with a filter that denies nothing: mkdirat fails
        // with ENOENT (no such parent) and getppid works. This is what the
        // test above would see if compile or load did nothing.
        let filter = compile(&profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}),
        ))
        .unwrap();
        let status = in_child(&filter, || {
            // SAFETY: plain system calls with valid arguments.
            let (mkdir, ppid) = unsafe {
                (
                    libc::syscall(
                        libc::SYS_mkdirat,
                        libc::AT_FDCWD,
                        c"/nonexistent-dir/x".as_ptr(),
                        0o755,
                    ),
                    libc::syscall(libc::SYS_getppid),
                )
            };
            let mkdir = if mkdir < 0 { Errno::last_raw() } else { 0 };
            if mkdir == libc::ENOENT && ppid > 0 {
                0
            } else {
                1
            }
        });
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0));
    }

    /// For each operator: which of getpgid(low), getpgid(mid), getpgid(high)
    /// the rule answered with ENOTTY, as bits 4, 2, 1.
    #[test]
    fn every_argument_operator_compares_as_the_spec_says() {
        let cases = [
            ("SCMP_CMP_EQ", 0b010),
            ("SCMP_CMP_NE", 0b101),
            ("SCMP_CMP_LT", 0b100),
            ("SCMP_CMP_LE", 0b110),
            ("SCMP_CMP_GT", 0b001),
            ("SCMP_CMP_GE", 0b011),
        ];
        let probe = || {
            let mut bits = 0;
            for (bit, pid) in [(4, 999_990), (2, 1_000_000), (1, 1_000_010)] {
                // SAFETY: getpgid of a pid that does not exist: ESRCH.
                let ret = unsafe { libc::syscall(libc::SYS_getpgid, pid) };
                if ret < 0 && Errno::last_raw() == libc::ENOTTY {
                    bits |= bit;
                }
            }
            bits
        };
        for (op, want) in cases {
            let filter = compile(&profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTTY,
                              "args": [{"index": 0, "value": 1_000_000, "op": op}]}]
            })))
            .unwrap();
            let status = in_child(&filter, probe);
            assert_eq!(
                status,
                WaitStatus::Exited(status.pid().unwrap(), want),
                "{op}"
            );
        }
        // Masked: (arg & 0xf0) == 0x20, for 0x21 and 0x2f but not 0x31.
        let filter = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTTY,
                          "args": [{"index": 0, "value": 0xf0, "valueTwo": 0x20, "op": "SCMP_CMP_MASKED_EQ"}]}]
        })))
        .unwrap();
        let status = in_child(&filter, || {
            let mut bits = 0;
            for (bit, pid) in [(4, 0x21), (2, 0x2f), (1, 0x31)] {
                // SAFETY: getpgid only reads its argument.
                let ret = unsafe { libc::syscall(libc::SYS_getpgid, pid) };
                if ret < 0 && Errno::last_raw() == libc::ENOTTY {
                    bits |= bit;
                }
            }
            bits
        });
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0b110));
        // The same argument twice: either condition matches (runc's rule).
        let filter = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTTY,
                          "args": [{"index": 0, "value": 999_990, "op": "SCMP_CMP_EQ"},
                                   {"index": 0, "value": 1_000_010, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap();
        let status = in_child(&filter, probe);
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0b101));
    }

    #[test]
    fn a_default_errno_and_the_kill_action() {
        // Deny by default with ENOSYS... except what the probe needs.
        let filter = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOSYS,
            "syscalls": [
                {"names": ["exit", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]
        })))
        .unwrap();
        let status = in_child(&filter, || {
            // SAFETY: plain system calls.
            let uid = unsafe { libc::syscall(libc::SYS_getuid) };
            // SAFETY: a plain system call.
            let pid = unsafe { libc::syscall(libc::SYS_getpid) };
            if uid < 0 && Errno::last_raw() == libc::ENOSYS && pid > 0 {
                7
            } else {
                1
            }
        });
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 7));
        let status = in_child(&filter, || {
            // SAFETY: a plain system call; the filter kills us here.
            unsafe { libc::syscall(libc::SYS_getppid) };
            0
        });
        assert!(
            matches!(
                status,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{status:?}"
        );
    }

    #[test]
    fn flags_and_the_notify_listener_reach_the_kernel() {
        let filter = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "listenerPath": "/run/listener.sock",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap();
        assert!(filter.notify);
        assert_eq!(
            filter.flags,
            FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH
        );
        // The kernel takes the flags and hands back a listener fd.
        let status = in_child(&filter, || 0);
        assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0));
    }

    #[test]
    fn profiles_that_cannot_work_are_refused_by_field() {
        let err = |json| compile(&profile(json)).unwrap_err().to_string();
        assert_eq!(
            err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})),
            "config.json: linux.seccomp.listenerPath: missing: SCMP_ACT_NOTIFY needs a listener to receive the notification fd"
        );
        assert_eq!(
            err(
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
                "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]})
            ),
            "config.json: linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for write"
        );
        assert!(
            err(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"})).starts_with(
                "config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY would stop"
            )
        );
        assert_eq!(
            err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})),
            "config.json: linux.seccomp.syscalls[0].args[0].index: 6: a system call has arguments 0 to 5"
        );
    }
}
