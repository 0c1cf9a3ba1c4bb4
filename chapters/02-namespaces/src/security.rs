//! What root in the container may do: the settings that keep it from being
//! root on the host, gathered in one place with the OCI runtime spec's names.
//!
//! Kernel features: the capability sets ([`crate::capabilities`]);
//! `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS)`), after which no exec can
//! grant more privilege than the process has (setuid bits and file
//! capabilities are ignored), for the process and every descendant, for
//! good; masked and read-only paths of `/proc` and `/sys`
//! ([`crate::masks`]); and whether `/sys` is mounted read-only.
//!
//! The default is docker's, with two differences, each explained where it
//! is set: no `CAP_MKNOD` while there is no devices cgroup, and
//! `no_new_privs` on (docker's `--security-opt no-new-privileges`).
//! `--privileged` turns all of it off, as docker's does.
//!
//! Man pages: prctl(2) ("PR_SET_NO_NEW_PRIVS"),
//! Documentation/userspace-api/no_new_privs.rst, capabilities(7), proc(5).

use std::path::Path;

use nix::errno::Errno;

use crate::capabilities::{self, CapabilitySet, LinuxCapabilities};

/// The paths of `/proc` and `/sys` docker hides behind `/dev/null` or an
/// empty directory (OCI: `linux.maskedPaths`): kernel memory (`kcore`), the
/// kernel's keyrings, timers and scheduler internals that leak what other
/// tenants do, hardware interfaces (`acpi`, `asound`, `scsi`, `firmware`),
/// `/proc/interrupts` and the power meters of `powercap`, whose readings
/// leak other processes' secrets (the PLATYPUS attack, CVE-2020-8694).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// The paths docker makes read-only (OCI: `linux.readonlyPaths`): the
/// kernel's tunables (`/proc/sys`: `kernel.core_pattern` runs a program
/// *on the host* when any process dumps core), `sysrq-trigger` (reboot the
/// host), and the bus, filesystem and interrupt settings.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

// ANCHOR: security
/// The restrictions of a container (OCI: `process.capabilities`,
/// `process.noNewPrivileges`, `linux.maskedPaths`, `linux.readonlyPaths`,
/// and the `ro` option of the `/sys` mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub capabilities: LinuxCapabilities,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub readonly_sys: bool,
}

impl Security {
    /// Root in the container keeps `caps`; everything else as docker does,
    /// plus no_new_privs.
    pub fn restricted(caps: CapabilitySet, sys_root: &Path) -> Self {
        Security {
            capabilities: LinuxCapabilities::root_with(caps),
            // On by default. docker leaves it off unless asked, because a
            // container may rely on `su`, `sudo` or a setuid `ping`. But a
            // container started as root loses nothing by it, and one started
            // as a user (`-u 1000`) should stay that user: a setuid binary in
            // the image would otherwise give it root again, with the default
            // capabilities.
            no_new_privileges: true,
            masked_paths: masked_paths(sys_root),
            readonly_paths: READONLY_PATHS.map(String::from).to_vec(),
            readonly_sys: true,
        }
    }

    /// docker's `--privileged`: every capability in `held` (see
    /// [`held_capabilities`]), nothing masked or read-only, `/sys`
    /// writable, no no_new_privs. Root in such a container is root on the
    /// host: it can load kernel modules, mount the host's disks, write
    /// /proc/sys.
    pub fn privileged(held: CapabilitySet) -> Self {
        Security {
            capabilities: LinuxCapabilities::root_with(held),
            no_new_privileges: false,
            masked_paths: vec![],
            readonly_paths: vec![],
            readonly_sys: false,
        }
    }
}
// ANCHOR_END: security

impl Default for Security {
    /// Chapter 2's default: docker's capabilities without `CAP_MKNOD`.
    fn default() -> Self {
        Security::restricted(capabilities::without_devices_cgroup(), Path::new("/sys"))
    }
}

/// [`MASKED_PATHS`], plus each CPU's `thermal_throttle` directory under
/// `sys_root` (`/sys` outside tests), as moby masks since 2025: its counters
/// leak what other tenants run on the same CPU.
pub fn masked_paths(sys_root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.map(String::from).to_vec();
    let cpus = std::fs::read_dir(sys_root.join("devices/system/cpu"));
    let mut throttles: Vec<(u32, String)> = cpus
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("cpu")?.parse().ok()?;
            entry.path().join("thermal_throttle").exists().then(|| {
                (
                    n,
                    format!("/sys/devices/system/cpu/{name}/thermal_throttle"),
                )
            })
        })
        .collect();
    throttles.sort();
    paths.extend(throttles.into_iter().map(|(_, path)| path));
    paths
}

/// The capabilities a container can be given at most: every one this
/// kernel knows when the container has a user namespace (a new user
/// namespace starts with the full set), otherwise those the engine holds
/// itself, its permitted set (root on a host that dropped some, like this
/// workshop's machines without `CAP_SYS_RESOURCE`, cannot give them on).
pub fn held_capabilities(proc_root: &Path, in_user_ns: bool) -> std::io::Result<CapabilitySet> {
    if in_user_ns {
        return Ok(CapabilitySet::up_to(capabilities::last_cap(proc_root)?));
    }
    Ok(LinuxCapabilities::of_process(proc_root, "self")?.permitted)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: from now on no exec grants privileges.
pub fn set_no_new_privs() -> Result<(), (&'static str, Errno)> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| ("prctl PR_SET_NO_NEW_PRIVS", e))
}

/// Whether a running process has no_new_privs set: the `NoNewPrivs:` line
/// of `PROC/PID/status`.
pub fn no_new_privs_of(proc_root: &Path, pid: &str) -> std::io::Result<bool> {
    let status = std::fs::read_to_string(proc_root.join(pid).join("status"))?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("NoNewPrivs:"))
        .is_some_and(|v| v.trim() == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_dockers_without_mknod_and_with_no_new_privs() {
        let s = Security::default();
        assert_eq!(s.capabilities.effective.bits(), 0xa004_25fb);
        assert!(s.no_new_privileges && s.readonly_sys);
        assert!(s.masked_paths.iter().any(|p| p == "/proc/kcore"));
        assert!(s.readonly_paths.iter().any(|p| p == "/proc/sys"));
        let p = Security::privileged(CapabilitySet::up_to(40));
        assert!(p.masked_paths.is_empty() && p.readonly_paths.is_empty() && !p.readonly_sys);
        assert!(!p.no_new_privileges);
    }

    #[test]
    fn thermal_throttle_of_each_cpu_is_masked_where_it_exists() {
        let sys = tempfile::tempdir().unwrap();
        for cpu in ["cpu0", "cpu1", "cpu10"] {
            std::fs::create_dir_all(sys.path().join("devices/system/cpu").join(cpu)).unwrap();
        }
        for cpu in ["cpu10", "cpu0"] {
            let dir = sys
                .path()
                .join("devices/system/cpu")
                .join(cpu)
                .join("thermal_throttle");
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::create_dir(sys.path().join("devices/system/cpu/cpufreq")).unwrap();
        let paths = masked_paths(sys.path());
        assert_eq!(paths.len(), MASKED_PATHS.len() + 2);
        assert_eq!(
            &paths[MASKED_PATHS.len()..],
            [
                "/sys/devices/system/cpu/cpu0/thermal_throttle",
                "/sys/devices/system/cpu/cpu10/thermal_throttle"
            ]
        );
    }

    #[test]
    fn no_new_privs_is_read_from_status() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("7")).unwrap();
        std::fs::write(
            proc_root.path().join("7/status"),
            "Name:\tsh\nNoNewPrivs:\t1\n",
        )
        .unwrap();
        assert!(no_new_privs_of(proc_root.path(), "7").unwrap());
        std::fs::write(proc_root.path().join("7/status"), "NoNewPrivs:\t0\n").unwrap();
        assert!(!no_new_privs_of(proc_root.path(), "7").unwrap());
    }
}
