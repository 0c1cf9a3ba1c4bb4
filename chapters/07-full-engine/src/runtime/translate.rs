//! config.json → chapter 2's container: one function per section.
//!
//! The runtime does not start containers itself: it fills in chapter 2's
//! [`ContainerConfig`] (the rootfs, the process, the namespaces, the mounts
//! as a plan, capabilities and masked paths) and lets chapter 2's start
//! sequence run it. What chapter 2 has no field for (rlimits, sysctls, the
//! seccomp filter, the domain name) becomes a step of the child, prepared
//! here so that the child only makes system calls.
//!
//! Spec: runtime-spec `config.md` ("Mounts", "Process", "Hostname"),
//! `config-linux.md` ("Namespaces", "User namespace mappings", "Sysctl",
//! "Masked paths", "Readonly paths"); runc's mount option table.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use ch02_namespaces::capabilities::{CapabilitySet, LinuxCapabilities};
use ch02_namespaces::container::ContainerConfig;
use ch02_namespaces::idmap::IdMapping;
use ch02_namespaces::mounts::MountStep;
use ch02_namespaces::namespaces::{Namespace, Namespaces};
use ch02_namespaces::security::Security;
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::config::{Bundle, ConfigError, invalid};

/// What the translation gives chapter 2, and what must stay open while the
/// child starts.
pub struct Translated {
    pub config: ContainerConfig,
    /// The namespace files joined by path: their descriptors are in
    /// `config.join`, so they live as long as this.
    pub joined: Vec<File>,
    /// A `cgroup` mount was asked for: chapter 3's read-only view goes there.
    pub cgroup_mount: bool,
}

/// The chapter 2 namespace for a spec type.
fn namespace(typ: LinuxNamespaceType) -> Option<Namespace> {
    Some(match typ {
        LinuxNamespaceType::Pid => Namespace::Pid,
        LinuxNamespaceType::Network => Namespace::Network,
        LinuxNamespaceType::Mount => Namespace::Mount,
        LinuxNamespaceType::Ipc => Namespace::Ipc,
        LinuxNamespaceType::Uts => Namespace::Uts,
        LinuxNamespaceType::User => Namespace::User,
        LinuxNamespaceType::Cgroup => Namespace::Cgroup,
        LinuxNamespaceType::Time => return None,
    })
}

/// Translate a checked bundle.
// ANCHOR: translate
pub fn translate(bundle: &Bundle, no_pivot: bool) -> Result<Translated, ConfigError> {
    let spec = &bundle.spec;
    let (namespaces, joined) = namespaces(spec)?;
    let join = joined.iter().map(|(ns, f)| (*ns, f.as_raw_fd())).collect();
    let (mounts, cgroup_mount) = mounts(spec)?;
    let linux = spec.linux().clone().unwrap_or_default();
    let maps = |m: &Option<Vec<LinuxIdMapping>>| -> Vec<IdMapping> {
        m.iter()
            .flatten()
            .map(|m| IdMapping {
                container_id: m.container_id(),
                host_id: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    let config = ContainerConfig {
        rootfs: bundle.rootfs.clone(),
        process: process(spec)?,
        hostname: spec.hostname().clone().unwrap_or_default(),
        uid_mappings: maps(linux.uid_mappings()),
        gid_mappings: maps(linux.gid_mappings()),
        // Only root may map groups without denying setgroups first.
        deny_setgroups: !nix::unistd::Uid::effective().is_root(),
        // An OCI container's process is its PID 1 itself (runc runs no init).
        init: false,
        security: security(spec)?,
        namespaces,
        mounts: Some(mounts),
        readonly_root: spec.root().as_ref().and_then(|r| r.readonly()) == Some(true),
        no_pivot,
        join,
        gate: None,
        preserve_fds: 0,
    };
    Ok(Translated {
        config,
        joined: joined.into_iter().map(|(_, f)| f).collect(),
        cgroup_mount,
    })
}
// ANCHOR_END: translate

/// `linux.namespaces`: created ones for clone, pathed ones opened to join.
fn namespaces(spec: &Spec) -> Result<(Namespaces, Vec<(Namespace, File)>), ConfigError> {
    let mut created = Namespaces::new();
    let mut joined = Vec::new();
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
    for (i, ns) in list.iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let Some(kind) = namespace(ns.typ()) else {
            return Err(invalid(field, "the time namespace is not supported"));
        };
        match ns.path() {
            None => {
                created.insert(kind);
            }
            Some(path) => {
                if matches!(kind, Namespace::Pid | Namespace::Mount | Namespace::User) {
                    return Err(invalid(
                        format!("{field}.path"),
                        format!(
                            "joining an existing {} namespace is not supported by berth-runtime yet: leave the path out",
                            kind.proc_name()
                        ),
                    ));
                }
                let file = File::open(path).map_err(|e| {
                    invalid(
                        format!("{field}.path"),
                        format!("{}: {}", path.display(), super::config::io_reason(&e)),
                    )
                })?;
                joined.push((kind, file));
            }
        }
    }
    Ok((created, joined))
}

/// `process`: args, env, cwd, user.
fn process(spec: &Spec) -> Result<ch01_chroot::Process, ConfigError> {
    let Some(p) = spec.process() else {
        return Err(invalid("process", "missing: name the program to run"));
    };
    let user = p.user();
    Ok(ch01_chroot::Process {
        args: p.args().clone().unwrap_or_default(),
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().display().to_string(),
        user: Some(ch01_chroot::process::User {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
        }),
    })
}

/// `process.capabilities`, `process.noNewPrivileges`, `linux.maskedPaths`,
/// `linux.readonlyPaths`.
// ANCHOR: security
fn security(spec: &Spec) -> Result<Security, ConfigError> {
    let process = spec.process().clone().unwrap_or_default();
    let caps = process.capabilities().clone().unwrap_or_default();
    let set = |field: &str, set: &Option<oci_spec::runtime::Capabilities>| {
        let names: Vec<String> = set
            .iter()
            .flatten()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        CapabilitySet::from_names(&names)
            .map_err(|e| invalid(format!("process.capabilities.{field}"), e.to_string()))
    };
    let linux = spec.linux().clone().unwrap_or_default();
    let inheritable = set("inheritable", caps.inheritable())?;
    let permitted = set("permitted", caps.permitted())?;
    // The kernel raises an ambient capability only if it is permitted and
    // inheritable too; runc skips the others (`runc spec` lists ambient
    // capabilities and no inheritable ones), and so do we.
    let ambient = CapabilitySet::from_bits(
        set("ambient", caps.ambient())?.bits() & inheritable.bits() & permitted.bits(),
    );
    Ok(Security {
        capabilities: LinuxCapabilities {
            bounding: set("bounding", caps.bounding())?,
            effective: set("effective", caps.effective())?,
            inheritable,
            permitted,
            ambient,
        },
        no_new_privileges: process.no_new_privileges() == Some(true),
        masked_paths: linux.masked_paths().clone().unwrap_or_default(),
        readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
        // /sys is read-only when its mount says `ro`.
        readonly_sys: false,
    })
}
// ANCHOR_END: security

/// runc's table of mount options: a flag to set, a flag to clear, or a
/// propagation. Anything else is filesystem data.
fn option(name: &str) -> Option<(MsFlags, bool)> {
    let set = |f| Some((f, true));
    let clear = |f| Some((f, false));
    match name {
        "ro" => set(MsFlags::MS_RDONLY),
        "rw" => clear(MsFlags::MS_RDONLY),
        "nosuid" => set(MsFlags::MS_NOSUID),
        "suid" => clear(MsFlags::MS_NOSUID),
        "nodev" => set(MsFlags::MS_NODEV),
        "dev" => clear(MsFlags::MS_NODEV),
        "noexec" => set(MsFlags::MS_NOEXEC),
        "exec" => clear(MsFlags::MS_NOEXEC),
        "sync" => set(MsFlags::MS_SYNCHRONOUS),
        "async" => clear(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => set(MsFlags::MS_DIRSYNC),
        "mand" => set(MsFlags::MS_MANDLOCK),
        "nomand" => clear(MsFlags::MS_MANDLOCK),
        "noatime" => set(MsFlags::MS_NOATIME),
        "atime" => clear(MsFlags::MS_NOATIME),
        "nodiratime" => set(MsFlags::MS_NODIRATIME),
        "diratime" => clear(MsFlags::MS_NODIRATIME),
        "relatime" => set(MsFlags::MS_RELATIME),
        "norelatime" => clear(MsFlags::MS_RELATIME),
        "strictatime" => set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => clear(MsFlags::MS_STRICTATIME),
        "bind" => set(MsFlags::MS_BIND),
        "rbind" => set(MsFlags::MS_BIND | MsFlags::MS_REC),
        _ => None,
    }
}

fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn cstring(field: &str, text: &str) -> Result<CString, ConfigError> {
    CString::new(text).map_err(|_| invalid(field, "holds a NUL byte"))
}

/// `mounts`: chapter 2's plan, in order. A `cgroup` mount is left to
/// chapter 3's read-only view of the container's cgroups.
fn mounts(spec: &Spec) -> Result<(Vec<MountStep>, bool), ConfigError> {
    let mut plan = Vec::new();
    let mut cgroup = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        if m.typ().as_deref() == Some("cgroup") || m.typ().as_deref() == Some("cgroup2") {
            if m.destination() != Path::new("/sys/fs/cgroup") {
                return Err(invalid(
                    format!("{field}.destination"),
                    "berth-runtime mounts the cgroup filesystem at /sys/fs/cgroup only",
                ));
            }
            cgroup = true;
            continue;
        }
        plan.push(mount_step(m, &field)?);
    }
    Ok((plan, cgroup))
}

fn mount_step(m: &Mount, field: &str) -> Result<MountStep, ConfigError> {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for opt in m.options().iter().flatten() {
        if let Some((flag, on)) = option(opt) {
            if on {
                flags |= flag;
            } else {
                flags -= flag;
            }
        } else if let Some(p) = propagation(opt) {
            prop = p;
        } else if opt.starts_with('r') && option(&opt[1..]).is_some() || opt.contains("idmap") {
            return Err(invalid(
                format!("{field}.options"),
                format!(
                    "{opt:?}: recursive mount attributes and idmapped mounts are not supported by berth-runtime yet"
                ),
            ));
        } else if opt == "tmpcopyup" {
            return Err(invalid(
                format!("{field}.options"),
                "\"tmpcopyup\" is not supported by berth-runtime yet",
            ));
        } else {
            data.push(opt.as_str());
        }
    }
    let typ = m.typ().clone().unwrap_or_default();
    if typ == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    let source = m.source().as_ref().map(|s| s.display().to_string());
    let bind = flags.contains(MsFlags::MS_BIND);
    let source = match source {
        Some(s) if bind => {
            let path = Path::new(&s);
            if !path.is_absolute() {
                return Err(invalid(
                    format!("{field}.source"),
                    format!("{s:?}: a bind mount's source must be an absolute host path"),
                ));
            }
            if !path.exists() {
                return Err(invalid(
                    format!("{field}.source"),
                    format!("{s}: no such file or directory"),
                ));
            }
            s
        }
        Some(s) => s,
        None if bind => return Err(invalid(format!("{field}.source"), "missing for a bind")),
        None => typ.clone(),
    };
    let dir = !bind || Path::new(&source).is_dir();
    let dest = m.destination().display().to_string();
    let target = dest.trim_start_matches('/');
    if target.is_empty() {
        return Err(invalid(
            format!("{field}.destination"),
            "mounting over / is not allowed",
        ));
    }
    Ok(MountStep {
        source: cstring(&format!("{field}.source"), &source)?,
        target: cstring(&format!("{field}.destination"), target)?,
        fstype: cstring(&format!("{field}.type"), &typ)?,
        flags,
        data: if data.is_empty() {
            None
        } else {
            Some(cstring(&format!("{field}.options"), &data.join(","))?)
        },
        propagation: prop,
        dir,
    })
}

/// What the child does that chapter 2 has no field for, prepared here so
/// that the child only makes system calls.
#[derive(Debug, Default)]
pub struct ChildSteps {
    /// `linux.sysctl`: (path under /proc/sys, value).
    sysctls: Vec<(CString, CString)>,
    /// `process.oomScoreAdj`, as the text to write.
    oom_score_adj: Option<CString>,
    /// `process.rlimits`: (resource, soft, hard).
    rlimits: Vec<(libc::c_int, u64, u64)>,
    /// `domainname`.
    domainname: Option<CString>,
    /// `linux.devices`: made after pivot_root, in the container's /dev.
    devices: Vec<Device>,
}

/// One node of `linux.devices`, prepared.
#[derive(Debug)]
struct Device {
    /// Its directory and name, relative to the root.
    dir: CString,
    name: CString,
    kind: nix::sys::stat::SFlag,
    rdev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The resource number of an `RLIMIT_*` name.
fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as libc::c_int)
}

impl ChildSteps {
    /// Prepare the steps of a checked spec.
    pub fn new(spec: &Spec) -> Result<ChildSteps, ConfigError> {
        let mut steps = ChildSteps::default();
        let linux = spec.linux().clone().unwrap_or_default();
        let mut sysctls: Vec<_> = linux.sysctl().iter().flatten().collect();
        sysctls.sort();
        for (key, value) in sysctls {
            let field = format!("linux.sysctl.{key}");
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            steps
                .sysctls
                .push((cstring(&field, &path)?, cstring(&field, value)?));
        }
        if let Some(process) = spec.process() {
            if let Some(adj) = process.oom_score_adj() {
                steps.oom_score_adj = Some(cstring("process.oomScoreAdj", &adj.to_string())?);
            }
            for (i, r) in process.rlimits().iter().flatten().enumerate() {
                let name = serde_json::to_value(r.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let resource = rlimit_resource(&name).ok_or_else(|| {
                    invalid(format!("process.rlimits[{i}]"), format!("{name}: unknown"))
                })?;
                steps.rlimits.push((resource, r.soft(), r.hard()));
            }
        }
        if let Some(name) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
            steps.domainname = Some(cstring("domainname", name)?);
        }
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            use nix::sys::stat::SFlag;
            use oci_spec::runtime::LinuxDeviceType;
            let field = format!("linux.devices[{i}]");
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(invalid(
                        format!("{field}.type"),
                        "\"a\" is for cgroup rules only",
                    ));
                }
            };
            let path = d.path().display().to_string();
            let rel = path.trim_start_matches('/');
            let (dir, name) = rel.rsplit_once('/').unwrap_or((".", rel));
            if name.is_empty() || rel.split('/').any(|c| c == "..") {
                return Err(invalid(
                    format!("{field}.path"),
                    format!("{path:?}: not a device path"),
                ));
            }
            steps.devices.push(Device {
                dir: cstring(&field, dir)?,
                name: cstring(&field, name)?,
                kind,
                rdev: nix::sys::stat::makedev(d.major() as u64, d.minor() as u64),
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            });
        }
        Ok(steps)
    }

    /// Before the rootfs is set up, in the container's namespaces: the
    /// sysctls (through the /proc we still see, which shows the values of
    /// the namespaces we are in; /proc/sys is made read-only later) and the
    /// OOM score (lowering it needs our capabilities).
    pub fn before_rootfs(&self) -> Result<(), (&'static str, nix::errno::Errno)> {
        for (path, value) in &self.sysctls {
            write_file(path, value).map_err(|e| ("write a sysctl (linux.sysctl)", e))?;
        }
        if let Some(adj) = &self.oom_score_adj {
            write_file(c"/proc/self/oom_score_adj", adj)
                .map_err(|e| ("write /proc/self/oom_score_adj (process.oomScoreAdj)", e))?;
        }
        Ok(())
    }

    /// After pivot_root (the root is the container's): `linux.devices`,
    /// each made with mknod(2) in its directory (made if missing, inside
    /// the root); one that is there already is left as it is.
    pub fn make_devices(&self) -> Result<(), (&'static str, nix::errno::Errno)> {
        use nix::errno::Errno;
        use nix::sys::stat::{FchmodatFlags, Mode, fchmodat, mknodat};
        use nix::unistd::{Gid, Uid, fchownat};
        if self.devices.is_empty() {
            return Ok(());
        }
        let root = nix::fcntl::open(
            c"/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ("open / (linux.devices)", e))?;
        for d in &self.devices {
            let dir = if d.dir.as_bytes() == b"." {
                nix::fcntl::open(
                    c"/",
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
            } else {
                ch02_namespaces::mounts::make_mount_point(
                    std::os::fd::AsFd::as_fd(&root),
                    &d.dir,
                    true,
                )
            }
            .map_err(|e| ("make a device's directory (linux.devices)", e))?;
            match mknodat(
                &dir,
                d.name.as_c_str(),
                d.kind,
                Mode::from_bits_truncate(d.mode),
                d.rdev,
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(("mknod (linux.devices)", e)),
            }
            // mknod(2) applies the umask: set the mode asked for.
            fchmodat(
                &dir,
                d.name.as_c_str(),
                Mode::from_bits_truncate(d.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(|e| ("chmod a device (linux.devices)", e))?;
            fchownat(
                &dir,
                d.name.as_c_str(),
                Some(Uid::from_raw(d.uid)),
                Some(Gid::from_raw(d.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| ("chown a device (linux.devices)", e))?;
        }
        Ok(())
    }

    /// Just before the exec: the rlimits and the domain name.
    pub fn before_exec(&self) -> Result<(), (&'static str, nix::errno::Errno)> {
        for &(resource, soft, hard) in &self.rlimits {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit(2) reads the struct we pass.
            let set = unsafe { libc::setrlimit(resource as _, &limit) };
            nix::errno::Errno::result(set).map_err(|e| ("setrlimit (process.rlimits)", e))?;
        }
        if let Some(name) = &self.domainname {
            // SAFETY: setdomainname(2) reads `len` bytes of the string.
            let set = unsafe { libc::setdomainname(name.as_ptr(), name.as_bytes().len()) };
            nix::errno::Errno::result(set).map_err(|e| ("setdomainname", e))?;
        }
        Ok(())
    }
}

/// Write `value` to the existing file `path`: one open and one write.
fn write_file(path: &std::ffi::CStr, value: &std::ffi::CStr) -> Result<(), nix::errno::Errno> {
    use nix::fcntl::{OFlag, open};
    let fd = open(
        path,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::write(&fd, value.to_bytes())?;
    Ok(())
}
