//! The command line every container-running chapter shares: the flags of
//! `run` and how they become a [`ContainerConfig`]. Chapter 3 flattens
//! [`RunArgs`] into its own `run` and adds its limits beside them, so the
//! binaries grow one option group per chapter.

use std::path::PathBuf;

use ch01_chroot::Process;
use clap::Args;
use nix::unistd::{Gid, Uid};

use crate::capabilities::{self, Capability, CapabilitySet, parse_capability};
use crate::container::ContainerConfig;
use crate::idmap::IdMapping;
use crate::namespaces::{self, Namespace};
use crate::security::{Security, held_capabilities};

/// How the container is isolated: the namespace flags of `run`, which
/// every later chapter's `run` keeps.
#[derive(Args)]
pub struct NamespaceArgs {
    /// The container's hostname (default: a random container id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The namespaces to create, comma-separated: mnt,uts,ipc,pid,net,user,cgroup or all.
    #[arg(long, default_value = "mnt,uts,ipc,pid,net,cgroup", value_parser = namespaces::parse_list)]
    pub ns: namespaces::Namespaces,
    /// Map your own uid and gid to root in a user namespace (the default when
    /// not run as root).
    #[arg(long)]
    pub rootless: bool,
    /// As root: add a user namespace with --uidmap/--gidmap (default
    /// 0:100000:65536).
    #[arg(long)]
    pub userns: bool,
    /// A uid mapping CONTAINER:HOST:SIZE for --userns (repeatable).
    #[arg(long, value_parser = IdMapping::parse)]
    pub uidmap: Vec<IdMapping>,
    /// A gid mapping CONTAINER:HOST:SIZE for --userns (repeatable).
    #[arg(long, value_parser = IdMapping::parse)]
    pub gidmap: Vec<IdMapping>,
    /// Run CMD itself as PID 1, without the tiny init (to see why it's there).
    #[arg(long)]
    pub no_init: bool,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// What root in the container may do: docker's `--privileged`,
/// `--cap-add` and `--cap-drop`.
#[derive(Args, Default)]
pub struct SecurityArgs {
    /// Give the container every capability the engine holds, no masked or
    /// read-only /proc paths, a writable /sys and no no_new_privs: root in
    /// it is root on the host.
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability to the default set: NET_ADMIN or CAP_NET_ADMIN, or
    /// ALL (repeatable).
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_cap_arg)]
    pub cap_add: Vec<CapArg>,
    /// Drop a capability from the default set, or ALL (repeatable).
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_cap_arg)]
    pub cap_drop: Vec<CapArg>,
    /// The capabilities of a container given no flag. Not a flag: chapter 2's
    /// default (docker's set without MKNOD, since nothing here guards device
    /// nodes) unless a later chapter that guards them says otherwise.
    #[arg(skip)]
    pub defaults: Option<CapabilitySet>,
}

/// One `--cap-add`/`--cap-drop` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapArg {
    All,
    One(Capability),
}

/// docker's spelling: any case, with or without `CAP_`, or `ALL`.
pub fn parse_cap_arg(text: &str) -> Result<CapArg, String> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(CapArg::All);
    }
    parse_capability(text)
        .map(CapArg::One)
        .map_err(|e| e.to_string())
}

// ANCHOR: capabilities_from_flags
impl SecurityArgs {
    /// The restrictions these flags ask for, starting from `defaults` (the
    /// capabilities of a container with no flags) and limited to `held`
    /// (what the engine can give). docker's rules: `--privileged` gives all;
    /// `--cap-add ALL` all but the dropped; `--cap-drop ALL` only the
    /// added; otherwise drops first, then adds.
    pub fn resolve(
        &self,
        defaults: CapabilitySet,
        held: CapabilitySet,
        sys_root: &std::path::Path,
    ) -> anyhow::Result<Security> {
        if self.privileged {
            return Ok(Security::privileged(held));
        }
        let set = |args: &[CapArg]| {
            args.iter()
                .fold(CapabilitySet::EMPTY, |set, arg| match arg {
                    CapArg::All => set.union(held),
                    CapArg::One(cap) => set.with(*cap),
                })
        };
        let (add, drop) = (set(&self.cap_add), set(&self.cap_drop));
        let caps = if self.cap_add.contains(&CapArg::All) {
            held.difference(drop)
        } else if self.cap_drop.contains(&CapArg::All) {
            add
        } else {
            defaults.difference(drop).union(add)
        };
        let missing = caps.difference(held);
        anyhow::ensure!(
            missing.is_empty(),
            "--cap-add {missing}: the engine itself does not hold it, so it cannot give it to a container"
        );
        Ok(Security::restricted(caps, sys_root))
    }
}
// ANCHOR_END: capabilities_from_flags

/// What the command runs as and where: docker's `-w` and `-u`.
#[derive(Args)]
pub struct ProcessArgs {
    /// The working directory inside the container (default /).
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run the command as UID[:GID] (numbers; default: root of the container).
    #[arg(long, short = 'u', value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<ch01_chroot::process::User>,
}

/// `1000` or `1000:100`: docker's `--user`, numbers only (names need the
/// image's /etc/passwd: chapter 5).
pub fn parse_user(text: &str) -> Result<ch01_chroot::process::User, String> {
    let bad = || format!("{text:?}: not a user: write UID or UID:GID as numbers, e.g. 1000:1000");
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?),
        None => {
            let uid = text.parse().map_err(|_| bad())?;
            (uid, uid)
        }
    };
    Ok(ch01_chroot::process::User {
        uid,
        gid,
        additional_gids: vec![],
    })
}

/// `run [NAMESPACE FLAGS] ROOTFS CMD...`
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The directory to use as /.
    pub rootfs: PathBuf,
    /// The command and its arguments, looked up on PATH inside ROOTFS.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// The uid and gid maps the flags ask for, adding the user namespace to
/// `namespaces` when they need one.
// ANCHOR: id_mappings
fn id_mappings(
    args: &NamespaceArgs,
    rootless: bool,
    namespaces: &mut namespaces::Namespaces,
) -> anyhow::Result<(Vec<IdMapping>, Vec<IdMapping>)> {
    Ok(if rootless {
        // Rootless: the only IDs we may map are our own.
        namespaces.insert(Namespace::User);
        (
            vec![IdMapping::root_is(Uid::effective().as_raw())],
            vec![IdMapping::root_is(Gid::effective().as_raw())],
        )
    } else if args.userns || namespaces.contains(&Namespace::User) {
        namespaces.insert(Namespace::User);
        let default = IdMapping::parse("0:100000:65536")?;
        let uids = if args.uidmap.is_empty() {
            vec![default]
        } else {
            args.uidmap.clone()
        };
        let gids = if args.gidmap.is_empty() {
            uids.clone()
        } else {
            args.gidmap.clone()
        };
        (uids, gids)
    } else {
        anyhow::ensure!(
            args.uidmap.is_empty() && args.gidmap.is_empty(),
            "--uidmap and --gidmap need a user namespace: add --userns"
        );
        (vec![], vec![])
    })
}
// ANCHOR_END: id_mappings

// ANCHOR: container_config
/// Turn the flags into a ContainerConfig: which namespaces, which maps.
pub fn container_config(
    args: NamespaceArgs,
    process_args: ProcessArgs,
    rootfs: PathBuf,
    cmd: Vec<String>,
) -> anyhow::Result<ContainerConfig> {
    let mut namespaces = args.ns.clone();
    let rootless = args.rootless || !Uid::effective().is_root();
    let (uid_mappings, gid_mappings) = id_mappings(&args, rootless, &mut namespaces)?;
    let hostname = args.hostname.unwrap_or_else(random_id);
    // HOSTNAME tells the truth: without a UTS namespace, the host's name.
    let seen_hostname = if namespaces.contains(&Namespace::Uts) {
        hostname.clone()
    } else {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut process = Process::new(cmd, &seen_hostname, std::env::var("TERM").ok().as_deref());
    if let Some(workdir) = process_args.workdir {
        anyhow::ensure!(
            workdir.starts_with('/'),
            "--workdir {workdir}: must be an absolute path inside the container"
        );
        process.cwd = workdir;
    }
    process.user = process_args.user;
    // What the container may do: chapter 2's default, changed by the flags.
    let proc_root = std::path::Path::new("/proc");
    let in_user_ns = namespaces.contains(&Namespace::User);
    let held = held_capabilities(proc_root, in_user_ns)?;
    let defaults = args
        .security
        .defaults
        .unwrap_or_else(capabilities::without_devices_cgroup);
    let security = args
        .security
        .resolve(defaults, held, std::path::Path::new("/sys"))?;
    Ok(ContainerConfig {
        rootfs,
        process,
        namespaces,
        hostname,
        uid_mappings,
        gid_mappings,
        deny_setgroups: rootless,
        init: !args.no_init,
        security,
        mounts: None,
        readonly_root: false,
        no_pivot: false,
        join: Vec::new(),
        gate: None,
        preserve_fds: 0,
    })
}
// ANCHOR_END: container_config

/// A short random container id, like docker's: 12 hex digits from the
/// kernel's random pool.
pub fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        bytes[..4].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The exit code for an error that ends a chapter binary: the code of the
/// container error inside it (125, 126 or 127), else 125.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(e) = err.downcast_ref::<crate::container::ContainerError>() {
        e.exit_code()
    } else if let Some(crate::exec::ExecError::Container(e)) =
        err.downcast_ref::<crate::exec::ExecError>()
    {
        e.exit_code()
    } else {
        ch01_chroot::error::EXIT_ENGINE
    }
}

/// `exec PID CMD...`: run CMD in the container whose first process is PID.
/// The container has its own hostname, so HOSTNAME is left out.
pub fn exec_command(pid: i32, cmd: Vec<String>) -> anyhow::Result<i32> {
    exec_command_with(pid, cmd, &|| Ok(()))
}

/// [`exec_command`] with a step the new process runs just before its exec
/// (see [`crate::exec::exec_in_with`]).
pub fn exec_command_with(
    pid: i32,
    cmd: Vec<String>,
    before_exec: ch01_chroot::launch::ChildStep,
) -> anyhow::Result<i32> {
    let mut process = Process::new(cmd, "", std::env::var("TERM").ok().as_deref());
    process.env.retain(|kv| !kv.starts_with("HOSTNAME="));
    let pid = nix::unistd::Pid::from_raw(pid);
    Ok(crate::exec::exec_in_with(
        pid,
        &process,
        std::path::Path::new("/proc"),
        before_exec,
    )?)
}

/// `mkrootfs [--from SOURCE] DIR`: chapter 1's mkrootfs, in every later binary.
#[derive(Args)]
pub struct MkrootfsArgs {
    /// Where to take the programs from.
    #[arg(long, value_enum, default_value_t = ch01_chroot::rootfs::Source::Auto)]
    pub from: ch01_chroot::rootfs::Source,
    /// The directory to create (it may exist, but must be empty).
    pub dir: PathBuf,
}

/// `mkrootfs DIR`: chapter 1's mkrootfs, reported in one line.
pub fn mkrootfs_command(args: &MkrootfsArgs) -> anyhow::Result<i32> {
    use anyhow::Context;
    let report =
        ch01_chroot::rootfs::mkrootfs(&args.dir, args.from, "/".as_ref()).context("mkrootfs")?;
    for note in report.notes() {
        eprintln!("{note}");
    }
    println!("{}", report.summary(&args.dir));
    Ok(0)
}
