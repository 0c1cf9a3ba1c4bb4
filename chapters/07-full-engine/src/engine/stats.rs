//! `stats`: what a running container uses, read where the kernel keeps it.
//!
//! - memory, CPU time and the number of processes: chapter 3's cgroup
//!   (`memory.current`/`memory.usage_in_bytes`, `cpu.stat`/`cpuacct.usage`,
//!   `pids.current`), less the page cache the kernel can drop at once
//!   (`inactive_file` in `memory.stat`), as docker counts it;
//! - block I/O: `io.stat` (v2) or `blkio.throttle.io_service_bytes` (v1);
//! - network I/O: `/proc/PID/net/dev`, read through the container's first
//!   process, so it is the container's network namespace's (loopback left
//!   out, as docker does).
//!
//! CPU % is a rate, so it takes two samples: CPU time used between them
//! over the wall time between them (100% is one CPU busy all along).
//!
//! Man pages: proc(5) (`/proc/PID/net/dev`, `/proc/meminfo`), the kernel's
//! cgroup-v2.rst and cgroup-v1 memory.rst / blkio-controller.rst.

use std::path::Path;
use std::time::{Duration, Instant};

use super::record::Container;
use super::{Engine, EngineError, Result};

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub cpu: Duration,
    pub memory: u64,
    pub memory_limit: u64,
    pub pids: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// Two samples made into docker's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub sample: Sample,
    /// CPU time over wall time, in percent of one CPU.
    pub cpu_percent: f64,
    pub memory_percent: f64,
}

impl Usage {
    pub fn between(first: &Sample, second: &Sample, wall: Duration) -> Usage {
        let cpu = second.cpu.saturating_sub(first.cpu).as_secs_f64();
        let wall = wall.as_secs_f64();
        Usage {
            sample: *second,
            cpu_percent: if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 },
            memory_percent: if second.memory_limit > 0 {
                second.memory as f64 / second.memory_limit as f64 * 100.0
            } else {
                0.0
            },
        }
    }
}

/// `KEY VALUE` lines' value for `key`.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Page cache the kernel can drop at once, from the memory controller's
/// `memory.stat` among the cgroup's `dirs`.
pub fn inactive_file(dirs: &[std::path::PathBuf]) -> u64 {
    dirs.iter()
        .filter_map(|d| std::fs::read_to_string(d.join("memory.stat")).ok())
        .find_map(|text| {
            stat_value(&text, "total_inactive_file").or_else(|| stat_value(&text, "inactive_file"))
        })
        .unwrap_or(0)
}

/// Bytes read and written by the cgroup's processes, from `io.stat` (v2:
/// `MAJ:MIN rbytes=N wbytes=N ...` per device) or v1's
/// `blkio.throttle.io_service_bytes` (`MAJ:MIN Read N` lines).
pub fn block_io(dirs: &[std::path::PathBuf]) -> (u64, u64) {
    let (mut read, mut write) = (0, 0);
    for dir in dirs {
        if let Ok(text) = std::fs::read_to_string(dir.join("io.stat")) {
            for field in text.split_whitespace() {
                match field.split_once('=') {
                    Some(("rbytes", n)) => read += n.parse::<u64>().unwrap_or(0),
                    Some(("wbytes", n)) => write += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        } else if let Ok(text) =
            std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes"))
        {
            for line in text.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if let [_device, op, n] = fields[..] {
                    match op {
                        "Read" => read += n.parse::<u64>().unwrap_or(0),
                        "Write" => write += n.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
    }
    (read, write)
}

/// Bytes received and sent on every interface but `lo`, from a
/// `/proc/PID/net/dev` text.
pub fn net_io(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    // Two header lines, then `IFACE: rx_bytes packets ... (8 fields) tx_bytes ...`.
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() >= 9 {
            rx += fields[0];
            tx += fields[8];
        }
    }
    (rx, tx)
}

/// The host's memory, the limit of a container without one.
pub fn mem_total(proc_root: &Path) -> u64 {
    std::fs::read_to_string(proc_root.join("meminfo"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Engine {
    /// One sample of running container `c`.
    pub fn sample(&self, c: &Container) -> Result<Sample> {
        let failed =
            |e: &dyn std::fmt::Display| EngineError::msg(format!("stats of {}: {e}", c.name()));
        let layout = ch03_cgroups::detect(&self.proc_root).map_err(|e| failed(&e))?;
        let cgroup =
            ch03_cgroups::Cgroup::open(&layout, &self.proc_root, &c.id).map_err(|e| failed(&e))?;
        let stats = cgroup.stats().map_err(|e| failed(&e))?;
        let dirs = cgroup.paths();
        let net = std::fs::read_to_string(self.proc_root.join(format!("{}/net/dev", c.state.pid)))
            .unwrap_or_default();
        let (net_rx, net_tx) = net_io(&net);
        let (block_read, block_write) = block_io(&dirs);
        Ok(Sample {
            cpu: stats.cpu_usage,
            memory: stats.memory_current.saturating_sub(inactive_file(&dirs)),
            memory_limit: cgroup
                .memory_limit()
                .or_else(|| read_memory_limit(&dirs))
                .unwrap_or_else(|| mem_total(&self.proc_root)),
            pids: stats.pids_current,
            net_rx,
            net_tx,
            block_read,
            block_write,
        })
    }

    /// Two samples `interval` apart: docker's figures for `c`.
    pub fn usage(&self, c: &Container, interval: Duration) -> Result<Usage> {
        let first = self.sample(c)?;
        let start = Instant::now();
        std::thread::sleep(interval);
        let second = self.sample(c)?;
        Ok(Usage::between(&first, &second, start.elapsed()))
    }
}

/// A limit written in the cgroup (an opened cgroup does not know the one
/// it was created with): `memory.max` (v2) or `memory.limit_in_bytes`
/// (v1, where "no limit" is a huge number).
fn read_memory_limit(dirs: &[std::path::PathBuf]) -> Option<u64> {
    dirs.iter().find_map(|d| {
        let v2 = std::fs::read_to_string(d.join("memory.max")).ok();
        let v1 = std::fs::read_to_string(d.join("memory.limit_in_bytes")).ok();
        let value: u64 = v2.or(v1)?.trim().parse().ok()?;
        (value < (1 << 62)).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_kernels_files() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      10    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n";
        assert_eq!(net_io(dev), (2000, 500));
        let tmp = tempfile::tempdir().unwrap();
        let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(
            v2.join("io.stat"),
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n",
        )
        .unwrap();
        std::fs::write(v2.join("memory.stat"), "anon 10\ninactive_file 300\n").unwrap();
        std::fs::write(
            v1.join("blkio.throttle.io_service_bytes"),
            "8:0 Read 100\n8:0 Write 50\n8:0 Total 150\nTotal 150\n",
        )
        .unwrap();
        assert_eq!(block_io(std::slice::from_ref(&v2)), (4096, 8192));
        assert_eq!(block_io(std::slice::from_ref(&v1)), (100, 50));
        assert_eq!(inactive_file(&[v2]), 300);
        let first = Sample {
            cpu: Duration::from_millis(100),
            ..Sample::default()
        };
        let second = Sample {
            cpu: Duration::from_millis(600),
            memory: 25,
            memory_limit: 100,
            ..Sample::default()
        };
        let usage = Usage::between(&first, &second, Duration::from_secs(1));
        assert!((usage.cpu_percent - 50.0).abs() < 1e-9);
        assert!((usage.memory_percent - 25.0).abs() < 1e-9);
    }
}
