//! The limits: what docker's flags ask for, in the OCI runtime spec's words.
//!
//! Kernel feature: cgroup controllers. Each controller limits one resource
//! for a group of processes: `memory` (bytes of RAM, and of RAM plus swap),
//! `cpu` (a CFS bandwidth quota per period, and a relative weight), `cpuset`
//! (which CPUs and NUMA memory nodes), `pids` (how many tasks), `blkio`/`io`
//! (a relative disk weight), `devices` (which device nodes may be opened).
//! This module only describes the request; the drivers in [`crate::v1`]
//! and [`crate::v2`] write it into the kernel.
//!
//! The OCI runtime spec (config-linux.md, "Control groups") names the
//! request `linux.resources`, and runc and crun read it. Docker's flags turn
//! into it like this:
//!
//! | docker flag | OCI field | note |
//! | --- | --- | --- |
//! | `--memory 32m` | `memory.limit` = 33554432 | at least 6 MiB |
//! | `--memory-swap 64m` | `memory.swap` = 67108864 | memory **plus** swap; -1: unlimited swap |
//! | `--cpus 1.5` | `cpu.quota` = 150000, `cpu.period` = 100000 | µs of CPU time per period |
//! | `--cpu-shares 512` | `cpu.shares` = 512 | relative; the default is 1024 |
//! | `--cpuset-cpus 0-1` | `cpu.cpus` = "0-1" | |
//! | `--cpuset-mems 0` | `cpu.mems` = "0" | |
//! | `--pids-limit 64` | `pids.limit` = 64 | -1: unlimited |
//! | `--blkio-weight 300` | `blockIO.weight` = 300 | 10 to 1000 |
//! | `--device-cgroup-rule 'c 1:3 rwm'` | `devices[]` += allow c 1:3 rwm | see [`crate::devices`] |
//!
//! One difference from docker: with `--memory` but no `--memory-swap`,
//! docker's daemon allows as much swap as memory (memory+swap = 2 × memory)
//! when the host accounts swap. Berth leaves swap unset, as runc does for a
//! spec without `memory.swap`: the kernel's default, swap not limited.
//!
//! Man pages: docker-run(1) ("--memory", "--cpus"); the kernel's
//! Documentation/admin-guide/cgroup-v1/ and cgroup-v2.rst;
//! the OCI runtime spec, config-linux.md.

use std::collections::BTreeSet;

use crate::devices::{DeviceCgroupState, LinuxDeviceCgroup};
use crate::size::{SizeError, format_size, parse_size};

/// Docker's smallest `--memory`: below it a container cannot even start.
pub const MIN_MEMORY: u64 = 6 << 20;
/// The CFS period `--cpus` uses, in µs: 100 ms, docker's and the kernel's default.
pub const CPU_PERIOD: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in µs (1 ms).
pub const MIN_CPU_QUOTA: i64 = 1_000;
/// The range of `cpu.shares` (cgroup v1) and so of `--cpu-shares`.
pub const CPU_SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;
/// The range of `blkio.weight` (cgroup v1) and so of `--blkio-weight`.
pub const BLKIO_WEIGHT: std::ops::RangeInclusive<u16> = 10..=1000;

/// `linux.resources`: the limits of one container. `None` means "not
/// asked for": the kernel's default stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxResources {
    pub memory: Option<LinuxMemory>,
    pub cpu: Option<LinuxCPU>,
    pub pids: Option<LinuxPids>,
    pub block_io: Option<LinuxBlockIO>,
    /// The device rules, applied in order to a cgroup that starts out
    /// allowing every device. Empty: the cgroup's device access is left
    /// as its parent's. Docker's defaults: [`crate::devices::default_rules`].
    pub devices: Vec<LinuxDeviceCgroup>,
}

/// `linux.resources.memory`. Bytes; -1 means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxMemory {
    /// RAM.
    pub limit: Option<i64>,
    /// RAM **plus** swap (cgroup v1's memsw), as in the spec and docker.
    pub swap: Option<i64>,
}

/// `linux.resources.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxCPU {
    /// Relative weight, 2 to 262144 (default 1024).
    pub shares: Option<u64>,
    /// CPU time allowed per period, µs; -1 means unlimited.
    pub quota: Option<i64>,
    /// The length of a period, µs.
    pub period: Option<u64>,
    /// The CPUs allowed, as a list: "0-3,5".
    pub cpus: Option<String>,
    /// The NUMA memory nodes allowed, as a list.
    pub mems: Option<String>,
}

/// `linux.resources.pids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxPids {
    /// Maximum number of tasks; -1 means unlimited.
    pub limit: i64,
}

/// `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxBlockIO {
    /// Relative weight, 10 to 1000.
    pub weight: Option<u16>,
}

/// The limit flags of `docker run`, as given on the command line.
/// A binary flattens them into its `run` command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResourceFlags {
    /// Memory limit, e.g. 32m or 1g (at least 6m).
    #[arg(long, short = 'm', value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap, e.g. 64m; equal to --memory: no swap; -1: unlimited swap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// How many CPUs' worth of time, e.g. 1.5 (a quota of 150 ms per 100 ms).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Relative CPU weight, 2 to 262144 (the default is 1024).
    #[arg(long, short = 'c', value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// The CPUs the container may run on, e.g. 0-1,3.
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// The NUMA memory nodes the container may use, e.g. 0.
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// The most processes and threads at once (-1: unlimited).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Relative block IO weight, 10 to 1000.
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// Also allow these devices, e.g. 'c 1:3 rwm' or 'b 8:* r' (TYPE
    /// MAJOR:MINOR ACCESS; repeatable).
    #[arg(long, value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
}

/// A limit that cannot be asked for: names the flag and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("{flag}: {cause}")]
    Size {
        flag: &'static str,
        cause: SizeError,
    },
    #[error("{flag} {value}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "--memory-swap needs --memory: it limits memory plus swap, so set the memory limit too"
    )]
    SwapWithoutMemory,
}

fn invalid(flag: &'static str, value: impl ToString, why: impl ToString) -> ResourceError {
    ResourceError::Invalid {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// Turn a size into the spec's signed bytes.
fn size_flag(flag: &'static str, text: &str) -> Result<i64, ResourceError> {
    let bytes = parse_size(text).map_err(|cause| ResourceError::Size { flag, cause })?;
    // parse_size never returns more than i64::MAX.
    i64::try_from(bytes).map_err(|_| invalid(flag, text, "too large"))
}

impl LinuxResources {
    /// The request `docker run` would make for these flags, checked by
    /// docker's rules.
    pub fn from_flags(flags: &ResourceFlags) -> Result<LinuxResources, ResourceError> {
        let limit = flags
            .memory
            .as_deref()
            .map(|text| size_flag("--memory", text))
            .transpose()?;
        let swap = match flags.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(text) => Some(size_flag("--memory-swap", text)?),
        };
        let memory = (limit.is_some() || swap.is_some()).then_some(LinuxMemory { limit, swap });

        let (quota, period) = match flags.cpus.as_deref() {
            Some(text) => match parse_cpus(text)? {
                Some((quota, period)) => (Some(quota), Some(period)),
                None => (None, None),
            },
            None => (None, None),
        };
        let cpu = LinuxCPU {
            shares: flags.cpu_shares,
            quota,
            period,
            cpus: flags.cpuset_cpus.clone(),
            mems: flags.cpuset_mems.clone(),
        };
        let cpu = (cpu != LinuxCPU::default()).then_some(cpu);

        let resources = LinuxResources {
            memory,
            cpu,
            pids: flags.pids_limit.map(|limit| LinuxPids { limit }),
            block_io: flags.blkio_weight.map(|weight| LinuxBlockIO {
                weight: Some(weight),
            }),
            devices: flags
                .device_cgroup_rule
                .iter()
                .map(|rule| LinuxDeviceCgroup::parse_docker(rule))
                .collect::<Result<_, _>>()?,
        };
        resources.validate()?;
        Ok(resources)
    }

    /// Check the request by docker's rules (the drivers assume it passed).
    pub fn validate(&self) -> Result<(), ResourceError> {
        if let Some(memory) = &self.memory {
            let limit = memory.limit;
            if limit.is_some_and(|l| l != -1 && u64::try_from(l).map_or(true, |l| l < MIN_MEMORY)) {
                let limit = limit.unwrap_or_default();
                return Err(invalid(
                    "--memory",
                    show_bytes(limit),
                    format!("the minimum memory limit is {}", format_size(MIN_MEMORY)),
                ));
            }
            match (memory.swap, limit) {
                (None, _) => {}
                (Some(_), None) => return Err(ResourceError::SwapWithoutMemory),
                (Some(-1), Some(_)) => {}
                (Some(swap), Some(limit)) => {
                    if swap < 0 || (limit != -1 && swap < limit) {
                        return Err(invalid(
                            "--memory-swap",
                            show_bytes(swap),
                            format!(
                                "must be at least --memory ({}), or -1 for unlimited swap",
                                show_bytes(limit)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(cpu) = &self.cpu {
            if let Some(shares) = cpu.shares.filter(|s| !CPU_SHARES.contains(s)) {
                return Err(invalid(
                    "--cpu-shares",
                    shares,
                    format!(
                        "must be {} to {} (the default is 1024)",
                        CPU_SHARES.start(),
                        CPU_SHARES.end()
                    ),
                ));
            }
            if let Some(quota) = cpu.quota.filter(|&q| q != -1 && q < MIN_CPU_QUOTA) {
                return Err(invalid(
                    "--cpus",
                    format!("(quota {quota} µs)"),
                    "the kernel's smallest CFS quota is 1000 µs: use at least 0.01 CPUs",
                ));
            }
            if let Some(period) = cpu.period.filter(|p| !(1_000..=1_000_000).contains(p)) {
                return Err(invalid(
                    "--cpus",
                    format!("(period {period} µs)"),
                    "the CFS period must be 1000 to 1000000 µs",
                ));
            }
            if let Some(cpus) = &cpu.cpus {
                parse_id_list(cpus).map_err(|why| invalid("--cpuset-cpus", cpus, why))?;
            }
            if let Some(mems) = &cpu.mems {
                parse_id_list(mems).map_err(|why| invalid("--cpuset-mems", mems, why))?;
            }
        }
        if let Some(limit) = self
            .pids
            .as_ref()
            .map(|p| p.limit)
            .filter(|&l| l <= 0 && l != -1)
        {
            return Err(invalid(
                "--pids-limit",
                limit,
                "must be a positive number of processes, or -1 for no limit",
            ));
        }
        let weight = self.block_io.as_ref().and_then(|b| b.weight);
        if let Some(weight) = weight.filter(|w| !BLKIO_WEIGHT.contains(w)) {
            return Err(invalid(
                "--blkio-weight",
                weight,
                format!("must be {} to {}", BLKIO_WEIGHT.start(), BLKIO_WEIGHT.end()),
            ));
        }
        // The rules must say something cgroup v1 can hold.
        DeviceCgroupState::from_rules(&self.devices)?;
        Ok(())
    }

    /// True when nothing is limited.
    pub fn is_empty(&self) -> bool {
        *self == LinuxResources::default()
    }

    /// The memory limit in bytes, if there is one.
    pub fn memory_limit(&self) -> Option<u64> {
        let limit = self.memory.as_ref()?.limit?;
        u64::try_from(limit).ok()
    }
}

fn show_bytes(bytes: i64) -> String {
    match u64::try_from(bytes) {
        Ok(bytes) => format_size(bytes),
        Err(_) => bytes.to_string(),
    }
}

/// `--cpus N` as a CFS quota and period (µs), docker's way: N CPUs get
/// N × 100 ms of CPU time in every 100 ms period, so `1.5` is a quota of
/// 150000 per 100000. `0` means no limit (`None`).
pub fn parse_cpus(text: &str) -> Result<Option<(i64, u64)>, ResourceError> {
    let bad = |why: &str| invalid("--cpus", text, why);
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(bad("not a number of CPUs: write a decimal like 1.5"));
    }
    // Docker counts in nano-CPUs and refuses anything finer.
    if fraction.len() > 9 {
        return Err(bad("too precise: at most 9 decimals"));
    }
    let too_many = || bad("too many CPUs");
    let whole: i64 = whole.parse().map_err(|_| too_many())?;
    let fraction_nanos: i64 = if fraction.is_empty() {
        0
    } else {
        let scale = 10i64.pow(9 - fraction.len() as u32);
        fraction.parse::<i64>().map_err(|_| too_many())? * scale
    };
    let nano_cpus = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(too_many)?;
    if nano_cpus == 0 {
        return Ok(None);
    }
    if nano_cpus < 10_000_000 {
        return Err(bad("the smallest CPU limit is 0.01"));
    }
    // quota = nano_cpus × period / 10⁹, as docker's daemon computes it.
    let quota = i64::try_from(i128::from(nano_cpus) * i128::from(CPU_PERIOD) / 1_000_000_000)
        .map_err(|_| too_many())?;
    Ok(Some((quota, CPU_PERIOD)))
}

/// Parse a CPU or memory-node list, the kernel's format (cpuset(7),
/// "List format"): numbers and ranges separated by commas, "0-3,5".
pub fn parse_id_list(text: &str) -> Result<BTreeSet<u32>, String> {
    let bad = || "not a list: write numbers and ranges like 0-3,5".to_string();
    let mut set = BTreeSet::new();
    if text.trim().is_empty() {
        return Err(bad());
    }
    for part in text.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(format!("{part}: a range must go upwards, like 0-3"));
        }
        // The kernel allows at most a few thousand CPUs; refuse absurd ranges
        // rather than build a huge set.
        if last - first > 65_535 {
            return Err(format!("{part}: too large a range"));
        }
        set.extend(first..=last);
    }
    Ok(set)
}

/// Format a set of ids in the kernel's list format: {0,1,2,3,5} → "0-3,5".
pub fn format_id_list(ids: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = ids.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every limit set: the request the flags of
    /// `docker_flags_become_the_oci_request` make, and the input the
    /// mapping tests write out.
    pub(crate) fn sample() -> LinuxResources {
        LinuxResources {
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
            devices: vec![LinuxDeviceCgroup::allow(
                crate::devices::DeviceType::Block,
                Some(8),
                None,
                "r",
            )],
        }
    }

    fn flags() -> ResourceFlags {
        ResourceFlags::default()
    }

    #[test]
    fn docker_flags_become_the_oci_request() {
        let r = LinuxResources::from_flags(&ResourceFlags {
            memory: Some("32m".into()),
            memory_swap: Some("64m".into()),
            cpus: Some("1.5".into()),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            pids_limit: Some(64),
            blkio_weight: Some(300),
            device_cgroup_rule: vec!["b 8:* r".into()],
        })
        .unwrap();
        assert_eq!(r, sample());
        assert_eq!(r.memory_limit(), Some(32 << 20));
        assert!(!r.is_empty());
        let none = LinuxResources::from_flags(&flags()).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.memory_limit(), None);
    }

    #[test]
    fn cpus_become_a_quota_per_100ms() {
        assert_eq!(parse_cpus("1.5").unwrap(), Some((150_000, 100_000)));
        assert_eq!(parse_cpus("2").unwrap(), Some((200_000, 100_000)));
        assert_eq!(parse_cpus("0.01").unwrap(), Some((1_000, 100_000)));
        assert_eq!(parse_cpus("0.333").unwrap(), Some((33_300, 100_000)));
        assert_eq!(parse_cpus("0").unwrap(), None);
        for bad in ["", "-1", "1.5x", "1.", ".5", "0.001", "1.0000000001", "1e3"] {
            let err = parse_cpus(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--cpus {bad}: ")), "{err}");
        }
    }

    #[test]
    fn swap_follows_dockers_rules() {
        let swap = |memory: Option<&str>, swap: &str| {
            LinuxResources::from_flags(&ResourceFlags {
                memory: memory.map(Into::into),
                memory_swap: Some(swap.into()),
                ..flags()
            })
        };
        // Unlimited swap, no swap, some swap.
        let r = swap(Some("32m"), "-1").unwrap();
        assert_eq!(r.memory.unwrap().swap, Some(-1));
        let r = swap(Some("32m"), "32m").unwrap();
        assert_eq!(r.memory.unwrap().swap, Some(32 << 20));
        assert_eq!(
            swap(Some("32m"), "16m").unwrap_err().to_string(),
            "--memory-swap 16 MiB: must be at least --memory (32 MiB), or -1 for unlimited swap"
        );
        assert_eq!(
            swap(None, "64m").unwrap_err(),
            ResourceError::SwapWithoutMemory
        );
    }

    #[test]
    fn limits_are_checked_like_docker() {
        let check = |f: ResourceFlags| LinuxResources::from_flags(&f).unwrap_err().to_string();
        assert_eq!(
            check(ResourceFlags {
                memory: Some("4m".into()),
                ..flags()
            }),
            "--memory 4 MiB: the minimum memory limit is 6 MiB"
        );
        assert!(
            check(ResourceFlags {
                memory: Some("32x".into()),
                ..flags()
            })
            .starts_with("--memory: \"32x\": not a size")
        );
        assert_eq!(
            check(ResourceFlags {
                cpu_shares: Some(1),
                ..flags()
            }),
            "--cpu-shares 1: must be 2 to 262144 (the default is 1024)"
        );
        assert_eq!(
            check(ResourceFlags {
                blkio_weight: Some(5),
                ..flags()
            }),
            "--blkio-weight 5: must be 10 to 1000"
        );
        for bad in [0, -2] {
            assert!(
                check(ResourceFlags {
                    pids_limit: Some(bad),
                    ..flags()
                })
                .starts_with(&format!("--pids-limit {bad}: must be a positive number"))
            );
        }
        assert!(
            check(ResourceFlags {
                cpuset_cpus: Some("0-a".into()),
                ..flags()
            })
            .starts_with("--cpuset-cpus 0-a: not a list")
        );
        assert!(
            LinuxResources::from_flags(&ResourceFlags {
                pids_limit: Some(-1),
                memory: Some("6m".into()),
                blkio_weight: Some(1000),
                cpu_shares: Some(2),
                ..flags()
            })
            .is_ok()
        );
    }

    #[test]
    fn id_lists_parse_and_format() {
        let set = parse_id_list("0-3,5, 7-8").unwrap();
        assert_eq!(
            set.iter().copied().collect::<Vec<_>>(),
            [0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(format_id_list(&set), "0-3,5,7-8");
        assert_eq!(format_id_list(&parse_id_list("4").unwrap()), "4");
        assert_eq!(format_id_list(&BTreeSet::new()), "");
        for bad in ["", "a", "1-", "3-1", "1,,2", "0-999999"] {
            assert!(parse_id_list(bad).is_err(), "{bad}");
        }
    }
}
