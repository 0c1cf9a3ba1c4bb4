//! A container's network namespace, as a file the runtime can join.
//!
//! Kernel feature: unshare(CLONE_NEWNET) gives the calling thread a new,
//! empty network stack (only a `lo` that is down). A namespace lives as
//! long as something refers to it: a process in it, an open file of it, or
//! a bind mount of its `/proc/.../ns/net` file. The engine makes one per
//! container and bind-mounts it at `RUN/netns/<container-id>` before the
//! container exists, exactly as `ip netns add` does (and as CNI and
//! netavark expect): the network is plumbed into that namespace, then the
//! runtime is told to join the path (`linux.namespaces: [{"type":
//! "network", "path": ...}]` in config.json). The namespace outlives the
//! container's processes until [`remove_netns`] unmounts it, so a
//! restarted container keeps its address.
//!
//! The directory is made a shared mount point, as `ip netns` does with
//! /run/netns: the namespace files then unmount everywhere at once, also
//! in mount namespaces copied from the engine's after the file was made.
//!
//! Man pages: network_namespaces(7), unshare(2), setns(2), mount(2)
//! (MS_BIND, MS_SHARED), ip-netns(8).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{NetworkError, Result, io_err, sys_err};
use crate::netlink::Netlink;

/// The namespace file of container `id` under `netns_dir`.
pub fn netns_path(netns_dir: &Path, id: &str) -> PathBuf {
    netns_dir.join(id)
}

/// Make `dir` a mount point with shared propagation (`ip netns` does the
/// same with /run/netns): bind it onto itself if it is not one yet.
fn make_shared_mount_point(dir: &Path) -> Result<()> {
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => {}
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys_err(format!("mount --bind {0} {0}", dir.display())))?;
            shared().map_err(sys_err(format!("mount --make-shared {}", dir.display())))?;
        }
        Err(errno) => {
            return Err(sys_err(format!("mount --make-shared {}", dir.display()))(
                errno,
            ));
        }
    }
    Ok(())
}

/// True if `dir` is a mount point (its device differs from its parent's,
/// or it is bind-mounted onto itself: then /proc/self/mountinfo says so).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| Path::new(mount_point) == dir)
}

// ANCHOR: create_netns
/// Make container `id`'s network namespace and bind-mount it at
/// `netns_dir/id`, with `lo` up. Returns the path the runtime joins.
pub fn create_netns(netns_dir: &Path, id: &str) -> Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(NetworkError::Invalid(format!(
            "invalid container id {id:?} for a namespace file"
        )));
    }
    fs::create_dir_all(netns_dir).map_err(io_err(netns_dir))?;
    let netns_dir = fs::canonicalize(netns_dir).map_err(io_err(netns_dir))?;
    if !is_mount_point(&netns_dir) {
        make_shared_mount_point(&netns_dir)?;
    }
    let path = netns_path(&netns_dir, id);
    // The mount target: an empty file, which must not exist yet.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // A thread of its own gets the new namespace and binds it; the rest of
    // the process stays in the host's. The thread ends with its job.
    let made = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<()> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(sys_err("unshare(CLONE_NEWNET)"))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys_err(format!(
                    "mount --bind /proc/thread-self/ns/net {}",
                    path.display()
                )))?;
                // The thread is in the new namespace: its socket is too.
                Netlink::open()?.set_up("lo")
            })
            .join()
    });
    let result = made.unwrap_or_else(|_| {
        Err(NetworkError::Helper {
            program: "netns".into(),
            message: "the thread that creates the namespace panicked".into(),
        })
    });
    if let Err(e) = result {
        let _ = remove_netns(&path);
        return Err(e);
    }
    Ok(path)
}
// ANCHOR_END: create_netns

/// Unmount and delete a namespace file; the namespace dies with its last
/// user. A file already gone is fine.
pub fn remove_netns(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(sys_err(format!("umount {}", path.display()))(errno)),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// The container IDs with a namespace file under `netns_dir`.
pub fn list_netns(netns_dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(netns_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io_err(netns_dir))?,
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(netns_dir))?;
        if let Some(name) = entry.file_name().to_str() {
            ids.push(name.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

/// Run `f` on a thread that has joined the network namespace at `netns`
/// (for what needs a socket in the container, like a test's probe).
pub fn run_in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns = fs::File::open(netns).map_err(io_err(netns))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<T> {
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(sys_err(format!("setns {} (CLONE_NEWNET)", netns.display())))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetworkError::Helper {
                    program: "netns".into(),
                    message: "the thread in the namespace panicked".into(),
                })
            })
    })
}
