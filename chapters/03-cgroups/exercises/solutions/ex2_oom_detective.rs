//! Exercise 2, reference solution.

use std::path::Path;

/// How many processes the OOM killer has killed in cgroup `dir` (v1 or v2).
pub fn oom_kills(dir: &Path) -> std::io::Result<u64> {
    // v2 keeps memory events in one flat keyed file; v1 puts the counter in
    // memory.oom_control, beside oom_kill_disable and under_oom.
    let file = ["memory.events", "memory.oom_control"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no memory controller files")
        })?;
    let text = std::fs::read_to_string(file)?;
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}
