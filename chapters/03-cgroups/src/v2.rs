//! The cgroup v2 driver: one tree, controllers handed down.
//!
//! Kernel feature: cgroup v2 (Linux 4.5, 2016; the default of most
//! distributions since 2021). There is one tree, and a container's cgroup
//! is one directory. But a controller works in a cgroup only if its parent
//! lists it in `cgroup.subtree_control`, and a parent can only hand down
//! what its own parent handed to it (`cgroup.controllers` shows that). So
//! creating `berth/<id>` with a memory limit means: write `+memory` into
//! the subtree_control of the root (or of our delegated cgroup), then of
//! `berth/`, then mkdir `<id>` — whose `memory.max` now exists.
//!
//! The "no internal processes" rule: a cgroup other than the root may not
//! both hold processes and hand controllers to its children; writing
//! subtree_control answers EBUSY. Containers live only in leaves, and
//! `berth/` holds none, so this bites only at the top, when that is not the
//! root — the rootless case below, or a root engine inside a cgroup
//! namespace. There we do what docker's dind script and podman do: move
//! the processes of that cgroup into a leaf of their own, `berth-engine`,
//! then enable the controllers. (crun makes the container's cgroup a
//! sibling of its own cgroup instead.)
//!
//! Rootless: an unprivileged user may only write where systemd has
//! delegated a subtree (`systemd-run --user --scope -p Delegate=yes ...`,
//! or user@.service, which is delegated). Containers then live below our
//! own cgroup, read from `/proc/self/cgroup` (the `0::/path` line).
//!
//! Devices: v2 has no devices files; the rules become a BPF program
//! attached to the container's directory ([`crate::device_filter`]).
//!
//! Also v2 only: `cgroup.kill` (5.14) SIGKILLs a whole subtree at once,
//! with no PID reuse race; `cgroup.freeze` (5.2) with `cgroup.events`
//! saying `frozen 1` when done; `memory.events` counts OOM kills.
//!
//! Man pages: cgroups(7) ("Cgroups version 2", "Cgroups v2 delegation"),
//! the kernel's Documentation/admin-guide/cgroup-v2.rst ("Top-down
//! Constraint", "No Internal Process Constraint", "Delegation").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{Pid, Uid};

use crate::cgroup::{PARENT, Placement, Stats};
use crate::cgroupfs::{self, WAIT_LIMIT};
use crate::device_filter::{attach_device_filter, device_filter};
use crate::devices::DeviceCgroupState;
use crate::error::CgroupError;
use crate::mapping::{self, CgroupFile, V2_STATS_CONTROLLERS};
use crate::resources::LinuxResources;

/// Where the processes of a busy top cgroup are moved (see above).
pub const ENGINE_LEAF: &str = "berth-engine";

/// A container's cgroup on v2: one directory.
#[derive(Debug)]
pub struct V2Cgroup {
    dir: PathBuf,
}

/// Our own cgroup, from `proc_root/self/cgroup`'s `0::/path` line,
/// relative to the cgroup2 mount.
pub fn own_cgroup(proc_root: &Path) -> Result<PathBuf, CgroupError> {
    let path = proc_root.join("self/cgroup");
    let text = cgroupfs::read(&path)?;
    let own = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| CgroupError::Parse {
            path: path.clone(),
            text: text.trim().to_string(),
            expected: "a \"0::/path\" line (cgroup v2)",
        })?;
    Ok(PathBuf::from(own.trim_start_matches('/')))
}

/// The cgroup below which `berth/` lives: the tree's root for root, our
/// own cgroup when delegated (its parent if we moved ourselves into
/// [`ENGINE_LEAF`] earlier).
pub fn base(mount: &Path, proc_root: &Path, placement: Placement) -> Result<PathBuf, CgroupError> {
    match placement {
        Placement::Root => Ok(mount.to_path_buf()),
        Placement::Delegated => {
            let own = own_cgroup(proc_root)?;
            let own = match own.file_name() {
                Some(name) if name == ENGINE_LEAF => {
                    own.parent().map(Path::to_path_buf).unwrap_or_default()
                }
                _ => own,
            };
            Ok(mount.join(own))
        }
    }
}

impl V2Cgroup {
    /// Create `base/berth/<id>` with the controllers `r` needs (and those
    /// stats need, when available) enabled from `base` down, and apply `r`.
    /// Checks everything it can before the mkdir of `<id>`, and removes it
    /// again if a write fails.
    pub fn create(
        base: &Path,
        delegated: bool,
        id: &str,
        r: &LinuxResources,
    ) -> Result<V2Cgroup, CgroupError> {
        if delegated {
            for path in [
                base.to_path_buf(),
                base.join("cgroup.subtree_control"),
                base.join("cgroup.procs"),
            ] {
                if !cgroupfs::writable(&path) {
                    return Err(CgroupError::NotDelegated {
                        path,
                        uid: Uid::effective().as_raw(),
                    });
                }
            }
        }
        let settings = mapping::v2_settings(r);
        let filter = if r.devices.is_empty() {
            None
        } else if delegated {
            return Err(CgroupError::DevicesNeedRoot);
        } else {
            Some(device_filter(&DeviceCgroupState::from_rules(&r.devices)?))
        };
        let available = read_list(&base.join("cgroup.controllers"))?;
        let mut required = BTreeSet::new();
        for setting in &settings {
            let Some(controller) = setting.file.controller else {
                continue;
            };
            if !available.contains(controller) {
                return Err(CgroupError::ControllerMissing {
                    what: setting.flag,
                    controller,
                    why: format!(
                        "{} does not list{}",
                        base.join("cgroup.controllers").display(),
                        if delegated {
                            ": it was not delegated to you (systemd: Delegate=yes, or DelegateControllers= on the unit)"
                        } else {
                            ": it is not in this kernel, or it is bound to a cgroup v1 hierarchy"
                        }
                    ),
                });
            }
            required.insert(controller.to_string());
        }
        let mut wanted = required.clone();
        wanted.extend(
            V2_STATS_CONTROLLERS
                .iter()
                .filter(|c| available.contains(**c))
                .map(|c| c.to_string()),
        );

        let parent = base.join(PARENT);
        let dir = parent.join(id);
        if dir.exists() {
            return Err(CgroupError::Exists {
                id: id.to_string(),
                path: dir,
            });
        }
        // Top-down: the base hands the controllers to berth/, berth/ to <id>.
        // berth/ is shared by every container and never removed.
        cgroupfs::make_dir(&parent)?;
        enable_controllers(base, &wanted, &required, true)?;
        enable_controllers(&parent, &wanted, &required, false)?;
        let cpu = r.cpu.as_ref();
        let asked = [
            (
                "--cpuset-cpus",
                cpu.and_then(|c| c.cpus.as_ref()),
                mapping::CPUSET_CPUS_ALLOWED,
            ),
            (
                "--cpuset-mems",
                cpu.and_then(|c| c.mems.as_ref()),
                mapping::CPUSET_MEMS_ALLOWED,
            ),
        ];
        for (flag, wanted, allowed) in asked {
            if let Some(wanted) = wanted {
                cgroupfs::check_within(flag, wanted, &parent.join(allowed.v2.name))?;
            }
        }

        if !cgroupfs::make_dir(&dir)? {
            return Err(CgroupError::Exists {
                id: id.to_string(),
                path: dir,
            });
        }
        let cgroup = V2Cgroup { dir };
        let applied = settings
            .iter()
            .try_for_each(|setting| cgroupfs::apply(&cgroup.dir, setting))
            .and_then(|()| match &filter {
                Some(program) => attach_device_filter(&cgroup.dir, program),
                None => Ok(()),
            });
        if let Err(err) = applied {
            let _ = cgroupfs::remove_dir(&cgroup.dir);
            return Err(err);
        }
        Ok(cgroup)
    }

    /// Change the limits of a cgroup that exists (`update`): `r`'s
    /// settings written in place (their controllers were enabled when it
    /// was made: every controller stats need is).
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        mapping::v2_settings(r)
            .iter()
            .try_for_each(|setting| cgroupfs::apply(&self.dir, setting))
    }

    /// The cgroup at `dir`, e.g. the one a process is in.
    pub fn at_dir(dir: PathBuf) -> V2Cgroup {
        V2Cgroup { dir }
    }

    /// The cgroup of container `id`, made earlier (by another process).
    pub fn open(base: &Path, id: &str) -> Result<V2Cgroup, CgroupError> {
        let dir = base.join(PARENT).join(id);
        if !dir.is_dir() {
            return Err(CgroupError::NotFound {
                id: id.to_string(),
                path: dir,
            });
        }
        Ok(V2Cgroup { dir })
    }

    /// The container's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Move `pid` into the cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        cgroupfs::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// A file of a controller, or why it is not there.
    fn file(&self, file: CgroupFile, what: &'static str) -> Result<PathBuf, CgroupError> {
        let path = self.dir.join(file.name);
        match file.controller {
            Some(controller) if !path.exists() => Err(CgroupError::ControllerMissing {
                what,
                controller,
                why: format!(
                    "is not enabled for {} (no {})",
                    self.dir.display(),
                    file.name
                ),
            }),
            _ => Ok(path),
        }
    }

    /// How many times the kernel's OOM killer struck in this cgroup
    /// (`memory.events`; before `oom_kill` existed, `oom` counted events).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        self.file(mapping::OOM_KILLS.v2, "OOM detection")?;
        match cgroupfs::read_entry(&self.dir, mapping::OOM_KILLS.v2)? {
            Some(kills) => Ok(kills),
            None => Ok(cgroupfs::read_entry(&self.dir, mapping::V2_OOM_EVENTS)?.unwrap_or(0)),
        }
    }

    /// Memory, CPU and process counts, from the cgroup's files.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let what = "stats";
        let memory_current = cgroupfs::read_u64(&self.file(mapping::MEMORY_CURRENT.v2, what)?)?;
        let pids_current = cgroupfs::read_u64(&self.file(mapping::PIDS_CURRENT.v2, what)?)?;
        let peak = self.dir.join(mapping::MEMORY_PEAK.v2.name);
        let usage = mapping::CPU_USAGE.v2;
        let usage_usec =
            cgroupfs::read_entry(&self.dir, usage)?.ok_or_else(|| CgroupError::Parse {
                path: self.dir.join(usage.name),
                text: String::new(),
                expected: "a usage_usec line",
            })?;
        Ok(Stats {
            memory_current,
            // memory.peak: Linux 5.19 and later.
            memory_peak: if peak.exists() {
                Some(cgroupfs::read_u64(&peak)?)
            } else {
                None
            },
            cpu_usage: mapping::cpu_usage(2, usage_usec),
            pids_current,
            // Only while the cpu controller is enabled.
            nr_throttled: cgroupfs::read_entry(&self.dir, mapping::THROTTLED.v2)?,
        })
    }

    /// The memory limit in force (`None`: unlimited or no memory controller).
    pub fn memory_limit(&self) -> Result<Option<u64>, CgroupError> {
        let path = self.dir.join(mapping::MEMORY_LIMIT.v2.name);
        if !path.exists() {
            return Ok(None);
        }
        cgroupfs::read_limit(&path)
    }

    /// Whether it was asked to freeze (`cgroup.freeze` is 1). The root
    /// cgroup, which cannot be frozen, has no such file: never.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let path = self.dir.join(mapping::FREEZE.v2.name);
        if !path.exists() {
            return Ok(false);
        }
        Ok(cgroupfs::read_value(&path)? == mapping::freezer_state(2, true))
    }

    /// Freeze (`true`) or thaw: write `cgroup.freeze`, then wait until
    /// `cgroup.events` says `frozen 1` (or 0). A freeze that does not
    /// finish in time is undone.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let what = if frozen { "freeze" } else { "thaw" };
        let setting = mapping::Setting {
            flag: what,
            file: mapping::FREEZE.v2,
            value: mapping::freezer_state(2, frozen).to_string(),
            fallback: None,
            required: true,
        };
        cgroupfs::apply(&self.dir, &setting)?;
        let events = self.dir.join(mapping::FROZEN.v2.name);
        let key = mapping::FROZEN.v2.key.unwrap_or("frozen");
        let target = u64::from(frozen);
        let mut state = None;
        let done = cgroupfs::wait_until(WAIT_LIMIT, || {
            state = cgroupfs::read_keyed(&events, key)?;
            Ok(state == Some(target))
        })?;
        if done {
            return Ok(());
        }
        if frozen {
            let _ = cgroupfs::write(
                &self.dir.join(mapping::FREEZE.v2.name),
                mapping::freezer_state(2, false),
            );
        }
        Err(CgroupError::Timeout {
            what,
            path: events,
            waited: WAIT_LIMIT,
            state: match state {
                Some(n) => format!("cgroup.events still says {key} {n}"),
                None => format!("cgroup.events has no {key} line"),
            },
        })
    }

    /// Kill every process in the cgroup and below: one write to
    /// `cgroup.kill` where the kernel has it, else SIGKILL each PID; then
    /// wait until none is left (bounded by [`WAIT_LIMIT`]).
    // ANCHOR: v2_kill
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let kill_file = self.dir.join(mapping::V2_KILL.name);
        let has_kill = kill_file.exists();
        if has_kill {
            cgroupfs::write(&kill_file, "1")?;
        }
        let mut left = 0;
        let done = cgroupfs::wait_until(WAIT_LIMIT, || {
            let pids = cgroupfs::procs_in_subtree(&self.dir)?;
            left = pids.len();
            if !has_kill {
                cgroupfs::kill_each(&self.dir, &pids)?;
            }
            Ok(pids.is_empty())
        })?;
        if done {
            return Ok(());
        }
        Err(CgroupError::Timeout {
            what: "kill the processes in",
            path: self.dir.clone(),
            waited: WAIT_LIMIT,
            state: format!("{left} still there"),
        })
    }
    // ANCHOR_END: v2_kill

    /// rmdir the cgroup (and any the container made below it).
    pub fn remove(&self) -> Result<(), CgroupError> {
        cgroupfs::remove_dir(&self.dir)
    }
}

/// A space-separated list file (`cgroup.controllers`, `subtree_control`).
fn read_list(path: &Path) -> Result<BTreeSet<String>, CgroupError> {
    Ok(cgroupfs::read(path)?
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// Make sure `dir` hands `wanted` to its children: write `+name` for each
/// one missing from its `cgroup.subtree_control`. Failing to enable one of
/// `required` is an error; the others (for stats) are best effort. At the
/// top (`is_base`), EBUSY means processes live there: move them into
/// [`ENGINE_LEAF`] and try again.
// ANCHOR: enable_controllers
fn enable_controllers(
    dir: &Path,
    wanted: &BTreeSet<String>,
    required: &BTreeSet<String>,
    is_base: bool,
) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    // Missing only in a fake tree (the kernel makes it with the directory);
    // then the write below says what is wrong.
    let enabled = if path.exists() {
        read_list(&path)?
    } else {
        BTreeSet::new()
    };
    let missing: Vec<&String> = wanted.difference(&enabled).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // All at once first (one write, like crun), then one by one to see
    // which the kernel refuses.
    let line = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    match cgroupfs::write(&path, &line) {
        Ok(()) => return Ok(()),
        Err(CgroupError::Write {
            errno: Errno::EBUSY,
            ..
        }) if is_base => {
            move_processes_to_leaf(dir)?;
            if cgroupfs::write(&path, &line).is_ok() {
                return Ok(());
            }
        }
        Err(_) => {}
    }
    for controller in missing {
        match cgroupfs::write(&path, &format!("+{controller}")) {
            Ok(()) => {}
            Err(CgroupError::Write { errno, .. }) if required.contains(controller) => {
                return Err(CgroupError::Enable {
                    controller: controller.clone(),
                    path: path.clone(),
                    errno,
                    hint: if errno == Errno::EBUSY {
                        ": the cgroup has processes of its own, and a cgroup v2 with processes may not hand controllers to its children (\"no internal processes\")"
                    } else {
                        ""
                    },
                });
            }
            Err(err) if required.contains(controller) => return Err(err),
            // Only for stats: do without.
            Err(_) => {}
        }
    }
    Ok(())
}
// ANCHOR_END: enable_controllers

/// Move every process in `dir` into `dir/berth-engine`, so that `dir`
/// may hand controllers down. A process that exits meanwhile is fine.
pub fn move_processes_to_leaf(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(ENGINE_LEAF);
    cgroupfs::make_dir(&leaf)?;
    let procs = leaf.join("cgroup.procs");
    for pid in cgroupfs::procs(dir)? {
        match cgroupfs::write(&procs, &pid.to_string()) {
            Ok(())
            | Err(CgroupError::Write {
                errno: Errno::ESRCH,
                ..
            }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxPids};

    /// A fake v2 root: these controllers available, none enabled, CPUs 0-3.
    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("cgroup.controllers"), format!("{controllers}\n")).unwrap();
        std::fs::write(r.join("cgroup.subtree_control"), "\n").unwrap();
        std::fs::write(r.join("cgroup.procs"), "1\n").unwrap();
        std::fs::write(r.join("cpuset.cpus.effective"), "0-3\n").unwrap();
        std::fs::write(r.join("cpuset.mems.effective"), "0\n").unwrap();
        root
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    const ALL: &str = "cpuset cpu io memory hugetlb pids rdma misc";

    #[test]
    fn creating_enables_controllers_top_down_and_writes_limits() {
        let root = fake_root(ALL);
        let r = root.path();
        // berth/ exists already (another container), with an effective cpuset.
        std::fs::create_dir(r.join("berth")).unwrap();
        std::fs::write(r.join("berth/cgroup.subtree_control"), "memory pids\n").unwrap();
        std::fs::write(r.join("berth/cpuset.cpus.effective"), "0-3\n").unwrap();
        let resources = LinuxResources {
            memory: Some(LinuxMemory {
                limit: Some(32 << 20),
                swap: Some(32 << 20),
            }),
            cpu: Some(LinuxCPU {
                quota: Some(150_000),
                period: Some(100_000),
                shares: Some(1024),
                cpus: Some("2-3".into()),
                mems: None,
            }),
            pids: Some(LinuxPids { limit: 64 }),
            block_io: Some(LinuxBlockIO { weight: Some(500) }),
            devices: vec![],
        };
        let cgroup = V2Cgroup::create(r, false, "c1", &resources).unwrap();
        assert_eq!(cgroup.path(), r.join("berth/c1"));
        // The root hands everything needed to berth/, berth/ what it lacked.
        assert_eq!(
            read(r.join("cgroup.subtree_control")),
            "+cpu +cpuset +io +memory +pids"
        );
        assert_eq!(
            read(r.join("berth/cgroup.subtree_control")),
            "+cpu +cpuset +io"
        );
        let leaf = r.join("berth/c1");
        assert_eq!(read(leaf.join("memory.max")), "33554432");
        assert_eq!(read(leaf.join("memory.swap.max")), "0");
        assert_eq!(read(leaf.join("cpu.max")), "150000 100000");
        assert_eq!(read(leaf.join("cpu.weight")), "39");
        assert_eq!(read(leaf.join("cpuset.cpus")), "2-3");
        assert_eq!(read(leaf.join("pids.max")), "64");
        assert_eq!(read(leaf.join("io.weight")), "default 4950");

        cgroup.add_process(Pid::from_raw(4242)).unwrap();
        assert_eq!(read(leaf.join("cgroup.procs")), "4242");

        std::fs::write(leaf.join("memory.current"), "1048576\n").unwrap();
        std::fs::write(leaf.join("pids.current"), "2\n").unwrap();
        std::fs::write(
            leaf.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 30\nnr_throttled 7\nthrottled_usec 90\n",
        )
        .unwrap();
        assert_eq!(
            cgroup.stats().unwrap(),
            Stats {
                memory_current: 1 << 20,
                memory_peak: None,
                cpu_usage: std::time::Duration::from_millis(2500),
                pids_current: 2,
                nr_throttled: Some(7),
            }
        );
        std::fs::write(leaf.join("memory.peak"), "4194304\n").unwrap();
        assert_eq!(cgroup.stats().unwrap().memory_peak, Some(4 << 20));
        std::fs::write(
            leaf.join("memory.events"),
            "low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(cgroup.oom_kills().unwrap(), 1);
        assert_eq!(cgroup.memory_limit().unwrap(), Some(32 << 20));

        // Freezing waits for cgroup.events to say frozen 1.
        std::fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cgroup.set_frozen(true).unwrap();
        assert_eq!(read(leaf.join("cgroup.freeze")), "1");
        std::fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        cgroup.set_frozen(false).unwrap();
        assert_eq!(read(leaf.join("cgroup.freeze")), "0");

        std::fs::write(leaf.join("cgroup.procs"), "").unwrap();
        std::fs::write(leaf.join("cgroup.kill"), "").unwrap();
        cgroup.kill_all().unwrap();
        assert_eq!(read(leaf.join("cgroup.kill")), "1");
        cgroup.remove().unwrap();
        assert!(!leaf.exists());
        assert!(r.join("berth").exists());
    }

    #[test]
    fn a_controller_the_tree_lacks_is_refused_before_anything_is_made() {
        let root = fake_root("cpu memory pids");
        let resources = LinuxResources {
            block_io: Some(LinuxBlockIO { weight: Some(500) }),
            ..LinuxResources::default()
        };
        let err = V2Cgroup::create(root.path(), false, "c2", &resources)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--blkio-weight needs the io controller, which "),
            "{err}"
        );
        assert!(
            err.contains("cgroup.controllers does not list: it is not in this kernel"),
            "{err}"
        );
        assert!(!root.path().join("berth").exists());
    }

    #[test]
    fn a_cpuset_outside_the_effective_one_is_refused() {
        let root = fake_root(ALL);
        std::fs::create_dir(root.path().join("berth")).unwrap();
        std::fs::write(root.path().join("berth/cgroup.subtree_control"), "").unwrap();
        std::fs::write(root.path().join("berth/cpuset.cpus.effective"), "0-1\n").unwrap();
        let resources = LinuxResources {
            cpu: Some(LinuxCPU {
                cpus: Some("1,3".into()),
                ..LinuxCPU::default()
            }),
            ..LinuxResources::default()
        };
        let err = V2Cgroup::create(root.path(), false, "c3", &resources)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--cpuset-cpus 1,3: 3 not available here: "),
            "{err}"
        );
        assert!(
            err.ends_with("berth/cpuset.cpus.effective allows only 0-1"),
            "{err}"
        );
        assert!(!root.path().join("berth/c3").exists());
    }

    #[test]
    fn stats_without_the_memory_controller_say_so() {
        let root = fake_root(ALL);
        let cgroup =
            V2Cgroup::create(root.path(), false, "c4", &LinuxResources::default()).unwrap();
        let err = cgroup.stats().unwrap_err().to_string();
        assert!(
            err.starts_with("stats needs the memory controller, which is not enabled for "),
            "{err}"
        );
        assert_eq!(cgroup.memory_limit().unwrap(), None);
        let opened = V2Cgroup::open(root.path(), "c4").unwrap();
        assert_eq!(opened.path(), cgroup.path());
        cgroup.remove().unwrap();
        assert!(V2Cgroup::open(root.path(), "c4").is_err());
    }

    #[test]
    fn the_delegated_base_is_our_own_cgroup() {
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("self")).unwrap();
        let scope = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-u7.scope";
        std::fs::write(
            proc_root.path().join("self/cgroup"),
            format!("0::{scope}\n"),
        )
        .unwrap();
        let mount = Path::new("/sys/fs/cgroup");
        let expected = mount.join(scope.trim_start_matches('/'));
        assert_eq!(
            base(mount, proc_root.path(), Placement::Delegated).unwrap(),
            expected
        );
        assert_eq!(
            base(mount, proc_root.path(), Placement::Root).unwrap(),
            mount
        );
        // After moving ourselves into berth-engine, the base stays the same.
        std::fs::write(
            proc_root.path().join("self/cgroup"),
            format!("0::{scope}/berth-engine\n"),
        )
        .unwrap();
        assert_eq!(
            base(mount, proc_root.path(), Placement::Delegated).unwrap(),
            expected
        );
        // A v1-only /proc/self/cgroup has no 0:: line.
        std::fs::write(proc_root.path().join("self/cgroup"), "4:memory:/\n").unwrap();
        let err = base(mount, proc_root.path(), Placement::Delegated)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a \"0::/path\" line (cgroup v2)"),
            "{err}"
        );
    }

    #[test]
    fn busy_processes_move_into_a_leaf() {
        let root = fake_root(ALL);
        std::fs::write(root.path().join("cgroup.procs"), "100\n101\n").unwrap();
        move_processes_to_leaf(root.path()).unwrap();
        // The fake file keeps only the last write; the kernel would list both.
        assert_eq!(read(root.path().join("berth-engine/cgroup.procs")), "101");
    }
}
