//! User namespaces: who is root inside, and who that is outside.
//!
//! Kernel feature: a process created with `CLONE_NEWUSER` starts with every
//! capability *inside* its new user namespace, but its user and group IDs
//! mean nothing there until someone writes `/proc/PID/uid_map` and
//! `gid_map`: lines of "ID-inside ID-outside count". Only a process outside
//! (the parent) may write them, once each. An unprivileged parent may map
//! only its own uid, and must first write "deny" to `/proc/PID/setgroups`
//! before it may write `gid_map` (otherwise dropping a group with
//! setgroups(2) inside could grant access a "negative" group denied).
//!
//! This is the handshake of the start sequence: the child is created and
//! waits; the parent writes the maps; the parent lets the child go on.
//!
//! Man pages: user_namespaces(7) ("User and group ID mappings"),
//! newuidmap(1), subuid(5).

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

/// One mapping line (OCI runtime spec: `linux.uidMappings[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("{0:?}: not a mapping: write CONTAINER_ID:HOST_ID:SIZE, e.g. 0:100000:65536")]
    Syntax(String),
    #[error("write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl IdMapping {
    /// Parse `CONTAINER:HOST:SIZE`, the format of `--uidmap` (podman's).
    pub fn parse(text: &str) -> Result<IdMapping, IdMapError> {
        let bad = || IdMapError::Syntax(text.to_string());
        let parts: Vec<u32> = text
            .split(':')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [container_id, host_id, size] if size > 0 => Ok(IdMapping {
                container_id,
                host_id,
                size,
            }),
            _ => Err(bad()),
        }
    }

    /// Map only `host_id` to root inside: the rootless default.
    pub fn root_is(host_id: u32) -> IdMapping {
        IdMapping {
            container_id: 0,
            host_id,
            size: 1,
        }
    }
}

/// The text the kernel expects in uid_map/gid_map.
// ANCHOR: write_map
pub fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

fn write_proc(proc_root: &Path, pid: Pid, file: &str, text: &str) -> Result<(), IdMapError> {
    let path = proc_root.join(pid.to_string()).join(file);
    // One write(2): the kernel parses the whole map from a single write.
    std::fs::write(&path, text).map_err(|cause| IdMapError::Write { path, cause })
}
// ANCHOR_END: write_map

/// Write "deny" to `/proc/PID/setgroups`: needed before an unprivileged
/// process may write `gid_map`.
pub fn deny_setgroups(proc_root: &Path, pid: Pid) -> Result<(), IdMapError> {
    write_proc(proc_root, pid, "setgroups", "deny")
}

/// Write the child's `uid_map`.
pub fn write_uid_map(proc_root: &Path, pid: Pid, maps: &[IdMapping]) -> Result<(), IdMapError> {
    write_proc(proc_root, pid, "uid_map", &map_text(maps))
}

/// Write the child's `gid_map`.
pub fn write_gid_map(proc_root: &Path, pid: Pid, maps: &[IdMapping]) -> Result<(), IdMapError> {
    write_proc(proc_root, pid, "gid_map", &map_text(maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_like_podman() {
        assert_eq!(
            IdMapping::parse("0:100000:65536").unwrap(),
            IdMapping {
                container_id: 0,
                host_id: 100000,
                size: 65536
            }
        );
        for bad in ["0:1", "a:b:c", "0:1:0", "0:1:2:3", ""] {
            let err = IdMapping::parse(bad).unwrap_err().to_string();
            assert!(err.contains("CONTAINER_ID:HOST_ID:SIZE"), "{err}");
        }
    }

    #[test]
    fn maps_are_written_as_the_kernel_reads_them() {
        let proc_root = tempfile::tempdir().unwrap();
        let pid = Pid::from_raw(42);
        std::fs::create_dir(proc_root.path().join("42")).unwrap();
        let maps = [
            IdMapping::root_is(1000),
            IdMapping::parse("1:100000:65535").unwrap(),
        ];
        write_uid_map(proc_root.path(), pid, &maps).unwrap();
        deny_setgroups(proc_root.path(), pid).unwrap();
        assert_eq!(
            std::fs::read_to_string(proc_root.path().join("42/uid_map")).unwrap(),
            "0 1000 1\n1 100000 65535\n"
        );
        assert_eq!(
            std::fs::read_to_string(proc_root.path().join("42/setgroups")).unwrap(),
            "deny"
        );
        let err = write_gid_map(proc_root.path(), Pid::from_raw(7), &maps).unwrap_err();
        assert!(err.to_string().starts_with("write "), "{err}");
        assert!(err.to_string().contains("7/gid_map"), "{err}");
    }
}
