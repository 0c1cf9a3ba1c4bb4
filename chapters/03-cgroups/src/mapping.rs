//! The one table from cgroup v1 to cgroup v2: file names and units.
//!
//! Kernel feature: cgroup v2 (Linux 4.5, 2016) kept the ideas of v1 and
//! renamed nearly every file on the way: `memory.limit_in_bytes` became
//! `memory.max`, the two CFS files became one `cpu.max`, `cpu.shares`
//! (2..262144, default 1024) became `cpu.weight` (1..10000, default 100),
//! the `freezer` controller became the core file `cgroup.freeze`, and v1's
//! "memory plus swap" limit became a swap-only `memory.swap.max`. The OCI
//! runtime spec (and so docker, runc and crun) still speaks v1, so a v2
//! driver converts. Every name and every conversion is here, once; the
//! drivers in [`crate::v1`] and [`crate::v2`] only open the files this
//! module names.
//!
//! | what | cgroup v1 | cgroup v2 |
//! | --- | --- | --- |
//! | memory limit | `memory.limit_in_bytes`, -1 = none | `memory.max`, `max` = none |
//! | swap limit | `memory.memsw.limit_in_bytes` (memory + swap) | `memory.swap.max` (swap only) |
//! | CPU bandwidth | `cpu.cfs_quota_us`, `cpu.cfs_period_us` | `cpu.max` "QUOTA PERIOD" |
//! | CPU weight | `cpu.shares` 2..262144 | `cpu.weight` 1..10000 |
//! | CPUs, memory nodes | `cpuset.cpus`, `cpuset.mems` | the same |
//! | processes | `pids.max` | the same |
//! | disk weight | `blkio.weight` 10..1000 | `io.weight` "default N", 1..10000 |
//! | freeze | `freezer.state` FROZEN/THAWED | `cgroup.freeze` 1/0, `cgroup.events` frozen |
//! | memory in use, peak | `memory.usage_in_bytes`, `memory.max_usage_in_bytes` | `memory.current`, `memory.peak` (5.19+) |
//! | CPU time | `cpuacct.usage` (ns) | `cpu.stat` `usage_usec` (µs) |
//! | OOM kills | `memory.oom_control` `oom_kill` (4.13+) | `memory.events` `oom_kill` |
//! | throttled periods | `cpu.stat` `nr_throttled` | the same |
//! | kill everything | (none: signal each PID) | `cgroup.kill` (5.14+) |
//!
//! Man pages: cgroups(7); the kernel's Documentation/admin-guide/cgroup-v2.rst
//! ("Deprecated v1 Core Features", and each controller's section) and
//! cgroup-v1/memory.rst, cpusets.rst, freezer-subsystem.rst, pids.rst,
//! blkio-controller.rst; the scheduler's sched-bwc.rst (CFS bandwidth).

use std::time::Duration;

use crate::resources::LinuxResources;

/// A file in a cgroup's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupFile {
    /// The controller that provides it; `None` for v2's core files, which
    /// every cgroup has (`cgroup.freeze`, and `cpu.stat`'s usage lines).
    pub controller: Option<&'static str>,
    pub name: &'static str,
    /// For a flat-keyed file, the line's key.
    pub key: Option<&'static str>,
}

const fn file(controller: &'static str, name: &'static str) -> CgroupFile {
    CgroupFile {
        controller: Some(controller),
        name,
        key: None,
    }
}

const fn keyed(controller: &'static str, name: &'static str, key: &'static str) -> CgroupFile {
    CgroupFile {
        controller: Some(controller),
        name,
        key: Some(key),
    }
}

const fn core(name: &'static str, key: Option<&'static str>) -> CgroupFile {
    CgroupFile {
        controller: None,
        name,
        key,
    }
}

/// One knob or reading, in both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    pub v1: CgroupFile,
    pub v2: CgroupFile,
}

// ANCHOR: memory_cpu_knobs
pub const MEMORY_LIMIT: Knob = Knob {
    v1: file("memory", "memory.limit_in_bytes"),
    v2: file("memory", "memory.max"),
};
/// v1: memory plus swap; v2: swap alone. See [`swap_only`].
pub const MEMORY_SWAP: Knob = Knob {
    v1: file("memory", "memory.memsw.limit_in_bytes"),
    v2: file("memory", "memory.swap.max"),
};
/// v2 holds quota and period in one file. See [`cpu_max`].
pub const CPU_QUOTA: Knob = Knob {
    v1: file("cpu", "cpu.cfs_quota_us"),
    v2: file("cpu", "cpu.max"),
};
pub const CPU_PERIOD: Knob = Knob {
    v1: file("cpu", "cpu.cfs_period_us"),
    v2: file("cpu", "cpu.max"),
};
/// See [`shares_to_weight`].
pub const CPU_SHARES: Knob = Knob {
    v1: file("cpu", "cpu.shares"),
    v2: file("cpu", "cpu.weight"),
};
pub const CPUSET_CPUS: Knob = Knob {
    v1: file("cpuset", "cpuset.cpus"),
    v2: file("cpuset", "cpuset.cpus"),
};
pub const CPUSET_MEMS: Knob = Knob {
    v1: file("cpuset", "cpuset.mems"),
    v2: file("cpuset", "cpuset.mems"),
};
/// What a new cgroup may use: v2 computes it; v1 has only the setting.
pub const CPUSET_CPUS_ALLOWED: Knob = Knob {
    v1: file("cpuset", "cpuset.cpus"),
    v2: file("cpuset", "cpuset.cpus.effective"),
};
pub const CPUSET_MEMS_ALLOWED: Knob = Knob {
    v1: file("cpuset", "cpuset.mems"),
    v2: file("cpuset", "cpuset.mems.effective"),
};
// ANCHOR_END: memory_cpu_knobs
// ANCHOR: other_knobs
pub const PIDS_MAX: Knob = Knob {
    v1: file("pids", "pids.max"),
    v2: file("pids", "pids.max"),
};
/// See [`blkio_weight_to_io_weight`].
pub const BLKIO_WEIGHT: Knob = Knob {
    v1: file("blkio", "blkio.weight"),
    v2: file("io", "io.weight"),
};
/// Where the weight goes when the BFQ IO scheduler provides it instead
/// (v1 lost CFQ's `blkio.weight` in Linux 5.0). The value is not converted.
pub const BFQ_WEIGHT: Knob = Knob {
    v1: file("blkio", "blkio.bfq.weight"),
    v2: file("io", "io.bfq.weight"),
};
/// Written to freeze and thaw. See [`freezer_state`].
pub const FREEZE: Knob = Knob {
    v1: file("freezer", "freezer.state"),
    v2: core("cgroup.freeze", None),
};
/// Read to see whether the freeze is done.
pub const FROZEN: Knob = Knob {
    v1: file("freezer", "freezer.state"),
    v2: core("cgroup.events", Some("frozen")),
};
// ANCHOR_END: other_knobs
// ANCHOR: readings
pub const MEMORY_CURRENT: Knob = Knob {
    v1: file("memory", "memory.usage_in_bytes"),
    v2: file("memory", "memory.current"),
};
/// v2 since Linux 5.19.
pub const MEMORY_PEAK: Knob = Knob {
    v1: file("memory", "memory.max_usage_in_bytes"),
    v2: file("memory", "memory.peak"),
};
/// v1 in nanoseconds, v2 in microseconds. See [`cpu_usage`].
pub const CPU_USAGE: Knob = Knob {
    v1: file("cpuacct", "cpuacct.usage"),
    v2: core("cpu.stat", Some("usage_usec")),
};
pub const PIDS_CURRENT: Knob = Knob {
    v1: file("pids", "pids.current"),
    v2: file("pids", "pids.current"),
};
/// v1 has the line since Linux 4.13.
pub const OOM_KILLS: Knob = Knob {
    v1: keyed("memory", "memory.oom_control", "oom_kill"),
    v2: keyed("memory", "memory.events", "oom_kill"),
};
pub const THROTTLED: Knob = Knob {
    v1: keyed("cpu", "cpu.stat", "nr_throttled"),
    v2: keyed("cpu", "cpu.stat", "nr_throttled"),
};

/// v2 only (Linux 5.14): write 1 to SIGKILL every process in the subtree.
pub const V2_KILL: CgroupFile = core("cgroup.kill", None);
/// v1 only: before 4.13, no count of OOM kills; these two hint at one.
pub const V1_FAILCNT: CgroupFile = file("memory", "memory.failcnt");
pub const V1_UNDER_OOM: CgroupFile = keyed("memory", "memory.oom_control", "under_oom");
/// v2 before `oom_kill` was counted: OOM events.
pub const V2_OOM_EVENTS: CgroupFile = keyed("memory", "memory.events", "oom");
// ANCHOR_END: readings

/// Every row, with what it is, for tables and tests.
pub const TABLE: [(&str, Knob); 20] = [
    ("memory limit", MEMORY_LIMIT),
    ("swap limit", MEMORY_SWAP),
    ("CPU quota", CPU_QUOTA),
    ("CPU period", CPU_PERIOD),
    ("CPU weight", CPU_SHARES),
    ("CPUs", CPUSET_CPUS),
    ("memory nodes", CPUSET_MEMS),
    ("CPUs allowed", CPUSET_CPUS_ALLOWED),
    ("memory nodes allowed", CPUSET_MEMS_ALLOWED),
    ("process limit", PIDS_MAX),
    ("disk weight", BLKIO_WEIGHT),
    ("disk weight (BFQ)", BFQ_WEIGHT),
    ("freeze", FREEZE),
    ("frozen?", FROZEN),
    ("memory in use", MEMORY_CURRENT),
    ("memory peak", MEMORY_PEAK),
    ("CPU time", CPU_USAGE),
    ("processes", PIDS_CURRENT),
    ("OOM kills", OOM_KILLS),
    ("throttled periods", THROTTLED),
];

/// The v1 hierarchies a container's cgroup is made in, when mounted: the
/// ones limits, stats and the device rules need.
pub const V1_CONTROLLERS: [&str; 8] = [
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
];

/// The v2 controllers enabled for every container, when available, so
/// its stats can be read (others only when a limit needs them).
pub const V2_STATS_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

// ANCHOR: unit_conversions
/// Bytes for v1: -1 means unlimited, and v1 accepts it as such.
pub fn v1_bytes(bytes: i64) -> String {
    bytes.to_string()
}

/// Bytes for v2: unlimited is spelled `max`.
pub fn v2_bytes(bytes: i64) -> String {
    if bytes < 0 {
        "max".to_string()
    } else {
        bytes.to_string()
    }
}

/// The swap-only limit (v2) for a memory+swap limit (v1, OCI, docker's
/// `--memory-swap`): memsw − memory. -1 stays unlimited; memsw equal to
/// memory gives 0, no swap at all.
pub fn swap_only(memsw: i64, memory: Option<i64>) -> i64 {
    match memory {
        _ if memsw < 0 => -1,
        // Unlimited or unknown memory: nothing to subtract.
        None | Some(-1) => memsw,
        Some(memory) => (memsw - memory).max(0),
    }
}

/// v2's `cpu.max`: "QUOTA PERIOD", or "max PERIOD" for no quota.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> String {
    let period = period.unwrap_or(crate::resources::CPU_PERIOD);
    match quota {
        Some(quota) if quota >= 0 => format!("{quota} {period}"),
        _ => format!("max {period}"),
    }
}

// ANCHOR_END: unit_conversions

// ANCHOR: weight_conversions
/// `cpu.shares` (2..262144, default 1024) to `cpu.weight` (1..10000,
/// default 100), the linear map runc and crun used since v2 came:
/// weight = 1 + (shares − 2) × 9999 / 262142.
///
/// It maps docker's default 1024 to 39, not 100, so a container asking for
/// the default weight gets less than its neighbours at 100. In 2025 runc
/// (in opencontainers/cgroups) and crun 1.23 switched to a curve through
/// (2, 1), (1024, 100) and (262144, 10000):
/// weight = ⌈10^((l² + 125 l) / 612 − 7/34)⌉ with l = log₂ shares.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + (shares - 2) * 9999 / 262_142
}

/// `blkio.weight` (10..1000) to `io.weight` (1..10000), linearly, as runc
/// and crun do: weight = 1 + (w − 10) × 9999 / 990.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// What to write to freeze (`true`) or thaw: v1 `FROZEN`/`THAWED`, v2 1/0.
/// Reading v1 may also show `FREEZING`: asked, not done yet.
pub fn freezer_state(version: u8, frozen: bool) -> &'static str {
    match (version, frozen) {
        (1, true) => "FROZEN",
        (1, false) => "THAWED",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// CPU time as read: v1 `cpuacct.usage` counts nanoseconds, v2
/// `usage_usec` microseconds.
pub fn cpu_usage(version: u8, value: u64) -> Duration {
    match version {
        1 => Duration::from_nanos(value),
        _ => Duration::from_micros(value),
    }
}
// ANCHOR_END: weight_conversions

/// One value the driver writes into one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The docker flag that asked for it (for error messages).
    pub flag: &'static str,
    pub file: CgroupFile,
    pub value: String,
    /// Where to write instead when `file` is missing (BFQ's weight).
    pub fallback: Option<(CgroupFile, String)>,
    /// `false` when a missing file means the kernel's default already does
    /// what was asked (unlimited swap on a kernel that does not count swap).
    pub required: bool,
}

fn setting(flag: &'static str, file: CgroupFile, value: impl ToString) -> Setting {
    Setting {
        flag,
        file,
        value: value.to_string(),
        fallback: None,
        required: true,
    }
}

/// The writes that apply `r` to a v1 cgroup, in order: cpuset first (v1
/// refuses tasks until it is set), memory before memory+swap (memsw may
/// never be below memory), the CFS period before the quota.
pub fn v1_settings(r: &LinuxResources) -> Vec<Setting> {
    settings(r, 1)
}

/// The writes that apply `r` to a v2 cgroup, in order.
pub fn v2_settings(r: &LinuxResources) -> Vec<Setting> {
    settings(r, 2)
}

fn settings(r: &LinuxResources, version: u8) -> Vec<Setting> {
    let pick = |knob: Knob| if version == 1 { knob.v1 } else { knob.v2 };
    let bytes = |b: i64| {
        if version == 1 {
            v1_bytes(b)
        } else {
            v2_bytes(b)
        }
    };
    let mut out = Vec::new();
    if let Some(cpu) = &r.cpu {
        if let Some(cpus) = &cpu.cpus {
            out.push(setting("--cpuset-cpus", pick(CPUSET_CPUS), cpus));
        }
        if let Some(mems) = &cpu.mems {
            out.push(setting("--cpuset-mems", pick(CPUSET_MEMS), mems));
        }
    }
    if let Some(memory) = &r.memory {
        if let Some(limit) = memory.limit {
            out.push(setting("--memory", pick(MEMORY_LIMIT), bytes(limit)));
        }
        if let Some(memsw) = memory.swap {
            let value = if version == 1 {
                memsw
            } else {
                swap_only(memsw, memory.limit)
            };
            out.push(Setting {
                required: value >= 0,
                ..setting("--memory-swap", pick(MEMORY_SWAP), bytes(value))
            });
        }
    }
    if let Some(cpu) = &r.cpu {
        if version == 1 {
            if let Some(period) = cpu.period {
                out.push(setting("--cpus", CPU_PERIOD.v1, period));
            }
            if let Some(quota) = cpu.quota {
                out.push(setting("--cpus", CPU_QUOTA.v1, quota));
            }
        } else if cpu.quota.is_some() || cpu.period.is_some() {
            out.push(setting(
                "--cpus",
                CPU_QUOTA.v2,
                cpu_max(cpu.quota, cpu.period),
            ));
        }
        if let Some(shares) = cpu.shares {
            let value = if version == 1 {
                shares
            } else {
                shares_to_weight(shares)
            };
            out.push(setting("--cpu-shares", pick(CPU_SHARES), value));
        }
    }
    if let Some(pids) = &r.pids {
        let value = if pids.limit > 0 {
            pids.limit.to_string()
        } else {
            "max".to_string()
        };
        out.push(setting("--pids-limit", pick(PIDS_MAX), value));
    }
    if let Some(weight) = r.block_io.as_ref().and_then(|b| b.weight) {
        let value = if version == 1 {
            weight.to_string()
        } else {
            format!("default {}", blkio_weight_to_io_weight(weight))
        };
        out.push(Setting {
            fallback: Some((pick(BFQ_WEIGHT), weight.to_string())),
            ..setting("--blkio-weight", pick(BLKIO_WEIGHT), value)
        });
    }
    out
}

/// Why a kernel may lack a file a limit is written to, and what to do.
pub fn missing_file_hint(name: &str) -> &'static str {
    match name {
        "memory.memsw.limit_in_bytes" | "memory.swap.max" => {
            "the kernel does not account swap (CONFIG_MEMCG_SWAP, or boot with swapaccount=1): leave out --memory-swap"
        }
        "cpu.cfs_quota_us" | "cpu.cfs_period_us" | "cpu.max" => {
            "the kernel has no CFS bandwidth control (CONFIG_CFS_BANDWIDTH): leave out --cpus"
        }
        "blkio.weight" | "io.weight" => {
            "no IO scheduler here offers weights (v1 needs CFQ or BFQ, v2 BFQ or io.cost): leave out --blkio-weight"
        }
        "cgroup.freeze" => "freezing a cgroup v2 needs Linux 5.2 or later",
        _ => "is its controller enabled for this cgroup?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{LinuxMemory, LinuxPids};

    fn everything() -> LinuxResources {
        crate::resources::tests::sample()
    }

    /// (file, value) pairs, fallbacks shown as "file|fallback".
    fn writes(settings: &[Setting]) -> Vec<(String, String)> {
        settings
            .iter()
            .map(|s| {
                let name = match &s.fallback {
                    Some((f, v)) => format!("{}|{}={v}", s.file.name, f.name),
                    None => s.file.name.to_string(),
                };
                (name, s.value.clone())
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn v1_files_for_every_flag() {
        assert_eq!(
            writes(&v1_settings(&everything())),
            pairs(&[
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("memory.limit_in_bytes", "33554432"),
                ("memory.memsw.limit_in_bytes", "67108864"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "150000"),
                ("cpu.shares", "512"),
                ("pids.max", "64"),
                ("blkio.weight|blkio.bfq.weight=300", "300"),
            ])
        );
    }

    #[test]
    fn v2_files_for_every_flag() {
        let settings = v2_settings(&everything());
        assert_eq!(
            writes(&settings),
            pairs(&[
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("memory.max", "33554432"),
                ("memory.swap.max", "33554432"),
                ("cpu.max", "150000 100000"),
                ("cpu.weight", "20"),
                ("pids.max", "64"),
                ("io.weight|io.bfq.weight=300", "default 2930"),
            ])
        );
        let controllers: Vec<_> = settings
            .iter()
            .map(|s| s.file.controller.unwrap())
            .collect();
        assert_eq!(
            controllers,
            [
                "cpuset", "cpuset", "memory", "memory", "cpu", "cpu", "pids", "io"
            ]
        );
        assert!(settings.iter().all(|s| s.required));
    }

    #[test]
    fn swap_and_unlimited_values() {
        let memory = |limit, swap| LinuxResources {
            memory: Some(LinuxMemory { limit, swap }),
            pids: Some(LinuxPids { limit: -1 }),
            ..LinuxResources::default()
        };
        // --memory-swap -1: unlimited swap, skipped where swap is not counted.
        let unlimited = memory(Some(32 << 20), Some(-1));
        let v1 = v1_settings(&unlimited);
        let v2 = v2_settings(&unlimited);
        assert_eq!((v1[1].value.as_str(), v1[1].required), ("-1", false));
        assert_eq!((v2[1].value.as_str(), v2[1].required), ("max", false));
        assert_eq!(v1[2].value, "max");
        assert_eq!(v2[2].value, "max");
        // --memory-swap equal to --memory: no swap.
        let none = memory(Some(32 << 20), Some(32 << 20));
        assert_eq!(v2_settings(&none)[1].value, "0");
        assert_eq!(v1_settings(&none)[1].value, "33554432");
        // An unlimited memory limit.
        assert_eq!(v1_settings(&memory(Some(-1), None))[0].value, "-1");
        assert_eq!(v2_settings(&memory(Some(-1), None))[0].value, "max");
        assert_eq!(swap_only(-1, Some(1)), -1);
        assert_eq!(swap_only(100, Some(-1)), 100);
        assert_eq!(swap_only(100, Some(40)), 60);
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(cpu_max(Some(150_000), Some(100_000)), "150000 100000");
        assert_eq!(cpu_max(Some(-1), None), "max 100000");
        assert_eq!(cpu_max(None, Some(50_000)), "max 50000");
        assert_eq!(freezer_state(1, true), "FROZEN");
        assert_eq!(freezer_state(1, false), "THAWED");
        assert_eq!(freezer_state(2, true), "1");
        assert_eq!(freezer_state(2, false), "0");
        assert_eq!(cpu_usage(1, 1_500_000), Duration::from_micros(1500));
        assert_eq!(cpu_usage(2, 1500), Duration::from_micros(1500));
    }

    #[test]
    fn the_table_pairs_v1_names_with_v2_names() {
        let row = |what: &str| TABLE.iter().find(|(w, _)| *w == what).unwrap().1;
        assert_eq!(row("memory limit").v1.name, "memory.limit_in_bytes");
        assert_eq!(row("memory limit").v2.name, "memory.max");
        assert_eq!(row("freeze").v2.controller, None);
        assert_eq!(row("OOM kills").v2.key, Some("oom_kill"));
        assert_eq!(row("CPU time").v1.controller, Some("cpuacct"));
        // Every v1 file belongs to a controller a container's cgroup is made in.
        for (what, knob) in TABLE {
            let controller = knob.v1.controller.unwrap();
            assert!(V1_CONTROLLERS.contains(&controller), "{what}: {controller}");
        }
        assert!(missing_file_hint("memory.swap.max").contains("--memory-swap"));
    }
}
