//! `top`: the container's processes, as the host's `ps` shows them.
//!
//! The runtime knows which host pids are the container's (`ps --format
//! json`: the pids in its cgroup); the host's ps(1) prints them, with
//! whatever columns the user asks for (`-ef` by default); the lines whose
//! PID is not the container's are left out, as docker does.
//!
//! Man pages: ps(1); runc-ps(8).

use std::process::Command;

use super::record::Status;
use super::{Engine, EngineError, Result};

/// What `top` prints: ps's header and the container's rows, as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// Keep the lines of ps `output` whose PID column is in `pids`.
pub fn filter_ps(output: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = output.lines();
    let header = lines
        .next()
        .ok_or_else(|| EngineError::msg("ps printed nothing"))?;
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_column = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::msg("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        // The last column (the command) may hold spaces: split the others.
        let mut fields: Vec<String> = Vec::new();
        let mut rest = line.trim_start();
        while fields.len() + 1 < titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        let pid: i32 = fields
            .get(pid_column)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| EngineError::msg(format!("unexpected pid {line:?}")))?;
        if pids.contains(&pid) {
            processes.push(fields);
        }
    }
    Ok(Top { titles, processes })
}

impl Engine {
    /// `top ID [ps options]`.
    pub fn top(&self, id: &str, ps_args: &[String]) -> Result<Top> {
        let c = self.load_checked(id)?;
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::msg(format!("container {id} is not running")));
        }
        let pids = self.runtime_of(&c).pids(id)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let output = Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::msg(format!("ps: {e}")))?;
        if !output.status.success() {
            return Err(EngineError::msg(format!(
                "Error running ps: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        filter_ps(&String::from_utf8_lossy(&output.stdout), &pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_kept_by_pid_with_the_command_whole() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\n\
                  root 10 1 0 10:00 ? 00:00:00 sleep 100\n\
                  root 11 1 0 10:00 ? 00:00:00 other thing\n";
        let top = filter_ps(ps, &[10]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][7], "sleep 100");
        assert!(filter_ps("USER X\n", &[1]).is_err());
    }
}
