//! docker's default seccomp profile, and profiles in docker's format.
//!
//! Kernel feature: seccomp(2) filters the system calls a process may make.
//! Docker's default profile is an allow list: about 350 calls every
//! program needs are allowed; the rest fail with EPERM. Calls that only
//! make sense with a capability (mount with CAP_SYS_ADMIN, reboot with
//! CAP_SYS_BOOT, ptrace with CAP_SYS_PTRACE...) are allowed only to a
//! container given that capability; a few are allowed with argument checks
//! (`clone` without namespace flags, `personality` with harmless values,
//! `socket` of any family but AF_VSOCK); `clone3`, whose flags sit behind a
//! pointer a filter cannot read, fails with ENOSYS so that C libraries
//! fall back to `clone`.
//!
//! A profile in docker's format (`--security-opt seccomp=FILE`) is the
//! runtime spec's `linux.seccomp` plus `includes`/`excludes` on each rule
//! (by capability, architecture, kernel version) and an `archMap`;
//! [`to_runtime_spec`] resolves those for this container and this host, and
//! the default profile goes through the same function.
//!
//! Man pages: seccomp(2), syscalls(2); the OCI runtime spec,
//! config-linux.md ("Seccomp").

use serde_json::{Value, json};

use super::record::HostConfig;
use super::security::{SecurityOpts, capabilities};

/// The calls allowed to every container.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Calls allowed only with a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace flags `clone` may not carry without CAP_SYS_ADMIN:
/// NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// docker's default profile, in docker's format.
pub fn default_profile() -> Value {
    let mut syscalls = vec![json!({"names": ALLOWED, "action": "SCMP_ACT_ALLOW"})];
    // socket(2) of every family but AF_VSOCK (40): a way out to the host.
    syscalls.push(json!({
        "names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}],
    }));
    // personality(2): only the harmless personas (Linux, Linux32, UNAME26,
    // both, and the query).
    for persona in [0u64, 8, 131_072, 131_080, 4_294_967_295] {
        syscalls.push(json!({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
        }));
    }
    syscalls.push(json!({
        "names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["amd64", "x32", "x86"]},
    }));
    // Kernels from 4.8 check ptrace against seccomp themselves.
    syscalls.push(json!({
        "names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW",
        "includes": {"minKernel": "4.8"},
    }));
    for (cap, names) in BY_CAPABILITY {
        syscalls.push(json!({
            "names": names, "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]},
        }));
    }
    // clone(2) without namespace flags, for everyone else.
    syscalls.push(json!({
        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    }));
    // clone3(2): ENOSYS, so that glibc falls back to clone.
    syscalls.push(json!({
        "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    }));
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    })
}

/// The host's architecture in seccomp's words, and in Go's.
fn host_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        "x86" => ("SCMP_ARCH_X86", "x86"),
        "arm" => ("SCMP_ARCH_ARM", "arm"),
        other => (other, other),
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-13-amd64`.
fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A docker-format profile made into `linux.seccomp` for a container with
/// capabilities `caps`, on this host (kernel `release`).
pub fn to_runtime_spec(profile: &Value, caps: &[String], release: &str) -> Result<Value, String> {
    let object = profile
        .as_object()
        .ok_or("a seccomp profile is a JSON object")?;
    let (arch, go_arch) = host_arch();
    let kernel = kernel_version(release);
    let mut out = serde_json::Map::new();
    out.insert(
        "defaultAction".into(),
        object
            .get("defaultAction")
            .cloned()
            .ok_or("the seccomp profile has no defaultAction")?,
    );
    if let Some(errno) = object.get("defaultErrnoRet") {
        out.insert("defaultErrnoRet".into(), errno.clone());
    }
    // Architectures: as given, or the host's entry of archMap.
    let mut arches: Vec<Value> = object
        .get("architectures")
        .and_then(|a| a.as_array().cloned())
        .unwrap_or_default();
    for entry in object
        .get("archMap")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        if entry["architecture"] == arch {
            arches.push(entry["architecture"].clone());
            arches.extend(
                entry["subArchitectures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), arches.into());
    }
    for key in ["flags", "listenerPath", "listenerMetadata"] {
        if let Some(value) = object.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    let applies = |filter: &Value| -> bool {
        let caps_ok = filter["caps"].as_array().is_none_or(|list| {
            list.iter()
                .all(|c| caps.iter().any(|h| Some(h.as_str()) == c.as_str()))
        });
        let arches_ok = filter["arches"]
            .as_array()
            .is_none_or(|list| list.iter().any(|a| a == go_arch));
        let kernel_ok = filter["minKernel"]
            .as_str()
            .is_none_or(|min| kernel >= kernel_version(min));
        caps_ok && arches_ok && kernel_ok
    };
    let excluded = |filter: &Value| -> bool {
        let by_caps = filter["caps"].as_array().is_some_and(|list| {
            list.iter()
                .any(|c| caps.iter().any(|h| Some(h.as_str()) == c.as_str()))
        });
        let by_arch = filter["arches"]
            .as_array()
            .is_some_and(|list| list.iter().any(|a| a == go_arch));
        let by_kernel = filter["minKernel"]
            .as_str()
            .is_some_and(|min| kernel >= kernel_version(min));
        by_caps || by_arch || by_kernel
    };
    let mut syscalls = Vec::new();
    for rule in object
        .get("syscalls")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(includes) = rule.get("includes")
            && !applies(includes)
        {
            continue;
        }
        if let Some(excludes) = rule.get("excludes")
            && excluded(excludes)
        {
            continue;
        }
        let mut rule = rule.clone();
        if let Some(map) = rule.as_object_mut() {
            for key in ["includes", "excludes", "comment", "name"] {
                map.remove(key);
            }
        }
        // docker's old single-name form.
        if let Some(name) = rule_name(profile, &rule) {
            rule["names"] = json!([name]);
        }
        syscalls.push(rule);
    }
    out.insert("syscalls".into(), syscalls.into());
    Ok(Value::Object(out))
}

fn rule_name(_profile: &Value, rule: &Value) -> Option<String> {
    if rule.get("names").is_some() {
        return None;
    }
    rule.get("name").and_then(|n| n.as_str()).map(String::from)
}

/// The container's `linux.seccomp`: none for `--privileged` or
/// `seccomp=unconfined`, the given profile, or docker's default.
pub fn seccomp_for(host: &HostConfig, security: &SecurityOpts) -> Result<Option<Value>, String> {
    if host.privileged || security.seccomp_unconfined {
        return Ok(None);
    }
    let profile = match &security.seccomp_profile {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| format!("decoding seccomp profile failed: {e}"))?,
        None => default_profile(),
    };
    let caps = capabilities(
        false,
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
    )?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    to_runtime_spec(&profile, &caps, release.trim()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &Value) -> Vec<String> {
        spec["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_default_profile_depends_on_capabilities() {
        let default: Vec<String> = ch02_namespaces::capabilities::docker_default().names();
        let spec = to_runtime_spec(&default_profile(), &default, "6.1.0").unwrap();
        assert_eq!(spec["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(spec["defaultErrnoRet"], 1);
        let allowed = names(&spec);
        assert!(allowed.contains(&"read".to_string()));
        assert!(
            allowed.contains(&"chroot".to_string()),
            "CAP_SYS_CHROOT is default"
        );
        assert!(!allowed.contains(&"mount".to_string()));
        assert!(!allowed.contains(&"reboot".to_string()));
        // clone, but only without namespace flags.
        let clone = spec["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                spec["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
            );
            assert!(allowed.contains(&"arch_prctl".to_string()));
        }
        // With CAP_SYS_ADMIN: mount, and clone without the argument check.
        let mut admin = default.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let spec = to_runtime_spec(&default_profile(), &admin, "6.1.0").unwrap();
        let allowed = names(&spec);
        assert!(allowed.contains(&"mount".to_string()));
        assert!(
            !spec["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"] == json!(["clone3"]) && r["action"] == "SCMP_ACT_ERRNO")
        );
        // An old kernel: no ptrace.
        let old = to_runtime_spec(&default_profile(), &default, "4.4.0").unwrap();
        assert!(!names(&old).contains(&"ptrace".to_string()));
    }

    #[test]
    fn profiles_without_default_action_are_refused() {
        let err = to_runtime_spec(&json!({"syscalls": []}), &[], "6.1").unwrap_err();
        assert!(err.contains("defaultAction"), "{err}");
        assert!(to_runtime_spec(&json!([]), &[], "6.1").is_err());
    }
}
