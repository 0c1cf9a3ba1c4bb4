//! The start sequence: the parent and the child, step by step.
//!
//! Parent: check the request, create the pipes, clone the child into its new
//! namespaces, wait until it has shed what it will never need, write its
//! uid/gid maps, release it, wait for the exec, wait for the exit. Child:
//! drop the capability bounding set and set no_new_privs, wait to be
//! released, become root of its user namespace, set up the filesystem and
//! `pivot_root`, set the hostname, bring up `lo`, then exec the command —
//! through a tiny init at PID 1 — with only the capabilities it was given.
//!
//! Errors in the child travel back over chapter 1's start pipe. If anything
//! fails after the clone, the parent kills the child: its mounts, hostname
//! and network stack live in its namespaces and vanish with it, so nothing
//! is left behind.
//!
//! Man pages: clone(2), namespaces(7), user_namespaces(7), pivot_root(2).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ch01_chroot::chroot::chroot_into;
use ch01_chroot::launch::{
    ChildStep, SignalForwarding, check_rootfs, exec_as_or_report, exit_code, explain, spawn_child,
    wait_for_exit,
};
use ch01_chroot::process::ExecPlan;
use ch01_chroot::start_pipe::{ChildReporter, ParentListener, StartPipe};
use ch01_chroot::{Process, StartError};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::prctl::set_dumpable;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, read, sethostname, setresgid, setresuid, write};

use crate::idmap::{self, IdMapping};
use crate::in_root::ProcFdPath;
use crate::init::{init_signals, run_as_init};
use crate::masks::{BadMaskPath, Masks};
use crate::mounts::{MountOptions, MountStep, StepResult, prepare_rootfs};
use crate::namespaces::{self, Namespace, Namespaces};
use crate::network::bring_up_loopback;
use crate::security::{Security, set_no_new_privs};

/// Everything needed to start one container.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub rootfs: PathBuf,
    pub process: Process,
    pub namespaces: Namespaces,
    pub hostname: String,
    /// Empty unless there is a user namespace.
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    /// Write "deny" to setgroups first (required when not root).
    pub deny_setgroups: bool,
    /// Run a tiny init as PID 1 (only meaningful with a PID namespace).
    pub init: bool,
    /// What root in the container may do: capabilities, no_new_privs,
    /// masked and read-only paths ([`Security::default`] unless privileged).
    pub security: Security,
    /// The mounts to make instead of chapter 2's /proc, /dev and /sys (an
    /// OCI runtime's `mounts`, in order); `None`: chapter 2's.
    pub mounts: Option<Vec<MountStep>>,
    /// Remount the rootfs read-only after the mounts (`root.readonly`).
    pub readonly_root: bool,
    /// Move the rootfs onto `/` and chroot, instead of `pivot_root`.
    pub no_pivot: bool,
    /// Namespaces to join rather than create: descriptors of nsfs files
    /// the caller opened (and keeps open), joined first, user first.
    pub join: Vec<(Namespace, RawFd)>,
    /// The gate between create and start: an `O_PATH` descriptor of a
    /// FIFO. The child's last step before its exec opens it for writing,
    /// which blocks until another process (the runtime's `start`) opens it
    /// for reading.
    pub gate: Option<RawFd>,
    /// Descriptors 3 to 3+N-1 reach the command (an OCI runtime's
    /// `--preserve-fds N`); every other one above 2 is closed at the exec.
    pub preserve_fds: u32,
}

/// Errors of chapter 2, on top of chapter 1's.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("this kernel has no {0} namespace (no /proc/self/ns/{0}): leave it out of --ns")]
    NamespaceMissing(&'static str),
    #[error(
        "clone: {0}: user namespaces are disabled for unprivileged users on this host: enable them with `sysctl -w kernel.unprivileged_userns_clone=1` (Debian/Ubuntu) or `sysctl -w user.max_user_namespaces=15000`, or run as root"
    )]
    UserNamespacesDisabled(Errno),
    #[error(
        "clone: EPERM: creating namespaces needs root, or a user namespace: run as root, or add `user` to --ns (--rootless)"
    )]
    NeedsPrivilege,
    #[error(transparent)]
    IdMap(#[from] idmap::IdMapError),
    #[error(
        "pivot_root {0}: EINVAL: is the rootfs on a filesystem that allows it (not the initramfs root)?"
    )]
    PivotRoot(PathBuf),
    #[error(transparent)]
    Hook(HookError),
    #[error(transparent)]
    Mask(#[from] BadMaskPath),
}

impl ContainerError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Start(e) => e.exit_code(),
            _ => ch01_chroot::error::EXIT_ENGINE,
        }
    }
}

/// The sync socket between parent and child (runc has one too): the child
/// writes one byte when it has shed what it will never need ("ready"), the
/// parent one byte when the child may go on ("go").
struct SyncSocket {
    parent: OwnedFd,
    child: OwnedFd,
}

impl SyncSocket {
    fn new() -> nix::Result<Self> {
        let flags = SockFlag::SOCK_CLOEXEC;
        let (parent, child) = socketpair(AddressFamily::Unix, SockType::Stream, None, flags)?;
        Ok(SyncSocket { parent, child })
    }
}

/// Ways for a caller to take part in the start sequence.
pub struct Hooks<'a> {
    /// Runs in the child after the filesystem, hostname and network are set
    /// up, just before the exec (the escape demonstration uses it).
    pub before_exec: ChildStep<'a>,
    /// Runs in the child in its own namespaces, as root of its user
    /// namespace, just before the rootfs is set up: what must be mounted
    /// from inside (chapter 4's rootless overlay) is mounted here.
    pub before_rootfs: ChildStep<'a>,
    /// Runs in the child, with a mount namespace only, once its new root
    /// is `/` (after pivot_root, with /proc, /dev and /sys mounted) and
    /// before anything else: what the caller mounts into the container's
    /// tree goes here (chapter 3: its cgroups, read-only, at /sys/fs/cgroup).
    pub after_rootfs: ChildStep<'a>,
    /// Runs in the parent once the child exists, with its host PID.
    pub on_start: &'a dyn Fn(Pid),
    /// Runs in the parent after the uid/gid maps are written and before the
    /// child is released: the child has not exec'd, so anything done to it
    /// here (chapter 3 puts it in a cgroup) holds from the command's first
    /// instruction. An error kills the child and is returned.
    pub before_release: &'a dyn Fn(Pid) -> Result<(), HookError>,
    /// Runs in the parent while the child waits with everything mounted,
    /// just before its `pivot_root` (an OCI runtime's createContainer
    /// hooks, which run in the container's namespaces). An error kills the
    /// child and is returned. `None`: the child does not stop there.
    pub before_pivot: Option<&'a dyn Fn(Pid) -> Result<(), HookError>>,
}

/// An error from a caller's hook.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

impl Default for Hooks<'_> {
    fn default() -> Self {
        Hooks {
            before_exec: &|| Ok(()),
            before_rootfs: &|| Ok(()),
            after_rootfs: &|| Ok(()),
            on_start: &|_| {},
            before_release: &|_| Ok(()),
            before_pivot: None,
        }
    }
}

/// Start the container, wait for it, return its exit code.
pub fn run_container(config: &ContainerConfig) -> Result<i32, ContainerError> {
    run_container_with(config, &Hooks::default())
}

/// [`run_container`] with hooks: start the container, then wait for it.
// ANCHOR: run_container
pub fn run_container_with(config: &ContainerConfig, hooks: &Hooks) -> Result<i32, ContainerError> {
    start_container(config, hooks)?.wait()
}
// ANCHOR_END: run_container

/// A container whose child exists and has been released: waiting at its
/// gate, or on its way to the exec. Dropping it kills the child (an error
/// path); [`Started::wait`] and [`Started::release`] do not.
pub struct Started<'c> {
    pub pid: Pid,
    start: Option<ParentListener>,
    config: &'c ContainerConfig,
    _forwarding: SignalForwarding,
}

impl Started<'_> {
    /// The second half of `run`: wait for the exec (or its failure), then
    /// for the exit; return the exit code.
    // ANCHOR: wait
    pub fn wait(mut self) -> Result<i32, ContainerError> {
        let child = self.pid;
        let config = self.config;
        let start = self.start.take();
        if let Some(Err(failure)) = start.map(ParentListener::wait_for_exec) {
            let _ = wait_for_exit(child);
            if failure.step.starts_with("pivot_root") && failure.errno == Errno::EINVAL {
                return Err(ContainerError::PivotRoot(config.rootfs.clone()));
            }
            return Err(explain(failure, &config.rootfs, &config.process).into());
        }
        let status = wait_for_exit(child).map_err(|errno| StartError::Syscall {
            call: "waitpid",
            errno,
        })?;
        Ok(exit_code(status))
    }
    // ANCHOR_END: wait

    /// Forget the child (an OCI `create`): it lives on, blocked at its
    /// gate, and is reparented when we exit.
    pub fn release(mut self) -> Pid {
        self.start = None;
        self.pid
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if self.start.is_some() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = wait_for_exit(self.pid);
        }
    }
}

/// The parent's steps: clone the child, do the whole setup, and return once
/// it has been released (with a gate: once it waits there). Nothing waits
/// for its exit.
// ANCHOR: start_container
pub fn start_container<'c>(
    config: &'c ContainerConfig,
    hooks: &Hooks,
) -> Result<Started<'c>, ContainerError> {
    // Parent, step 1: refuse what cannot work, before anything exists.
    let prepared = check_request(config)?;
    let syscall = |call| move |errno| StartError::Syscall { call, errno };

    // Step 2: the start pipe (child -> parent: "a step failed") and the sync
    // socket (child -> parent: "ready"; parent -> child: "go on").
    let start = StartPipe::new().map_err(syscall("pipe2"))?;
    let sync = SyncSocket::new().map_err(syscall("socketpair"))?;
    let forwarding = SignalForwarding::start();

    // Step 3: clone into the new namespaces; then close our copy of the
    // child's end, so that EOF on ours means the child is gone.
    let child = clone_child(config, &prepared, &sync, &start, hooks)?;
    drop(sync.child);

    // Step 4: wait until the child has dropped its bounding set and set
    // no_new_privs, so that nobody who learns its PID from now on (an
    // `exec`, which copies them) can find it still unrestricted.
    let start = wait_until_ready(&sync.parent, start.into_parent(), child, config)?;
    let started = Started {
        pid: child,
        start: Some(start),
        config,
        _forwarding: forwarding,
    };
    (hooks.on_start)(child);

    // Step 5: the user-namespace handshake, from outside; then whatever
    // the caller adds while the child still waits (chapter 3: its cgroup).
    // An error drops `started`, which kills the child.
    write_id_maps(config, child)?;
    (hooks.before_release)(child).map_err(ContainerError::Hook)?;
    // Step 6: release the child.
    let _ = write(&sync.parent, b"g");
    // With a before_pivot hook: the child stops once its mounts are made.
    let started = match hooks.before_pivot {
        Some(hook) => at_pivot(&sync.parent, started, hook)?,
        None => started,
    };
    // Step 7, with a gate: wait until the child waits there.
    if config.gate.is_some() {
        wait_at_gate(&sync.parent, started)
    } else {
        Ok(started)
    }
}
// ANCHOR_END: start_container

/// What the parent prepares before the clone, so that the child only uses
/// it (it allocates nothing).
struct Prepared {
    /// The command, resolved as far as it can be before the clone.
    plan: ExecPlan,
    /// The paths to mask and make read-only.
    masks: Masks,
    /// The root filesystem's path, as the C string the mounts take.
    rootfs: CString,
}

// ANCHOR: check_request
/// The parent's step 1: refuse a missing rootfs and a namespace this
/// kernel lacks, before anything exists; prepare the command, the masks
/// and the rootfs path for the child.
fn check_request(config: &ContainerConfig) -> Result<Prepared, ContainerError> {
    check_rootfs(&config.rootfs)?;
    if let Some(ns) =
        namespaces::missing_from_kernel(&config.namespaces, Path::new("/proc")).first()
    {
        return Err(ContainerError::NamespaceMissing(ns.proc_name()));
    }
    let plan = ExecPlan::new(&config.process)?;
    let masks = Masks::new(&config.security)?;
    let rootfs = CString::new(config.rootfs.as_os_str().as_bytes())
        .map_err(|_| StartError::NulByte(config.rootfs.display().to_string()))?;
    Ok(Prepared {
        plan,
        masks,
        rootfs,
    })
}
// ANCHOR_END: check_request

// ANCHOR: clone_child
/// The parent's step 3: clone the child into its new namespaces, running
/// [`child_main`]. No CLONE_VM/CLONE_VFORK: we have work to do while the
/// child waits on the sync socket. Every namespace but the cgroup one:
/// the child makes that itself.
fn clone_child(
    config: &ContainerConfig,
    prepared: &Prepared,
    sync: &SyncSocket,
    start: &StartPipe,
    hooks: &Hooks,
) -> Result<Pid, ContainerError> {
    let flags = namespaces::clone_flags(&config.namespaces) - CloneFlags::CLONE_NEWCGROUP;
    // The child is PID 1 from its first instruction, long before init runs:
    // the kernel drops a signal sent to a PID 1 without a handler, but never
    // a blocked one. So it starts with init's signals blocked (it inherits
    // our mask), and one sent during setup — a `docker stop` — waits for init.
    let init_mask = InitSignalsBlocked::new(config);
    let child = spawn_child(flags, &mut || {
        child_main(
            config,
            &prepared.rootfs,
            &prepared.plan,
            &prepared.masks,
            sync,
            &start.child_end(),
            hooks,
        )
    })
    .map_err(|err| clone_error(err, config))?;
    drop(init_mask);
    Ok(child)
}
// ANCHOR_END: clone_child

/// Wait for the child's "mounted" byte, run `hook`, and let it go on.
fn at_pivot<'c>(
    sync: &OwnedFd,
    started: Started<'c>,
    hook: &dyn Fn(Pid) -> Result<(), HookError>,
) -> Result<Started<'c>, ContainerError> {
    let mut byte = [0u8; 1];
    if !matches!(read(sync, &mut byte), Ok(1)) {
        return Err(match started.wait() {
            Err(err) => err,
            Ok(_) => ContainerError::Start(StartError::Syscall {
                call: "wait for the child's mounts",
                errno: Errno::EPIPE,
            }),
        });
    }
    hook(started.pid).map_err(ContainerError::Hook)?;
    let _ = write(sync, b"g");
    Ok(started)
}

/// Read the child's "at the gate" byte; if the socket closes first, the
/// child failed a step: return what it reported.
fn wait_at_gate<'c>(sync: &OwnedFd, started: Started<'c>) -> Result<Started<'c>, ContainerError> {
    let mut byte = [0u8; 1];
    if matches!(read(sync, &mut byte), Ok(1)) {
        return Ok(started);
    }
    match started.wait() {
        Err(err) => Err(err),
        Ok(_) => Err(ContainerError::Start(StartError::Syscall {
            call: "wait for the child at its gate",
            errno: Errno::EPIPE,
        })),
    }
}

/// Read the child's "ready" byte. If the socket closes first, the child
/// failed a step: reap it and return what it reported.
fn wait_until_ready(
    sync: &OwnedFd,
    start: ParentListener,
    child: Pid,
    config: &ContainerConfig,
) -> Result<ParentListener, ContainerError> {
    let mut ready = [0u8; 1];
    if matches!(read(sync, &mut ready), Ok(1)) {
        return Ok(start);
    }
    let failure = start.wait_for_exec();
    let _ = wait_for_exit(child);
    Err(match failure {
        Err(failure) => explain(failure, &config.rootfs, &config.process).into(),
        Ok(()) => StartError::Syscall {
            call: "read the sync socket",
            errno: Errno::EPIPE,
        }
        .into(),
    })
}

/// While alive, the signals init handles are blocked in the engine (and so
/// in a child cloned meanwhile); the old mask comes back on drop.
struct InitSignalsBlocked(Option<SigSet>);

impl InitSignalsBlocked {
    fn new(config: &ContainerConfig) -> Self {
        if !(config.namespaces.contains(&Namespace::Pid) && config.init) {
            return InitSignalsBlocked(None);
        }
        let mut old = SigSet::empty();
        let blocked = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&init_signals()), Some(&mut old));
        InitSignalsBlocked(blocked.ok().map(|()| old))
    }
}

impl Drop for InitSignalsBlocked {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
        }
    }
}

/// What the parent writes into /proc/CHILD/: setgroups, gid_map, uid_map.
// ANCHOR: write_id_maps
fn write_id_maps(config: &ContainerConfig, child: Pid) -> Result<(), ContainerError> {
    if !config.namespaces.contains(&Namespace::User) {
        return Ok(());
    }
    let proc_root = Path::new("/proc");
    if config.deny_setgroups {
        idmap::deny_setgroups(proc_root, child)?;
    }
    idmap::write_gid_map(proc_root, child, &config.gid_mappings)?;
    idmap::write_uid_map(proc_root, child, &config.uid_mappings)?;
    Ok(())
}
// ANCHOR_END: write_id_maps

/// Name why clone(2) failed, when we can tell.
fn clone_error(err: StartError, config: &ContainerConfig) -> ContainerError {
    let StartError::Syscall { errno, .. } = &err else {
        return err.into();
    };
    let user = config.namespaces.contains(&Namespace::User);
    match errno {
        Errno::EPERM | Errno::ENOSPC | Errno::EUSERS if user && !Uid::effective().is_root() => {
            ContainerError::UserNamespacesDisabled(*errno)
        }
        Errno::EPERM if !user => ContainerError::NeedsPrivilege,
        _ => err.into(),
    }
}

/// The child's steps, in order. Never returns.
// ANCHOR: child_main
fn child_main(
    config: &ContainerConfig,
    rootfs: &CString,
    plan: &ExecPlan,
    masks: &Masks,
    sync: &SyncSocket,
    pipe: &ChildReporter<'_>,
    hooks: &Hooks,
) -> ! {
    let fail = |(step, errno): (&'static str, Errno)| -> ! { pipe.fail(step, b"", errno) };
    // 0. Join the namespaces the caller named (user first), before
    //    anything else happens in them.
    join_namespaces(&config.join).unwrap_or_else(|e| fail(e));
    // 1. Shed for good what neither we nor the command will need (we keep
    //    our effective capabilities until step 11), then tell the parent.
    shed_for_good(&config.security, sync).unwrap_or_else(|e| fail(e));
    // 2. Wait until the parent has written our uid/gid maps: until then we
    //    have no identity in our user namespace.
    wait_for_parent(sync).unwrap_or_else(|e| fail(e));
    // 3. From here on, processes of the container must not read our memory
    //    or open our /proc/PID/exe: not dumpable (set only now, because the
    //    parent had to open our uid_map, which that makes root's).
    set_dumpable(false).unwrap_or_else(|e| fail(("prctl PR_SET_DUMPABLE", e)));
    // 4. Become root of the user namespace (uid/gid 0 inside map to the
    //    host IDs the parent chose): only once the maps exist.
    become_root_if_in_user_ns(config).unwrap_or_else(|e| fail(e));
    // 5. The cgroup namespace is made now, not at clone: its root is the
    //    cgroup we are in when it is created, and the parent may have just
    //    moved us into the container's own cgroup (chapter 3).
    unshare_cgroup_namespace(&config.namespaces).unwrap_or_else(|e| fail(e));
    // 6. The filesystem: pivot_root with a mount namespace; without one,
    //    chapter 1's chroot (mounting /proc would change the host's tree).
    set_up_filesystem(config, rootfs, masks, hooks, sync).unwrap_or_else(|e| fail(e));
    // 7. The hostname, in our own UTS namespace only.
    set_hostname(config).unwrap_or_else(|e| fail(e));
    // 8. A network namespace starts with lo down.
    bring_up_lo(&config.namespaces).unwrap_or_else(|e| fail(e));
    // 9. Whatever the caller adds (the escape demonstration tries here).
    (hooks.before_exec)().unwrap_or_else(|e| fail(e));
    // 10. With a gate (an OCI `create`): say we are there, and block until
    //     `start` opens it.
    //     The command must be there first, as runc checks: `create`
    //     reports a missing program, not `start`.
    if let Some(gate) = config.gate {
        check_command(plan, pipe);
        // Nothing inherited stays open while we wait: only the gate, the
        // parent's socket and pipe, and the descriptors passed on.
        let first = 3 + config.preserve_fds as RawFd;
        let mut keep = [gate, sync.child.as_raw_fd(), pipe.raw_fd()];
        ch01_chroot::fds::close_all_but(first, &mut keep).unwrap_or_else(|e| fail(e));
        pass_gate(gate, sync).unwrap_or_else(|e| fail(e));
    }
    // 11. Exec the command, last: every step above needs privileges or
    //     descriptors the command must not keep.
    exec_command(config, plan, pipe)
}
// ANCHOR_END: child_main

// ANCHOR: wait_for_parent
/// The child's step 2: block on the sync socket until the parent says "go
/// on" (its uid/gid maps are written); EOF means the parent gave up.
fn wait_for_parent(sync: &SyncSocket) -> StepResult {
    let mut byte = [0u8; 1];
    match read(&sync.child, &mut byte) {
        Ok(1) => Ok(()),
        _ => Err(("wait for the parent", Errno::EPIPE)),
    }
}
// ANCHOR_END: wait_for_parent

// ANCHOR: become_root_if_in_user_ns
/// The child's step 4: become root of the user namespace we were cloned
/// into or joined; without one, stay who we are.
fn become_root_if_in_user_ns(config: &ContainerConfig) -> StepResult {
    let joined = config.join.iter().any(|(n, _)| *n == Namespace::User);
    if config.namespaces.contains(&Namespace::User) || joined {
        become_root()?;
    }
    Ok(())
}
// ANCHOR_END: become_root_if_in_user_ns

// ANCHOR: unshare_cgroup_namespace
/// The child's step 5: `unshare(CLONE_NEWCGROUP)`, if the container has a
/// cgroup namespace: its root is the cgroup we are in now.
fn unshare_cgroup_namespace(ns: &Namespaces) -> StepResult {
    if ns.contains(&Namespace::Cgroup) {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| ("unshare the cgroup namespace", e))?;
    }
    Ok(())
}
// ANCHOR_END: unshare_cgroup_namespace

// ANCHOR: set_hostname
/// The child's step 7: `sethostname(2)`, in a UTS namespace of our own
/// only (as root without one, it would rename the host).
fn set_hostname(config: &ContainerConfig) -> StepResult {
    if config.namespaces.contains(&Namespace::Uts) {
        sethostname(&config.hostname).map_err(|e| ("sethostname", e))?;
    }
    Ok(())
}
// ANCHOR_END: set_hostname

// ANCHOR: bring_up_lo
/// The child's step 8: bring up `lo` in a network namespace of our own
/// (a new one starts with it down).
fn bring_up_lo(ns: &Namespaces) -> StepResult {
    if ns.contains(&Namespace::Network) {
        bring_up_loopback()?;
    }
    Ok(())
}
// ANCHOR_END: bring_up_lo

// ANCHOR: exec_command
/// The child's step 11: exec the command (as the child of a tiny init when
/// we are PID 1), becoming its user with only the capabilities it was
/// given. Never returns: a failure goes back over the start pipe.
fn exec_command(config: &ContainerConfig, plan: &ExecPlan, pipe: &ChildReporter<'_>) -> ! {
    let becomes_init = config.namespaces.contains(&Namespace::Pid) && config.init;
    let caps = &config.security.capabilities;
    let preserve = config.preserve_fds;
    let identity = |plan: &ExecPlan| {
        // The descriptors the caller passes on, taken back from the
        // close-on-exec marking of every descriptor above 2.
        keep_across_exec(preserve)?;
        caps.apply(&|| plan.set_user())
    };
    if becomes_init {
        run_as_init(plan, pipe, &identity)
    } else {
        exec_as_or_report(plan, pipe, &identity)
    }
}
// ANCHOR_END: exec_command

/// Clear close-on-exec on descriptors 3 to 3+`count`-1.
fn keep_across_exec(count: u32) -> StepResult {
    for fd in 3..3 + count as RawFd {
        // SAFETY: F_SETFD on a descriptor number: EBADF at worst.
        let set = unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) };
        Errno::result(set).map_err(|e| ("keep a preserved descriptor (--preserve-fds)", e))?;
    }
    Ok(())
}

/// setns(2) into each namespace of `join`, in exec's order (user first,
/// mount last).
fn join_namespaces(join: &[(Namespace, RawFd)]) -> StepResult {
    for ns in crate::exec::JOIN_ORDER {
        for (_, fd) in join.iter().filter(|(n, _)| *n == ns) {
            // SAFETY: the caller opened the descriptor and keeps it open
            // until the child has exec'd or exited.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
            setns(fd, ns.clone_flag()).map_err(|e| ("setns (join a namespace)", e))?;
        }
    }
    Ok(())
}

/// Report a command that no exec could start (none of its candidates is
/// an executable file), as the exec itself would report it.
fn check_command(plan: &ExecPlan, pipe: &ChildReporter<'_>) {
    use nix::unistd::{AccessFlags, access};
    let mut denied = None;
    for path in plan.candidates() {
        match access(path, AccessFlags::X_OK) {
            Ok(()) => {
                // access(2) says yes to root for a directory: an exec would not.
                match nix::sys::stat::stat(path) {
                    Ok(st) if st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR => {
                        denied.get_or_insert(path);
                    }
                    _ => return,
                }
            }
            Err(Errno::EACCES) => {
                denied.get_or_insert(path);
            }
            Err(_) => {}
        }
    }
    match denied {
        Some(path) => pipe.fail("exec-denied", path.to_bytes(), Errno::EACCES),
        None => pipe.fail("exec-not-found", plan.command().to_bytes(), Errno::ENOENT),
    }
}

/// Tell the parent we wait at the gate, then open the FIFO behind `gate`
/// for writing: the open blocks until `start` opens it for reading. Write
/// one byte for `start` to read; close-on-exec closes our end at the exec.
/// Through `/proc/self/fd`, since the FIFO's directory is out of our sight.
fn pass_gate(gate: RawFd, sync: &SyncSocket) -> StepResult {
    match write(&sync.child, b"a") {
        Ok(1) => {}
        _ => return Err(("tell the parent we wait at the gate", Errno::EPIPE)),
    }
    let path = ProcFdPath::of(&gate);
    let fifo = open(
        path.as_cstr(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ("open the exec FIFO", e))?;
    write(&fifo, b"0").map_err(|e| ("write the exec FIFO", e))?;
    Ok(())
}

/// The child's first step: drop the capabilities outside the bounding set and
/// set no_new_privs, then say "ready" over the sync socket (our copy of the
/// parent's end closed first, so that EOF there means the parent gave up).
fn shed_for_good(security: &Security, sync: &SyncSocket) -> StepResult {
    let _ = nix::unistd::close(sync.parent.as_raw_fd());
    security.capabilities.drop_bounding()?;
    if security.no_new_privileges {
        set_no_new_privs()?;
    }
    match write(&sync.child, b"r") {
        Ok(1) => Ok(()),
        _ => Err(("tell the parent we are ready", Errno::EPIPE)),
    }
}

/// pivot_root into the rootfs with /proc, /dev, /sys and the masks, when
/// there is a mount namespace; chapter 1's chroot otherwise.
fn set_up_filesystem(
    config: &ContainerConfig,
    rootfs: &CString,
    masks: &Masks,
    hooks: &Hooks,
    sync: &SyncSocket,
) -> StepResult {
    let ns = &config.namespaces;
    // Mounted, before pivot_root: tell the parent, wait for its go.
    let at_pivot = || {
        let mut byte = [0u8; 1];
        match write(&sync.child, b"m") {
            Ok(1) => {}
            _ => return Err(("tell the parent the mounts are made", Errno::EPIPE)),
        }
        match read(&sync.child, &mut byte) {
            Ok(1) => Ok(()),
            _ => Err(("wait for the parent's createContainer hooks", Errno::EPIPE)),
        }
    };
    if !ns.contains(&Namespace::Mount) {
        return chroot_into(rootfs);
    }
    let opts = MountOptions {
        in_user_ns: ns.contains(&Namespace::User),
        new_net_ns: ns.contains(&Namespace::Network),
        new_ipc_ns: ns.contains(&Namespace::Ipc),
        readonly_sys: config.security.readonly_sys,
        plan: config.mounts.as_deref(),
        readonly_root: config.readonly_root,
        no_pivot: config.no_pivot,
        before_pivot: hooks
            .before_pivot
            .map(|_| &at_pivot as &dyn Fn() -> StepResult),
    };
    (hooks.before_rootfs)()?;
    prepare_rootfs(rootfs, opts, masks)?;
    // What the caller mounts inside the new root (chapter 3: its read-only
    // /sys/fs/cgroup), after /sys exists and before the command can see it.
    (hooks.after_rootfs)()
}

/// `setresgid(0,0,0)` and `setresuid(0,0,0)` inside the user namespace,
/// dropping the host's supplementary groups where that is allowed.
// ANCHOR: become_root
pub fn become_root() -> Result<(), (&'static str, Errno)> {
    // Fails with EPERM after "deny" was written to setgroups: that's fine,
    // the rootless case has no supplementary groups mapped anyway.
    let _ = nix::unistd::setgroups(&[]);
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(|e| ("setresgid 0", e))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(|e| ("setresuid 0", e))
}
// ANCHOR_END: become_root
