//! The cgroup v1 driver: one directory per hierarchy.
//!
//! Kernel feature: cgroup v1 (Linux 2.6.24, 2008). Every controller, or
//! group of controllers mounted together like `cpu,cpuacct`, has a tree of
//! its own. So a container's "cgroup" is several directories, all named
//! `berth/<id>` — one in the memory tree, one in the pids tree, and so on —
//! and its first process is written into each one's `cgroup.procs`.
//!
//! The quirks this driver deals with:
//!
//! - **cpuset**: a new cpuset cgroup starts with empty `cpuset.cpus` and
//!   `cpuset.mems` and refuses tasks (ENOSPC) until both are set. We copy
//!   the parent's values when the user did not ask for any, and make sure
//!   `berth/` itself has them. (Writing 1 to the parent's
//!   `cgroup.clone_children` would make the kernel copy them.)
//! - **blkio**: CFQ's `blkio.weight` left in Linux 5.0; with the BFQ
//!   scheduler the weight is `blkio.bfq.weight`.
//! - **freezer**: writing FROZEN starts freezing; `freezer.state` reads
//!   FREEZING until every task has stopped. A frozen task does not die of
//!   SIGKILL until it is thawed.
//! - **OOM kills** are counted in `memory.oom_control` (`oom_kill`) only
//!   since Linux 4.13.
//! - **no `cgroup.kill`**: to empty a cgroup, SIGKILL each PID in
//!   `cgroup.procs`, again and again until none is left (a process may
//!   fork meanwhile).
//! - **no delegation**: v1 offers no safe way to hand a subtree to an
//!   unprivileged user, so this driver is for root only.
//! - **devices**: a new cgroup starts with its parent's rules; `devices.deny`
//!   and `devices.allow` take one rule per write, and "a" resets the
//!   default (see [`crate::devices`]).
//!
//! Man pages: cgroups(7); the kernel's Documentation/admin-guide/cgroup-v1/
//! cgroups.rst, cpusets.rst, memory.rst, freezer-subsystem.rst, pids.rst,
//! blkio-controller.rst.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::cgroup::{PARENT, Stats};
use crate::cgroupfs::{self, WAIT_LIMIT};
use crate::devices::DeviceCgroupState;
use crate::error::CgroupError;
use crate::mapping::{self, CgroupFile, V1_CONTROLLERS};
use crate::resources::LinuxResources;

/// A container's cgroup on v1: its directory in each hierarchy.
#[derive(Debug)]
pub struct V1Cgroup {
    /// Controller → the container's directory in that controller's tree.
    /// Controllers sharing a hierarchy share a directory.
    dirs: BTreeMap<String, PathBuf>,
}

impl V1Cgroup {
    /// Create `berth/<id>` in every hierarchy in [`V1_CONTROLLERS`] that is
    /// mounted (`hierarchies`: controller → mount point), and apply `r`.
    /// Checks everything it can before the first mkdir; if a later step
    /// fails, removes the directories it made.
    pub fn create(
        hierarchies: &BTreeMap<String, PathBuf>,
        id: &str,
        r: &LinuxResources,
    ) -> Result<V1Cgroup, CgroupError> {
        let settings = mapping::v1_settings(r);
        // Every controller a limit needs must be mounted.
        for setting in &settings {
            let controller = setting.file.controller.unwrap_or("memory");
            if !hierarchies.contains_key(controller) {
                return Err(not_mounted(setting.flag, controller));
            }
        }
        let devices = DeviceCgroupState::from_rules(&r.devices)?;
        if !r.devices.is_empty() && !hierarchies.contains_key("devices") {
            return Err(not_mounted("the device rules", "devices"));
        }
        let cgroup = V1Cgroup::at(hierarchies, id);
        if cgroup.dirs.is_empty() {
            return Err(not_mounted("a container cgroup", "memory"));
        }
        let leaves = cgroup.paths();
        if let Some(leaf) = leaves.iter().find(|leaf| leaf.exists()) {
            return Err(CgroupError::Exists {
                id: id.to_string(),
                path: leaf.clone(),
            });
        }

        // berth/ in each hierarchy: shared by every container, never removed.
        for leaf in &leaves {
            if let Some(parent) = leaf.parent() {
                cgroupfs::make_dir(parent)?;
            }
        }
        let cpuset = cgroup.dirs.get("cpuset");
        if let Some(parent) = cpuset.and_then(|leaf| leaf.parent()) {
            inherit_cpuset(parent)?;
            let cpu = r.cpu.as_ref();
            let asked = [
                ("--cpuset-cpus", cpu.and_then(|c| c.cpus.as_ref())),
                ("--cpuset-mems", cpu.and_then(|c| c.mems.as_ref())),
            ];
            let allowed = [mapping::CPUSET_CPUS_ALLOWED, mapping::CPUSET_MEMS_ALLOWED];
            for ((flag, wanted), allowed) in asked.into_iter().zip(allowed) {
                if let Some(wanted) = wanted {
                    cgroupfs::check_within(flag, wanted, &parent.join(allowed.v1.name))?;
                }
            }
        } else if r
            .cpu
            .as_ref()
            .is_some_and(|c| c.cpus.is_some() || c.mems.is_some())
        {
            return Err(not_mounted("--cpuset-cpus", "cpuset"));
        }

        // The leaves. From here on, undo what was made if anything fails.
        let mut made = Vec::new();
        let result = (|| {
            for leaf in &leaves {
                if !cgroupfs::make_dir(leaf)? {
                    return Err(CgroupError::Exists {
                        id: id.to_string(),
                        path: leaf.clone(),
                    });
                }
                made.push(leaf.clone());
            }
            if let Some(leaf) = cpuset {
                inherit_cpuset(leaf)?;
            }
            for setting in &settings {
                let dir = cgroup.dir(setting.file, setting.flag)?;
                cgroupfs::apply(dir, setting)?;
            }
            if let Some(dir) = cgroup.dirs.get("devices").filter(|_| !r.devices.is_empty()) {
                write_device_rules(dir, &devices)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(cgroup),
            Err(err) => {
                for leaf in made.iter().rev() {
                    let _ = cgroupfs::remove_dir(leaf);
                }
                Err(err)
            }
        }
    }

    /// Change the limits of a cgroup that exists (`update`): `r`'s settings
    /// written in place. Lowering memory below memory+swap must come
    /// first, raising it last (the kernel keeps limit <= memsw.limit at
    /// every step), so a refused order is tried once more reversed.
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let settings = mapping::v1_settings(r);
        let write_all = |order: Vec<&mapping::Setting>| {
            order.into_iter().try_for_each(|setting| {
                cgroupfs::apply(self.dir(setting.file, setting.flag)?, setting)
            })
        };
        match write_all(settings.iter().collect()) {
            Err(CgroupError::Write {
                errno: nix::errno::Errno::EINVAL,
                ..
            }) => write_all(settings.iter().rev().collect()),
            other => other,
        }
    }

    /// A cgroup given by its directory in each hierarchy (controller ->
    /// directory), e.g. those a process is in.
    pub fn at_dirs(dirs: BTreeMap<String, PathBuf>) -> V1Cgroup {
        V1Cgroup { dirs }
    }

    /// The cgroup of container `id`, made earlier (by another process).
    pub fn open(
        hierarchies: &BTreeMap<String, PathBuf>,
        id: &str,
    ) -> Result<V1Cgroup, CgroupError> {
        let mut cgroup = V1Cgroup::at(hierarchies, id);
        let expected = cgroup
            .dirs
            .get("memory")
            .or(cgroup.dirs.values().next())
            .cloned();
        cgroup.dirs.retain(|_, dir| dir.is_dir());
        match expected {
            Some(path) if cgroup.dirs.is_empty() => Err(CgroupError::NotFound {
                id: id.to_string(),
                path,
            }),
            None => Err(not_mounted("a container cgroup", "memory")),
            Some(_) => Ok(cgroup),
        }
    }

    /// Where container `id`'s directories are (or would be).
    fn at(hierarchies: &BTreeMap<String, PathBuf>, id: &str) -> V1Cgroup {
        let dirs = V1_CONTROLLERS
            .iter()
            .filter_map(|c| {
                let mount = hierarchies.get(*c)?;
                Some((c.to_string(), mount.join(PARENT).join(id)))
            })
            .collect();
        V1Cgroup { dirs }
    }

    /// The container's directories, one per hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.dirs.values().cloned().collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The directory holding `file`.
    fn dir(&self, file: CgroupFile, what: &'static str) -> Result<&Path, CgroupError> {
        let controller = file.controller.unwrap_or("memory");
        self.dirs
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| not_mounted(what, controller))
    }

    fn file(&self, file: CgroupFile, what: &'static str) -> Result<PathBuf, CgroupError> {
        Ok(self.dir(file, what)?.join(file.name))
    }

    /// Move `pid` into the cgroup: write it to `cgroup.procs` in each
    /// hierarchy.
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in self.paths() {
            cgroupfs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// How many times the kernel's OOM killer struck in this cgroup.
    ///
    /// Before Linux 4.13 there is no count; then this is a guess: 1 if the
    /// cgroup is under OOM right now or ever hit its limit (`failcnt`),
    /// which only means "OOM likely" when the command also died of SIGKILL.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let what = "OOM detection";
        let dir = self.dir(mapping::OOM_KILLS.v1, what)?;
        if let Some(kills) = cgroupfs::read_entry(dir, mapping::OOM_KILLS.v1)? {
            return Ok(kills);
        }
        let under_oom = cgroupfs::read_entry(dir, mapping::V1_UNDER_OOM)?.unwrap_or(0);
        let failcnt = cgroupfs::read_u64(&self.file(mapping::V1_FAILCNT, what)?)?;
        Ok(u64::from(under_oom > 0 || failcnt > 0))
    }

    /// Memory, CPU and process counts, from the cgroup's files.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let what = "stats";
        let peak = self.file(mapping::MEMORY_PEAK.v1, what)?;
        let throttled = match self.dir(mapping::THROTTLED.v1, what) {
            Ok(dir) => cgroupfs::read_entry(dir, mapping::THROTTLED.v1)?,
            Err(_) => None,
        };
        Ok(Stats {
            memory_current: cgroupfs::read_u64(&self.file(mapping::MEMORY_CURRENT.v1, what)?)?,
            memory_peak: if peak.exists() {
                Some(cgroupfs::read_u64(&peak)?)
            } else {
                None
            },
            cpu_usage: mapping::cpu_usage(
                1,
                cgroupfs::read_u64(&self.file(mapping::CPU_USAGE.v1, what)?)?,
            ),
            pids_current: cgroupfs::read_u64(&self.file(mapping::PIDS_CURRENT.v1, what)?)?,
            nr_throttled: throttled,
        })
    }

    /// The memory limit in force (`None`: unlimited).
    pub fn memory_limit(&self) -> Result<Option<u64>, CgroupError> {
        cgroupfs::read_limit(&self.file(mapping::MEMORY_LIMIT.v1, "the memory limit")?)
    }

    /// Whether it is frozen or freezing (`freezer.state` is not THAWED).
    /// Without a freezer directory of its own (a process in the root
    /// cgroup), never.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let Some(dir) = self.dirs.get("freezer") else {
            return Ok(false);
        };
        let path = dir.join(mapping::FREEZE.v1.name);
        if !path.exists() {
            return Ok(false);
        }
        Ok(cgroupfs::read_value(&path)? != mapping::freezer_state(1, false))
    }

    /// Freeze (`true`) or thaw, and wait until `freezer.state` says so.
    /// A freeze that does not finish in time is undone.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let what = if frozen { "freeze" } else { "thaw" };
        let path = self.file(mapping::FREEZE.v1, what)?;
        let target = mapping::freezer_state(1, frozen);
        cgroupfs::write(&path, target)?;
        let mut state = String::new();
        let done = cgroupfs::wait_until(WAIT_LIMIT, || {
            state = cgroupfs::read_value(&path)?;
            Ok(state == target)
        })?;
        if done {
            return Ok(());
        }
        if frozen {
            let _ = cgroupfs::write(&path, mapping::freezer_state(1, false));
        }
        Err(CgroupError::Timeout {
            what,
            path,
            waited: WAIT_LIMIT,
            state: format!("freezer.state still reads {state}"),
        })
    }

    /// SIGKILL every process in every hierarchy's directory, until none is
    /// left (bounded by [`WAIT_LIMIT`]). Thaws after each round, since a
    /// frozen task dies only when thawed.
    // ANCHOR: v1_kill
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let dirs = self.paths();
        let freezer = self.file(mapping::FREEZE.v1, "kill").ok();
        let mut left = 0;
        let done = cgroupfs::wait_until(WAIT_LIMIT, || {
            left = 0;
            for dir in &dirs {
                let pids = cgroupfs::procs_in_subtree(dir)?;
                left += pids.len();
                cgroupfs::kill_each(dir, &pids)?;
            }
            if let Some(freezer) = freezer.as_ref().filter(|f| left > 0 && f.exists()) {
                let _ = cgroupfs::write(freezer, mapping::freezer_state(1, false));
            }
            Ok(left == 0)
        })?;
        if done {
            return Ok(());
        }
        Err(CgroupError::Timeout {
            what: "kill the processes in",
            path: dirs.first().cloned().unwrap_or_default(),
            waited: WAIT_LIMIT,
            state: format!("{left} still there"),
        })
    }
    // ANCHOR_END: v1_kill

    /// rmdir the directory in every hierarchy (processes must be gone).
    /// Tries them all; returns the first error.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.paths() {
            if let Err(err) = cgroupfs::remove_dir(&dir) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn not_mounted(what: &'static str, controller: &'static str) -> CgroupError {
    CgroupError::ControllerMissing {
        what,
        controller,
        why: "is not mounted: no cgroup v1 hierarchy in /proc/self/mountinfo has it".to_string(),
    }
}

/// Write the device rules into a new devices cgroup, one line per write:
/// first the default ("a"), then each exception.
// ANCHOR: write_device_rules
fn write_device_rules(dir: &Path, devices: &DeviceCgroupState) -> Result<(), CgroupError> {
    for (file, line) in devices.v1_writes() {
        cgroupfs::write(&dir.join(file), &line)?;
    }
    Ok(())
}
// ANCHOR_END: write_device_rules

/// Give a v1 cpuset cgroup its parent's CPUs and memory nodes where it has
/// none: it refuses tasks until both are set.
// ANCHOR: inherit_cpuset
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for knob in [mapping::CPUSET_CPUS, mapping::CPUSET_MEMS] {
        let path = dir.join(knob.v1.name);
        let current = if path.exists() {
            cgroupfs::read_value(&path)?
        } else {
            String::new()
        };
        if current.is_empty() {
            let value = cgroupfs::read_value(&parent.join(knob.v1.name))?;
            cgroupfs::write(&path, &value)?;
        }
    }
    Ok(())
}
// ANCHOR_END: inherit_cpuset

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{LinuxCPU, LinuxMemory, LinuxPids};

    /// A fake v1 host: one directory per hierarchy, cpu and cpuacct
    /// combined, with a root cpuset of 0-1 / 0.
    fn fake_host() -> (tempfile::TempDir, BTreeMap<String, PathBuf>) {
        let root = tempfile::tempdir().unwrap();
        let mut hierarchies = BTreeMap::new();
        for (controller, dir) in [
            ("blkio", "blkio"),
            ("cpu", "cpu,cpuacct"),
            ("cpuacct", "cpu,cpuacct"),
            ("cpuset", "cpuset"),
            ("devices", "devices"),
            ("freezer", "freezer"),
            ("memory", "memory"),
            ("pids", "pids"),
        ] {
            let path = root.path().join(dir);
            std::fs::create_dir_all(&path).unwrap();
            hierarchies.insert(controller.to_string(), path);
        }
        std::fs::write(root.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
        (root, hierarchies)
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn limits() -> LinuxResources {
        LinuxResources {
            memory: Some(LinuxMemory {
                limit: Some(32 << 20),
                swap: None,
            }),
            cpu: Some(LinuxCPU {
                quota: Some(50_000),
                period: Some(100_000),
                ..LinuxCPU::default()
            }),
            pids: Some(LinuxPids { limit: 16 }),
            block_io: None,
            devices: crate::devices::default_rules(&[]),
        }
    }

    #[test]
    fn a_cgroup_in_every_hierarchy_with_its_limits() {
        let (root, hierarchies) = fake_host();
        let cgroup = V1Cgroup::create(&hierarchies, "c1", &limits()).unwrap();
        let r = root.path();
        // One directory per hierarchy, the combined one once.
        assert_eq!(
            cgroup.paths(),
            [
                "blkio",
                "cpu,cpuacct",
                "cpuset",
                "devices",
                "freezer",
                "memory",
                "pids"
            ]
            .map(|h| r.join(h).join("berth/c1"))
        );
        // The device rules: deny all, then the exceptions (a fake file
        // keeps only the last of the writes).
        assert_eq!(read(r.join("devices/berth/c1/devices.deny")), "a");
        assert_eq!(
            read(r.join("devices/berth/c1/devices.allow")),
            "c 136:* rwm"
        );
        assert_eq!(
            read(r.join("memory/berth/c1/memory.limit_in_bytes")),
            "33554432"
        );
        assert_eq!(
            read(r.join("cpu,cpuacct/berth/c1/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(r.join("cpu,cpuacct/berth/c1/cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(read(r.join("pids/berth/c1/pids.max")), "16");
        // The cpuset quirk: berth/ and the leaf got the root's values.
        assert_eq!(read(r.join("cpuset/berth/cpuset.cpus")), "0-1");
        assert_eq!(read(r.join("cpuset/berth/cpuset.mems")), "0");
        assert_eq!(read(r.join("cpuset/berth/c1/cpuset.cpus")), "0-1");
        assert_eq!(read(r.join("cpuset/berth/c1/cpuset.mems")), "0");

        cgroup.add_process(Pid::from_raw(4242)).unwrap();
        assert_eq!(read(r.join("pids/berth/c1/cgroup.procs")), "4242");
        assert_eq!(read(r.join("freezer/berth/c1/cgroup.procs")), "4242");

        // Stats and OOM kills, from files as the kernel writes them.
        let memory = r.join("memory/berth/c1");
        std::fs::write(memory.join("memory.usage_in_bytes"), "1048576\n").unwrap();
        std::fs::write(memory.join("memory.max_usage_in_bytes"), "2097152\n").unwrap();
        std::fs::write(r.join("cpu,cpuacct/berth/c1/cpuacct.usage"), "2500000000\n").unwrap();
        std::fs::write(
            r.join("cpu,cpuacct/berth/c1/cpu.stat"),
            "nr_periods 9\nnr_throttled 4\n",
        )
        .unwrap();
        std::fs::write(r.join("pids/berth/c1/pids.current"), "3\n").unwrap();
        assert_eq!(
            cgroup.stats().unwrap(),
            Stats {
                memory_current: 1 << 20,
                memory_peak: Some(2 << 20),
                cpu_usage: std::time::Duration::from_millis(2500),
                pids_current: 3,
                nr_throttled: Some(4),
            }
        );
        std::fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cgroup.oom_kills().unwrap(), 1);
        // Before 4.13: no oom_kill line; failcnt and under_oom hint.
        std::fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        std::fs::write(memory.join("memory.failcnt"), "0\n").unwrap();
        assert_eq!(cgroup.oom_kills().unwrap(), 0);
        std::fs::write(memory.join("memory.failcnt"), "12\n").unwrap();
        assert_eq!(cgroup.oom_kills().unwrap(), 1);

        // Freezing writes FROZEN and waits for it to read so.
        cgroup.set_frozen(true).unwrap();
        assert_eq!(read(r.join("freezer/berth/c1/freezer.state")), "FROZEN");
        cgroup.set_frozen(false).unwrap();
        assert_eq!(read(r.join("freezer/berth/c1/freezer.state")), "THAWED");

        // Opened from elsewhere: the same directories.
        let opened = V1Cgroup::open(&hierarchies, "c1").unwrap();
        assert_eq!(opened.paths(), cgroup.paths());
        assert_eq!(opened.memory_limit().unwrap(), Some(32 << 20));

        // Empty the fake cgroup.procs files (the PID is made up), then remove.
        for dir in cgroup.paths() {
            std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
        cgroup.kill_all().unwrap();
        cgroup.remove().unwrap();
        for dir in cgroup.paths() {
            assert!(!dir.exists(), "{}", dir.display());
            assert!(dir.parent().unwrap().exists(), "berth/ stays");
        }
        let err = V1Cgroup::open(&hierarchies, "c1").unwrap_err().to_string();
        assert!(err.starts_with("container c1 has no cgroup: "), "{err}");
    }

    #[test]
    fn a_cpuset_outside_the_parents_is_refused_before_anything_is_made() {
        let (root, hierarchies) = fake_host();
        let r = LinuxResources {
            cpu: Some(LinuxCPU {
                cpus: Some("1-3".into()),
                ..LinuxCPU::default()
            }),
            ..LinuxResources::default()
        };
        let err = V1Cgroup::create(&hierarchies, "c2", &r)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--cpuset-cpus 1-3: 2-3 not available here: "),
            "{err}"
        );
        assert!(
            err.ends_with("cpuset/berth/cpuset.cpus allows only 0-1"),
            "{err}"
        );
        assert!(!root.path().join("memory/berth/c2").exists());
        // A cpuset inside: written to the leaf, mems copied.
        let r = LinuxResources {
            cpu: Some(LinuxCPU {
                cpus: Some("1".into()),
                ..LinuxCPU::default()
            }),
            ..LinuxResources::default()
        };
        let cgroup = V1Cgroup::create(&hierarchies, "c2", &r).unwrap();
        assert_eq!(read(root.path().join("cpuset/berth/c2/cpuset.cpus")), "1");
        assert_eq!(read(root.path().join("cpuset/berth/c2/cpuset.mems")), "0");
        cgroup.remove().unwrap();
    }

    #[test]
    fn a_limit_without_its_controller_is_refused() {
        let (root, mut hierarchies) = fake_host();
        hierarchies.remove("pids");
        let err = V1Cgroup::create(&hierarchies, "c3", &limits())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--pids-limit needs the pids controller, which is not mounted: no cgroup v1 hierarchy in /proc/self/mountinfo has it"
        );
        assert!(!root.path().join("memory/berth").exists());
    }

    #[test]
    fn an_existing_cgroup_is_not_taken_over() {
        let (root, hierarchies) = fake_host();
        std::fs::create_dir_all(root.path().join("pids/berth/c4")).unwrap();
        let err = V1Cgroup::create(&hierarchies, "c4", &limits())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cgroup "), "{err}");
        assert!(
            err.contains("pids/berth/c4 already exists: is container c4 running?"),
            "{err}"
        );
        assert!(!root.path().join("memory/berth/c4").exists());
        assert!(root.path().join("pids/berth/c4").exists());
    }

    #[test]
    fn a_failed_write_removes_what_was_made() {
        let (root, hierarchies) = fake_host();
        // The pids hierarchy's berth/ is a file: the mkdir of c5 there fails,
        // after the other hierarchies' c5 were made.
        std::fs::write(root.path().join("pids/berth"), "").unwrap();
        let err = V1Cgroup::create(&hierarchies, "c5", &limits())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mkdir "), "{err}");
        for h in [
            "blkio",
            "cpu,cpuacct",
            "cpuset",
            "devices",
            "freezer",
            "memory",
        ] {
            assert!(!root.path().join(h).join("berth/c5").exists(), "{h}");
        }
    }
}
