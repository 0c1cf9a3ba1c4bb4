//! `linux.resources`: config.json's limits, handed to chapter 3.
//!
//! Kernel feature: cgroup controllers, as in chapter 3. The runtime-spec
//! names far more knobs than chapter 3's drivers set; this module turns the
//! spec's request into chapter 3's [`ch03_cgroups::LinuxResources`] and
//! refuses, by name, every knob chapter 3 cannot apply: a limit silently
//! dropped is a container running without the limit it was promised.
//!
//! Two conventions of the spec's users (runc reads them the same way):
//! a zero means "not set" (docker writes `"shares": 0` and `"weight": 0`
//! for flags the user left out), and a negative limit means "no limit".
//!
//! `devices` (the device cgroup's allow and deny rules) are passed along
//! untouched: chapter 3's device controller takes them as they are.
//!
//! Spec: runtime-spec `config-linux.md`, "Control groups" and each
//! controller's section.

use ch03_cgroups::{LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxPids};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::config::{ConfigError, invalid};

/// What chapter 3 is asked to do for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupRequest {
    /// The limits chapter 3's drivers write.
    pub resources: ch03_cgroups::LinuxResources,
    /// `devices`: the device cgroup's rules, in order.
    pub devices: Vec<LinuxDeviceCgroup>,
}

/// A knob the spec has and chapter 3 cannot set.
fn unsupported(field: String, name: &str) -> ConfigError {
    invalid(
        field,
        format!(
            "berth-runtime cannot apply {name}: chapter 3's cgroup drivers do not set it; leave it out"
        ),
    )
}

fn set_i64(value: Option<i64>) -> Option<i64> {
    match value {
        None | Some(0) => None,
        Some(v) if v < 0 => Some(-1),
        Some(v) => Some(v),
    }
}

fn set_u64(value: Option<u64>) -> Option<u64> {
    value.filter(|&v| v != 0)
}

/// Turn `resources` (found at JSON path `field`) into chapter 3's request.
// ANCHOR: cgroup_request
pub fn cgroup_request(
    resources: &LinuxResources,
    field: &str,
) -> Result<CgroupRequest, ConfigError> {
    let at = |name: &str| format!("{field}.{name}");
    let mut out = CgroupRequest {
        devices: resources.devices().clone().unwrap_or_default(),
        ..CgroupRequest::default()
    };
    // 1. The controllers chapter 3 drives, in the spec's order: each
    //    refuses by name what chapter 3 cannot set, and copies the rest.
    if let Some(m) = resources.memory() {
        out.resources.memory = memory_request(m, &at)?;
    }
    if let Some(c) = resources.cpu() {
        out.resources.cpu = cpu_request(c, &at)?;
    }
    if let Some(p) = resources.pids() {
        out.resources.pids = set_i64(Some(p.limit())).map(|limit| LinuxPids { limit });
    }
    if let Some(b) = resources.block_io() {
        out.resources.block_io = block_io_request(b, &at)?;
    }
    // 2. What no controller of chapter 3 covers: refused.
    refuse_uncovered(resources, &at)?;
    // 3. Chapter 3's own checks (ranges, swap needs memory, cpuset lists).
    out.resources
        .validate()
        .map_err(|err| invalid(field, err.to_string()))?;
    Ok(out)
}
// ANCHOR_END: cgroup_request

/// `memory`: the limit and the swap limit; none if neither is set.
// ANCHOR: memory_request
fn memory_request(
    m: &oci_spec::runtime::LinuxMemory,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<LinuxMemory>, ConfigError> {
    let refused = [
        ("reservation", m.reservation().is_some_and(|v| v != 0)),
        ("kernel", m.kernel().is_some_and(|v| v != 0)),
        ("kernelTCP", m.kernel_tcp().is_some_and(|v| v != 0)),
        ("swappiness", m.swappiness().is_some()),
        ("disableOOMKiller", m.disable_oom_killer() == Some(true)),
        ("useHierarchy", m.use_hierarchy() == Some(true)),
        ("checkBeforeUpdate", m.check_before_update() == Some(true)),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(unsupported(at(&format!("memory.{name}")), name));
    }
    let memory = LinuxMemory {
        limit: set_i64(m.limit()),
        swap: set_i64(m.swap()),
    };
    Ok((memory != LinuxMemory::default()).then_some(memory))
}
// ANCHOR_END: memory_request

/// `cpu`: shares, quota and period, the cpuset; none if nothing is set.
fn cpu_request(
    c: &oci_spec::runtime::LinuxCpu,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<LinuxCPU>, ConfigError> {
    let refused = [
        (
            "realtimeRuntime",
            c.realtime_runtime().is_some_and(|v| v != 0),
        ),
        (
            "realtimePeriod",
            c.realtime_period().is_some_and(|v| v != 0),
        ),
        ("idle", c.idle().is_some_and(|v| v != 0)),
        ("burst", c.burst().is_some_and(|v| v != 0)),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(unsupported(at(&format!("cpu.{name}")), name));
    }
    let cpu = LinuxCPU {
        shares: set_u64(c.shares()),
        quota: set_i64(c.quota()),
        period: set_u64(c.period()),
        cpus: c.cpus().clone().filter(|s| !s.is_empty()),
        mems: c.mems().clone().filter(|s| !s.is_empty()),
    };
    Ok((cpu != LinuxCPU::default()).then_some(cpu))
}

/// `blockIO`: the weight only; the per-device knobs are refused.
fn block_io_request(
    b: &oci_spec::runtime::LinuxBlockIo,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<LinuxBlockIO>, ConfigError> {
    let refused = [
        ("leafWeight", b.leaf_weight().is_some_and(|v| v != 0)),
        (
            "weightDevice",
            b.weight_device().as_ref().is_some_and(|v| !v.is_empty()),
        ),
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(unsupported(at(&format!("blockIO.{name}")), name));
    }
    let weight = b.weight().filter(|&w| w != 0);
    Ok(weight.map(|w| LinuxBlockIO { weight: Some(w) }))
}

/// The resources no controller of chapter 3 covers.
// ANCHOR: refuse_uncovered
fn refuse_uncovered(
    resources: &LinuxResources,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let refused = [
        (
            "hugepageLimits",
            resources
                .hugepage_limits()
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
        ),
        ("network", resources.network().is_some()),
        (
            "rdma",
            resources.rdma().as_ref().is_some_and(|v| !v.is_empty()),
        ),
        (
            "unified",
            resources.unified().as_ref().is_some_and(|v| !v.is_empty()),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(unsupported(at(name), name));
    }
    Ok(())
}
// ANCHOR_END: refuse_uncovered

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::parse_json;

    fn request(json: &str) -> Result<CgroupRequest, String> {
        let r: LinuxResources = parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
        cgroup_request(&r, "linux.resources").map_err(|e| e.to_string())
    }

    #[test]
    fn every_limit_chapter_3_sets_comes_across() {
        let r = request(
            r#"{"memory": {"limit": 33554432, "swap": 67108864},
                "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1", "mems": "0"},
                "pids": {"limit": 64}, "blockIO": {"weight": 300},
                "devices": [{"allow": false, "access": "rwm"}]}"#,
        )
        .unwrap();
        let want = ch03_cgroups::LinuxResources {
            memory: Some(LinuxMemory {
                limit: Some(32 << 20),
                swap: Some(64 << 20),
            }),
            cpu: Some(LinuxCPU {
                shares: Some(512),
                quota: Some(150_000),
                period: Some(100_000),
                cpus: Some("0-1".into()),
                mems: Some("0".into()),
            }),
            pids: Some(LinuxPids { limit: 64 }),
            block_io: Some(LinuxBlockIO { weight: Some(300) }),
            devices: Vec::new(),
        };
        assert_eq!(r.resources, want);
        assert_eq!(r.devices.len(), 1);
        assert!(!r.devices[0].allow());
    }

    #[test]
    fn zeros_are_unset_and_negatives_unlimited() {
        // What docker writes for a `docker run` without limit flags.
        let r = request(
            r#"{"memory": {"disableOOMKiller": false}, "cpu": {"shares": 0, "cpus": ""},
                "pids": {"limit": 0}, "blockIO": {"weight": 0}}"#,
        )
        .unwrap();
        assert!(r.resources.is_empty(), "{r:?}");
        let r = request(r#"{"memory": {"limit": -1}, "pids": {"limit": -5}}"#).unwrap();
        assert_eq!(r.resources.memory.unwrap().limit, Some(-1));
        assert_eq!(r.resources.pids.unwrap().limit, -1);
    }

    #[test]
    fn what_chapter_3_cannot_set_is_refused_by_name() {
        let cases = [
            (
                r#"{"memory": {"reservation": 1048576}}"#,
                "linux.resources.memory.reservation",
            ),
            (
                r#"{"memory": {"swappiness": 0}}"#,
                "linux.resources.memory.swappiness",
            ),
            (
                r#"{"memory": {"disableOOMKiller": true}}"#,
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                r#"{"memory": {"kernel": 1048576}}"#,
                "linux.resources.memory.kernel",
            ),
            (
                r#"{"cpu": {"realtimeRuntime": 1000}}"#,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (r#"{"cpu": {"idle": 1}}"#, "linux.resources.cpu.idle"),
            (
                r#"{"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}"#,
                "linux.resources.blockIO.throttleReadBpsDevice",
            ),
            (
                r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#,
                "linux.resources.hugepageLimits",
            ),
            (
                r#"{"unified": {"memory.high": "1G"}}"#,
                "linux.resources.unified",
            ),
            (r#"{"network": {"classID": 1}}"#, "linux.resources.network"),
        ];
        for (json, field) in cases {
            let err = request(json).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "config.json: {field}: berth-runtime cannot apply "
                )),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn chapter_3_checks_the_values() {
        let err = request(r#"{"cpu": {"shares": 1}}"#).unwrap_err();
        assert_eq!(
            err,
            "config.json: linux.resources: --cpu-shares 1: must be 2 to 262144 (the default is 1024)"
        );
        let err = request(r#"{"memory": {"swap": 67108864}}"#).unwrap_err();
        assert!(err.contains("--memory-swap needs --memory"), "{err}");
    }
}
