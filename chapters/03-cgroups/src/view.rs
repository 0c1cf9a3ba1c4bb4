//! What the container sees of its cgroup: `/sys/fs/cgroup`, read-only.
//!
//! Kernel feature: a cgroup filesystem mounted inside a cgroup namespace
//! shows the namespace's root as its own root. The container's child
//! unshares its cgroup namespace once it is in its cgroup (chapter 2), so a
//! cgroupfs it mounts afterwards shows exactly its own cgroup: its limits
//! (`memory.max`, `pids.max`) and its usage, which programs read to size
//! themselves (a JVM's heap, a Go runtime's GOMAXPROCS), and nothing of the
//! host's tree. Docker mounts it read-only, and so do we: the container
//! may read its limits and never write them.
//!
//! What to mount follows the host's layout, as runc does:
//!
//! - **v2**: one `cgroup2` mount, read-only.
//! - **v1** (and hybrid): a small tmpfs, in which each of the host's v1
//!   hierarchies gets a directory named as on the host (`memory`,
//!   `cpu,cpuacct`, `systemd`) with that hierarchy mounted in it,
//!   read-only, plus a symlink per controller of a combined hierarchy
//!   (`cpu -> cpu,cpuacct`); then the tmpfs itself is made read-only.
//!
//! Without a cgroup namespace (podman's and docker's default on v1), a
//! cgroupfs mounted in the container would show the host's whole tree;
//! then each mount gets the container's own directory bind-mounted over
//! it, as runc does ([`CgroupfsView::plan_for`]).
//!
//! The parent works all of that out ([`CgroupfsView::plan`]); the child,
//! which must not allocate, only makes the system calls
//! ([`CgroupfsView::mount`]), after pivot_root, with `/` its new root.
//!
//! Read-only holds only while the container cannot remount it: a root
//! container has no `CAP_SYS_ADMIN` (chapter 2). In a user namespace the
//! container's root may remount what it mounted, but there it can only
//! reach cgroups its user owns anyway.
//!
//! Man pages: cgroup_namespaces(7), mount(2) (`MS_RDONLY`, `MS_REMOUNT`,
//! `MS_BIND`), cgroups(7) ("Mounting v1 controllers").

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};

use ch02_namespaces::mounts::StepResult;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;
use nix::unistd::{mkdir, symlinkat};

use crate::detect::{Layout, parse_mountinfo};
use crate::error::{CgroupError, errno_of};

/// Where the container sees its cgroups, relative to its root.
pub const MOUNT_POINT: &str = "sys/fs/cgroup";

/// One system call of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// mount(2) a filesystem.
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: MsFlags,
        data: Option<CString>,
    },
    /// mkdir(2) a mount point in the tmpfs.
    Mkdir(CString),
    /// symlink(2) `link` -> `target`.
    Symlink { target: CString, link: CString },
    /// Make the mount at `target` read-only.
    RemountReadOnly(CString),
    /// Bind-mount `source` (a directory below `target`) over `target`.
    BindOver { source: CString, target: CString },
}

/// The steps that mount the container's view of its cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupfsView {
    pub steps: Vec<Step>,
}

/// nosuid, nodev, noexec: nothing in a cgroupfs is a program or a device.
const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

fn cstring(text: String) -> CString {
    // Paths and options from mountinfo hold no NUL (the kernel escapes
    // nothing into one); a name that did would just be left out.
    CString::new(text).unwrap_or_default()
}

impl CgroupfsView {
    /// Work out the mounts for this host's `layout`; the v1 hierarchies
    /// (and their controllers) are read from `proc_root`/self/mountinfo.
    pub fn plan(layout: &Layout, proc_root: &Path) -> Result<CgroupfsView, CgroupError> {
        CgroupfsView::plan_for(layout, proc_root, None)
    }

    /// [`CgroupfsView::plan`] for a container with no cgroup namespace of
    /// its own (`own`: its cgroup's directories on the host): a cgroupfs
    /// mounted there would show the host's whole tree, so each mount gets
    /// the container's own directory bind-mounted over it, as runc does,
    /// and a hierarchy the container has no directory in is left out.
    // ANCHOR: plan
    pub fn plan_for(
        layout: &Layout,
        proc_root: &Path,
        own: Option<&[PathBuf]>,
    ) -> Result<CgroupfsView, CgroupError> {
        let steps = match layout {
            Layout::V2 { mount } => v2_steps(mount, own),
            Layout::V1 { controllers } => v1_steps(controllers, proc_root, own)?,
        };
        Ok(CgroupfsView { steps })
    }
}

/// v1: a tmpfs, each hierarchy mounted read-only in a directory of its
/// own (narrowed to the container's directory without a namespace), one
/// symlink per controller of a combined hierarchy, then the tmpfs
/// read-only too.
fn v1_steps(
    controllers: &BTreeMap<String, PathBuf>,
    proc_root: &Path,
    own: Option<&[PathBuf]>,
) -> Result<Vec<Step>, CgroupError> {
    let mut steps = vec![Step::Mount {
        source: c"tmpfs".into(),
        target: at(""),
        fstype: c"tmpfs".into(),
        flags: SAFE,
        data: Some(c"mode=755".into()),
    }];
    let mut links = Vec::new();
    for (name, options, mount) in v1_hierarchies(controllers, proc_root)? {
        let own_dir = own_below(own, &mount);
        if own_dir == Some(None) {
            continue; // not the container's: nothing of it shown
        }
        steps.push(Step::Mkdir(at(&format!("/{name}"))));
        steps.push(Step::Mount {
            source: c"cgroup".into(),
            target: at(&format!("/{name}")),
            fstype: c"cgroup".into(),
            flags: SAFE | MsFlags::MS_RDONLY,
            data: Some(cstring(options.join(","))),
        });
        if let Some(Some(rel)) = own_dir {
            narrow(&mut steps, &format!("/{name}"), &rel);
        }
        // cpu -> cpu,cpuacct: each controller under its own name.
        for controller in options.iter().filter(|o| !o.starts_with("name=")) {
            if *controller != name {
                links.push(Step::Symlink {
                    target: cstring(name.clone()),
                    link: at(&format!("/{controller}")),
                });
            }
        }
    }
    steps.extend(links);
    steps.push(Step::RemountReadOnly(at("")));
    Ok(steps)
}
// ANCHOR_END: plan

/// v2: one cgroup2 mount, read-only (narrowed to the container's own
/// directory without a namespace).
fn v2_steps(mount: &Path, own: Option<&[PathBuf]>) -> Vec<Step> {
    let mut steps = vec![Step::Mount {
        source: c"cgroup2".into(),
        target: at(""),
        fstype: c"cgroup2".into(),
        flags: SAFE | MsFlags::MS_RDONLY,
        data: None,
    }];
    match own_below(own, mount) {
        Some(Some(rel)) => narrow(&mut steps, "", &rel),
        Some(None) => steps.clear(),
        None => {}
    }
    steps
}

/// A path below the container's /sys/fs/cgroup.
fn at(rel: &str) -> CString {
    cstring(format!("{MOUNT_POINT}{rel}"))
}

/// Where the container's own directory is below a hierarchy mounted at
/// `mount`: `None` with a namespace (nothing to narrow); `Some(None)` when
/// it has no directory there; `Some(Some(rel))` otherwise (never empty).
fn own_below(own: Option<&[PathBuf]>, mount: &Path) -> Option<Option<String>> {
    let own = own?;
    let rel = own.iter().find_map(|dir| dir.strip_prefix(mount).ok());
    Some(
        rel.map(|r| r.display().to_string())
            .filter(|r| !r.is_empty()),
    )
}

/// The mount at `target` narrowed to its subdirectory `rel`, read-only.
fn narrow(steps: &mut Vec<Step>, target: &str, rel: &str) {
    steps.push(Step::BindOver {
        source: at(&format!("{target}/{rel}")),
        target: at(target),
    });
    steps.push(Step::RemountReadOnly(at(target)));
}

impl CgroupfsView {
    /// Run the plan, in the child, relative to its current directory (its
    /// new root). Makes system calls only.
    pub fn mount(&self) -> StepResult {
        for step in &self.steps {
            match step {
                Step::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => mount(
                    Some(source.as_c_str()),
                    target.as_c_str(),
                    Some(fstype.as_c_str()),
                    *flags,
                    data.as_deref(),
                )
                .map_err(|e| ("mount /sys/fs/cgroup (read-only)", e))?,
                Step::Mkdir(path) => mkdir(path.as_c_str(), Mode::from_bits_truncate(0o755))
                    .map_err(|e| ("mkdir in /sys/fs/cgroup", e))?,
                Step::Symlink { target, link } => {
                    symlinkat(target.as_c_str(), nix::fcntl::AT_FDCWD, link.as_c_str())
                        .map_err(|e| ("symlink in /sys/fs/cgroup", e))?
                }
                Step::RemountReadOnly(target) => mount(
                    None::<&str>,
                    target.as_c_str(),
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | SAFE,
                    None::<&str>,
                )
                .map_err(|e| ("remount /sys/fs/cgroup read-only", e))?,
                Step::BindOver { source, target } => mount(
                    Some(source.as_c_str()),
                    target.as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| ("bind the container's own cgroup in /sys/fs/cgroup", e))?,
            }
        }
        Ok(())
    }
}

/// The host's v1 hierarchies, once each: the directory name (the last part
/// of its mount point) and the options that name it to mount(2) — its
/// controllers, and `name=...` for a named one like systemd's.
fn v1_hierarchies(
    controllers: &BTreeMap<String, PathBuf>,
    proc_root: &Path,
) -> Result<Vec<(String, Vec<String>, PathBuf)>, CgroupError> {
    let path = proc_root.join("self/mountinfo");
    let mountinfo = std::fs::read_to_string(&path).map_err(|e| CgroupError::Read {
        path: path.clone(),
        errno: errno_of(&e),
    })?;
    let mut names = BTreeSet::new();
    let mut hierarchies = Vec::new();
    for mount in parse_mountinfo(&mountinfo) {
        if mount.fs_type != "cgroup" || mount.root != "/" {
            continue;
        }
        let options: Vec<String> = mount
            .super_options
            .iter()
            .filter(|o| o.starts_with("name=") || controllers.get(*o) == Some(&mount.mount_point))
            .cloned()
            .collect();
        let Some(name) = mount.mount_point.file_name() else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if options.is_empty() || name.contains('\0') || !names.insert(name.clone()) {
            continue;
        }
        hierarchies.push((name, options, mount.mount_point.clone()));
    }
    Ok(hierarchies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn shown(view: &CgroupfsView) -> Vec<String> {
        view.steps
            .iter()
            .map(|step| match step {
                Step::Mount {
                    target,
                    fstype,
                    flags,
                    data,
                    ..
                } => format!(
                    "mount {fstype:?} {target:?} {} {data:?}",
                    if flags.contains(MsFlags::MS_RDONLY) {
                        "ro"
                    } else {
                        "rw"
                    }
                ),
                Step::Mkdir(path) => format!("mkdir {path:?}"),
                Step::Symlink { target, link } => format!("symlink {link:?} -> {target:?}"),
                Step::RemountReadOnly(target) => format!("remount ro {target:?}"),
                Step::BindOver { source, target } => format!("bind {source:?} over {target:?}"),
            })
            .collect()
    }

    #[test]
    fn v2_is_one_read_only_mount() {
        let layout = Layout::V2 {
            mount: "/sys/fs/cgroup".into(),
        };
        let view = CgroupfsView::plan(&layout, Path::new("/nonexistent")).unwrap();
        assert_eq!(shown(&view), [r#"mount "cgroup2" "sys/fs/cgroup" ro None"#]);
    }

    #[test]
    fn v1_mounts_each_hierarchy_in_a_tmpfs_then_makes_it_read_only() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("self")).unwrap();
        std::fs::write(
            proc_root.path().join("self/mountinfo"),
            "\
25 18 0:21 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:27 /berth /mnt/memory-again rw - cgroup cgroup rw,memory
33 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
",
        )
        .unwrap();
        let controllers: BTreeMap<String, PathBuf> = [
            ("cpu", "/sys/fs/cgroup/cpu,cpuacct"),
            ("cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
            ("memory", "/sys/fs/cgroup/memory"),
        ]
        .iter()
        .map(|(c, p)| (c.to_string(), PathBuf::from(p)))
        .collect();
        let view = CgroupfsView::plan(&Layout::V1 { controllers }, proc_root.path()).unwrap();
        assert_eq!(
            shown(&view),
            [
                r#"mount "tmpfs" "sys/fs/cgroup" rw Some("mode=755")"#,
                r#"mkdir "sys/fs/cgroup/systemd""#,
                r#"mount "cgroup" "sys/fs/cgroup/systemd" ro Some("name=systemd")"#,
                r#"mkdir "sys/fs/cgroup/cpu,cpuacct""#,
                r#"mount "cgroup" "sys/fs/cgroup/cpu,cpuacct" ro Some("cpu,cpuacct")"#,
                r#"mkdir "sys/fs/cgroup/memory""#,
                r#"mount "cgroup" "sys/fs/cgroup/memory" ro Some("memory")"#,
                r#"symlink "sys/fs/cgroup/cpu" -> "cpu,cpuacct""#,
                r#"symlink "sys/fs/cgroup/cpuacct" -> "cpu,cpuacct""#,
                r#"remount ro "sys/fs/cgroup""#,
            ]
        );
    }

    #[test]
    fn without_a_namespace_only_the_containers_own_cgroup_is_shown() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("self")).unwrap();
        std::fs::write(
            proc_root.path().join("self/mountinfo"),
            "\
25 18 0:21 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
",
        )
        .unwrap();
        let controllers: BTreeMap<String, PathBuf> =
            [("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory"))].into();
        let own = [PathBuf::from(
            "/sys/fs/cgroup/memory/libpod_parent/libpod-1",
        )];
        let view =
            CgroupfsView::plan_for(&Layout::V1 { controllers }, proc_root.path(), Some(&own))
                .unwrap();
        assert_eq!(
            shown(&view),
            [
                r#"mount "tmpfs" "sys/fs/cgroup" rw Some("mode=755")"#,
                r#"mkdir "sys/fs/cgroup/memory""#,
                r#"mount "cgroup" "sys/fs/cgroup/memory" ro Some("memory")"#,
                r#"bind "sys/fs/cgroup/memory/libpod_parent/libpod-1" over "sys/fs/cgroup/memory""#,
                r#"remount ro "sys/fs/cgroup/memory""#,
                r#"remount ro "sys/fs/cgroup""#,
            ],
            "systemd's hierarchy holds no directory of the container: left out"
        );
        let v2 = Layout::V2 {
            mount: "/sys/fs/cgroup".into(),
        };
        let own = [PathBuf::from("/sys/fs/cgroup/berth/c1")];
        let view = CgroupfsView::plan_for(&v2, Path::new("/nonexistent"), Some(&own)).unwrap();
        assert_eq!(
            shown(&view),
            [
                r#"mount "cgroup2" "sys/fs/cgroup" ro None"#,
                r#"bind "sys/fs/cgroup/berth/c1" over "sys/fs/cgroup""#,
                r#"remount ro "sys/fs/cgroup""#,
            ]
        );
    }
}
