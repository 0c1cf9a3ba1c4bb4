//! `start`: the bundle prepared, a monitor started, the container running.
//!
//! Under the container's lock:
//!
//! 1. **The truth first**: a container whose record says running may have
//!    died with its monitor ([`super::reconcile`]).
//! 2. **Prepare** (every start, as docker does): mount the overlay; find
//!    the user in the image's /etc/passwd (chapter 5); build the
//!    environment (PATH, HOSTNAME, TERM, the Config's Env, HOME); make
//!    the working directory if the image lacks it; the network
//!    ([`super::network`]: namespace, addresses, /etc/hostname, hosts and
//!    resolv.conf); write `bundle/config.json`.
//! 3. **A monitor** ([`super::monitor_client::spawn`]), which runs the
//!    runtime's `create` and, for a detached start, `start`, and reports.
//! 4. **Running**: recorded with the pid, and the `start` event, before the
//!    lock goes (the monitor records the exit, under the same lock, so the
//!    two writes come in order even for `/bin/true`).
//!
//! An attached start (`run` without `-d`, `start -a`) stops after the
//! create, lets the lock go, and attaches with the `start` flag: the
//! monitor starts the container once the client listens, so not a byte of
//! output is missed.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use ch05_images::user::{ExecUser, apply_image_env, resolve_user_in_layers};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::bundle::{BundleInputs, host_devices, runtime_config};
use super::monitor_client::{Report, spawn};
use super::reconcile::reconcile;
use super::record::{Container, ContainerDir, Status, now_rfc3339, write_atomic};
use super::seccomp_profile::seccomp_for;
use super::security::parse_security_opts;
use super::{Engine, EngineError, Result, rootfs};
use crate::monitor::config::{MonitorConfig, live_monitor};
use crate::monitor::protocol::{AttachRequest, Request};

/// How to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Start and return (`run -d`, `start`).
    Detached,
    /// Attach first, then start (`run`, `start -a`).
    Attached(AttachRequest),
}

/// What `start` did.
#[derive(Debug)]
pub enum Started {
    /// It runs.
    Detached,
    /// It runs, and this stream is attached to it.
    Attached(UnixStream),
    /// It was running already (`start` of a running container is no error).
    AlreadyRunning,
}

/// The `PATH` a container gets when its image sets none (docker's).
pub const DEFAULT_PATH: &str = ch01_chroot::process::DEFAULT_PATH;

/// The static init program `--init` mounts in: `BERTH_INIT`, else the
/// first static `berth-init` found beside our own binary, where
/// `cargo xtask berth-init` builds it (`target/static/TRIPLE/release/`), or
/// in /usr/local/libexec/berth and /usr/libexec/berth (where a package
/// would put it, as docker's puts docker-init).
pub fn init_binary() -> Result<PathBuf> {
    let hint = "build it with `cargo xtask berth-init` (a static program: it runs inside any image), or set BERTH_INIT";
    let is_static = |path: &Path| {
        ch01_chroot::elf::read_needs(Path::new("/"), &path.display().to_string())
            .is_ok_and(|needs| ch01_chroot::elf::is_static(&needs))
    };
    if let Some(path) = std::env::var_os("BERTH_INIT") {
        let path = PathBuf::from(path);
        return if is_static(&path) {
            Ok(path)
        } else {
            Err(EngineError::msg(format!(
                "--init: {} is missing or not a static program: {hint}",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::msg(format!("find our own binary: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let candidates = [
        dir.join("berth-init"),
        dir.join("../static")
            .join(&triple)
            .join("release/berth-init"),
        PathBuf::from("/usr/local/libexec/berth/berth-init"),
        PathBuf::from("/usr/libexec/berth/berth-init"),
    ];
    candidates
        .into_iter()
        .find(|path| is_static(path))
        .ok_or_else(|| EngineError::msg(format!("--init: no static berth-init found: {hint}")))
}

/// The process environment, as docker builds it: PATH, HOSTNAME and TERM
/// (with a terminal) first, the Config's Env over them, HOME last.
pub fn process_env(c: &Container, user: &ExecUser) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={}", c.config.hostname),
    ];
    if c.config.tty {
        env.push("TERM=xterm".into());
    }
    apply_image_env(&mut env, &c.config.env, Some(user));
    env
}

/// Make `path` (absolute, inside the container) a directory in `rootfs`,
/// resolving every component inside it (openat2's RESOLVE_IN_ROOT: a
/// symlink in the image cannot lead outside).
pub fn mkdir_in_root(rootfs: &Path, path: &str) -> std::io::Result<()> {
    let root = nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT)
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for i in 1..=parts.len() {
        let prefix = parts[..i].join("/");
        match openat2(&root, prefix.as_str(), how()) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {
                let parent = match i {
                    1 => nix::unistd::dup(&root)?,
                    _ => openat2(&root, parts[..i - 1].join("/").as_str(), how())?,
                };
                match nix::sys::stat::mkdirat(
                    &parent,
                    parts[i - 1],
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

impl Engine {
    /// Start container `id`.
    pub fn start(&self, id: &str, mode: StartMode) -> Result<Started> {
        let dir = self.dir(id);
        let lock = dir.lock()?;
        let mut c = dir.load()?;
        reconcile(self, &mut c)?;
        let run_dir = self.roots.run_dir(id);
        // 1. Already going.
        match c.state.status {
            Status::Paused => {
                return Err(EngineError::msg(
                    "cannot start a paused container, try unpause instead",
                ));
            }
            Status::Removing => {
                return Err(EngineError::msg(
                    "container is marked for removal and cannot be started",
                ));
            }
            Status::Running | Status::Restarting => {
                drop(lock);
                return match mode {
                    StartMode::Detached => Ok(Started::AlreadyRunning),
                    StartMode::Attached(request) => self
                        .attach_stream(
                            id,
                            AttachRequest {
                                start: false,
                                ..request
                            },
                        )
                        .map(Started::Attached),
                };
            }
            Status::Created if live_monitor(&run_dir, &self.proc_root).is_some() => {
                drop(lock);
                return self.start_created(id, mode);
            }
            _ => {}
        }
        // 2. Prepare.
        let monitor_config = self.prepare(&dir, &mut c, mode == StartMode::Detached)?;
        // 3. The monitor.
        match spawn(&monitor_config)? {
            Report::Ok(pid) => {
                if mode == StartMode::Detached {
                    // 4. Running.
                    c = dir.load()?;
                    c.state.set_status(Status::Running);
                    c.state.pid = pid;
                    c.state.exit_code = 0;
                    c.state.error.clear();
                    c.state.oom_killed = false;
                    c.state.started_at = now_rfc3339();
                    dir.save(&c)?;
                    drop(lock);
                    self.event("start", &c, &[]);
                    Ok(Started::Detached)
                } else {
                    drop(lock);
                    self.start_created(id, mode)
                }
            }
            Report::Error(code, message) => {
                drop(lock);
                // The monitor records the failure and cleans up: wait for it,
                // so that nothing is half-done when we return.
                if let Some(monitor) = crate::monitor::config::ProcessId::read(
                    &crate::monitor::config::pid_file(&run_dir),
                ) {
                    super::monitor_client::wait_for_process_exit(
                        monitor,
                        &self.proc_root,
                        std::time::Duration::from_secs(30),
                    );
                }
                Err(EngineError::Start {
                    code,
                    message: format!("OCI runtime create failed: {message}"),
                })
            }
        }
    }

    /// Start a container that has a monitor already (created, waiting).
    fn start_created(&self, id: &str, mode: StartMode) -> Result<Started> {
        let run_dir = self.roots.run_dir(id);
        match mode {
            StartMode::Attached(request) => self
                .attach_stream(
                    id,
                    AttachRequest {
                        start: true,
                        ..request
                    },
                )
                .map(Started::Attached),
            StartMode::Detached => {
                match super::monitor_client::request(&run_dir, &self.proc_root, &Request::Start) {
                    Some(answer) if answer == "ok" => Ok(Started::Detached),
                    Some(answer) => {
                        let message = answer.strip_prefix("error ").unwrap_or(&answer);
                        Err(EngineError::Start {
                            code: crate::monitor::serve::exit_code_for_error(message),
                            message: format!("OCI runtime start failed: {message}"),
                        })
                    }
                    None => Err(EngineError::msg(format!(
                        "container {id}: its monitor is gone"
                    ))),
                }
            }
        }
    }

    /// An attach stream to container `id`'s monitor.
    pub fn attach_stream(&self, id: &str, request: AttachRequest) -> Result<UnixStream> {
        super::monitor_client::attach(&self.roots.run_dir(id), &self.proc_root, request).ok_or_else(
            || {
                EngineError::msg(format!(
                    "container {id} is not running: nothing to attach to"
                ))
            },
        )
    }

    /// Everything a start needs on disk; the monitor's instructions.
    fn prepare(
        &self,
        dir: &ContainerDir,
        c: &mut Container,
        start_now: bool,
    ) -> Result<MonitorConfig> {
        let host = c.host_config.clone();
        // The rootfs.
        let rootfs = rootfs::mount(dir, &c.berth.layers, &self.proc_root)?;
        let undo = |err: EngineError| {
            let _ = rootfs::unmount(dir, &self.proc_root);
            err
        };
        // A new volume's first use: the image's content at its path.
        for m in c
            .mounts
            .iter()
            .filter(|m| m["Type"] == "volume" && m["NoCopy"] != true)
        {
            let (Some(target), Some(source)) = (m["Destination"].as_str(), m["Source"].as_str())
            else {
                continue;
            };
            super::volumes::fill_from_image(&rootfs, target, Path::new(source)).map_err(undo)?;
        }
        // The user, from the image's files.
        let user = resolve_user_in_layers(&c.berth.layers, &c.config.user).map_err(|e| {
            undo(EngineError::Start {
                code: 125,
                message: format!("unable to find user {}: {e}", c.config.user),
            })
        })?;
        let env = process_env(c, &user);
        if !c.config.working_dir.is_empty() {
            mkdir_in_root(&rootfs, &c.config.working_dir).map_err(|e| {
                undo(EngineError::msg(format!(
                    "create the working directory {}: {e}",
                    c.config.working_dir
                )))
            })?;
        }
        // The network: namespace, attachments, /etc files (undone on failure).
        let netns = self.plumb_network(dir, c).map_err(undo)?;
        let plumbed = c.clone();
        let undo = |err: EngineError| {
            let mut c = plumbed.clone();
            let _ = self.unplumb_network(&mut c);
            undo(err)
        };
        let security = parse_security_opts(host.security_opt.as_deref().unwrap_or_default())
            .map_err(|e| undo(EngineError::msg(e)))?;
        let seccomp = seccomp_for(&host, &security).map_err(|e| undo(EngineError::msg(e)))?;
        let init = match host.init {
            Some(true) => Some(init_binary().map_err(undo)?),
            _ => None,
        };
        let inputs = BundleInputs {
            rootfs: rootfs.clone(),
            user,
            env,
            init,
            seccomp,
            host_devices: if host.privileged {
                host_devices(Path::new("/dev"))
            } else {
                vec![]
            },
            no_new_privileges: security.no_new_privileges,
            cgroups_path: c.berth.cgroups_path.clone(),
            netns,
            rootless: (!nix::unistd::geteuid().is_root()).then(|| {
                (
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                )
            }),
        };
        let spec = runtime_config(c, &inputs).map_err(|e| undo(EngineError::msg(e)))?;
        if inputs.rootless.is_some() && spec["linux"].get("resources").is_some() {
            refuse_rootless_limits(&self.proc_root).map_err(undo)?;
        }
        let bundle = dir.bundle();
        std::fs::create_dir_all(&bundle)
            .map_err(|e| undo(EngineError::msg(format!("{}: {e}", bundle.display()))))?;
        let json = serde_json::to_vec_pretty(&spec).expect("a spec serializes");
        write_atomic(&bundle.join("config.json"), &json).map_err(|e| undo(e.into()))?;
        // The record: a new start forgets the last stop and error.
        c.berth.manually_stopped = false;
        c.berth.needs_cleanup = true;
        c.state.error.clear();
        dir.save(c).map_err(|e| undo(e.into()))?;

        let run_dir = self.roots.run_dir(&c.id);
        let runtime = PathBuf::from(&c.berth.runtime_path);
        let runtime_name = super::runtime_client::runtime_name(&runtime);
        let (max_size, max_files) =
            log_options(&host.log_config.config).map_err(|e| undo(EngineError::msg(e)))?;
        Ok(MonitorConfig {
            id: c.id.clone(),
            name: c.name().to_string(),
            image: c.config.image.clone(),
            bundle,
            runtime,
            runtime_root: self.roots.runtime_root(&runtime_name),
            run_dir,
            container_dir: dir.0.clone(),
            events: self.roots.events(),
            log_path: PathBuf::from(&c.log_path),
            log_max_size: max_size,
            log_max_files: max_files,
            tty: c.config.tty,
            console_size: (c.config.tty && host.console_size != [0, 0])
                .then_some((host.console_size[0], host.console_size[1])),
            open_stdin: c.config.open_stdin,
            stdin_once: c.config.stdin_once,
            restart: host.restart_policy.clone(),
            oom_files: oom_files(&c.berth.cgroups_path, &self.proc_root),
            cleanup: self.cleanup_command(&c.id)?,
            start: start_now,
        })
    }

    /// The command the monitor runs when the container is done.
    pub fn cleanup_command(&self, id: &str) -> Result<Vec<String>> {
        let exe = std::env::current_exe()
            .map_err(|e| EngineError::msg(format!("find our own binary: {e}")))?;
        Ok(vec![
            exe.display().to_string(),
            "--root".into(),
            self.roots.root.display().to_string(),
            "--run-root".into(),
            self.roots.run.display().to_string(),
            "container".into(),
            "cleanup".into(),
            id.into(),
        ])
    }
}

/// `--log-opt max-size=…` and `max-file=…` (json-file's only options here),
/// with docker's checks.
pub fn log_options(
    opts: &std::collections::BTreeMap<String, String>,
) -> Result<(Option<u64>, u32), String> {
    let mut max_size = None;
    let mut max_files = 1u32;
    for (key, value) in opts {
        match key.as_str() {
            "max-size" => {
                let size = ch03_cgroups::parse_size(value)
                    .map_err(|e| format!("invalid max-size {value:?}: {e}"))?;
                max_size = (size > 0).then_some(size);
            }
            "max-file" => {
                max_files = value
                    .parse()
                    .map_err(|_| format!("invalid max-file {value:?}: not a number"))?;
                if max_files < 1 {
                    return Err("max-file cannot be less than 1".into());
                }
            }
            other => {
                return Err(format!(
                    "unknown log opt '{other}' for json-file log driver"
                ));
            }
        }
    }
    if max_files > 1 && max_size.is_none() {
        return Err("max-file cannot be set without max-size".into());
    }
    Ok((max_size, max_files))
}

/// The files where the kernel counts OOM kills in the cgroup at `path`.
pub fn oom_files(path: &str, proc_root: &Path) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    match ch03_cgroups::detect(proc_root) {
        Ok(ch03_cgroups::Layout::V1 { controllers }) => controllers
            .get("memory")
            .map(|mount| vec![mount.join(relative).join("memory.oom_control")])
            .unwrap_or_default(),
        Ok(ch03_cgroups::Layout::V2 { mount }) => vec![mount.join(relative).join("memory.events")],
        Err(_) => vec![],
    }
}

/// A rootless container with limits needs a cgroup its user may write:
/// only cgroup v2 can delegate one. On a v1 host, refuse before the
/// runtime does, in the engine's words (docker's exit code 125).
fn refuse_rootless_limits(proc_root: &Path) -> Result<()> {
    match ch03_cgroups::detect::detect(proc_root) {
        Ok(layout) if layout.version() == 2 => Ok(()),
        _ => Err(EngineError::Start {
            code: 125,
            message: "a normal user's containers cannot have limits on this host: its cgroups \
                      are v1, which cannot be delegated to a user; leave out --memory, --cpus, \
                      --pids-limit and the other limits, or run berth as root"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options_are_checked_as_docker_checks_them() {
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(log_options(&opts(&[])), Ok((None, 1)));
        assert_eq!(
            log_options(&opts(&[("max-size", "1k"), ("max-file", "3")])),
            Ok((Some(1024), 3))
        );
        assert!(log_options(&opts(&[("max-file", "3")])).is_err());
        assert!(log_options(&opts(&[("max-size", "1k"), ("max-file", "0")])).is_err());
        assert_eq!(
            log_options(&opts(&[("compress", "true")])).unwrap_err(),
            "unknown log opt 'compress' for json-file log driver"
        );
    }

    #[test]
    fn working_directories_are_made_inside_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        // A link that points out of the rootfs stays inside it.
        std::os::unix::fs::symlink("/../../outside", root.join("escape")).unwrap();
        std::fs::create_dir(root.join("outside")).unwrap();
        mkdir_in_root(&root, "/srv/app/data").unwrap();
        assert!(root.join("srv/app/data").is_dir());
        mkdir_in_root(&root, "/escape/x").unwrap();
        assert!(root.join("outside/x").is_dir());
        assert!(!tmp.path().join("outside").exists());
    }
}
