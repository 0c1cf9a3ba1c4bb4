//! Capabilities: root's powers, one by one, and how a container keeps only a
//! few of them.
//!
//! Kernel feature: since Linux 2.2, "root" is not one privilege but about
//! forty *capabilities* (`CAP_SYS_ADMIN` to mount, `CAP_MKNOD` to make device
//! nodes, `CAP_SYS_MODULE` to load kernel modules...). Each process carries
//! five sets of them (the OCI runtime spec names them as the kernel does, in
//! `process.capabilities`):
//!
//! - **bounding**: the most the process, and every program it execs, can ever
//!   hold; dropped with `prctl(PR_CAPBSET_DROP)`, never raised again;
//! - **permitted**: what it may use; **effective**: what the kernel checks
//!   right now; **inheritable**: what may pass through an exec to a program
//!   whose file carries inheritable capabilities;
//! - **ambient** (Linux 4.3): what passes through an exec even to an
//!   ordinary program, and even to a non-root user.
//!
//! Without a user namespace, root in the container *is* root on the host:
//! these sets are all that stands between it and the host's disks, kernel
//! modules and mounts. A container keeps docker's short default list (no
//! `CAP_SYS_ADMIN`, no `CAP_SYS_MODULE`, no `CAP_SYS_RAWIO`...).
//!
//! The names and numbers come from the `caps` crate (youki's choice); the
//! five system calls that apply them are made here, because they run in the
//! child just before the exec, where nothing may allocate (the crate's calls
//! read sets into hash sets and report errors as strings, without the errno).
//!
//! Man pages: capabilities(7), capset(2), prctl(2) ("PR_CAPBSET_DROP",
//! "PR_SET_KEEPCAPS", "PR_CAP_AMBIENT"), proc_pid_status(5) ("CapBnd").

use std::fmt;
use std::path::Path;

pub use caps::Capability;
use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl::set_keepcaps;

/// A failed child step: its name and errno.
pub type StepResult = Result<(), (&'static str, Errno)>;

/// A set of capabilities: bit N is capability number N, as the kernel and
/// `/proc/PID/status` store it.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CapabilitySet(u64);

/// docker's default capabilities (moby's `caps.DefaultCapabilities`): what
/// root in a container keeps unless told otherwise.
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

// ANCHOR: default_set
/// The default set of a container that has no devices cgroup: docker's,
/// without `CAP_MKNOD`.
///
/// docker can give every container `CAP_MKNOD` because its devices cgroup
/// refuses to open any device node that is not on a short list: a container
/// may *make* `/dev/sda`, not read it. Chapter 2 has no devices cgroup yet
/// (chapter 3 adds it), so here a node made with `mknod b 254 0` would open
/// the host's disk, and a `mount` of it (even without `CAP_SYS_ADMIN`, by a
/// helper running elsewhere) would hand over the host's root filesystem. So
/// the right to make device nodes goes: `/dev`'s standard nodes are made by
/// the engine before the drop. Chapter 3 passes [`docker_default`] once its
/// devices cgroup guards the nodes.
pub fn without_devices_cgroup() -> CapabilitySet {
    docker_default().without(Capability::CAP_MKNOD)
}
// ANCHOR_END: default_set

/// docker's exact default set, [`DOCKER_DEFAULT`].
pub fn docker_default() -> CapabilitySet {
    CapabilitySet::of(&DOCKER_DEFAULT)
}

/// A capability name that is not one: what was wrong and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: not a capability: write a name from capabilities(7), with or without CAP_ (e.g. NET_ADMIN or CAP_NET_ADMIN)"
)]
pub struct UnknownCapability(pub String);

/// Parse one capability name as docker does: any case, with or without the
/// `CAP_` prefix (`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN`).
pub fn parse_capability(name: &str) -> Result<Capability, UnknownCapability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse()
        .map_err(|_| UnknownCapability(name.to_string()))
}

impl CapabilitySet {
    pub const EMPTY: CapabilitySet = CapabilitySet(0);

    /// The set of these capabilities.
    pub fn of(caps: &[Capability]) -> Self {
        CapabilitySet(caps.iter().fold(0, |bits, c| bits | c.bitmask()))
    }

    /// Capabilities 0 to `last` (what `/proc/sys/kernel/cap_last_cap` says
    /// this kernel knows): every capability there is.
    pub fn up_to(last: u8) -> Self {
        CapabilitySet(if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        })
    }

    /// The set as the kernel stores it.
    pub fn from_bits(bits: u64) -> Self {
        CapabilitySet(bits)
    }
    pub fn bits(self) -> u64 {
        self.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bitmask() != 0
    }
    pub fn with(self, cap: Capability) -> Self {
        CapabilitySet(self.0 | cap.bitmask())
    }
    pub fn without(self, cap: Capability) -> Self {
        CapabilitySet(self.0 & !cap.bitmask())
    }
    pub fn union(self, other: Self) -> Self {
        CapabilitySet(self.0 | other.0)
    }
    pub fn difference(self, other: Self) -> Self {
        CapabilitySet(self.0 & !other.0)
    }
    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The capabilities in the set, by number. A bit `caps` has no name for
    /// (a kernel newer than the crate) is left out.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        let mut all: Vec<Capability> = caps::all().into_iter().collect();
        all.sort_by_key(Capability::index);
        all.into_iter().filter(move |c| self.contains(*c))
    }

    /// The names, `CAP_CHOWN` style (what config.json and capsh print).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|c| c.to_string()).collect()
    }

    /// A set from names such as config.json's `["CAP_CHOWN", "CAP_KILL"]`.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownCapability> {
        names.iter().try_fold(CapabilitySet::EMPTY, |set, name| {
            Ok(set.with(parse_capability(name.as_ref())?))
        })
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x} {:?}", self.0, self.names())
    }
}

impl fmt::Display for CapabilitySet {
    /// Short names, comma-separated: `CHOWN,KILL` (or `none`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<String> = self
            .names()
            .into_iter()
            .map(|n| n.trim_start_matches("CAP_").to_string())
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The five sets of a process (OCI runtime spec: `process.capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinuxCapabilities {
    pub bounding: CapabilitySet,
    pub effective: CapabilitySet,
    pub inheritable: CapabilitySet,
    pub permitted: CapabilitySet,
    pub ambient: CapabilitySet,
}

impl LinuxCapabilities {
    /// What docker gives root in a container: `set` as the bounding,
    /// permitted and effective sets; nothing inheritable (moby stopped
    /// setting it in 2022, CVE-2022-24769: a program with inheritable file
    /// capabilities would have gained them) and nothing ambient.
    pub fn root_with(set: CapabilitySet) -> Self {
        LinuxCapabilities {
            bounding: set,
            effective: set,
            inheritable: CapabilitySet::EMPTY,
            permitted: set,
            ambient: CapabilitySet::EMPTY,
        }
    }

    /// The sets of a running process, from the `Cap*:` lines of its
    /// `/proc/PID/status` (`proc_root` is `/proc` outside tests).
    pub fn of_process(proc_root: &Path, pid: &str) -> std::io::Result<Self> {
        let path = proc_root.join(pid).join("status");
        let text = std::fs::read_to_string(&path)?;
        Self::from_status(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: no Cap* lines", path.display()),
            )
        })
    }

    /// Parse the `CapInh`, `CapPrm`, `CapEff`, `CapBnd` and `CapAmb` lines
    /// of a status file (hex numbers).
    pub fn from_status(status: &str) -> Option<Self> {
        let set = |label: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(label))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .map(CapabilitySet::from_bits)
        };
        Some(LinuxCapabilities {
            bounding: set("CapBnd:")?,
            effective: set("CapEff:")?,
            inheritable: set("CapInh:")?,
            permitted: set("CapPrm:")?,
            // Absent before Linux 4.3: nothing ambient then.
            ambient: set("CapAmb:").unwrap_or_default(),
        })
    }

    // ANCHOR: apply
    /// Take on these sets, in runc's order, with `set_user` (the switch to
    /// the command's uid and gid) in the middle. Runs in the child just
    /// before the exec, as root of the container. Allocation-free.
    pub fn apply(&self, set_user: &dyn Fn() -> StepResult) -> StepResult {
        // 1. The bounding set first: dropping from it needs CAP_SETPCAP in
        //    the effective set, which a switch to a non-root user clears.
        self.drop_bounding()?;
        // 2. Keep the permitted set across the user switch: without
        //    PR_SET_KEEPCAPS, setuid(2) from root to another uid empties it,
        //    and then nothing could be kept for that user (capabilities(7),
        //    "Effect of user ID changes on capabilities").
        set_keepcaps(true).map_err(|e| ("prctl PR_SET_KEEPCAPS", e))?;
        set_user()?;
        set_keepcaps(false).map_err(|e| ("prctl PR_SET_KEEPCAPS", e))?;
        // 3. Effective, permitted and inheritable in one capset(2): lowering
        //    the permitted set is always allowed, raising never.
        self.capset()?;
        // 4. Ambient last: a capability may be raised there only while it is
        //    both permitted and inheritable, and a user switch empties it.
        self.set_ambient()
    }
    // ANCHOR_END: apply

    /// The effective, permitted, inheritable and ambient sets alone: no
    /// bounding set, no user switch (init's own drop). Allocation-free.
    pub fn set_process_sets(&self) -> StepResult {
        self.capset()?;
        self.set_ambient()
    }

    /// `prctl(PR_CAPBSET_DROP)` every capability the bounding set leaves
    /// out, up to the last one this kernel knows (EINVAL after it).
    pub fn drop_bounding(&self) -> StepResult {
        for cap in 0..64u8 {
            if self.bounding.bits() & (1u64 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl(2) with integer arguments only.
            let dropped =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            match Errno::result(dropped) {
                Ok(_) => {}
                // Past the kernel's last capability: done.
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(("drop the capability bounding set (PR_CAPBSET_DROP)", e)),
            }
        }
        Ok(())
    }

    /// capset(2): the effective, permitted and inheritable sets at once.
    fn capset(&self) -> StepResult {
        let header = CapUserHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        // Version 3 takes two 32-bit halves of each set.
        let half = |set: CapabilitySet, high: bool| {
            if high {
                (set.bits() >> 32) as u32
            } else {
                set.bits() as u32
            }
        };
        let data = [false, true].map(|high| CapUserData {
            effective: half(self.effective, high),
            permitted: half(self.permitted, high),
            inheritable: half(self.inheritable, high),
        });
        // SAFETY: both pointers are to live structures of the layout
        // capset(2) documents for _LINUX_CAPABILITY_VERSION_3.
        let set = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        Errno::result(set)
            .map(drop)
            .map_err(|e| ("capset (effective, permitted, inheritable)", e))
    }

    /// Empty the ambient set, then raise each capability it should hold.
    fn set_ambient(&self) -> StepResult {
        let ambient = |op: libc::c_int, cap: libc::c_ulong| {
            // SAFETY: prctl(2) with integer arguments only.
            Errno::result(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, op, cap, 0, 0) })
        };
        match ambient(libc::PR_CAP_AMBIENT_CLEAR_ALL, 0) {
            Ok(_) => {}
            // A kernel older than 4.3 has no ambient set: fine if none is asked for.
            Err(Errno::EINVAL) if self.ambient.is_empty() => return Ok(()),
            Err(e) => return Err(("clear the ambient capabilities", e)),
        }
        for cap in 0..64u8 {
            if self.ambient.bits() & (1u64 << cap) != 0 {
                ambient(libc::PR_CAP_AMBIENT_RAISE, libc::c_ulong::from(cap))
                    .map_err(|e| ("raise an ambient capability", e))?;
            }
        }
        Ok(())
    }
}

/// This thread's permitted set, from capget(2). Allocation-free.
pub fn permitted_now() -> Result<CapabilitySet, Errno> {
    let header = CapUserHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapUserData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget(2) fills the two structures it is given, of the layout
    // it documents for _LINUX_CAPABILITY_VERSION_3.
    let got = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    Errno::result(got)?;
    let bits = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    Ok(CapabilitySet::from_bits(bits))
}

/// The version of capset(2)'s interface with 64-bit sets.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit half of each set.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The highest capability number this kernel knows, from
/// `PROC/sys/kernel/cap_last_cap`.
pub fn last_cap(proc_root: &Path) -> std::io::Result<u8> {
    let path = proc_root.join("sys/kernel/cap_last_cap");
    std::fs::read_to_string(&path)?.trim().parse().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, path.display().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_is_the_well_known_mask() {
        // What `docker run alpine grep CapEff /proc/self/status` prints.
        assert_eq!(docker_default().bits(), 0x0000_0000_a804_25fb);
        assert_eq!(without_devices_cgroup().bits(), 0x0000_0000_a004_25fb);
        assert!(!without_devices_cgroup().contains(Capability::CAP_MKNOD));
    }

    #[test]
    fn names_parse_as_docker_writes_them() {
        for name in ["NET_ADMIN", "net_admin", "CAP_NET_ADMIN", " cap_net_admin"] {
            assert_eq!(
                parse_capability(name),
                Ok(Capability::CAP_NET_ADMIN),
                "{name}"
            );
        }
        let err = parse_capability("SYS_WIZARD").unwrap_err().to_string();
        assert!(err.contains("\"SYS_WIZARD\": not a capability"), "{err}");
        let set = CapabilitySet::from_names(&["CAP_CHOWN", "KILL"]).unwrap();
        assert_eq!(set.names(), ["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(set.to_string(), "CHOWN,KILL");
        assert_eq!(CapabilitySet::EMPTY.to_string(), "none");
    }

    #[test]
    fn up_to_covers_every_capability_of_a_kernel() {
        assert_eq!(CapabilitySet::up_to(40).bits(), 0x1ff_ffff_ffff);
        assert_eq!(CapabilitySet::up_to(63).bits(), u64::MAX);
    }

    #[test]
    fn a_status_file_gives_the_five_sets() {
        let status = "Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                      CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n";
        assert_eq!(
            LinuxCapabilities::from_status(status),
            Some(LinuxCapabilities::root_with(docker_default()))
        );
        assert_eq!(LinuxCapabilities::from_status("Name:\tsh\n"), None);
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("42")).unwrap();
        std::fs::write(proc_root.path().join("42/status"), status).unwrap();
        let read = LinuxCapabilities::of_process(proc_root.path(), "42").unwrap();
        assert_eq!(read.bounding, docker_default());
    }

    #[test]
    fn applied_in_a_child_the_sets_are_what_proc_shows() {
        if !berth_test_support::require_root("applied_in_a_child_the_sets_are_what_proc_shows") {
            return;
        }
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, fork};
        let wanted = LinuxCapabilities::root_with(without_devices_cgroup());
        // SAFETY: the child makes system calls, reads a file and exits; the
        // test harness's other threads hold no lock it needs (it reads with
        // std::fs after the fork, acceptable in a test).
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = wanted.apply(&|| Ok(())).is_ok()
                    && LinuxCapabilities::of_process(Path::new("/proc"), "self").ok()
                        == Some(wanted);
                // SAFETY: leave the forked test process at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            }
        }
    }
}
