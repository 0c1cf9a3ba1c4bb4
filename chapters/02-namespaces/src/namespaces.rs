//! The seven namespaces, and how to ask for a subset of them.
//!
//! Kernel feature: `clone(2)` with a `CLONE_NEW*` flag starts the child in a
//! new namespace of that kind. Each kind isolates one global resource:
//!
//! | namespace | flag | since | isolates |
//! | --- | --- | --- | --- |
//! | mount | `CLONE_NEWNS` | 2.4.19 | the mount table |
//! | UTS | `CLONE_NEWUTS` | 2.6.19 | hostname and NIS domain name |
//! | IPC | `CLONE_NEWIPC` | 2.6.19 | SysV IPC, POSIX message queues |
//! | PID | `CLONE_NEWPID` | 2.6.24 | process IDs |
//! | network | `CLONE_NEWNET` | 2.6.29 | interfaces, routes, ports, firewall |
//! | user | `CLONE_NEWUSER` | 3.8 | user and group IDs, capabilities |
//! | cgroup | `CLONE_NEWCGROUP` | 4.6 | the view of the cgroup tree |
//!
//! A process's namespaces are the links in `/proc/PID/ns/`.
//!
//! Man pages: namespaces(7), clone(2), and one page per kind:
//! mount_namespaces(7), uts_namespaces(7), ipc_namespaces(7),
//! pid_namespaces(7), network_namespaces(7), user_namespaces(7),
//! cgroup_namespaces(7).

use std::collections::BTreeSet;
use std::path::Path;

use nix::sched::CloneFlags;

// ANCHOR: clone_flag
/// One kind of namespace (OCI runtime spec: `linux.namespaces[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    Mount,
    Uts,
    Ipc,
    Pid,
    Network,
    User,
    Cgroup,
}

impl Namespace {
    /// Every kind, in the order the table above lists them.
    pub const ALL: [Namespace; 7] = [
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Pid,
        Namespace::Network,
        Namespace::User,
        Namespace::Cgroup,
    ];

    /// The `clone(2)` flag that creates one.
    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Network => CloneFlags::CLONE_NEWNET,
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }
    // ANCHOR_END: clone_flag

    /// Its name in `/proc/PID/ns/` (and in `--ns` lists).
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Pid => "pid",
            Namespace::Network => "net",
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
        }
    }

    /// Parse one name: the `/proc/PID/ns` name or the OCI one.
    pub fn parse(name: &str) -> Option<Namespace> {
        Some(match name {
            "mnt" | "mount" => Namespace::Mount,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "pid" => Namespace::Pid,
            "net" | "network" => Namespace::Network,
            "user" => Namespace::User,
            "cgroup" => Namespace::Cgroup,
            _ => return None,
        })
    }
}

/// A set of namespaces to create.
pub type Namespaces = BTreeSet<Namespace>;

/// Parse `--ns uts,pid,...`; `all` means every kind.
pub fn parse_list(list: &str) -> Result<Namespaces, String> {
    let mut set = Namespaces::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            set.extend(Namespace::ALL);
            continue;
        }
        let ns = Namespace::parse(name).ok_or_else(|| {
            format!("unknown namespace {name:?}: use a comma-separated list of mnt, uts, ipc, pid, net, user, cgroup (or all)")
        })?;
        set.insert(ns);
    }
    Ok(set)
}

/// The combined clone flags for `set`.
pub fn clone_flags(set: &Namespaces) -> CloneFlags {
    set.iter()
        .fold(CloneFlags::empty(), |flags, ns| flags | ns.clone_flag())
}

/// The kinds in `set` this kernel does not have: each has a link in
/// `proc/self/ns/` under `proc_root` when it does.
pub fn missing_from_kernel(set: &Namespaces, proc_root: &Path) -> Vec<Namespace> {
    set.iter()
        .copied()
        .filter(|ns| !proc_root.join("self/ns").join(ns.proc_name()).exists())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_by_either_name_and_all_means_seven() {
        let set = parse_list("uts, pid,mount,network").unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            [
                Namespace::Mount,
                Namespace::Uts,
                Namespace::Pid,
                Namespace::Network
            ]
        );
        assert_eq!(parse_list("all").unwrap().len(), 7);
        let err = parse_list("uts,time").unwrap_err();
        assert!(err.contains("unknown namespace \"time\""), "{err}");
    }

    #[test]
    fn flags_combine() {
        let set = parse_list("uts,ipc").unwrap();
        assert_eq!(
            clone_flags(&set),
            CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC
        );
    }

    #[test]
    fn the_kernel_check_reads_proc_self_ns() {
        let fake = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(fake.path().join("self/ns")).unwrap();
        std::fs::write(fake.path().join("self/ns/uts"), "").unwrap();
        let set = parse_list("uts,cgroup").unwrap();
        assert_eq!(missing_from_kernel(&set, fake.path()), [Namespace::Cgroup]);
        assert!(missing_from_kernel(&parse_list("all").unwrap(), Path::new("/proc")).is_empty());
    }
}
