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
//! Every step here runs in the child and allocates nothing. Each mount
//! point is looked up inside the rootfs first ([`crate::in_root`]): missing
//! ones are made (a scratch image has no `/proc`), symlinks are refused, and
//! the mount goes onto the descriptor found, so that it cannot land outside
//! the rootfs. Then [`crate::masks`] covers what `/proc` and `/sys` must not
//! show.
//!
//! Man pages: mount_namespaces(7), mount(2), pivot_root(2), umount(2),
//! proc(5), sysfs(5), tmpfs(5), devpts (Documentation/filesystems/devpts.rst),
//! mknod(2), makedev(3).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, makedev, mkdirat, mknodat};
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs};
use nix::unistd::{chdir, pivot_root, symlinkat};

use crate::in_root::{ProcFdPath, Symlinks, mount_point, open_in_root};
use crate::masks::{Masks, apply_masks};

/// A failed step: its name and errno (sent to the parent over the pipe).
pub type StepResult = Result<(), (&'static str, Errno)>;

const NONE: Option<&str> = None;

/// What the mount steps need to know about the container.
#[derive(Clone, Copy)]
pub struct MountOptions<'a> {
    /// In a user namespace: mknod is refused, and devpts' gid=5 is unmapped.
    pub in_user_ns: bool,
    /// In a new network namespace, which sysfs needs to be mounted afresh.
    pub new_net_ns: bool,
    /// In a new IPC namespace: mount its POSIX message queue filesystem.
    pub new_ipc_ns: bool,
    /// Mount /sys read-only (everything but `--privileged`).
    pub readonly_sys: bool,
    /// The mounts to make instead of chapter 2's /proc, /dev and /sys: an
    /// OCI runtime mounts exactly config.json's `mounts`, in order.
    pub plan: Option<&'a [MountStep]>,
    /// Remount the rootfs read-only once everything is mounted.
    pub readonly_root: bool,
    /// Move the rootfs onto `/` and chroot instead of `pivot_root` (a
    /// rootfs on the initramfs, where pivot_root fails).
    pub no_pivot: bool,
    /// A step once everything is mounted, just before the root changes
    /// (an OCI runtime's createContainer hooks run then).
    pub before_pivot: Option<&'a dyn Fn() -> StepResult>,
}

/// One mount of a plan, prepared in the parent so that the child only
/// makes system calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountStep {
    /// A bind's host path, or the filesystem's source name.
    pub source: CString,
    /// Where, relative to the rootfs (no leading `/`).
    pub target: CString,
    /// The filesystem type; ignored for a bind.
    pub fstype: CString,
    /// mount(2)'s flags: `MS_BIND` (`| MS_REC`) for a bind, plus the
    /// per-mount flags (`MS_RDONLY`, `MS_NOSUID`, ...).
    pub flags: MsFlags,
    pub data: Option<CString>,
    /// `MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`, `MS_UNBINDABLE` (with
    /// `MS_REC`), applied after the mount; empty for none.
    pub propagation: MsFlags,
    /// The mount point is a directory (a file for a bind of a file).
    pub dir: bool,
}

/// The character devices every container gets (name, major, minor): the
/// set the OCI runtime spec requires.
const DEVICES: [(&CStr, &CStr, u64, u64); 6] = [
    (c"null", c"/dev/null", 1, 3),
    (c"zero", c"/dev/zero", 1, 5),
    (c"full", c"/dev/full", 1, 7),
    (c"random", c"/dev/random", 1, 8),
    (c"urandom", c"/dev/urandom", 1, 9),
    (c"tty", c"/dev/tty", 5, 0),
];

/// Set up the rootfs at `rootfs` and make it `/`, in this order.
// ANCHOR: prepare_rootfs
pub fn prepare_rootfs(rootfs: &CStr, opts: MountOptions, masks: &Masks) -> StepResult {
    // 1. Stop mount events flowing between host and container, both ways,
    //    before we mount anything.
    make_mounts_private()?;
    // 2. pivot_root needs the new root to be a mount point: bind the rootfs
    //    onto itself. From here on, every path is looked up under `root`.
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| ("bind-mount the rootfs onto itself", e))?;
    chdir(rootfs).map_err(|e| ("chdir to the rootfs", e))?;
    let root = open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ("open the rootfs", e))?;
    let root = root.as_fd();
    if let Some(plan) = opts.plan {
        // 3-5. An OCI runtime's plan instead: exactly the mounts asked for.
        mount_plan(root, plan, opts)?;
    } else {
        // 3. A /proc for the new PID namespace: ps and /proc/self now show
        //    the container's processes only.
        mount_proc(root)?;
        // 4. /dev: a small tmpfs with the standard devices, not the host's.
        mount_dev(root, opts)?;
        // 5. /sys, read-only: the container may look, not touch.
        mount_sys(root, opts)?;
    }
    // 6. Hide what /proc and /sys must not show, and freeze what they must
    //    not change.
    apply_masks(root, masks)?;
    if opts.readonly_root {
        remount_read_only(root)?;
    }
    if let Some(step) = opts.before_pivot {
        step()?;
    }
    // 7. Swap roots and drop the host's tree from this namespace.
    if opts.no_pivot {
        move_root_into_cwd()
    } else {
        pivot_into_cwd()
    }
}
// ANCHOR_END: prepare_rootfs

/// `mount --make-rprivate /`.
pub fn make_mounts_private() -> StepResult {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| ("make mounts private (mount --make-rprivate /)", e))
}

/// The mount point `name` at the top of `root`, made if missing, with a
/// message naming it if it is a symlink or not a directory.
fn mount_point_or_fail(
    root: BorrowedFd,
    name: &CStr,
    step: &'static str,
) -> Result<OwnedFd, (&'static str, Errno)> {
    mount_point(root, name).map_err(|e| (step, e))
}

/// Mount a proc filesystem on the rootfs's `/proc`.
pub fn mount_proc(root: BorrowedFd) -> StepResult {
    let proc = mount_point_or_fail(
        root,
        c"proc",
        "mount /proc: find /proc in the rootfs (it must be a directory, not a symlink)",
    )?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let on = ProcFdPath::of(&proc);
    mount(Some("proc"), on.as_cstr(), Some("proc"), flags, NONE).map_err(|e| ("mount /proc", e))
}

/// A tmpfs on the rootfs's `/dev` with the standard devices, /dev/pts,
/// /dev/shm and the fd links.
// ANCHOR: mount_dev
pub fn mount_dev(root: BorrowedFd, opts: MountOptions) -> StepResult {
    let mount_point = mount_point_or_fail(
        root,
        c"dev",
        "mount /dev: find /dev in the rootfs (it must be a directory, not a symlink)",
    )?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    let on = ProcFdPath::of(&mount_point);
    mount(
        Some("tmpfs"),
        on.as_cstr(),
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| ("mount /dev", e))?;
    // Everything below is made in that tmpfs, through a descriptor of it.
    let dev = open_new_tmpfs(root, c"dev")?;
    let dev = dev.as_fd();
    make_default_devices(dev, opts)?;
    mount_dev_filesystems(dev, opts)?;
    for (target, link) in [
        ("/proc/self/fd", c"fd"),
        ("/proc/self/fd/0", c"stdin"),
        ("/proc/self/fd/1", c"stdout"),
        ("/proc/self/fd/2", c"stderr"),
    ] {
        symlink(dev, target, link)?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev

/// The filesystems under /dev, each private to the container: its own
/// terminals (devpts), POSIX shared memory (/dev/shm) and, with an IPC
/// namespace, POSIX message queues (/dev/mqueue).
// ANCHOR: mount_dev_filesystems
fn mount_dev_filesystems(dev: BorrowedFd, opts: MountOptions) -> StepResult {
    // A private devpts instance: the container's terminals, not the host's.
    let pts = if opts.in_user_ns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_in(
        dev,
        c"pts",
        0o755,
        "devpts",
        pts_flags,
        Some(pts),
        "mount /dev/pts",
    )?;
    symlink(dev, "pts/ptmx", c"ptmx")?;
    // Shared memory for POSIX shm_open(3), private to the container.
    let shm_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let shm = Some("mode=1777,size=65536k");
    mount_in(
        dev,
        c"shm",
        0o1777,
        "tmpfs",
        shm_flags,
        shm,
        "mount /dev/shm",
    )?;
    if opts.new_ipc_ns {
        // POSIX message queues belong to the IPC namespace that mounts them.
        mount_in(
            dev,
            c"mqueue",
            0o755,
            "mqueue",
            shm_flags,
            None,
            "mount /dev/mqueue",
        )?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev_filesystems

/// The standard devices in a new /dev tmpfs.
fn make_default_devices(dev: BorrowedFd, opts: MountOptions) -> StepResult {
    for (name, host_path, major, minor) in DEVICES {
        make_device(dev, name, host_path, makedev(major, minor), opts.in_user_ns)?;
    }
    Ok(())
}

/// `name` under `root`, which we have just mounted a tmpfs on: open it again
/// (symlinks refused) and check it is that tmpfs, not something swapped in.
fn open_new_tmpfs(root: BorrowedFd, name: &CStr) -> Result<OwnedFd, (&'static str, Errno)> {
    let step = "open the new /dev";
    let fd = open_in_root(root, name, Symlinks::Refuse).map_err(|e| (step, e))?;
    let fs = fstatfs(fd.as_fd()).map_err(|e| (step, e))?;
    if fs.filesystem_type() != TMPFS_MAGIC {
        return Err((
            "open the new /dev: not the tmpfs just mounted",
            Errno::EXDEV,
        ));
    }
    Ok(fd)
}

/// Make the directory `name` in `dir` and mount a `fstype` there.
fn mount_in(
    dir: BorrowedFd,
    name: &CStr,
    mode: u32,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
    step: &'static str,
) -> StepResult {
    mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(|e| (step, e))?;
    // mkdir(2) applies the umask: set the mode asked for.
    fchmodat(
        dir,
        name,
        Mode::from_bits_truncate(mode),
        FchmodatFlags::NoFollowSymlink,
    )
    .map_err(|e| (step, e))?;
    let target = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| (step, e))?;
    let on = ProcFdPath::of(&target);
    mount(Some(fstype), on.as_cstr(), Some(fstype), flags, data).map_err(|e| (step, e))
}

/// Create one device node in `dev`. In a user namespace mknod(2) is refused
/// (a device node would bypass every permission check), so bind-mount the
/// host's node onto an empty file instead, as rootless engines do.
// ANCHOR: make_device
fn make_device(
    dev: BorrowedFd,
    name: &CStr,
    host_path: &CStr,
    rdev: u64,
    in_user_ns: bool,
) -> StepResult {
    let mode = Mode::from_bits_truncate(0o666);
    if !in_user_ns {
        match mknodat(dev, name, SFlag::S_IFCHR, mode, rdev) {
            // mknod(2) applies the umask: set the mode the devices need.
            Ok(()) => {
                return fchmodat(dev, name, mode, FchmodatFlags::NoFollowSymlink)
                    .map_err(|e| ("chmod a device in /dev", e));
            }
            Err(Errno::EPERM) => {} // e.g. a device cgroup: fall back to a bind mount
            Err(e) => return Err(("mknod a device in /dev", e)),
        }
    }
    let placeholder = openat(
        dev,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(|e| ("create a device placeholder in /dev", e))?;
    let on = ProcFdPath::of(&placeholder);
    mount(Some(host_path), on.as_cstr(), NONE, MsFlags::MS_BIND, NONE)
        .map_err(|e| ("bind-mount a host device into /dev", e))
}
// ANCHOR_END: make_device

fn symlink(dir: BorrowedFd, target: &str, link: &CStr) -> StepResult {
    symlinkat(target, dir, link).map_err(|e| ("symlink in /dev", e))
}

/// Mount sysfs on the rootfs's `/sys`, read-only unless privileged. Its
/// network part shows the network namespace of whoever mounts it, so it is
/// mounted afresh when the container has its own; otherwise (and where a
/// user namespace may not mount sysfs) the host's /sys is bind-mounted.
// ANCHOR: mount_sys
pub fn mount_sys(root: BorrowedFd, opts: MountOptions) -> StepResult {
    let sys = mount_point_or_fail(
        root,
        c"sys",
        "mount /sys: find /sys in the rootfs (it must be a directory, not a symlink)",
    )?;
    let on = ProcFdPath::of(&sys);
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if opts.readonly_sys {
        flags |= MsFlags::MS_RDONLY;
    }
    if opts.new_net_ns || !opts.in_user_ns {
        match mount(Some("sysfs"), on.as_cstr(), Some("sysfs"), flags, NONE) {
            Ok(()) => return Ok(()),
            Err(Errno::EPERM) if opts.in_user_ns => {}
            Err(e) => return Err(("mount /sys", e)),
        }
    }
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some("/sys"), on.as_cstr(), NONE, bind, NONE).map_err(|e| ("bind-mount /sys", e))?;
    // The remount must name the new bind mount: look /sys up again.
    let bound = mount_point_or_fail(root, c"sys", "bind-mount /sys")?;
    let on = ProcFdPath::of(&bound);
    mount(
        NONE,
        on.as_cstr(),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        NONE,
    )
    .map_err(|e| ("remount /sys", e))
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

/// Make `/` read-only (`root.readonly`): a remount of the rootfs's bind.
fn remount_read_only(root: BorrowedFd) -> StepResult {
    let on = ProcFdPath::of(&root);
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(NONE, on.as_cstr(), NONE, flags, NONE).map_err(|e| ("remount the rootfs read-only", e))
}

/// `--no-pivot`: move the rootfs (the current directory) onto `/` and
/// chroot into it. The old root stays underneath, out of sight but not
/// unmounted: that is why pivot_root is the default.
pub fn move_root_into_cwd() -> StepResult {
    mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).map_err(|e| ("mount --move . /", e))?;
    nix::unistd::chroot(".").map_err(|e| ("chroot .", e))?;
    chdir("/").map_err(|e| ("chdir /", e))
}

/// Mount each step of `plan` under `root`, in order. Targets are resolved
/// inside the rootfs (symlinks followed there, never out of it), and
/// missing ones are made; a tmpfs on `/dev` gets the standard devices.
pub fn mount_plan(root: BorrowedFd, plan: &[MountStep], opts: MountOptions) -> StepResult {
    for step in plan {
        let target = make_mount_point(root, &step.target, step.dir)
            .map_err(|e| ("find or make a mount point in the rootfs", e))?;
        let on = ProcFdPath::of(&target);
        let bind = step.flags.contains(MsFlags::MS_BIND);
        if bind {
            // MS_BIND ignores the other flags: bind, then remount with them.
            let flags = step.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
            mount(
                Some(step.source.as_c_str()),
                on.as_cstr(),
                NONE,
                flags,
                NONE,
            )
            .map_err(|e| ("bind mount", e))?;
            let rest = step.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
            if !rest.is_empty() {
                let bound = reopen(root, step)?;
                let on = ProcFdPath::of(&bound);
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest;
                mount(NONE, on.as_cstr(), NONE, flags, NONE)
                    .map_err(|e| ("remount a bind mount", e))?;
            }
        } else {
            mount_fs(root, step, &on, opts)?;
        }
        if !step.propagation.is_empty() {
            let mounted = reopen(root, step)?;
            let on = ProcFdPath::of(&mounted);
            mount(NONE, on.as_cstr(), NONE, step.propagation, NONE)
                .map_err(|e| ("set a mount's propagation", e))?;
        }
    }
    Ok(())
}

/// A filesystem of the plan (not a bind): sysfs falls back to a bind of the
/// host's /sys where a user namespace may not mount it; a tmpfs on /dev
/// gets the standard devices and links.
fn mount_fs(root: BorrowedFd, step: &MountStep, on: &ProcFdPath, opts: MountOptions) -> StepResult {
    let source = Some(step.source.as_c_str());
    let fstype = Some(step.fstype.as_c_str());
    let data = step.data.as_deref();
    match mount(source, on.as_cstr(), fstype, step.flags, data) {
        Ok(()) => {}
        Err(Errno::EPERM) if opts.in_user_ns && step.fstype.as_bytes() == b"sysfs" => {
            let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/sys"), on.as_cstr(), NONE, rbind, NONE)
                .map_err(|e| ("bind-mount /sys", e))?;
            let bound = reopen(root, step)?;
            let on = ProcFdPath::of(&bound);
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | step.flags;
            return mount(NONE, on.as_cstr(), NONE, flags, NONE).map_err(|e| ("remount /sys", e));
        }
        Err(e) => return Err(("mount", e)),
    }
    if step.target.as_bytes() == b"dev" && step.fstype.as_bytes() == b"tmpfs" {
        let dev = open_new_tmpfs(root, c"dev")?;
        let dev = dev.as_fd();
        make_default_devices(dev, opts)?;
        symlink(dev, "pts/ptmx", c"ptmx")?;
        for (target, link) in [
            ("/proc/self/fd", c"fd"),
            ("/proc/self/fd/0", c"stdin"),
            ("/proc/self/fd/1", c"stdout"),
            ("/proc/self/fd/2", c"stderr"),
        ] {
            symlink(dev, target, link)?;
        }
    }
    Ok(())
}

/// The step's target again, now that something is mounted on it.
fn reopen(root: BorrowedFd, step: &MountStep) -> Result<OwnedFd, (&'static str, Errno)> {
    open_in_root(root, &step.target, Symlinks::InRoot).map_err(|e| ("reopen a mount point", e))
}

/// `target` under `root`, resolved inside it; each missing component is
/// made (a directory, or an empty file last when `dir` is false) through
/// a descriptor of its parent, so nothing is made outside the rootfs.
/// Allocation-free: prefixes are built in a buffer on the stack.
pub fn make_mount_point(root: BorrowedFd, target: &CStr, dir: bool) -> Result<OwnedFd, Errno> {
    match open_in_root(root, target, Symlinks::InRoot) {
        Err(Errno::ENOENT) => {}
        found => return found,
    }
    let bytes = target.to_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    let ends = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i)
        .chain(std::iter::once(bytes.len()));
    let mut start = 0;
    for end in ends {
        let name_start = start;
        start = end + 1;
        if end == name_start {
            continue; // "a//b"
        }
        buf[..end].copy_from_slice(&bytes[..end]);
        buf[end] = 0;
        let prefix = CStr::from_bytes_until_nul(&buf[..=end]).map_err(|_| Errno::EINVAL)?;
        match open_in_root(root, prefix, Symlinks::InRoot) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // The parent exists (the previous round made or found it).
        let mut parent_buf = [0u8; 4096];
        let parent = if name_start == 0 {
            None
        } else {
            parent_buf[..name_start - 1].copy_from_slice(&bytes[..name_start - 1]);
            Some(open_in_root(
                root,
                CStr::from_bytes_until_nul(&parent_buf[..name_start]).map_err(|_| Errno::EINVAL)?,
                Symlinks::InRoot,
            )?)
        };
        let parent_fd = parent.as_ref().map_or(root, |p| p.as_fd());
        let mut name_buf = [0u8; 256];
        let name = &bytes[name_start..end];
        if name.len() >= name_buf.len() {
            return Err(Errno::ENAMETOOLONG);
        }
        name_buf[..name.len()].copy_from_slice(name);
        let name =
            CStr::from_bytes_until_nul(&name_buf[..=name.len()]).map_err(|_| Errno::EINVAL)?;
        let last = end == bytes.len();
        let made = if last && !dir {
            openat(
                parent_fd,
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(parent_fd, name, Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    open_in_root(root, target, Symlinks::InRoot)
}
