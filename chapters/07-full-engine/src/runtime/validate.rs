//! What Berth honours: every field of config.json is either carried out or
//! refused, by name, before anything is created.
//!
//! A runtime that ignores a field it does not implement runs a container
//! other than the one that was asked for: a profile not applied, a limit not
//! set. So [`validate`] goes through the spec and refuses what berth-runtime
//! cannot do, with one exception the other runtimes make too: an AppArmor
//! profile or SELinux label on a host without that security module cannot be
//! applied *and* protects nothing there, so it is skipped with a warning
//! (podman and docker send them on every host).
//!
//! It also checks, with the kernel, what only the host can tell: a
//! namespace `path` must be a namespace of the stated type, and each
//! `sysctl` must belong to a namespace the container has of its own.
//!
//! Man pages: namespaces(7) and ioctl_ns(2) (`NS_GET_NSTYPE`), sysctl(8),
//! personality(2); runtime-spec `config.md`, `config-linux.md`.

use std::os::fd::AsRawFd;
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxDeviceType, LinuxNamespaceType, Spec};

use super::config::{ConfigError, invalid, io_reason, ns_name};
use super::resources::{CgroupRequest, cgroup_request};

/// The security modules of this host, which decide whether labels are
/// applied or skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
}

impl Host {
    /// Look in `sys_root` (`/sys`): AppArmor says `Y` in its module
    /// parameters; SELinux has its filesystem mounted on `fs/selinux`.
    pub fn detect(sys_root: &Path) -> Host {
        let apparmor = std::fs::read_to_string(sys_root.join("module/apparmor/parameters/enabled"))
            .is_ok_and(|s| s.trim() == "Y");
        let selinux = sys_root.join("fs/selinux/enforce").exists();
        Host { apparmor, selinux }
    }
}

/// What validation found acceptable: the cgroup request, and the fields
/// skipped with a warning.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    pub cgroup: CgroupRequest,
    pub warnings: Vec<String>,
}

fn unsupported(field: &str, why: &str) -> ConfigError {
    invalid(field, format!("not supported by berth-runtime: {why}"))
}

/// Refuse what berth-runtime cannot honour; skip labels the host cannot
/// apply, with a warning.
// ANCHOR: validate
pub fn validate(spec: &Spec, host: Host) -> Result<Accepted, ConfigError> {
    let mut warnings = Vec::new();
    // 1. Linux containers only.
    let platforms = [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ];
    if let Some((name, _)) = platforms.iter().find(|(_, set)| *set) {
        return Err(unsupported(name, "berth-runtime runs Linux containers"));
    }
    // 2. The process: capabilities, rlimits, its security labels.
    if let Some(process) = spec.process() {
        validate_process(process, "process", host, &mut warnings)?;
    }
    let Some(linux) = spec.linux() else {
        return Ok(Accepted {
            cgroup: CgroupRequest::default(),
            warnings,
        });
    };
    // 3. What berth-runtime does not implement: refused as a whole.
    refuse_unimplemented(linux)?;
    if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
        selinux_label("linux.mountLabel", label, host, &mut warnings)?;
    }
    // 4. The namespaces, and what needs one of the container's own.
    check_namespaces(spec, linux)?;
    // 5. The fields left that have rules of their own.
    check_linux_fields(linux)?;
    // 6. linux.resources, as chapter 3's request.
    let cgroup = match linux.resources() {
        Some(resources) => cgroup_request(resources, "linux.resources")?,
        None => CgroupRequest::default(),
    };
    Ok(Accepted { cgroup, warnings })
}
// ANCHOR_END: validate

/// The parts of `linux` that berth-runtime does not implement.
fn refuse_unimplemented(linux: &Linux) -> Result<(), ConfigError> {
    let refused = [
        (
            "linux.intelRdt",
            linux.intel_rdt().is_some(),
            "Intel RDT (resctrl) is not implemented",
        ),
        (
            "linux.memoryPolicy",
            linux.memory_policy().is_some(),
            "NUMA memory policies are not implemented",
        ),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "moving network devices is the engine's job: give a network namespace path instead",
        ),
        (
            "linux.timeOffsets",
            linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
            "time namespaces are not implemented",
        ),
    ];
    match refused.iter().find(|(_, set, _)| *set) {
        Some((field, _, why)) => Err(unsupported(field, why)),
        None => Ok(()),
    }
}

/// `linux.namespaces`: no time namespace, a `path` must name a namespace
/// of its type; a hostname, a domain name and each sysctl need a namespace
/// of the container's own.
// ANCHOR: check_namespaces
fn check_namespaces(spec: &Spec, linux: &Linux) -> Result<(), ConfigError> {
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(unsupported(
                &format!("linux.namespaces[{i}]"),
                "time namespaces are not implemented",
            ));
        }
        if let Some(path) = ns.path() {
            check_namespace_path(path, ns.typ())
                .map_err(|why| invalid(format!("linux.namespaces[{i}].path"), why))?;
        }
    }
    let has = |typ| namespaces.iter().any(|ns| ns.typ() == typ);
    for (field, set) in [
        (
            "hostname",
            spec.hostname().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        (
            "domainname",
            spec.domainname().as_ref().is_some_and(|d| !d.is_empty()),
        ),
    ] {
        if set && !has(LinuxNamespaceType::Uts) {
            return Err(invalid(
                field,
                "needs a UTS namespace of the container's own: add {\"type\": \"uts\"} to linux.namespaces",
            ));
        }
    }
    let mut sysctls: Vec<_> = linux.sysctl().iter().flatten().collect();
    sysctls.sort();
    for (key, _) in sysctls {
        check_sysctl(key, &has).map_err(|why| invalid(format!("linux.sysctl.{key}"), why))?;
    }
    Ok(())
}
// ANCHOR_END: check_namespaces

/// `rootfsPropagation`, `personality` and `devices`.
// ANCHOR: check_linux_fields
fn check_linux_fields(linux: &Linux) -> Result<(), ConfigError> {
    if let Some(p) = linux.rootfs_propagation().as_deref() {
        const KINDS: [&str; 8] = [
            "shared",
            "slave",
            "private",
            "unbindable",
            "rshared",
            "rslave",
            "rprivate",
            "runbindable",
        ];
        if !KINDS.contains(&p) {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("{p:?}: use one of {}", KINDS.join(", ")),
            ));
        }
    }
    if linux
        .personality()
        .as_ref()
        .is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty()))
    {
        return Err(unsupported(
            "linux.personality.flags",
            "only the domain (LINUX or LINUX32) is set",
        ));
    }
    for (i, device) in linux.devices().iter().flatten().enumerate() {
        if device.typ() == LinuxDeviceType::A {
            return Err(invalid(
                format!("linux.devices[{i}].type"),
                "\"a\" is for device cgroup rules: a device node is c, b, u or p",
            ));
        }
    }
    Ok(())
}
// ANCHOR_END: check_linux_fields

/// `process`: config.json's, or the one `exec` runs.
pub fn validate_process(
    process: &oci_spec::runtime::Process,
    field: &str,
    host: Host,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let refused = [
        (
            "commandLine",
            process.command_line().is_some(),
            "it is for Windows: use args",
        ),
        (
            "user.username",
            process.user().username().is_some(),
            "it is for Windows: use uid and gid",
        ),
        (
            "ioPriority",
            process.io_priority().is_some(),
            "I/O priorities are not implemented",
        ),
        (
            "scheduler",
            process.scheduler().is_some(),
            "scheduling policies are not implemented",
        ),
        (
            "execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
            "CPU affinity at exec is not implemented: use linux.resources.cpu.cpus",
        ),
    ];
    if let Some((name, _, why)) = refused.iter().find(|(_, set, _)| *set) {
        return Err(unsupported(&format!("{field}.{name}"), why));
    }
    if let Some(adj) = process
        .oom_score_adj()
        .filter(|a| !(-1000..=1000).contains(a))
    {
        return Err(invalid(
            format!("{field}.oomScoreAdj"),
            format!("{adj}: must be -1000 to 1000"),
        ));
    }
    let profile = process.apparmor_profile().as_deref();
    if let Some(profile) = profile.filter(|p| !p.is_empty() && !host.apparmor) {
        warnings.push(format!(
            "{field}.apparmorProfile {profile:?} skipped: AppArmor is not enabled on this host"
        ));
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        selinux_label(&format!("{field}.selinuxLabel"), label, host, warnings)?;
    }
    Ok(())
}

fn selinux_label(
    field: &str,
    label: &str,
    host: Host,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if host.selinux {
        return Err(unsupported(
            field,
            "berth-runtime does not apply SELinux labels",
        ));
    }
    warnings.push(format!(
        "{field} {label:?} skipped: SELinux is not enabled on this host"
    ));
    Ok(())
}

/// `NSFS_MAGIC` from linux/magic.h: the filesystem of `/proc/PID/ns/*`.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A namespace to join must be one, and of the stated type: ask the kernel
/// (ioctl_ns(2)), as `setns(2)` would only find out halfway through create.
// ANCHOR: check_namespace_path
pub fn check_namespace_path(path: &Path, want: LinuxNamespaceType) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), io_reason(&e)))?;
    let fs = nix::sys::statfs::fstatfs(&file)
        .map_err(|e| format!("{}: fstatfs: {e}", path.display()))?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(format!(
            "{}: not a namespace (namespaces are files like /proc/PID/ns/{} or a bind mount of one)",
            path.display(),
            proc_ns_name(want)
        ));
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which
    // `file` keeps open for the call.
    let found = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if found < 0 {
        return Err(format!(
            "{}: ioctl NS_GET_NSTYPE: {}",
            path.display(),
            nix::errno::Errno::last()
        ));
    }
    if found != want as i32 {
        let name = NAMESPACE_TYPES
            .iter()
            .find(|t| **t as i32 == found)
            .map_or("unknown", |t| ns_name(*t));
        return Err(format!(
            "{}: a {name} namespace, not a {} namespace",
            path.display(),
            ns_name(want)
        ));
    }
    Ok(())
}
// ANCHOR_END: check_namespace_path

const NAMESPACE_TYPES: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Time,
];

/// The name under /proc/PID/ns/.
fn proc_ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        other => ns_name(other),
    }
}

/// The System V IPC and POSIX message queue sysctls: they belong to the IPC
/// namespace.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl is written into /proc/sys inside the container, and must only
/// change the container's own namespaces: runc's rules.
// ANCHOR: check_sysctl
pub fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<(), String> {
    // The key becomes a path under /proc/sys ("net.ipv4.ip_forward" is
    // net/ipv4/ip_forward): it must not climb out of it.
    let parts: Vec<&str> = key.split(['.', '/']).collect();
    if parts.iter().any(|p| p.is_empty() || *p == "..") {
        return Err("not a sysctl name (like net.ipv4.ip_forward)".to_string());
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return if has(LinuxNamespaceType::Ipc) {
            Ok(())
        } else {
            Err("needs an IPC namespace of the container's own: add {\"type\": \"ipc\"}".into())
        };
    }
    if key.starts_with("net.") {
        return if has(LinuxNamespaceType::Network) {
            Ok(())
        } else {
            Err(
                "needs a network namespace of the container's own: add {\"type\": \"network\"}"
                    .into(),
            )
        };
    }
    if has(LinuxNamespaceType::Uts) {
        match key {
            "kernel.domainname" => return Ok(()),
            "kernel.hostname" => {
                return Err("conflicts with the hostname field: set that instead".into());
            }
            _ => {}
        }
    }
    Err("not in a namespace of the container's own: it would change the host".into())
}
// ANCHOR_END: check_sysctl

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::parse_config;

    fn spec(linux: &str, process_extra: &str) -> Spec {
        let text = format!(
            r#"{{"ociVersion": "1.2.0", "root": {{"path": "rootfs"}}, "hostname": "h",
                "process": {{"args": ["sh"], "cwd": "/", "user": {{"uid": 0, "gid": 0}}{process_extra}}},
                "linux": {linux}}}"#
        );
        parse_config(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    const NS: &str = r#""namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]"#;

    fn error(linux: &str, process_extra: &str) -> String {
        validate(&spec(linux, process_extra), Host::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn runc_default_like_config_is_accepted() {
        let s = spec(
            &format!(
                r#"{{{NS}, "resources": {{"devices": [{{"allow": false, "access": "rwm"}}]}},
                "sysctl": {{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "kernel.domainname": "d"}},
                "rootfsPropagation": "rslave", "personality": {{"domain": "LINUX32"}}}}"#
            ),
            "",
        );
        let accepted = validate(&s, Host::default()).unwrap();
        assert!(accepted.warnings.is_empty());
        assert_eq!(accepted.cgroup.devices.len(), 1);
    }

    #[test]
    fn fields_berth_cannot_honour_are_refused_by_name() {
        let cases = [
            (
                format!(r#"{{{NS}, "intelRdt": {{"closID": "x"}}}}"#),
                "",
                "config.json: linux.intelRdt: not supported by berth-runtime: ",
            ),
            (
                format!(r#"{{{NS}, "timeOffsets": {{"monotonic": {{"secs": 1}}}}}}"#),
                "",
                "config.json: linux.timeOffsets: not supported",
            ),
            (
                r#"{"namespaces": [{"type": "time"}, {"type": "uts"}]}"#.to_string(),
                "",
                "config.json: linux.namespaces[0]: not supported by berth-runtime: time namespaces",
            ),
            (
                format!(
                    r#"{{{NS}, "personality": {{"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}}}"#
                ),
                "",
                "config.json: linux.personality.flags: not supported",
            ),
            (
                format!("{{{NS}}}"),
                r#", "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 1}"#,
                "config.json: process.ioPriority: not supported",
            ),
            (
                format!("{{{NS}}}"),
                r#", "commandLine": "sh""#,
                "config.json: process.commandLine: not supported by berth-runtime: it is for Windows",
            ),
            (
                format!("{{{NS}}}"),
                r#", "oomScoreAdj": 1001"#,
                "config.json: process.oomScoreAdj: 1001: must be -1000 to 1000",
            ),
            (
                format!(r#"{{{NS}, "rootfsPropagation": "sideways"}}"#),
                "",
                "config.json: linux.rootfsPropagation: \"sideways\": use one of shared,",
            ),
            (
                format!(r#"{{{NS}, "resources": {{"memory": {{"swappiness": 10}}}}}}"#),
                "",
                "config.json: linux.resources.memory.swappiness: berth-runtime cannot apply",
            ),
            (
                format!(r#"{{{NS}, "devices": [{{"path": "/dev/x", "type": "a"}}]}}"#),
                "",
                "config.json: linux.devices[0].type: \"a\" is for device cgroup rules",
            ),
            (
                r#"{"namespaces": [{"type": "pid"}]}"#.to_string(),
                "",
                "config.json: hostname: needs a UTS namespace of the container's own",
            ),
        ];
        for (linux, extra, want) in cases {
            let err = error(&linux, extra);
            assert!(
                err.starts_with(want),
                "{linux} {extra}:\n{err}\nwant {want}"
            );
        }
    }

    #[test]
    fn labels_are_skipped_with_a_warning_only_where_the_host_has_no_such_module() {
        let s = spec(
            &format!(r#"{{{NS}, "mountLabel": "system_u:object_r:container_file_t:s0"}}"#),
            r#", "apparmorProfile": "docker-default", "selinuxLabel": "system_u:system_r:container_t:s0""#,
        );
        let accepted = validate(&s, Host::default()).unwrap();
        assert_eq!(
            accepted.warnings,
            [
                "process.apparmorProfile \"docker-default\" skipped: AppArmor is not enabled on this host",
                "process.selinuxLabel \"system_u:system_r:container_t:s0\" skipped: SELinux is not enabled on this host",
                "linux.mountLabel \"system_u:object_r:container_file_t:s0\" skipped: SELinux is not enabled on this host",
            ]
        );
        // With AppArmor, the profile is applied (no warning); with SELinux,
        // labels are refused: berth-runtime cannot apply them.
        let err = validate(
            &s,
            Host {
                apparmor: true,
                selinux: true,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "config.json: process.selinuxLabel: not supported by berth-runtime: berth-runtime does not apply SELinux labels"
        );
        let fake_sys = tempfile::tempdir().unwrap();
        assert_eq!(Host::detect(fake_sys.path()), Host::default());
        std::fs::create_dir_all(fake_sys.path().join("module/apparmor/parameters")).unwrap();
        std::fs::write(
            fake_sys.path().join("module/apparmor/parameters/enabled"),
            "Y\n",
        )
        .unwrap();
        std::fs::create_dir_all(fake_sys.path().join("fs/selinux")).unwrap();
        std::fs::write(fake_sys.path().join("fs/selinux/enforce"), "1").unwrap();
        assert_eq!(
            Host::detect(fake_sys.path()),
            Host {
                apparmor: true,
                selinux: true
            }
        );
    }

    #[test]
    fn sysctls_must_stay_in_the_containers_namespaces() {
        let all = |_| true;
        let none = |_| false;
        assert!(check_sysctl("net.ipv4.ip_forward", &all).is_ok());
        assert!(check_sysctl("kernel.sem", &all).is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max", &all).is_ok());
        assert!(check_sysctl("kernel.domainname", &all).is_ok());
        assert!(
            check_sysctl("net.ipv4.ip_forward", &none)
                .unwrap_err()
                .starts_with("needs a network namespace")
        );
        assert!(
            check_sysctl("kernel.shmmax", &none)
                .unwrap_err()
                .starts_with("needs an IPC namespace")
        );
        assert!(
            check_sysctl("kernel.hostname", &all)
                .unwrap_err()
                .starts_with("conflicts with the hostname")
        );
        assert!(
            check_sysctl("vm.swappiness", &all)
                .unwrap_err()
                .starts_with("not in a namespace of the container's own")
        );
        // A key that would climb out of /proc/sys.
        for bad in [
            "net.ipv4/../../../etc/passwd",
            "net..x",
            "net.",
            "net/../kernel/core_pattern",
        ] {
            assert_eq!(
                check_sysctl(bad, &all).unwrap_err(),
                "not a sysctl name (like net.ipv4.ip_forward)",
                "{bad}"
            );
        }
        let err = error(
            &format!(r#"{{{NS}, "sysctl": {{"kernel.core_pattern": "|/tmp/x"}}}}"#),
            "",
        );
        assert_eq!(
            err,
            "config.json: linux.sysctl.kernel.core_pattern: not in a namespace of the container's own: it would change the host"
        );
    }

    #[test]
    fn a_namespace_path_must_be_a_namespace_of_that_type() {
        // Our own namespaces: readable by anyone, no privilege needed.
        check_namespace_path(Path::new("/proc/self/ns/net"), LinuxNamespaceType::Network).unwrap();
        check_namespace_path(Path::new("/proc/self/ns/mnt"), LinuxNamespaceType::Mount).unwrap();
        assert_eq!(
            check_namespace_path(Path::new("/proc/self/ns/net"), LinuxNamespaceType::Pid)
                .unwrap_err(),
            "/proc/self/ns/net: a network namespace, not a pid namespace"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = check_namespace_path(file.path(), LinuxNamespaceType::Network).unwrap_err();
        assert!(err.ends_with(": not a namespace (namespaces are files like /proc/PID/ns/net or a bind mount of one)"), "{err}");
        let err = check_namespace_path(Path::new("/nonexistent/ns"), LinuxNamespaceType::Ipc)
            .unwrap_err();
        assert_eq!(err, "/nonexistent/ns: no such file or directory");
        let err = error(
            r#"{"namespaces": [{"type": "uts"}, {"type": "network", "path": "/proc/self/ns/uts"}]}"#,
            "",
        );
        assert_eq!(
            err,
            "config.json: linux.namespaces[1].path: /proc/self/ns/uts: a uts namespace, not a network namespace"
        );
    }
}
