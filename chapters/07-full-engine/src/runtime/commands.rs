//! What each command does, on top of the state directory and chapter 3.
//!
//! Every command that names a container locks its directory, reads its
//! state, and asks the kernel for its status (see [`super::state`]). The
//! commands that act on a live container use chapter 3's cgroup API:
//! `Cgroup::open` to find it, `freeze`/`thaw` for pause and resume,
//! `stats` and `oom_kills` for events, `kill_all` and the cgroup's
//! processes for `kill --all` and `ps`, `remove` for delete.
//!
//! `create` translates the bundle ([`super::translate`]) into chapter 2's
//! container and runs chapter 2's start sequence up to the gate
//! (`start_container`, with the container's init blocked on `exec.fifo`);
//! `start` opens the FIFO; `run` is both, then waits and deletes. `exec`
//! joins the container with chapter 2's `exec_in_with` and chapter 3's
//! cgroup join. `update` still needs chapter 3's `Cgroup::update`.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ch03_cgroups::{Cgroup, CgroupError, Layout};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid};
use oci_spec::runtime::{LinuxResources, Process};

use super::cli::{
    Cli, Command, CreateArgs, DeleteArgs, EventsArgs, ExecArgs, Format, KillArgs, ListArgs, PsArgs,
    Rootless, RunArgs, SpecArgs, UpdateArgs,
};
use super::config::{self, CONFIG_FILE, io_reason, load_bundle, parse_json};
use super::log::Logger;
use super::state::{
    ContainerDir, EXEC_FIFO, Root, State, StateError, Status, check_id, init_alive, spec_state,
    user_name,
};
use super::validate::{Host, validate, validate_process};
use super::{features, hooks, resources, seccomp, signals, spec, translate};

/// Write to stdout; a reader that went away (`| head`) is not an error
/// worth a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `exec` failed: runc exits 255 then, so an engine can tell the runtime's
/// failure from the program's own exit status.
#[derive(Debug, thiserror::Error)]
#[error("exec failed: {0:#}")]
pub struct ExecFailed(anyhow::Error);

/// The exit status for an error.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.is::<ExecFailed>() { 255 } else { 1 }
}

/// Where the kernel's views are: /proc and /sys (parameters for tests).
struct Runtime<'a> {
    root: Root,
    logger: &'a Logger,
    proc_root: PathBuf,
    rootless: bool,
}

/// Dispatch the parsed command line; the exit status on success.
pub fn run(cli: &Cli, logger: &Logger) -> Result<i32> {
    if cli.version {
        out!("{}", version());
        return Ok(0);
    }
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup: berth-runtime manages cgroups through the cgroup filesystem only, not through systemd: leave the flag out (podman: --cgroup-manager=cgroupfs; containerd: SystemdCgroup = false)"
        );
    }
    let Some(command) = &cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(0);
    };
    let euid_root = Uid::effective().is_root();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| Root::default_path(euid_root, xdg.as_deref()));
    let cx = Runtime {
        root: Root::new(root),
        logger,
        proc_root: PathBuf::from("/proc"),
        rootless: match cli.rootless {
            Rootless::Auto => !euid_root,
            Rootless::True => true,
            Rootless::False => false,
        },
    };
    logger.debug(&format!(
        "root {}, rootless {}",
        cx.root.path.display(),
        cx.rootless
    ));
    // Before a container exists, or a process joins one: run from a binary
    // no container can write (CVE-2019-5736; see chapter 2's sealed_exe).
    if matches!(
        command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        ch02_namespaces::sealed_exe::ensure_sealed()?;
    }
    match command {
        Command::Create(args) => create(&cx, args, None),
        Command::Run(args) => create(&cx, &args.create, Some(args)),
        Command::Start(args) => start(&cx, &args.id),
        Command::State(args) => state(&cx, &args.id),
        Command::List(args) => list(&cx, args),
        Command::Kill(args) => kill_command(&cx, args),
        Command::Delete(args) => delete(&cx, args),
        Command::Exec(args) => exec(&cx, args).map_err(|e| ExecFailed(e).into()),
        Command::Ps(args) => ps(&cx, args),
        Command::Pause(args) => pause(&cx, &args.id, true),
        Command::Resume(args) => pause(&cx, &args.id, false),
        Command::Update(args) => update(&cx, args),
        Command::Events(args) => events(&cx, args),
        Command::Spec(args) => spec_command(args),
        Command::Features => {
            outln!("{}", serde_json::to_string_pretty(&features::features())?);
            Ok(0)
        }
    }
}

/// `--version`: ours, the spec's and libseccomp's, as runc lists them.
pub fn version() -> String {
    let libseccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "berth-runtime version {}\nspec: {}\nlibseccomp: {libseccomp}\n",
        env!("CARGO_PKG_VERSION"),
        spec::OCI_VERSION
    )
}

/// Where a container's cgroup lives: below `parent`, named `leaf`, in
/// every hierarchy. `linux.cgroupsPath` `/libpod_parent/libpod-ID` (podman)
/// or `/default/ID` (containerd) says where; none means chapter 3's
/// `/berth/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPlace {
    pub parent: PathBuf,
    pub leaf: String,
}

impl CgroupPlace {
    pub fn of(cgroups_path: Option<&str>, id: &str) -> Result<CgroupPlace> {
        let Some(path) = cgroups_path else {
            return Ok(CgroupPlace {
                parent: PathBuf::from(ch03_cgroups::cgroup::PARENT),
                leaf: id.to_string(),
            });
        };
        if path.contains(':') {
            bail!(
                "config.json: linux.cgroupsPath: {path}: a systemd path (slice:prefix:name) needs the systemd cgroup driver, which berth-runtime does not have: use the cgroupfs driver (podman --cgroup-manager=cgroupfs; containerd SystemdCgroup = false)"
            );
        }
        let path = Path::new(path.trim_start_matches('/'));
        let (Some(leaf), parent) = (path.file_name(), path.parent()) else {
            bail!(
                "config.json: linux.cgroupsPath: {}: names no cgroup",
                path.display()
            );
        };
        Ok(CgroupPlace {
            parent: parent.map(Path::to_path_buf).unwrap_or_default(),
            leaf: leaf.to_string_lossy().into_owned(),
        })
    }
}

/// The container's cgroup, if it has one, where its state says.
fn container_cgroup(cx: &Runtime, id: &str) -> Result<Option<(Cgroup, Layout)>> {
    let layout = ch03_cgroups::detect(&cx.proc_root)?;
    // Read without the lock: the callers hold it already.
    let recorded = cx.root.peek_state(id).and_then(|state| state.cgroups_path);
    let place = CgroupPlace::of(recorded.as_deref(), id)?;
    let placement = ch03_cgroups::cgroup::Placement::for_current_user();
    match Cgroup::open_in(
        &layout,
        &cx.proc_root,
        &place.parent,
        &place.leaf,
        placement,
    ) {
        Ok(cgroup) => Ok(Some((cgroup, layout))),
        // No cgroup by that name, or none we could reach (v1 without root).
        Err(CgroupError::NotFound { .. } | CgroupError::InvalidId(_) | CgroupError::RootlessV1) => {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Is the cgroup frozen? v2: `cgroup.events` says `frozen 1`; v1: the
/// freezer hierarchy's `freezer.state` says FROZEN.
fn is_frozen(cgroup: &Cgroup, layout: &Layout) -> bool {
    use ch03_cgroups::{cgroupfs, mapping};
    cgroup.paths().iter().any(|dir| match layout {
        Layout::V2 { .. } => {
            let key = mapping::FROZEN.v2.key.unwrap_or("frozen");
            cgroupfs::read_keyed(&dir.join(mapping::FROZEN.v2.name), key)
                .ok()
                .flatten()
                == Some(1)
        }
        Layout::V1 { .. } => cgroupfs::read_value(&dir.join(mapping::FREEZE.v1.name))
            .is_ok_and(|s| s == mapping::freezer_state(1, true)),
    })
}

/// Lock the container and read its state and status.
fn open(cx: &Runtime, id: &str) -> Result<(ContainerDir, State, Status)> {
    let dir = cx.root.open_dir(id)?;
    let state = dir.read_state()?;
    let cgroup = container_cgroup(cx, id).ok().flatten();
    let status = dir.status(&state, &cx.proc_root, || {
        cgroup.as_ref().is_some_and(|(c, l)| is_frozen(c, l))
    });
    Ok((dir, state, status))
}

// ANCHOR: create
fn create(cx: &Runtime, args: &CreateArgs, run: Option<&RunArgs>) -> Result<i32> {
    let verb = if run.is_some() { "run" } else { "create" };
    check_id(&args.id)?;
    if cx.root.path.join(&args.id).exists() {
        return Err(StateError::Exists(args.id.clone()).into());
    }
    let bundle = load_bundle(&args.bundle)?;
    let accepted = validate(&bundle.spec, Host::detect(Path::new("/sys")))?;
    for warning in &accepted.warnings {
        cx.logger.warn(warning);
    }
    if bundle.spec.process().is_none() {
        bail!("config.json: process: missing: {verb} needs the process to run");
    }
    let seccomp = match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(profile) => Some(seccomp::compile(profile)?),
        None => None,
    };
    if seccomp.as_ref().is_some_and(|f| f.notify) {
        bail!(
            "linux.seccomp: SCMP_ACT_NOTIFY (listenerPath) is not supported by berth-runtime yet"
        );
    }
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    match (terminal, &args.console_socket) {
        (true, None) => {
            bail!("process.terminal is true: give --console-socket, where the pty master is sent")
        }
        (false, Some(_)) => {
            bail!("--console-socket given, but process.terminal is false: leave one of them out")
        }
        _ => {}
    }
    // ANCHOR_END: create
    // ANCHOR: create_steps
    // linux.cgroupsPath: where the cgroup goes, checked before anything
    // is made (a systemd slice path is refused by name).
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.display().to_string());
    CgroupPlace::of(cgroups_path.as_deref(), &args.id)?;
    let translated = translate::translate(&bundle, args.no_pivot)?;
    let steps = translate::ChildSteps::new(&bundle.spec)?;
    // From here on something exists: the state directory, locked. Any
    // failure removes it (the cgroup and the child go with their owners).
    let dir = cx.root.create_dir(&args.id)?;
    let path = dir.path.clone();
    let created = start_created(
        cx, args, run, &bundle, &accepted, translated, &steps, seccomp, dir,
    );
    if created.is_err() {
        let _ = std::fs::remove_dir_all(&path);
    }
    created
    // ANCHOR_END: create_steps
}

/// create's steps once the state directory exists (PHASE2 §5), and run's
/// start and wait.
// ANCHOR: start_created
#[allow(clippy::too_many_arguments)]
fn start_created(
    cx: &Runtime,
    args: &CreateArgs,
    run: Option<&RunArgs>,
    bundle: &config::Bundle,
    accepted: &super::validate::Accepted,
    mut translated: translate::Translated,
    steps: &translate::ChildSteps,
    seccomp: Option<seccomp::Filter>,
    dir: ContainerDir,
) -> Result<i32> {
    let id = &args.id;
    // 1. The gate: a FIFO in the state directory, opened O_PATH for the
    //    child, which opens it for writing just before its exec.
    let fifo = dir.path.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", fifo.display()))?;
    // The init opens it as root of its user namespace: the FIFO belongs
    // to the host ids that root maps to (runc does the same).
    let host_id = |maps: &[ch02_namespaces::idmap::IdMapping]| {
        maps.iter().find(|m| m.container_id == 0).map(|m| m.host_id)
    };
    let config = &translated.config;
    if config
        .namespaces
        .contains(&ch02_namespaces::namespaces::Namespace::User)
    {
        nix::unistd::chown(
            &fifo,
            host_id(&config.uid_mappings).map(nix::unistd::Uid::from_raw),
            host_id(&config.gid_mappings).map(nix::unistd::Gid::from_raw),
        )
        .with_context(|| format!("chown {}", fifo.display()))?;
    }
    let gate = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {}", fifo.display()))?;
    translated.config.gate = Some(std::os::fd::AsRawFd::as_raw_fd(&gate));
    translated.config.preserve_fds = args.preserve_fds;
    // ANCHOR_END: start_created
    // ANCHOR: start_created_cgroup
    // 2. The cgroup, with its limits, named by the container's id.
    let cgroup = create_cgroup(cx, id, accepted, &bundle.spec)?;
    let view = match (&cgroup, translated.cgroup_mount) {
        (Some(cgroup), true) => {
            let layout = ch03_cgroups::detect(&cx.proc_root)?;
            let userns = translated
                .config
                .namespaces
                .contains(&ch02_namespaces::namespaces::Namespace::User);
            if userns && matches!(layout, ch03_cgroups::Layout::V1 { .. }) {
                bail!(
                    "config.json: mounts: a cgroup mount in a new user namespace on cgroup v1 is not supported by berth-runtime yet: leave it out"
                );
            }
            // Without a cgroup namespace of its own, the container is
            // shown only its own cgroup (runc's bind), not the host's tree.
            let own_namespace = translated
                .config
                .namespaces
                .contains(&ch02_namespaces::namespaces::Namespace::Cgroup);
            let own = cgroup.paths();
            Some(ch03_cgroups::view::CgroupfsView::plan_for(
                &layout,
                &cx.proc_root,
                (!own_namespace).then_some(own.as_slice()),
            )?)
        }
        _ => None,
    };
    // 3. The state as hooks see it (pid filled in once the child exists).
    let mut state = State {
        oci_version: spec::OCI_VERSION.to_string(),
        id: id.clone(),
        init_process_pid: 0,
        init_process_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: bundle
            .spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        hooks: bundle.spec.hooks().clone(),
        process: bundle.spec.process().clone(),
        cgroups_path: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string()),
    };
    let spec_hooks = bundle.spec.hooks().clone().unwrap_or_default();
    // ANCHOR_END: start_created_cgroup
    // ANCHOR: start_created_hooks
    // 4. Chapter 2's start sequence, with the runtime's steps.
    let before_release = |pid: Pid| -> Result<(), ch02_namespaces::container::HookError> {
        if let Some(cgroup) = &cgroup {
            cgroup.add_process(pid)?;
        }
        let mut creating = spec_state(
            &State {
                init_process_pid: pid.as_raw(),
                ..state.clone()
            },
            Status::Created,
        );
        creating["status"] = "creating".into();
        let creating = serde_json::to_vec(&creating)?;
        #[allow(deprecated)]
        hooks::run_hooks("prestart", spec_hooks.prestart().as_ref(), &creating)?;
        hooks::run_hooks(
            "createRuntime",
            spec_hooks.create_runtime().as_ref(),
            &creating,
        )?;
        Ok(())
    };
    // createContainer: in the container's namespaces, its mounts made,
    // before pivot_root (the child waits meanwhile).
    let create_container = spec_hooks
        .create_container()
        .as_ref()
        .filter(|h| !h.is_empty());
    let before_pivot = |pid: Pid| -> Result<(), ch02_namespaces::container::HookError> {
        let mut creating = spec_state(
            &State {
                init_process_pid: pid.as_raw(),
                ..state.clone()
            },
            Status::Created,
        );
        creating["status"] = "creating".into();
        hooks::run_hooks_in_namespaces_of(
            "createContainer",
            create_container,
            &serde_json::to_vec(&creating)?,
            &cx.proc_root,
            pid.as_raw(),
        )?;
        Ok(())
    };
    // ANCHOR_END: start_created_hooks
    // ANCHOR: start_created_child
    let before_rootfs = || steps.before_rootfs();
    let after_rootfs = || {
        view.as_ref().map_or(Ok(()), |v| v.mount())?;
        steps.make_devices()
    };
    // The console's socket pair: the child sends the pty master over it.
    let console = match &args.console_socket {
        Some(_) => Some(
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .context("socketpair for the console")?,
        ),
        None => None,
    };
    let size = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.console_size())
        .map(|b| (b.height() as u16, b.width() as u16));
    let before_exec = || {
        if let Some((_, child_end)) = &console {
            super::console::set_up_console(child_end.as_fd(), size, true)?;
        }
        steps.before_exec()?;
        match &seccomp {
            Some(filter) => filter
                .load()
                .map(drop)
                .map_err(|e| ("seccomp (load linux.seccomp)", e)),
            None => Ok(()),
        }
    };
    let ch02_hooks = ch02_namespaces::container::Hooks {
        before_release: &before_release,
        before_rootfs: &before_rootfs,
        after_rootfs: &after_rootfs,
        before_exec: &before_exec,
        before_pivot: create_container.map(|_| &before_pivot as _),
        ..Default::default()
    };
    let started = ch02_namespaces::container::start_container(&translated.config, &ch02_hooks)?;
    // The pty master, from the child to --console-socket.
    if let (Some((ours, theirs)), Some(path)) = (console, &args.console_socket) {
        drop(theirs);
        let (_, master) = super::console::recv_fd(ours.as_fd())?;
        super::console::send_console(path, master.as_fd())?;
    }
    // ANCHOR_END: start_created_child
    // ANCHOR: start_created_finish
    // 5. The state and the pid file; the cgroup outlives us.
    state.init_process_pid = started.pid.as_raw();
    state.init_process_start = super::state::proc_stat(&cx.proc_root, state.init_process_pid)
        .map(|s| s.start_time)
        .context("read the init's start time")?;
    dir.write_state(&state)?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, state.init_process_pid)?;
    }
    if let Some(cgroup) = cgroup {
        cgroup.persist();
    }
    let Some(run) = run else {
        started.release();
        return Ok(0);
    };
    // run: start it at once, then wait (and delete) unless detached.
    release_gate(cx, &dir, &state)?;
    if run.detach {
        started.release();
        return Ok(0);
    }
    drop(dir);
    let code = started.wait();
    if !run.keep {
        delete(
            cx,
            &DeleteArgs {
                id: id.clone(),
                force: true,
            },
        )?;
    }
    Ok(code?)
    // ANCHOR_END: start_created_finish
}

/// The container's cgroup `berth/ID` with its limits; none when rootless
/// and no limit is asked for (runc's rule), or the host gives us none.
fn create_cgroup(
    cx: &Runtime,
    id: &str,
    accepted: &super::validate::Accepted,
    accepted_spec: &oci_spec::runtime::Spec,
) -> Result<Option<Cgroup>> {
    let layout = ch03_cgroups::detect(&cx.proc_root)?;
    // The device cgroup's rules, in the spec's order, as chapter 3's.
    let mut resources = accepted.cgroup.resources.clone();
    resources.devices = accepted
        .cgroup
        .devices
        .iter()
        .map(|rule| {
            use ch03_cgroups::DeviceType;
            use oci_spec::runtime::LinuxDeviceType;
            let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::B => DeviceType::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
                LinuxDeviceType::A | LinuxDeviceType::P => DeviceType::All,
            };
            ch03_cgroups::LinuxDeviceCgroup {
                allow: rule.allow(),
                typ,
                major: rule.major(),
                minor: rule.minor(),
                access: rule.access().clone().unwrap_or_else(|| "rwm".to_string()),
            }
        })
        .collect();
    // Then, as runc does, what every container may use whatever the spec's
    // rules say: mknod of any node, the standard devices, its ptys, and
    // each device of linux.devices.
    resources
        .devices
        .extend(default_device_rules(&bundle_devices(accepted_spec)));
    let cgroups_path = accepted_spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.display().to_string());
    let place = CgroupPlace::of(cgroups_path.as_deref(), id)?;
    let placement = ch03_cgroups::cgroup::Placement::for_current_user();
    match Cgroup::create_in(
        &layout,
        &cx.proc_root,
        &place.parent,
        &place.leaf,
        &resources,
        placement,
    ) {
        Ok(cgroup) => Ok(Some(cgroup)),
        Err(CgroupError::RootlessV1 | CgroupError::NotDelegated { .. })
            if cx.rootless && accepted.cgroup.resources == Default::default() =>
        {
            // runc's rootless behaviour: no limits asked, none needed, and
            // nothing to warn the user about on every start.
            cx.logger
                .debug("no cgroup for the container: this user may not create one (rootless)");
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// `linux.devices` as (type, major, minor).
fn bundle_devices(spec: &oci_spec::runtime::Spec) -> Vec<(ch03_cgroups::DeviceType, i64, i64)> {
    use oci_spec::runtime::LinuxDeviceType;
    spec.linux()
        .iter()
        .flat_map(|l| l.devices().iter().flatten())
        .filter_map(|d| {
            let typ = match d.typ() {
                LinuxDeviceType::B => ch03_cgroups::DeviceType::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => ch03_cgroups::DeviceType::Char,
                _ => return None,
            };
            Some((typ, d.major(), d.minor()))
        })
        .collect()
}

/// runc's allowed devices: mknod of anything (`c *:* m`, `b *:* m`),
/// /dev/null, zero, full, random, urandom, tty, console, ptmx and the
/// ptys, then `extra` (linux.devices), read, write and mknod.
fn default_device_rules(
    extra: &[(ch03_cgroups::DeviceType, i64, i64)],
) -> Vec<ch03_cgroups::LinuxDeviceCgroup> {
    use ch03_cgroups::{DeviceType, LinuxDeviceCgroup};
    let mut rules = vec![
        LinuxDeviceCgroup::allow(DeviceType::Char, None, None, "m"),
        LinuxDeviceCgroup::allow(DeviceType::Block, None, None, "m"),
    ];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(LinuxDeviceCgroup::allow(
            DeviceType::Char,
            Some(major),
            Some(minor),
            "rwm",
        ));
    }
    rules.push(LinuxDeviceCgroup::allow(
        DeviceType::Char,
        Some(136),
        None,
        "rwm",
    ));
    for &(typ, major, minor) in extra {
        rules.push(LinuxDeviceCgroup::allow(
            typ,
            Some(major),
            Some(minor),
            "rwm",
        ));
    }
    rules
}

/// `--pid-file`: the init's host PID, written whole or not at all.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&temp, pid.to_string())
        .and_then(|()| std::fs::rename(&temp, path))
        .with_context(|| format!("write the pid file {}", path.display()))
}

/// `start`: let the created container's init go on to the user's program.
/// The init is blocked opening `exec.fifo` for writing; opening it for
/// reading releases it, and it writes one byte before it execs.
// ANCHOR: start
fn start(cx: &Runtime, id: &str) -> Result<i32> {
    let (dir, state, status) = open(cx, id)?;
    match status {
        Status::Created => {}
        Status::Stopped => bail!("cannot start container {id}: it has stopped"),
        Status::Running | Status::Paused => {
            bail!("cannot start container {id}: it is already running")
        }
    }
    release_gate(cx, &dir, &state)
}

/// Open `exec.fifo` for reading, which lets the init go on; read its byte,
/// remove the FIFO (the container is running now), run the poststart hooks.
fn release_gate(cx: &Runtime, dir: &ContainerDir, state: &State) -> Result<i32> {
    let id = &state.id;
    let start_hooks = state
        .hooks
        .as_ref()
        .and_then(|h| h.start_container().as_ref());
    let starting = serde_json::to_vec(&spec_state(state, Status::Created))?;
    // startContainer: in the container's namespaces (its root is the
    // container's now), before the program runs.
    hooks::run_hooks_in_namespaces_of(
        "startContainer",
        start_hooks,
        &starting,
        &cx.proc_root,
        state.init_process_pid,
    )?;
    let fifo = dir.path.join(EXEC_FIFO);
    // Non-blocking, so a dead init cannot leave us waiting forever.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .with_context(|| format!("open {}", fifo.display()))?;
    let mut file = file;
    let mut byte = [0u8; 1];
    loop {
        match file.read(&mut byte) {
            Ok(1) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", fifo.display())),
        }
        if !init_alive(&cx.proc_root, state) {
            bail!("cannot start container {id}: its init exited before it was released");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(&fifo).with_context(|| format!("remove {}", fifo.display()))?;
    let running = serde_json::to_vec(&spec_state(state, Status::Running))?;
    let poststart = state.hooks.as_ref().and_then(|h| h.poststart().as_ref());
    if let Err(err) = hooks::run_hooks("poststart", poststart, &running) {
        // runtime-spec: a failed poststart hook is a warning.
        cx.logger.warn(&err.to_string());
    }
    Ok(0)
}
// ANCHOR_END: start

/// The spec's state with runc's extra fields, as `state` prints it.
fn state_view(state: &State, status: Status, owner: &str) -> serde_json::Value {
    let mut view = spec_state(state, status);
    view["rootfs"] = serde_json::json!(state.rootfs);
    view["created"] = serde_json::json!(state.created);
    view["owner"] = serde_json::json!(owner);
    view
}

fn state(cx: &Runtime, id: &str) -> Result<i32> {
    let (_dir, state, status) = open(cx, id)?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&state_view(&state, status, ""))?
    );
    Ok(0)
}

fn list(cx: &Runtime, args: &ListArgs) -> Result<i32> {
    let mut rows = Vec::new();
    for id in cx.root.ids()? {
        let (dir, state, status) = match open(cx, &id) {
            Ok(found) => found,
            // Deleted meanwhile, or a create killed before its state.
            Err(err) if matches!(err.downcast_ref(), Some(StateError::NotExist(_))) => continue,
            Err(err) => return Err(err),
        };
        let owner = dir
            .owner_uid()
            .map(|uid| user_name(Path::new("/"), uid))
            .unwrap_or_default();
        rows.push(state_view(&state, status, &owner));
    }
    if args.quiet {
        for row in &rows {
            outln!("{}", row["id"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    match args.format {
        // runc prints `null` for no containers.
        Format::Json if rows.is_empty() => outln!("null"),
        Format::Json => outln!("{}", serde_json::to_string(&rows)?),
        Format::Table => out!("{}", table(&rows)),
    }
    Ok(0)
}

/// runc's table: columns padded to at least 12, 3 spaces apart (Go's
/// tabwriter with minwidth 12 and padding 3); the last one unpadded.
fn table(rows: &[serde_json::Value]) -> String {
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let keys = ["id", "pid", "status", "bundle", "created", "owner"];
    let cells: Vec<Vec<String>> = std::iter::once(header.map(String::from).to_vec())
        .chain(rows.iter().map(|row| {
            keys.iter()
                .map(|k| match &row[*k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|col| {
            cells
                .iter()
                .map(|r| r[col].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        for (col, cell) in row.iter().enumerate() {
            if col + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[col]));
            }
        }
        out.push('\n');
    }
    out
}

// ANCHOR: kill
fn kill_command(cx: &Runtime, args: &KillArgs) -> Result<i32> {
    let signal = signals::parse_signal(&args.signal).map_err(anyhow::Error::msg)?;
    let (_dir, state, status) = open(cx, &args.id)?;
    if status == Status::Stopped {
        // containerd reads "container not running" as "already exited".
        bail!("cannot kill {}: container not running", args.id);
    }
    if args.all {
        let Some((cgroup, layout)) = container_cgroup(cx, &args.id)? else {
            bail!(
                "kill --all {}: the container has no cgroup to find its processes in",
                args.id
            );
        };
        if signal == Signal::SIGKILL as i32 {
            cgroup.kill_all()?;
            return Ok(0);
        }
        // Frozen, no process can fork past the list we signal.
        let was_frozen = is_frozen(&cgroup, &layout);
        cgroup.freeze()?;
        let dir = &cgroup.paths()[0];
        let sent = ch03_cgroups::cgroupfs::procs_in_subtree(dir).map(|pids| {
            for pid in pids {
                // SAFETY: kill(2) with a pid from the cgroup and a signal
                // number checked by parse_signal.
                unsafe { libc::kill(pid.as_raw(), signal) };
            }
        });
        if !was_frozen {
            cgroup.thaw()?;
        }
        sent?;
        return Ok(0);
    }
    // SAFETY: kill(2) of the init, whose pid and start time `open` checked;
    // the signal number was checked by parse_signal.
    if unsafe { libc::kill(state.init_process_pid, signal) } != 0 {
        let errno = nix::errno::Errno::last();
        bail!(
            "kill {} (pid {}): {}",
            args.id,
            state.init_process_pid,
            errno.desc().to_lowercase()
        );
    }
    Ok(0)
}
// ANCHOR_END: kill

/// Kill the container's processes and wait until its init is gone.
fn kill_container(cx: &Runtime, id: &str, state: &State) -> Result<()> {
    if let Some((cgroup, _)) = container_cgroup(cx, id)? {
        cgroup.kill_all()?;
    } else if init_alive(&cx.proc_root, state) {
        let _ = kill(Pid::from_raw(state.init_process_pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while init_alive(&cx.proc_root, state) {
        if Instant::now() > deadline {
            bail!(
                "container {id}: its init (pid {}) survived SIGKILL for 10 s",
                state.init_process_pid
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

// ANCHOR: delete
fn delete(cx: &Runtime, args: &DeleteArgs) -> Result<i32> {
    let id = &args.id;
    let opened = cx
        .root
        .open_dir(id)
        .and_then(|dir| dir.read_state().map(|s| (dir, s)));
    let (dir, state) = match opened {
        Ok(found) => found,
        Err(StateError::NotExist(_)) if args.force => {
            // A create killed before it wrote its state leaves a directory
            // (and perhaps a cgroup): --force cleans up what is there.
            check_id(id)?;
            if let Some((cgroup, _)) = container_cgroup(cx, id)? {
                cgroup.remove()?;
            }
            match std::fs::remove_dir_all(cx.root.path.join(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => bail!(
                    "remove {}: {}",
                    cx.root.path.join(id).display(),
                    io_reason(&e)
                ),
            }
            return Ok(0);
        }
        Err(err) => return Err(err.into()),
    };
    let cgroup = container_cgroup(cx, id)?;
    let status = dir.status(&state, &cx.proc_root, || {
        cgroup.as_ref().is_some_and(|(c, l)| is_frozen(c, l))
    });
    match status {
        Status::Stopped => {}
        // A created container has not run anything yet: runc deletes it.
        Status::Created => kill_container(cx, id, &state)?,
        Status::Running | Status::Paused if args.force => kill_container(cx, id, &state)?,
        Status::Running | Status::Paused => bail!(
            "cannot delete container {id} that is not stopped: {status} (stop it first, or use --force)"
        ),
    }
    if let Some((cgroup, _)) = cgroup {
        cgroup.remove()?;
    }
    dir.remove()?;
    // runtime-spec: poststop hooks run after the container is deleted; a
    // failure is a warning.
    let stopped = serde_json::to_vec(&spec_state(&state, Status::Stopped))?;
    let poststop = state.hooks.as_ref().and_then(|h| h.poststop().as_ref());
    if let Err(err) = hooks::run_hooks("poststop", poststop, &stopped) {
        cx.logger.warn(&err.to_string());
    }
    Ok(0)
}
// ANCHOR_END: delete

fn pause(cx: &Runtime, id: &str, freeze: bool) -> Result<i32> {
    let (_dir, _state, status) = open(cx, id)?;
    let Some((cgroup, _)) = container_cgroup(cx, id)? else {
        bail!("container {id} has no cgroup: nothing to freeze");
    };
    if freeze {
        if !matches!(status, Status::Running | Status::Created) {
            bail!("cannot pause {id}: container not running ({status})");
        }
        cgroup.freeze()?;
    } else {
        if status != Status::Paused {
            bail!("cannot resume {id}: container not paused ({status})");
        }
        cgroup.thaw()?;
    }
    Ok(0)
}

// ANCHOR: ps
fn ps(cx: &Runtime, args: &PsArgs) -> Result<i32> {
    let (_dir, _state, _status) = open(cx, &args.id)?;
    let Some((cgroup, _)) = container_cgroup(cx, &args.id)? else {
        bail!("container {} has no cgroup to list processes from", args.id);
    };
    let pids: Vec<i32> = ch03_cgroups::cgroupfs::procs_in_subtree(&cgroup.paths()[0])?
        .iter()
        .map(|p| p.as_raw())
        .collect();
    if args.format == Format::Json {
        outln!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let output = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "ps {}: {}: {}",
            ps_args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    out!("{}", filter_ps(&text, &pids)?);
    Ok(0)
}
// ANCHOR_END: ps

/// Keep ps's header and the lines whose PID column is one of `pids`.
fn filter_ps(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|f| f == "PID") else {
        bail!("ps: no PID column in its output: add pid to its -o fields");
    };
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// One `stats` event, with runc's field names for what chapter 3 reads.
fn stats_event(id: &str, cgroup: &Cgroup) -> Result<serde_json::Value> {
    let stats = cgroup.stats()?;
    let mut usage = serde_json::json!({"usage": stats.memory_current});
    if let Some(peak) = stats.memory_peak {
        usage["max"] = peak.into();
    }
    if let Some(limit) = cgroup.memory_limit() {
        usage["limit"] = limit.into();
    }
    let mut cpu = serde_json::json!({"usage": {"total": stats.cpu_usage.as_nanos() as u64}});
    if let Some(throttled) = stats.nr_throttled {
        cpu["throttling"] = serde_json::json!({"throttled_periods": throttled});
    }
    Ok(serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {"cpu": cpu, "memory": {"usage": usage}, "pids": {"current": stats.pids_current}}
    }))
}

fn events(cx: &Runtime, args: &EventsArgs) -> Result<i32> {
    let (dir, state, _status) = open(cx, &args.id)?;
    // The lock is for reading the state: events runs for a long time.
    drop(dir);
    let Some((cgroup, _)) = container_cgroup(cx, &args.id)? else {
        bail!(
            "container {} has no cgroup to read statistics from",
            args.id
        );
    };
    if args.stats {
        outln!("{}", stats_event(&args.id, &cgroup)?);
        return Ok(0);
    }
    let mut ooms = cgroup.oom_kills().unwrap_or(0);
    let mut next = Instant::now();
    while init_alive(&cx.proc_root, &state) {
        if Instant::now() >= next {
            outln!("{}", stats_event(&args.id, &cgroup)?);
            next += args.interval;
        }
        let now = cgroup.oom_kills().unwrap_or(ooms);
        if now > ooms {
            outln!("{}", serde_json::json!({"type": "oom", "id": args.id}));
            ooms = now;
        }
        std::thread::sleep(Duration::from_millis(100).min(args.interval));
    }
    Ok(0)
}

/// `exec`'s process: `--process` as it is, or the argv form built on the
/// container's own process.
pub fn exec_process(args: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(path) = &args.process {
        let bytes = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            bytes
        } else {
            std::fs::read(path).with_context(|| format!("read {}", path.display()))?
        };
        let process: Process = parse_json(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string().replacen("config.json: ", "process.json: ", 1)
            )
        })?;
        config::check_process(&process, "process").map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string().replacen("config.json: ", "process.json: ", 1)
            )
        })?;
        return Ok(process);
    }
    if args.command.is_empty() {
        bail!("exec {}: give a command to run, or --process FILE", args.id);
    }
    let mut process = base.cloned().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.into());
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    let mut user = process.user().clone();
    if let Some(text) = &args.user {
        let (uid, gid) = text.split_once(':').unwrap_or((text, ""));
        let bad = || anyhow::anyhow!("--user {text:?}: use UID or UID:GID (numbers)");
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if !gid.is_empty() {
            user.set_gid(gid.parse().map_err(|_| bad())?);
        }
    }
    if !args.additional_gids.is_empty() {
        user.set_additional_gids(Some(args.additional_gids.clone()));
    }
    process.set_user(user);
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &args.apparmor {
        process.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        process.set_selinux_label(Some(label.clone()));
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(name)).map_err(|_| {
                    anyhow::anyhow!("--cap {name:?}: not a capability (like CAP_NET_ADMIN)")
                })?;
            // runc's --cap: added to every set the process has.
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_ambient(add(caps.ambient()));
        }
        process.set_capabilities(Some(caps));
    }
    config::check_process(&process, "process").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(process)
}

fn exec(cx: &Runtime, args: &ExecArgs) -> Result<i32> {
    let (dir, state, status) = open(cx, &args.id)?;
    let process = exec_process(args, state.process.as_ref())?;
    let mut warnings = Vec::new();
    validate_process(
        &process,
        "process",
        Host::detect(Path::new("/sys")),
        &mut warnings,
    )?;
    for warning in &warnings {
        cx.logger.warn(warning);
    }
    match status {
        Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => bail!(
            "cannot exec in paused container {}: resume it first, or use --ignore-paused",
            args.id
        ),
        Status::Created | Status::Stopped => {
            bail!(
                "cannot exec in container {}: it is {status}, not running",
                args.id
            )
        }
    }
    // A terminal: the pty made by the new process in the container's own
    // devpts (as create's console), its master sent to --console-socket
    // over a connection made now, while the host's tree is ours.
    let terminal = process.terminal() == Some(true);
    // Without --console-socket (a foreground `exec -t`, as runc allows),
    // the master stays here and this process relays it to its own stdio.
    let console = match (terminal, &args.console_socket) {
        (true, None) if args.detach => bail!(
            "exec -d -t: a detached terminal needs --console-socket, where the pty master is sent"
        ),
        (false, Some(_)) => {
            bail!("exec: --console-socket given, but no terminal: add -t, or leave the socket out")
        }
        (true, path) => {
            let stream = match path {
                Some(path) => Some(std::os::unix::net::UnixStream::connect(path).with_context(
                    || format!("connect to the console socket {}", path.display()),
                )?),
                None => None,
            };
            let pair = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .context("socketpair for the console")?;
            Some((stream, pair))
        }
        (false, None) => None,
    };
    let size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    if args.preserve_fds > 0 {
        bail!("exec --preserve-fds: not supported by berth-runtime yet");
    }
    let user = process.user();
    let command = ch01_chroot::Process {
        args: process.args().clone().unwrap_or_default(),
        env: process.env().clone().unwrap_or_default(),
        cwd: process.cwd().display().to_string(),
        user: Some(ch01_chroot::process::User {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
        }),
    };
    // The container's cgroup, joined by the new process before its exec.
    let join = match container_cgroup(cx, &args.id)? {
        Some((cgroup, _)) => Some(ch03_cgroups::exec::CgroupJoin::open(&cgroup)?),
        None => None,
    };
    let before_exec = || {
        if let Some((_, (_, child_end))) = &console {
            super::console::set_up_console(child_end.as_fd(), size, false)?;
        }
        join.as_ref().map_or(Ok(()), |j| j.join())
    };
    let init = Pid::from_raw(state.init_process_pid);
    // The pid file's directory, opened while the host's tree is ours: we
    // join the container's mount namespace to start the process.
    let pid_file = match &args.pid_file {
        Some(path) => Some(PidFileDir::open(path)?),
        None => None,
    };
    drop(dir);
    if !args.detach && pid_file.is_none() && console.is_none() {
        return Ok(ch02_namespaces::exec::exec_in_with(
            init,
            &command,
            &cx.proc_root,
            &before_exec,
        )?);
    }
    let child = ch02_namespaces::exec::exec_spawn(init, &command, &cx.proc_root, &before_exec)?;
    // The pty master, from the new process to --console-socket, or kept
    // to relay it here until the process ends.
    let mut relay = None;
    if let Some((stream, (ours, _))) = &console {
        let (_, master) = super::console::recv_fd(ours.as_fd())?;
        match stream {
            Some(stream) => {
                super::console::send_fd(stream.as_fd(), super::console::PTY_NAME, master.as_fd())?
            }
            None => relay = Some(super::console::Relay::start(master)?),
        }
    }
    if let Some(dir) = pid_file {
        dir.write(child.as_raw())?;
    }
    if args.detach {
        return Ok(0);
    }
    // A relayed terminal first: its output ends when the process does.
    if let Some(relay) = relay {
        relay.finish();
    }
    let status = nix::sys::wait::waitpid(child, None).context("waitpid")?;
    Ok(ch01_chroot::exit_code(status))
}

/// `--pid-file`'s directory, open, and the file's name in it.
struct PidFileDir {
    dir: std::os::fd::OwnedFd,
    name: std::ffi::OsString,
}

impl PidFileDir {
    fn open(path: &Path) -> Result<PidFileDir> {
        let path = std::path::absolute(path)?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = nix::fcntl::open(
            parent,
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("open {}", parent.display()))?;
        let name = path.file_name().unwrap_or_default().to_os_string();
        Ok(PidFileDir { dir, name })
    }

    /// Write the PID to a temporary file and rename it into place.
    fn write(&self, pid: i32) -> Result<()> {
        use nix::fcntl::{OFlag, openat, renameat};
        let mut temp = std::ffi::OsString::from(".");
        temp.push(&self.name);
        temp.push(".tmp");
        let fd = openat(
            &self.dir,
            temp.as_os_str(),
            OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .context("write the pid file")?;
        nix::unistd::write(&fd, pid.to_string().as_bytes()).context("write the pid file")?;
        renameat(
            &self.dir,
            temp.as_os_str(),
            &self.dir,
            self.name.as_os_str(),
        )
        .context("rename the pid file")
    }
}

/// `update`'s request: `-r` (a file or `-`), or the flags, as the spec's
/// `linux.resources`.
pub fn update_request(args: &UpdateArgs) -> Result<LinuxResources> {
    let bytes = match &args.resources {
        Some(path) if path == Path::new("-") => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            bytes
        }
        Some(path) => std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        None => {
            if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
                bail!("update: Intel RDT schemas are not supported by berth-runtime");
            }
            let mut memory = serde_json::Map::new();
            let mut cpu = serde_json::Map::new();
            let mut r = serde_json::Map::new();
            let put = |map: &mut serde_json::Map<String, serde_json::Value>,
                       key: &str,
                       value: Option<serde_json::Value>| {
                if let Some(v) = value {
                    map.insert(key.to_string(), v);
                }
            };
            put(&mut memory, "limit", args.memory.map(Into::into));
            put(
                &mut memory,
                "reservation",
                args.memory_reservation.map(Into::into),
            );
            put(&mut memory, "swap", args.memory_swap.map(Into::into));
            put(&mut cpu, "shares", args.cpu_share.map(Into::into));
            put(&mut cpu, "quota", args.cpu_quota.map(Into::into));
            put(&mut cpu, "period", args.cpu_period.map(Into::into));
            put(
                &mut cpu,
                "realtimeRuntime",
                args.cpu_rt_runtime.map(Into::into),
            );
            put(
                &mut cpu,
                "realtimePeriod",
                args.cpu_rt_period.map(Into::into),
            );
            put(&mut cpu, "cpus", args.cpuset_cpus.clone().map(Into::into));
            put(&mut cpu, "mems", args.cpuset_mems.clone().map(Into::into));
            if !memory.is_empty() {
                r.insert("memory".into(), memory.into());
            }
            if !cpu.is_empty() {
                r.insert("cpu".into(), cpu.into());
            }
            put(
                &mut r,
                "pids",
                args.pids_limit.map(|l| serde_json::json!({"limit": l})),
            );
            put(
                &mut r,
                "blockIO",
                args.blkio_weight.map(|w| serde_json::json!({"weight": w})),
            );
            serde_json::to_vec(&r)?
        }
    };
    parse_json(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}",
            e.to_string().replacen("config.json: ", "resources: ", 1)
        )
    })
}

fn update(cx: &Runtime, args: &UpdateArgs) -> Result<i32> {
    let request = update_request(args)?;
    // Checked now, so a bad request is refused whatever the container's state.
    let checked = resources::cgroup_request(&request, "resources").map_err(|e| {
        anyhow::anyhow!("{}", e.to_string().replacen("config.json: ", "update: ", 1))
    })?;
    let (_dir, _state, status) = open(cx, &args.id)?;
    if status == Status::Stopped {
        bail!("cannot update {}: container not running", args.id);
    }
    let Some((mut cgroup, _)) = container_cgroup(cx, &args.id)? else {
        bail!("container {} has no cgroup: no limits to update", args.id);
    };
    // Chapter 3 writes what the request sets; the rest stays. (Device
    // rules are not changed by an update, as runc's.)
    cgroup.update(&checked.resources)?;
    Ok(0)
}

// ANCHOR: spec_command
fn spec_command(args: &SpecArgs) -> Result<i32> {
    let bundle = args.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    if !bundle.is_dir() {
        bail!("bundle {}: no such directory", bundle.display());
    }
    let path = bundle.join(CONFIG_FILE);
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let mut spec = spec::default_spec();
    if args.rootless {
        let (uid, gid) = (
            Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        );
        spec::to_rootless(&mut spec, uid, gid);
    }
    let text = spec::to_tabbed_json(&spec::to_stable_json(&spec));
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
// ANCHOR_END: spec_command

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth-runtime").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn every_runc_flag_parses() {
        let cli = parse(&[
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "--debug",
            "--rootless",
            "true",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "--no-pivot",
            "--preserve-fds",
            "2",
            "--no-new-keyring",
            "c1",
        ]);
        assert!(cli.debug && cli.rootless == Rootless::True);
        let Some(Command::Create(c)) = cli.command else {
            panic!()
        };
        assert_eq!((c.id.as_str(), c.preserve_fds, c.no_pivot), ("c1", 2, true));
        let Some(Command::Run(r)) =
            parse(&["run", "-b", "/b", "-d", "--keep", "--no-subreaper", "c1"]).command
        else {
            panic!()
        };
        assert!(r.detach && r.keep && r.no_subreaper);
        let Some(Command::Kill(k)) = parse(&["kill", "-a", "c1", "9"]).command else {
            panic!()
        };
        assert_eq!((k.all, k.signal.as_str()), (true, "9"));
        let Some(Command::Kill(k)) = parse(&["kill", "c1"]).command else {
            panic!()
        };
        assert_eq!(k.signal, "SIGTERM");
        let Some(Command::Ps(p)) = parse(&["ps", "c1", "-o", "pid,comm"]).command else {
            panic!()
        };
        assert_eq!(p.ps_args, ["-o", "pid,comm"]);
        let Some(Command::Ps(p)) = parse(&["ps", "-f", "json", "c1"]).command else {
            panic!()
        };
        assert_eq!(p.format, Format::Json);
        let Some(Command::Events(e)) = parse(&["events", "--interval", "1s", "c1"]).command else {
            panic!()
        };
        assert_eq!(e.interval, Duration::from_secs(1));
        for args in [
            &["delete", "-f", "c1"][..],
            &["list", "-f", "json", "-q"],
            &["spec", "--rootless", "--bundle", "/b"],
            &["features"],
            &["start", "c1"],
            &["state", "c1"],
            &["pause", "c1"],
            &["resume", "c1"],
            &["update", "-r", "-", "c1"],
            &["update", "--cpu-shares", "512", "c1"],
        ] {
            parse(args);
        }
    }

    #[test]
    fn exec_builds_the_process_from_its_flags() {
        let Some(Command::Exec(args)) = parse(&[
            "exec",
            "-e",
            "A=1",
            "--cwd",
            "/tmp",
            "-u",
            "1000:100",
            "-g",
            "5",
            "--cap",
            "CAP_NET_ADMIN",
            "--no-new-privs",
            "-t",
            "c1",
            "sh",
            "-c",
            "echo -n hi",
        ])
        .command
        else {
            panic!()
        };
        let base: Process = serde_json::from_value(serde_json::json!({
            "args": ["init"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        .unwrap();
        let p = exec_process(&args, Some(&base)).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["sh", "-c", "echo -n hi"]);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=1"]);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5][..]));
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        assert!(
            caps.bounding()
                .as_ref()
                .unwrap()
                .contains(&oci_spec::runtime::Capability::NetAdmin)
        );

        let Some(Command::Exec(args)) = parse(&["exec", "-u", "root", "c1", "sh"]).command else {
            panic!()
        };
        assert_eq!(
            exec_process(&args, None).unwrap_err().to_string(),
            "--user \"root\": use UID or UID:GID (numbers)"
        );
        let Some(Command::Exec(args)) = parse(&["exec", "c1"]).command else {
            panic!()
        };
        assert_eq!(
            exec_process(&args, None).unwrap_err().to_string(),
            "exec c1: give a command to run, or --process FILE"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("process.json");
        std::fs::write(
            &file,
            r#"{"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
        )
        .unwrap();
        let Some(Command::Exec(args)) =
            parse(&["exec", "-p", file.to_str().unwrap(), "c1"]).command
        else {
            panic!()
        };
        assert_eq!(
            exec_process(&args, None).unwrap_err().to_string(),
            "process.json: process.args: empty: name the program to run"
        );
        std::fs::write(
            &file,
            r#"{"args": ["sh"], "cwd": "/", "user": {"uid": -1}}"#,
        )
        .unwrap();
        assert!(
            exec_process(&args, None)
                .unwrap_err()
                .to_string()
                .starts_with("process.json: user.uid: invalid value: integer `-1`")
        );
    }

    #[test]
    fn update_flags_become_the_specs_resources() {
        let Some(Command::Update(args)) = parse(&[
            "update",
            "--memory",
            "67108864",
            "--memory-swap",
            "-1",
            "--cpu-share",
            "512",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "64",
            "--blkio-weight",
            "300",
            "c1",
        ])
        .command
        else {
            panic!()
        };
        let r = update_request(&args).unwrap();
        let checked = resources::cgroup_request(&r, "resources")
            .unwrap()
            .resources;
        assert_eq!(checked.memory_limit(), Some(64 << 20));
        assert_eq!(checked.memory.unwrap().swap, Some(-1));
        let cpu = checked.cpu.unwrap();
        assert_eq!(
            (cpu.shares, cpu.quota, cpu.period, cpu.cpus.as_deref()),
            (Some(512), Some(50_000), Some(100_000), Some("0"))
        );
        assert_eq!(checked.pids.unwrap().limit, 64);
        assert_eq!(checked.block_io.unwrap().weight, Some(300));
        let Some(Command::Update(args)) =
            parse(&["update", "--memory-reservation", "1048576", "c1"]).command
        else {
            panic!()
        };
        let err = resources::cgroup_request(&update_request(&args).unwrap(), "resources")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "config.json: resources.memory.reservation: berth-runtime cannot apply"
            ),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.json");
        std::fs::write(&file, r#"{"memory": {"limit": "lots"}}"#).unwrap();
        let Some(Command::Update(args)) =
            parse(&["update", "-r", file.to_str().unwrap(), "c1"]).command
        else {
            panic!()
        };
        assert!(
            update_request(&args)
                .unwrap_err()
                .to_string()
                .starts_with("resources: memory.limit: invalid type")
        );
    }

    #[test]
    fn ps_output_is_filtered_by_the_pid_column() {
        let text = "UID  PID  PPID CMD\nroot 1 0 init\nroot 42 1 sleep\nroot 420 1 other\n";
        assert_eq!(
            filter_ps(text, &[42]).unwrap(),
            "UID  PID  PPID CMD\nroot 42 1 sleep\n"
        );
        assert!(
            filter_ps("USER CMD\nroot x\n", &[1])
                .unwrap_err()
                .to_string()
                .starts_with("ps: no PID column")
        );
    }

    #[test]
    fn the_list_table_pads_like_gos_tabwriter() {
        let row = serde_json::json!({"id": "t1", "pid": 30462, "status": "created", "bundle": "/tmp/rt/b",
            "created": "2026-12-05T13:12:23.454416469Z", "owner": "root"});
        assert_eq!(
            table(&[row]),
            "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n\
             t1          30462       created     /tmp/rt/b   2026-12-05T13:12:23.454416469Z   root\n"
        );
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
    }
}
