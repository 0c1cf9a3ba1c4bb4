//! The container's filesystem: private mounts, a fresh /proc, /dev and /sys,
//! and `pivot_root` instead of chroot.
//!
//! Kernel feature: in a new mount namespace (`CLONE_NEWNS`) the child starts
//! with a *copy* of the host's mount table. Mounts it makes there are its own
//! — once propagation is switched off (`MS_PRIVATE`), since on most hosts `/`
//! is a shared mount that would copy them back. `pivot_root(2)` then makes
//! the rootfs the root of that mount namespace and moves the old root
//! somewhere we can unmount it: afterwards the host's tree is not hidden
//! behind a changed root directory, as with chroot — it is gone from the
//! namespace, and chapter 1's escape finds nothing to climb to.
//!
//! Every step here runs in the child. The child first `chdir`s into the
//! rootfs, so every path below is a fixed relative string: no allocation.
//!
//! Man pages: mount_namespaces(7), mount(2), pivot_root(2), umount(2),
//! proc(5), sysfs(5), tmpfs(5), devpts (Documentation/filesystems/devpts.rst),
//! mknod(2), makedev(3).

use std::ffi::CStr;

use nix::errno::Errno;
use nix::fcntl::AT_FDCWD;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, makedev, mknod};
use nix::unistd::{chdir, mkdir, pivot_root, symlinkat};

/// A failed step: its name and errno (sent to the parent over the pipe).
pub type StepResult = Result<(), (&'static str, Errno)>;

const NONE: Option<&str> = None;

/// What the mount steps need to know about the container.
#[derive(Debug, Clone, Copy)]
pub struct MountOptions {
    /// In a user namespace: mknod is refused, and devpts' gid=5 is unmapped.
    pub in_user_ns: bool,
    /// In a new network namespace, which sysfs needs to be mounted afresh.
    pub new_net_ns: bool,
    /// In a new IPC namespace: mount its POSIX message queue filesystem.
    pub new_ipc_ns: bool,
}

/// The character devices every container gets (name, major, minor): the
/// set the OCI runtime spec requires.
const DEVICES: [(&CStr, &CStr, u64, u64); 6] = [
    (c"dev/null", c"/dev/null", 1, 3),
    (c"dev/zero", c"/dev/zero", 1, 5),
    (c"dev/full", c"/dev/full", 1, 7),
    (c"dev/random", c"/dev/random", 1, 8),
    (c"dev/urandom", c"/dev/urandom", 1, 9),
    (c"dev/tty", c"/dev/tty", 5, 0),
];

/// Set up the rootfs at `rootfs` and make it `/`, in this order.
// ANCHOR: prepare_rootfs
pub fn prepare_rootfs(rootfs: &CStr, opts: MountOptions) -> StepResult {
    // 1. Stop mount events flowing between host and container, both ways,
    //    before we mount anything.
    make_mounts_private()?;
    // 2. pivot_root needs the new root to be a mount point: bind the rootfs
    //    onto itself. From here on, work relative to it.
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| ("bind-mount the rootfs onto itself", e))?;
    chdir(rootfs).map_err(|e| ("chdir to the rootfs", e))?;
    // 3. A /proc for the new PID namespace: ps and /proc/self now show the
    //    container's processes only.
    mount_proc()?;
    // 4. /dev: a small tmpfs with the standard devices, not the host's /dev.
    mount_dev(opts)?;
    // 5. /sys, read-only: the container may look, not touch.
    mount_sys(opts)?;
    // 6. Swap roots and drop the host's tree from this namespace.
    pivot_into_cwd()
}
// ANCHOR_END: prepare_rootfs

/// `mount --make-rprivate /`.
pub fn make_mounts_private() -> StepResult {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| ("make mounts private (mount --make-rprivate /)", e))
}

/// Mount a proc filesystem on `proc`.
pub fn mount_proc() -> StepResult {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "proc", Some("proc"), flags, NONE).map_err(|e| ("mount /proc", e))
}

/// A tmpfs on `dev` with the standard devices, /dev/pts, /dev/shm and the
/// fd links.
// ANCHOR: mount_dev
pub fn mount_dev(opts: MountOptions) -> StepResult {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(
        Some("tmpfs"),
        "dev",
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| ("mount /dev", e))?;
    for (path, host_path, major, minor) in DEVICES {
        make_device(path, host_path, makedev(major, minor), opts.in_user_ns)?;
    }
    // A private devpts instance: the container's terminals, not the host's.
    mkdir("dev/pts", Mode::from_bits_truncate(0o755)).map_err(|e| ("mkdir /dev/pts", e))?;
    let pts = if opts.in_user_ns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    mount(
        Some("devpts"),
        "dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts),
    )
    .map_err(|e| ("mount /dev/pts", e))?;
    symlink("pts/ptmx", c"dev/ptmx")?;
    // Shared memory for POSIX shm_open(3), private to the container.
    mkdir("dev/shm", Mode::from_bits_truncate(0o1777)).map_err(|e| ("mkdir /dev/shm", e))?;
    let shm_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("shm"),
        "dev/shm",
        Some("tmpfs"),
        shm_flags,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| ("mount /dev/shm", e))?;
    if opts.new_ipc_ns {
        // POSIX message queues belong to the IPC namespace that mounts them.
        mkdir("dev/mqueue", Mode::from_bits_truncate(0o755))
            .map_err(|e| ("mkdir /dev/mqueue", e))?;
        mount(
            Some("mqueue"),
            "dev/mqueue",
            Some("mqueue"),
            shm_flags,
            NONE,
        )
        .map_err(|e| ("mount /dev/mqueue", e))?;
    }
    for (target, link) in [
        ("/proc/self/fd", c"dev/fd"),
        ("/proc/self/fd/0", c"dev/stdin"),
        ("/proc/self/fd/1", c"dev/stdout"),
        ("/proc/self/fd/2", c"dev/stderr"),
    ] {
        symlink(target, link)?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev

/// Create one device node. In a user namespace mknod(2) is refused (a
/// device node would bypass every permission check), so bind-mount the
/// host's node onto an empty file instead, as rootless engines do.
// ANCHOR: make_device
fn make_device(path: &CStr, host_path: &CStr, dev: u64, in_user_ns: bool) -> StepResult {
    let mode = Mode::from_bits_truncate(0o666);
    if !in_user_ns {
        match mknod(path, SFlag::S_IFCHR, mode, dev) {
            // mknod(2) applies the umask: set the mode the devices need.
            Ok(()) => {
                return fchmodat(AT_FDCWD, path, mode, FchmodatFlags::FollowSymlink)
                    .map_err(|e| ("chmod a device in /dev", e));
            }
            Err(Errno::EPERM) => {} // e.g. a device cgroup: fall back to a bind mount
            Err(e) => return Err(("mknod a device in /dev", e)),
        }
    }
    let fd = open(
        path,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(|e| ("create a device placeholder in /dev", e))?;
    drop(fd);
    mount(Some(host_path), path, NONE, MsFlags::MS_BIND, NONE)
        .map_err(|e| ("bind-mount a host device into /dev", e))
}
// ANCHOR_END: make_device

fn symlink(target: &str, link: &CStr) -> StepResult {
    symlinkat(target, nix::fcntl::AT_FDCWD, link).map_err(|e| ("symlink in /dev", e))
}

/// Mount sysfs read-only on `sys`. Its network part shows the network
/// namespace of whoever mounts it, so it is mounted afresh when the
/// container has its own; otherwise (and where a user namespace may not
/// mount sysfs) the host's /sys is bind-mounted read-only.
// ANCHOR: mount_sys
pub fn mount_sys(opts: MountOptions) -> StepResult {
    let ro = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    if opts.new_net_ns || !opts.in_user_ns {
        match mount(Some("sysfs"), "sys", Some("sysfs"), ro, NONE) {
            Ok(()) => return Ok(()),
            Err(Errno::EPERM) if opts.in_user_ns => {}
            Err(e) => return Err(("mount /sys", e)),
        }
    }
    mount(
        Some("/sys"),
        "sys",
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| ("bind-mount /sys", e))?;
    mount(
        NONE,
        "sys",
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ro,
        NONE,
    )
    .map_err(|e| ("remount /sys read-only", e))
}
// ANCHOR_END: mount_sys

/// Make the current directory the root of this mount namespace and unmount
/// the old root.
///
/// `pivot_root(".", ".")` stacks the old root *on top of* the new one, at
/// the same place; unmounting "." then removes the old root and uncovers the
/// new. No temporary directory is needed (the trick runc uses).
// ANCHOR: pivot_root
pub fn pivot_into_cwd() -> StepResult {
    pivot_root(".", ".").map_err(|e| ("pivot_root", e))?;
    // MNT_DETACH: programs of the host may still hold files open in it.
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| ("unmount the old root", e))?;
    chdir("/").map_err(|e| ("chdir /", e))
}
// ANCHOR_END: pivot_root
