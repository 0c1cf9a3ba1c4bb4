//! `berth-runtime features`: what this runtime can do, as JSON.
//!
//! runtime-spec `features.md` defines a JSON document a runtime prints so
//! an engine can ask instead of guessing: the spec versions it reads, the
//! hooks, mount options, namespaces, capabilities, cgroup versions and
//! seccomp actions, operators, architectures and flags it supports. runc,
//! crun and youki print it; containerd and podman read it (for example to
//! know whether `SECCOMP_FILTER_FLAG_*` flags or idmapped mounts may be
//! asked for).
//!
//! What we print is what berth-runtime implements; what depends on the host
//! is asked of the host: the seccomp filter flags of this kernel (a
//! `seccomp(2)` probe), libseccomp's version.
//!
//! Spec: runtime-spec `features.md`, `features-linux.md`.

use serde_json::json;

use super::spec::OCI_VERSION;

/// The mount options the mount step understands (runc's list): flags set
/// and cleared, propagation, recursive attributes; anything else is passed
/// to the filesystem as data (`mode=755`, `size=65536k`).
pub const MOUNT_OPTIONS: [&str; 64] = [
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "idmap",
    "ridmap",
];

/// The seccomp filter flags the spec names, with their bits.
const SECCOMP_FLAGS: [(&str, u32); 4] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", 1 << 0),
    ("SECCOMP_FILTER_FLAG_LOG", 1 << 1),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 1 << 2),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 1 << 5),
];

/// Does this kernel know seccomp filter flag `bit`? Asked as runc asks:
/// `seccomp(SECCOMP_SET_MODE_FILTER, bit, NULL)` fails with EFAULT (it got
/// as far as reading the program) for a known flag, EINVAL for an unknown
/// one. Nothing is installed either way.
pub fn kernel_has_seccomp_flag(bit: u32) -> bool {
    // SAFETY: a NULL program is never installed: the kernel fails the call
    // before or while copying it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1 as libc::c_ulong,
            bit as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
        )
    };
    ret < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

/// The features document.
// ANCHOR: features
pub fn features() -> serde_json::Value {
    let mut caps: Vec<_> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let supported: Vec<&str> = SECCOMP_FLAGS
        .iter()
        .filter(|(_, bit)| kernel_has_seccomp_flag(*bit))
        .map(|(name, _)| *name)
        .collect();
    let libseccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS.as_slice(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
                    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
                    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
                    "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
                ],
                "knownFlags": SECCOMP_FLAGS.map(|(name, _)| name),
                "supportedFlags": supported
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": libseccomp,
            "com.github.berth-workshop.berth-runtime.version": env!("CARGO_PKG_VERSION")
        }
    })
}
// ANCHOR_END: features

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Features;

    #[test]
    fn every_field_is_one_the_spec_defines() {
        let ours = features();
        // Read into the spec's type and written back: a field the type does
        // not know would vanish, a value of the wrong shape would not parse.
        let typed: Features = serde_json::from_value(ours.clone()).unwrap();
        let mut back = serde_json::to_value(&typed).unwrap();
        // The type writes fields it has no value for as null: drop those.
        fn drop_nulls(v: &mut serde_json::Value) {
            if let Some(map) = v.as_object_mut() {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(drop_nulls);
            }
        }
        drop_nulls(&mut back);
        assert_eq!(back, ours);
    }

    #[test]
    fn the_hosts_facts_are_asked_of_the_host() {
        let f = features();
        let caps = f["linux"]["capabilities"].as_array().unwrap();
        assert_eq!(caps[0], "CAP_CHOWN");
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        // Every kernel with seccomp filters (3.17+) knows TSYNC; no kernel
        // knows bit 30.
        assert!(kernel_has_seccomp_flag(1));
        assert!(!kernel_has_seccomp_flag(1 << 30));
        let supported = f["linux"]["seccomp"]["supportedFlags"].as_array().unwrap();
        assert!(supported.iter().any(|s| s == "SECCOMP_FILTER_FLAG_TSYNC"));
        let version = f["annotations"]["io.github.seccomp.libseccomp.version"]
            .as_str()
            .unwrap();
        assert!(version.starts_with("2."), "{version}");
    }
}
