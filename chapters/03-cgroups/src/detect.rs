//! Which cgroups does this host have: v2, v1, or the hybrid of both?
//!
//! Kernel feature: the cgroup filesystems can be mounted in three
//! layouts, and an engine must find out which one it is on, from the mount
//! table, never by assuming paths:
//!
//! - **v2** (unified): one `cgroup2` mount, usually at /sys/fs/cgroup,
//!   one tree for every controller.
//! - **v1** (legacy): a `cgroup` mount per hierarchy, each carrying one or
//!   more controllers — /sys/fs/cgroup/memory, /sys/fs/cgroup/cpu,cpuacct
//!   (two controllers sharing one tree) — plus named hierarchies without a
//!   controller, like `name=systemd`, that only group processes.
//! - **hybrid**: v1 as above plus a `cgroup2` mount at
//!   /sys/fs/cgroup/unified that holds no resource controller (systemd uses
//!   it to track processes). A controller lives in one version at a time,
//!   so for limits a hybrid host is a v1 host.
//!
//! Two files tell: `/proc/self/mountinfo` (proc(5)) lists each mount with
//! its filesystem type and "super options" — for a v1 hierarchy, those name
//! its controllers (`rw,cpu,cpuacct`); `/proc/cgroups` lists the
//! controllers this kernel has and whether each is enabled (a boot option
//! like `cgroup_disable=memory` turns one off).
//!
//! Man pages: proc(5) ("/proc/pid/mountinfo", "/proc/cgroups"),
//! cgroups(7) ("Cgroups version 1 and version 2").

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{CgroupError, errno_of};
use crate::mapping::V1_CONTROLLERS;

/// Where this host's cgroups are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: one tree, mounted at `mount`.
    V2 { mount: PathBuf },
    /// cgroup v1 (also the hybrid layout): each controller's hierarchy and
    /// where it is mounted. Controllers sharing a hierarchy share a path.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
    },
}

impl Layout {
    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self {
            Layout::V1 { .. } => 1,
            Layout::V2 { .. } => 2,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::V2 { mount } => write!(f, "cgroup v2 at {}", mount.display()),
            Layout::V1 { controllers } => {
                write!(f, "cgroup v1:")?;
                for (controller, mount) in controllers {
                    write!(f, " {controller}={}", mount.display())?;
                }
                Ok(())
            }
        }
    }
}

/// One line of mountinfo, the fields this chapter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the filesystem that is mounted (field 4).
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// The filesystem type, after the ` - ` separator.
    pub fs_type: String,
    /// The filesystem's own options (the last field).
    pub super_options: Vec<String>,
}

/// Parse `/proc/PID/mountinfo`:
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)      (7..)  (8) (9)   (10)         (11)
/// ```
///
/// Fields 7.. are optional ("shared:9", "master:1", none at all), so the
/// ` - ` separator, not a position, marks where the type starts. Spaces and
/// other odd bytes in paths are written as octal escapes (`\040`).
/// Lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            if left.len() < 6 || right.len() < 3 {
                return None;
            }
            Some(Mount {
                root: unescape(left[3]),
                mount_point: PathBuf::from(unescape(left[4])),
                fs_type: right[0].to_string(),
                super_options: right[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Undo mountinfo's octal escapes: `\040` is a space, `\134` a backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match escape {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/cgroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    pub name: String,
    /// The v1 hierarchy it is attached to; 0 when on v2 or on none.
    pub hierarchy: u32,
    pub enabled: bool,
}

/// Parse `/proc/cgroups`: `#subsys_name hierarchy num_cgroups enabled`.
pub fn parse_proc_cgroups(text: &str) -> Vec<Subsystem> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [name, hierarchy, _, enabled] => Some(Subsystem {
                    name: name.to_string(),
                    hierarchy: hierarchy.parse().ok()?,
                    enabled: enabled == "1",
                }),
                _ => None,
            }
        })
        .collect()
}

/// Every v1 controller Linux has had, for when /proc/cgroups is missing.
const KNOWN_CONTROLLERS: [&str; 15] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Find this host's layout from `proc_root`/self/mountinfo and
/// `proc_root`/cgroups (pass `/proc`; tests pass a fake).
// ANCHOR: detect
pub fn detect(proc_root: &Path) -> Result<Layout, CgroupError> {
    let mountinfo_path = proc_root.join("self/mountinfo");
    let mountinfo = std::fs::read_to_string(&mountinfo_path).map_err(|e| CgroupError::Read {
        path: mountinfo_path.clone(),
        errno: errno_of(&e),
    })?;
    // /proc/cgroups may be missing on kernels built without v1 support.
    let subsystems = std::fs::read_to_string(proc_root.join("cgroups"))
        .map(|text| parse_proc_cgroups(&text))
        .unwrap_or_default();
    let is_controller = |option: &str| {
        if subsystems.is_empty() {
            KNOWN_CONTROLLERS.contains(&option)
        } else {
            subsystems.iter().any(|s| s.name == option && s.enabled)
        }
    };

    let mounts = parse_mountinfo(&mountinfo);
    // v1: each hierarchy's super options name its controllers. Named
    // hierarchies (name=systemd) and options (rw, clone_children) are not.
    let mut controllers = BTreeMap::new();
    for mount in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        for option in &mount.super_options {
            if is_controller(option) {
                controllers
                    .entry(option.clone())
                    .or_insert_with(|| mount.mount_point.clone());
            }
        }
    }
    let unified = mounts.iter().find(|m| m.fs_type == "cgroup2");

    // A resource controller on a v1 hierarchy makes this a v1 host, even
    // with a cgroup2 mount beside it (the hybrid layout).
    let limits_on_v1 = V1_CONTROLLERS.iter().any(|c| controllers.contains_key(*c));
    match unified {
        Some(mount) if !limits_on_v1 => Ok(Layout::V2 {
            mount: mount.mount_point.clone(),
        }),
        _ if !controllers.is_empty() => Ok(Layout::V1 { controllers }),
        _ => Err(CgroupError::NotMounted {
            mountinfo: mountinfo_path,
        }),
    }
}
// ANCHOR_END: detect

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc with these two files.
    fn fake_proc(mountinfo: &str, cgroups: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/mountinfo"), mountinfo).unwrap();
        if let Some(cgroups) = cgroups {
            std::fs::write(dir.path().join("cgroups"), cgroups).unwrap();
        }
        dir
    }

    fn v1(pairs: &[(&str, &str)]) -> Layout {
        Layout::V1 {
            controllers: pairs
                .iter()
                .map(|(c, p)| (c.to_string(), PathBuf::from(p)))
                .collect(),
        }
    }

    /// The development machines: every controller on v1, name=systemd,
    /// and a cgroup2 mount at /sys/fs/cgroup/unified with none
    /// (`grep cgroup /proc/self/mountinfo`, `cat /proc/cgroups`).
    const HYBRID_MOUNTINFO: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUPS: &str = "\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
blkio\t7\t1\t1
memory\t4\t16\t1
devices\t5\t1\t1
freezer\t6\t1\t1
net_cls\t0\t1\t1
perf_event\t0\t1\t1
net_prio\t0\t1\t1
hugetlb\t0\t1\t1
pids\t8\t1\t1
";

    #[test]
    fn a_hybrid_host_is_v1() {
        let proc_root = fake_proc(HYBRID_MOUNTINFO, Some(HYBRID_CGROUPS));
        assert_eq!(
            detect(proc_root.path()).unwrap(),
            v1(&[
                ("blkio", "/sys/fs/cgroup/blkio"),
                ("cpu", "/sys/fs/cgroup/cpu"),
                ("cpuacct", "/sys/fs/cgroup/cpuacct"),
                ("cpuset", "/sys/fs/cgroup/cpuset"),
                ("devices", "/sys/fs/cgroup/devices"),
                ("freezer", "/sys/fs/cgroup/freezer"),
                ("memory", "/sys/fs/cgroup/memory"),
                ("pids", "/sys/fs/cgroup/pids"),
            ])
        );
        let subsystems = parse_proc_cgroups(HYBRID_CGROUPS);
        assert_eq!(subsystems.len(), 12);
        assert_eq!(
            subsystems[4],
            Subsystem {
                name: "memory".into(),
                hierarchy: 4,
                enabled: true
            }
        );
    }

    /// A classic v1 host (CentOS 7 style): combined cpu,cpuacct and
    /// net_cls,net_prio hierarchies, optional fields, no cgroup2 at all.
    #[test]
    fn a_v1_host_with_combined_hierarchies() {
        let mountinfo = "\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,seclabel,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,seclabel,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,seclabel,cpu,cpuacct
30 25 0:26 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 master:4 - cgroup cgroup rw,seclabel,net_cls,net_prio
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,seclabel,memory
32 25 0:28 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,seclabel,cpuset,clone_children
33 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,seclabel,pids
";
        let proc_root = fake_proc(mountinfo, None);
        assert_eq!(
            detect(proc_root.path()).unwrap(),
            v1(&[
                ("cpu", "/sys/fs/cgroup/cpu,cpuacct"),
                ("cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
                ("cpuset", "/sys/fs/cgroup/cpuset"),
                ("memory", "/sys/fs/cgroup/memory"),
                ("net_cls", "/sys/fs/cgroup/net_cls,net_prio"),
                ("net_prio", "/sys/fs/cgroup/net_cls,net_prio"),
                ("pids", "/sys/fs/cgroup/pids"),
            ])
        );
    }

    #[test]
    fn a_pure_v2_host() {
        let mountinfo = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 22 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let cgroups =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t80\t1\nmemory\t0\t80\t1\n";
        let proc_root = fake_proc(mountinfo, Some(cgroups));
        let layout = detect(proc_root.path()).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                mount: "/sys/fs/cgroup".into()
            }
        );
        assert_eq!(layout.to_string(), "cgroup v2 at /sys/fs/cgroup");
        assert_eq!(layout.version(), 2);
        // Without /proc/cgroups too.
        let proc_root = fake_proc(mountinfo, None);
        assert_eq!(detect(proc_root.path()).unwrap().version(), 2);
    }

    #[test]
    fn a_v1_net_cls_beside_a_v2_tree_is_still_v2() {
        let mountinfo = "\
35 22 0:30 / /sys/fs/cgroup rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
36 35 0:31 / /run/vpn\\040cls rw,relatime - cgroup none rw,net_cls
";
        let proc_root = fake_proc(mountinfo, None);
        assert_eq!(detect(proc_root.path()).unwrap().version(), 2);
        let mounts = parse_mountinfo(mountinfo);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/run/vpn cls"));
        assert_eq!(mounts[1].super_options, ["rw", "net_cls"]);
    }

    #[test]
    fn a_disabled_controller_does_not_count() {
        // cgroup_disable=memory: /proc/cgroups says 0, so "memory" in a
        // mount's options is not taken as the controller.
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 23 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";
        let cgroups = "#subsys_name hierarchy num_cgroups enabled\nmemory 0 1 0\npids 2 1 1\n";
        let proc_root = fake_proc(mountinfo, Some(cgroups));
        assert_eq!(
            detect(proc_root.path()).unwrap(),
            v1(&[("pids", "/sys/fs/cgroup/pids")])
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error_naming_mountinfo() {
        let proc_root = fake_proc(
            "23 1 0:21 / /sys rw - sysfs sysfs rw\n31 23 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n",
            Some(HYBRID_CGROUPS),
        );
        let err = detect(proc_root.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("no cgroup filesystem with controllers in "),
            "{err}"
        );
        assert!(err.contains("/self/mountinfo: mount one"), "{err}");
    }

    #[test]
    fn mountinfo_escapes_and_bad_lines() {
        assert_eq!(unescape(r"/a\040b\134c\011"), "/a b\\c\t");
        assert_eq!(unescape(r"/a\04"), r"/a\04");
        assert!(parse_mountinfo("garbage\n1 2 3 - x\n").is_empty());
    }
}
