//! `update`: a container's limits and restart policy changed, running or
//! not.
//!
//! The record is changed under the container's lock, and a running
//! container's cgroup through the runtime's `update` (the OCI runtimes'
//! command for it: `linux.resources` on stdin, written by chapter 3's
//! `Cgroup::update`). The monitor reads the restart policy from the record
//! when the container exits, so a new policy holds from the next exit on.
//!
//! Man pages: the kernel's cgroup-v2.rst and cgroup-v1 memory.rst (what a
//! write to a limit does to a running group).

use super::record::{HostConfig, RestartPolicy, Status};
use super::{Engine, EngineError, Result};

/// What `update` may change (docker's fields; `None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart: Option<RestartPolicy>,
}

impl UpdateRequest {
    /// `host` with the request applied, checked as docker checks it.
    pub fn apply(&self, host: &HostConfig) -> std::result::Result<HostConfig, String> {
        let mut new = host.clone();
        if let Some(memory) = self.memory {
            new.memory = memory;
        }
        if let Some(swap) = self.memory_swap {
            new.memory_swap = swap;
        }
        if self.memory.is_some()
            && self.memory_swap.is_none()
            && new.memory_swap > 0
            && new.memory > new.memory_swap
        {
            return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
        }
        if let Some(cpus) = self.nano_cpus {
            if host.cpu_quota > 0 || self.cpu_quota.is_some() {
                return Err("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set".into());
            }
            new.nano_cpus = cpus;
        }
        if let Some(quota) = self.cpu_quota {
            if host.nano_cpus > 0 {
                return Err("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set".into());
            }
            new.cpu_quota = quota;
        }
        if let Some(v) = self.cpu_shares {
            new.cpu_shares = v;
        }
        if let Some(v) = self.cpu_period {
            new.cpu_period = v;
        }
        if let Some(v) = &self.cpuset_cpus {
            new.cpuset_cpus = v.clone();
        }
        if let Some(v) = &self.cpuset_mems {
            new.cpuset_mems = v.clone();
        }
        if let Some(v) = self.pids_limit {
            new.pids_limit = Some(v);
        }
        if let Some(v) = self.blkio_weight {
            new.blkio_weight = v;
        }
        if let Some(policy) = &self.restart {
            if host.auto_remove && policy.name != "no" {
                return Err("Restart policy cannot be updated because AutoRemove is enabled for the container".into());
            }
            new.restart_policy = policy.clone();
        }
        Ok(new)
    }
}

impl Engine {
    /// `update CONTAINER`: the record, then a running container's cgroup.
    pub fn update(&self, text: &str, request: &UpdateRequest) -> Result<()> {
        let id = self.resolve(text)?;
        let dir = self.dir(&id);
        let _lock = dir.lock()?;
        let mut c = dir.load()?;
        let new = request
            .apply(&c.host_config)
            .map_err(|m| EngineError::msg(format!("Cannot update container {id}: {m}")))?;
        let limits_changed = {
            let mut old = c.clone();
            old.host_config = new.clone();
            super::bundle::resources(&old) != super::bundle::resources(&c)
        };
        c.host_config = new;
        if limits_changed && matches!(c.state.status, Status::Running | Status::Paused) {
            let mut resources = super::bundle::resources(&c);
            if let Some(r) = resources.as_object_mut() {
                r.remove("devices");
            }
            self.runtime_of(&c)
                .update(&id, &resources)
                .map_err(|e| EngineError::msg(format!("Cannot update container {id}: {e}")))?;
        }
        dir.save(&c)?;
        Ok(())
    }
}
