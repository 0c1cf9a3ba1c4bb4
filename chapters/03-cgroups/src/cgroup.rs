//! The container's cgroup: one interface over the v1 and v2 drivers.
//!
//! Kernel feature: control groups. A cgroup is a set of processes the
//! kernel accounts together and limits together; children of a process
//! start in its cgroup. The engine's part, in the start sequence:
//!
//! 1. **create** the cgroup and write the limits, before the container
//!    exists, so a limit the host cannot apply is an error before anything
//!    runs;
//! 2. **add** the child (write its PID to `cgroup.procs`) while it waits on
//!    the start pipe, so the limits hold from its first instruction;
//! 3. while it runs and after: read **stats** and **OOM kills**,
//!    **freeze** and **thaw** it (`docker pause`);
//! 4. at the end, **kill** whatever is left and **remove** the cgroup.
//!
//! Where: `berth/<id>` below the root of the hierarchy (each v1 hierarchy,
//! or the v2 tree). Without root, only on v2, below our own cgroup, which
//! must be delegated to us (see [`crate::v2`]). `berth/` itself is shared
//! by every container and never removed: another engine may be creating a
//! container in it right now.
//!
//! [`Cgroup`] owns what it created: dropping it kills the processes left
//! and removes the directories, on every path, error or panic. A cgroup
//! opened by id ([`Cgroup::open`], for `pause ID` from another process) is
//! only borrowed, and dropping it leaves it alone.
//!
//! Man pages: cgroups(7); the kernel's Documentation/admin-guide/cgroup-v2.rst.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::{Pid, Uid};

use crate::cgroupfs;
use crate::detect::Layout;
use crate::error::CgroupError;
use crate::mapping::V1_CONTROLLERS;
use crate::resources::LinuxResources;
use crate::size::format_size;
use crate::v1::V1Cgroup;
use crate::v2::{self, V2Cgroup};

/// The directory every container's cgroup is made in.
pub const PARENT: &str = "berth";

/// Where `berth/` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Below the root of each hierarchy (needs root).
    Root,
    /// Below our own cgroup, delegated to us (cgroup v2, rootless).
    Delegated,
}

impl Placement {
    /// `Root` for root, `Delegated` for anyone else.
    pub fn for_current_user() -> Placement {
        if Uid::effective().is_root() {
            Placement::Root
        } else {
            Placement::Delegated
        }
    }
}

/// What a cgroup has used, read from its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of memory in use now (page cache included).
    pub memory_current: u64,
    /// The most ever in use; `None` where the kernel does not record it
    /// (v2 before Linux 5.19).
    pub memory_peak: Option<u64>,
    /// CPU time used by all its processes, dead ones included.
    pub cpu_usage: Duration,
    /// Processes and threads in it now.
    pub pids_current: u64,
    /// CFS periods in which it was throttled by its CPU quota; `None`
    /// without the cpu controller.
    pub nr_throttled: Option<u64>,
}

/// The kernel's OOM killer struck in a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomReport {
    /// How many processes it killed.
    pub kills: u64,
    /// The memory limit that was hit, if known.
    pub limit: Option<u64>,
}

impl fmt::Display for OomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Some(limit) => write!(f, "killed: out of memory (limit {})", format_size(limit)),
            None => write!(f, "killed: out of memory"),
        }
    }
}

#[derive(Debug)]
enum Driver {
    V1(V1Cgroup),
    V2(V2Cgroup),
}

/// A container's cgroup (one directory on v2, one per hierarchy on v1).
#[derive(Debug)]
pub struct Cgroup {
    id: String,
    driver: Driver,
    /// Created by us: Drop kills and removes. Opened: Drop does nothing.
    owned: bool,
    memory_limit: Option<u64>,
}

impl Cgroup {
    /// Create container `id`'s cgroup with `resources`, placed for the
    /// current user ([`Placement::for_current_user`]).
    pub fn create(
        layout: &Layout,
        proc_root: &Path,
        id: &str,
        resources: &LinuxResources,
    ) -> Result<Cgroup, CgroupError> {
        Cgroup::create_with(
            layout,
            proc_root,
            id,
            resources,
            Placement::for_current_user(),
        )
    }

    /// [`Cgroup::create`] with the placement chosen by the caller.
    // ANCHOR: create
    pub fn create_with(
        layout: &Layout,
        proc_root: &Path,
        id: &str,
        resources: &LinuxResources,
        placement: Placement,
    ) -> Result<Cgroup, CgroupError> {
        check_id(id)?;
        resources.validate()?;
        let driver = match (layout, placement) {
            (Layout::V1 { controllers }, Placement::Root) => {
                Driver::V1(V1Cgroup::create(controllers, id, resources)?)
            }
            (Layout::V1 { .. }, Placement::Delegated) => return Err(CgroupError::RootlessV1),
            (Layout::V2 { mount }, placement) => {
                let base = v2::base(mount, proc_root, placement)?;
                let delegated = placement == Placement::Delegated;
                Driver::V2(V2Cgroup::create(&base, delegated, id, resources)?)
            }
        };
        Ok(Cgroup {
            id: id.to_string(),
            driver,
            owned: true,
            memory_limit: resources.memory_limit(),
        })
    }
    // ANCHOR_END: create

    /// The cgroup of container `id`, created earlier, possibly by another
    /// process (for `pause ID`, `stats ID`). Dropping it leaves it in place;
    /// [`Cgroup::remove`] removes it.
    pub fn open(layout: &Layout, proc_root: &Path, id: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::open_with(layout, proc_root, id, Placement::for_current_user())
    }

    /// [`Cgroup::open`] with the placement chosen by the caller.
    pub fn open_with(
        layout: &Layout,
        proc_root: &Path,
        id: &str,
        placement: Placement,
    ) -> Result<Cgroup, CgroupError> {
        check_id(id)?;
        let driver = match (layout, placement) {
            (Layout::V1 { controllers }, Placement::Root) => {
                Driver::V1(V1Cgroup::open(controllers, id)?)
            }
            (Layout::V1 { .. }, Placement::Delegated) => return Err(CgroupError::RootlessV1),
            (Layout::V2 { mount }, placement) => {
                let base = v2::base(mount, proc_root, placement)?;
                Driver::V2(V2Cgroup::open(&base, id)?)
            }
        };
        let memory_limit = match &driver {
            Driver::V1(cg) => cg.memory_limit().ok().flatten(),
            Driver::V2(cg) => cg.memory_limit().ok().flatten(),
        };
        Ok(Cgroup {
            id: id.to_string(),
            driver,
            owned: false,
            memory_limit,
        })
    }

    /// The cgroup process `pid` is in (a container's first process: its
    /// cgroup, for `exec`), from `proc_root/PID/cgroup`. On v1, its
    /// directory in each hierarchy a container's cgroup is made in.
    /// Opened, not owned: dropping it leaves it alone.
    // ANCHOR: of_process
    pub fn of_process(layout: &Layout, proc_root: &Path, pid: Pid) -> Result<Cgroup, CgroupError> {
        let file = proc_root.join(pid.to_string()).join("cgroup");
        let lines = parse_proc_cgroup(&cgroupfs::read(&file)?);
        // A path is relative to our cgroup namespace's root, which is the
        // root of our cgroupfs mounts; "/.." means out of our sight.
        let dir = |mount: &Path, path: &str| {
            if path.starts_with("/..") {
                return Err(CgroupError::Parse {
                    path: file.clone(),
                    text: path.to_string(),
                    expected: "a cgroup inside our cgroup namespace",
                });
            }
            Ok(mount.join(path.trim_start_matches('/')))
        };
        let driver = match layout {
            Layout::V2 { mount } => {
                let (_, path) = lines
                    .iter()
                    .find(|(ids, _)| ids.is_empty())
                    .ok_or_else(|| CgroupError::Parse {
                        path: file.clone(),
                        text: String::new(),
                        expected: "a \"0::/path\" line (cgroup v2)",
                    })?;
                Driver::V2(V2Cgroup::at_dir(dir(mount, path)?))
            }
            Layout::V1 { controllers } => {
                let mut dirs = std::collections::BTreeMap::new();
                for (controller, mount) in controllers {
                    let line = lines.iter().find(|(ids, _)| ids.contains(controller));
                    if let Some((_, path)) =
                        line.filter(|_| V1_CONTROLLERS.contains(&&**controller))
                    {
                        dirs.insert(controller.clone(), dir(mount, path)?);
                    }
                }
                Driver::V1(V1Cgroup::at_dirs(dirs))
            }
        };
        let id = match &driver {
            Driver::V1(cg) => cg.paths(),
            Driver::V2(cg) => vec![cg.path().to_path_buf()],
        };
        let id = id
            .first()
            .and_then(|p| p.file_name())
            .map_or("/".to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Cgroup {
            id,
            driver,
            owned: false,
            memory_limit: None,
        })
    }
    // ANCHOR_END: of_process

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cgroup's directories: one on v2, one per hierarchy on v1.
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1(cg) => cg.paths(),
            Driver::V2(cg) => vec![cg.path().to_path_buf()],
        }
    }

    /// The memory limit, in bytes, if there is one.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Move process `pid` (and so its future children) into the cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.add_process(pid),
            Driver::V2(cg) => cg.add_process(pid),
        }
    }

    /// How many processes the kernel's OOM killer has killed in the cgroup.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.oom_kills(),
            Driver::V2(cg) => cg.oom_kills(),
        }
    }

    /// `Some` when the OOM killer struck: its Display is the line the
    /// engine prints, `killed: out of memory (limit 32 MiB)`.
    // ANCHOR: oom_report
    pub fn oom_report(&self) -> Result<Option<OomReport>, CgroupError> {
        let kills = self.oom_kills()?;
        Ok((kills > 0).then_some(OomReport {
            kills,
            limit: self.memory_limit,
        }))
    }
    // ANCHOR_END: oom_report

    /// Change the limits of the running container's cgroup (`docker
    /// update`): what `resources` sets is written, the rest left as is.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        resources.validate()?;
        match &self.driver {
            Driver::V1(cg) => cg.update(resources)?,
            Driver::V2(cg) => cg.update(resources)?,
        }
        if let Some(limit) = resources.memory_limit() {
            self.memory_limit = Some(limit);
        }
        Ok(())
    }

    /// Memory, CPU and process counts.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.stats(),
            Driver::V2(cg) => cg.stats(),
        }
    }

    /// Whether it is paused (asked to freeze, or frozen).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.is_frozen(),
            Driver::V2(cg) => cg.is_frozen(),
        }
    }

    /// Stop every process in the cgroup, and wait until they are stopped.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Let them run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.set_frozen(frozen),
            Driver::V2(cg) => cg.set_frozen(frozen),
        }
    }

    /// SIGKILL every process in the cgroup and wait until none is left.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.kill_all(),
            Driver::V2(cg) => cg.kill_all(),
        }
    }

    fn remove_dirs(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(cg) => cg.remove(),
            Driver::V2(cg) => cg.remove(),
        }
    }

    /// Hand the cgroup over to whoever finds it again with
    /// [`Cgroup::open`]: dropping it no longer kills and removes (an OCI
    /// `create`, whose container outlives the command).
    pub fn persist(mut self) {
        self.owned = false;
    }

    /// Kill what is left and remove the cgroup, reporting errors (Drop does
    /// the same for an owned cgroup, silently). Works on an opened one too.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        // Whatever happens now, Drop must not try again.
        self.owned = false;
        let killed = self.kill_all();
        let removed = self.remove_dirs();
        killed.and(removed)
    }
}

// ANCHOR: drop
impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.kill_all();
            let _ = self.remove_dirs();
        }
    }
}
// ANCHOR_END: drop

/// `/proc/PID/cgroup`: one line per hierarchy, `ID:CONTROLLERS:PATH`, as
/// (controllers, path); v2's line `0::PATH` has no controllers. Named v1
/// hierarchies list `name=...` as their controller.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((controllers, path.to_string()))
        })
        .collect()
}

/// A container id becomes a directory name: keep it to docker's
/// characters, so it can be neither `..` nor a path.
fn check_id(id: &str) -> Result<(), CgroupError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(CgroupError::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::resources::{LinuxMemory, ResourceError};

    fn memory(limit: i64) -> LinuxResources {
        LinuxResources {
            memory: Some(LinuxMemory {
                limit: Some(limit),
                swap: None,
            }),
            ..LinuxResources::default()
        }
    }

    /// A fake v2 host and a fake /proc.
    fn fake_v2() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("cgroup");
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::write(mount.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(mount.join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        std::fs::write(dir.path().join("proc/self/cgroup"), "0::/\n").unwrap();
        (dir, Layout::V2 { mount })
    }

    fn fake_v1() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let mut controllers = BTreeMap::new();
        for c in ["memory", "pids", "freezer"] {
            let path = dir.path().join(c);
            std::fs::create_dir(&path).unwrap();
            controllers.insert(c.to_string(), path);
        }
        (dir, Layout::V1 { controllers })
    }

    #[test]
    fn drop_removes_a_created_cgroup_but_not_an_opened_one() {
        for (dir, layout) in [fake_v2(), fake_v1()] {
            let proc_root = dir.path().join("proc");
            let cgroup = Cgroup::create_with(
                &layout,
                &proc_root,
                "c1",
                &memory(32 << 20),
                Placement::Root,
            )
            .unwrap();
            assert_eq!(cgroup.memory_limit(), Some(32 << 20));
            assert_eq!(cgroup.id(), "c1");
            let paths = cgroup.paths();
            assert!(!paths.is_empty());
            assert!(paths.iter().all(|p| p.is_dir() && p.ends_with("berth/c1")));

            // Another process opens it, and lets go: it stays.
            let opened = Cgroup::open_with(&layout, &proc_root, "c1", Placement::Root).unwrap();
            assert_eq!(opened.paths(), paths);
            assert_eq!(opened.memory_limit(), Some(32 << 20));
            drop(opened);
            assert!(paths.iter().all(|p| p.is_dir()));

            // The owner goes: the cgroup goes, berth/ stays.
            drop(cgroup);
            for p in &paths {
                assert!(!p.exists(), "{}", p.display());
                assert!(p.parent().unwrap().is_dir());
            }
            let err = Cgroup::open_with(&layout, &proc_root, "c1", Placement::Root)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("container c1 has no cgroup: "), "{err}");
        }
    }

    #[test]
    fn remove_reports_and_works_on_an_opened_cgroup() {
        let (dir, layout) = fake_v2();
        let proc_root = dir.path().join("proc");
        let created = Cgroup::create_with(
            &layout,
            &proc_root,
            "c2",
            &LinuxResources::default(),
            Placement::Root,
        )
        .unwrap();
        let path = created.paths().remove(0);
        let opened = Cgroup::open_with(&layout, &proc_root, "c2", Placement::Root).unwrap();
        opened.remove().unwrap();
        assert!(!path.exists());
        // The owner's own removal then finds nothing to do.
        created.remove().unwrap();
    }

    #[test]
    fn the_oom_report_names_the_limit() {
        let (dir, layout) = fake_v2();
        let proc_root = dir.path().join("proc");
        let cgroup = Cgroup::create_with(
            &layout,
            &proc_root,
            "c3",
            &memory(32 << 20),
            Placement::Root,
        )
        .unwrap();
        let events = cgroup.paths()[0].join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        assert_eq!(cgroup.oom_report().unwrap(), None);
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        let report = cgroup.oom_report().unwrap().unwrap();
        assert_eq!(report.to_string(), "killed: out of memory (limit 32 MiB)");
        assert_eq!(
            OomReport {
                kills: 2,
                limit: None
            }
            .to_string(),
            "killed: out of memory"
        );
    }

    #[test]
    fn bad_requests_fail_before_anything_exists() {
        let (dir, layout) = fake_v2();
        let proc_root = dir.path().join("proc");
        let mount = dir.path().join("cgroup");
        for id in ["", "..", "a/b", ".hidden", "x y"] {
            let err = Cgroup::create_with(
                &layout,
                &proc_root,
                id,
                &LinuxResources::default(),
                Placement::Root,
            )
            .unwrap_err();
            assert!(matches!(err, CgroupError::InvalidId(_)), "{id}: {err}");
        }
        let err = Cgroup::create_with(&layout, &proc_root, "c4", &memory(1 << 20), Placement::Root)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::Resources(ResourceError::Invalid {
                    flag: "--memory",
                    ..
                })
            ),
            "{err}"
        );
        assert!(!mount.join("berth").exists());

        // A controller v2 does not offer here.
        let r = LinuxResources {
            block_io: Some(crate::resources::LinuxBlockIO { weight: Some(100) }),
            ..LinuxResources::default()
        };
        let err = Cgroup::create_with(&layout, &proc_root, "c4", &r, Placement::Root).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::ControllerMissing {
                    controller: "io",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!mount.join("berth").exists());

        // Rootless on v1.
        let (dir, layout) = fake_v1();
        let err = Cgroup::create_with(
            &layout,
            &dir.path().join("proc"),
            "c4",
            &memory(32 << 20),
            Placement::Delegated,
        )
        .unwrap_err();
        assert!(matches!(err, CgroupError::RootlessV1), "{err}");
        let err = Cgroup::create_with(
            &layout,
            &dir.path().join("proc"),
            "c4",
            &LinuxResources {
                cpu: Some(crate::resources::LinuxCPU {
                    shares: Some(512),
                    ..Default::default()
                }),
                ..LinuxResources::default()
            },
            Placement::Root,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "--cpu-shares needs the cpu controller, which is not mounted: no cgroup v1 hierarchy in /proc/self/mountinfo has it"
        );
    }

    #[test]
    fn a_delegated_cgroup_lives_below_our_own() {
        let (dir, layout) = fake_v2();
        let proc_root = dir.path().join("proc");
        let scope = dir.path().join("cgroup/user.slice/run-u7.scope");
        std::fs::create_dir_all(&scope).unwrap();
        std::fs::write(scope.join("cgroup.controllers"), "memory pids\n").unwrap();
        std::fs::write(scope.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(scope.join("cgroup.procs"), "").unwrap();
        std::fs::write(
            proc_root.join("self/cgroup"),
            "0::/user.slice/run-u7.scope\n",
        )
        .unwrap();
        let cgroup = Cgroup::create_with(
            &layout,
            &proc_root,
            "c5",
            &memory(64 << 20),
            Placement::Delegated,
        )
        .unwrap();
        assert_eq!(cgroup.paths(), [scope.join("berth/c5")]);
        assert_eq!(
            std::fs::read_to_string(scope.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        assert_eq!(
            std::fs::read_to_string(scope.join("berth/c5/memory.max")).unwrap(),
            "67108864"
        );
        // Where we may not write: the message says how to get a delegation.
        let err = CgroupError::NotDelegated {
            path: scope.clone(),
            uid: 1000,
        }
        .to_string();
        assert!(err.contains("is not writable by uid 1000: "), "{err}");
        assert!(
            err.contains("systemd-run --user --scope -p Delegate=yes"),
            "{err}"
        );
    }
}
