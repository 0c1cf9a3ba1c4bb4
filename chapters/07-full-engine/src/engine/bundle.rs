//! From a container's record to an OCI bundle's `config.json`.
//!
//! The runtime knows nothing of images or `docker run` flags: it reads a
//! `config.json` (the OCI runtime spec) beside a root filesystem. Docker's
//! daemon writes that file at every start, from the container's `Config`
//! and `HostConfig`; so does [`runtime_config`], field by field:
//!
//! | record | config.json |
//! | --- | --- |
//! | `Path`, `Args`, `Env`, `WorkingDir`, `Tty` | `process.args`, `env`, `cwd`, `terminal` |
//! | `User` (resolved in the image's /etc/passwd) | `process.user` |
//! | `CapAdd`, `CapDrop`, `Privileged` | `process.capabilities` |
//! | `Ulimits` | `process.rlimits` |
//! | `SecurityOpt` no-new-privileges, seccomp | `process.noNewPrivileges`, `linux.seccomp` |
//! | `ReadonlyRootfs` | `root.readonly` |
//! | `Hostname` | `hostname`, and /etc/hostname |
//! | the etc files, `--init` | bind `mounts` |
//! | `Memory`, `NanoCpus`, `PidsLimit`... | `linux.resources` |
//! | `NetworkMode` | `linux.namespaces` (none: a new one; host: none; bridge, NAME: the engine's, by path) |
//! | `MaskedPaths`, `ReadonlyPaths` | `linux.maskedPaths`, `linux.readonlyPaths` |
//!
//! The container's cgroup is `/berth/ID` in each hierarchy (chapter 3's
//! place for it), so the engine finds it again after a crash.
//!
//! Specs: the OCI runtime spec, config.md and config-linux.md.

use std::path::{Path, PathBuf};

use ch03_cgroups::devices::{DeviceType, LinuxDeviceCgroup, default_rules};
use ch05_images::user::ExecUser;
use serde_json::{Value, json};

use super::record::Container;
use super::security::{capabilities, default_masked_paths, default_readonly_paths};

/// Where `--init`'s program appears in the container (docker's place).
pub const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

/// The runtime-spec version the engine's bundles claim: every field it
/// writes is 1.0's, and older runtimes (crun 1.8) refuse versions they do
/// not know.
pub const OCI_VERSION: &str = "1.0.2";

/// The CFS period `--cpus` uses (µs).
pub const CPU_PERIOD: i64 = 100_000;

/// What a bundle needs beyond the record.
#[derive(Debug, Clone)]
pub struct BundleInputs {
    /// The mounted rootfs.
    pub rootfs: PathBuf,
    /// The user, resolved in the image.
    pub user: ExecUser,
    /// The process's environment (PATH, HOSTNAME, TERM, the Config's Env, HOME).
    pub env: Vec<String>,
    /// The static init program on the host, for `--init`.
    pub init: Option<PathBuf>,
    /// `linux.seccomp`, or none.
    pub seccomp: Option<Value>,
    /// `--privileged`: the host's devices.
    pub host_devices: Vec<Value>,
    pub no_new_privileges: bool,
    pub cgroups_path: String,
    /// The network namespace ([`super::network`]).
    pub netns: super::network::NetNamespace,
    /// A rootless engine's effective uid and gid, which become the
    /// container's root ([`make_rootless`]); none as root.
    pub rootless: Option<(u32, u32)>,
}

/// The cgroup path a container's runtime is given.
pub fn cgroups_path(id: &str) -> String {
    format!("/{}/{id}", ch03_cgroups::cgroup::PARENT)
}

/// `config.json` for container `c`.
pub fn runtime_config(c: &Container, inputs: &BundleInputs) -> Result<Value, String> {
    let host = &c.host_config;
    let config = &c.config;
    // 1. The process: args (with --init in front), env, cwd, user.
    let mut args: Vec<String> = std::iter::once(c.path.clone())
        .chain(c.args.iter().cloned())
        .collect();
    if inputs.init.is_some() {
        args.splice(0..0, [INIT_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let cwd = if config.working_dir.is_empty() {
        "/".to_string()
    } else {
        config.working_dir.clone()
    };
    let caps = capabilities(
        host.privileged,
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
    )?;
    let rlimits: Vec<Value> = host
        .ulimits
        .iter()
        .map(|u| {
            json!({
                "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                "soft": u.soft,
                "hard": u.hard,
            })
        })
        .collect();
    let mut process = json!({
        "terminal": config.tty,
        "user": {
            "uid": inputs.user.uid,
            "gid": inputs.user.gid,
            "additionalGids": inputs.user.additional_gids,
        },
        "args": args,
        "env": inputs.env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": [], "ambient": [],
        },
        "noNewPrivileges": inputs.no_new_privileges,
    });
    if inputs.user.additional_gids.is_empty() {
        process["user"]
            .as_object_mut()
            .expect("an object")
            .remove("additionalGids");
    }
    if !rlimits.is_empty() {
        process["rlimits"] = Value::from(rlimits);
    }
    if config.tty && host.console_size != [0, 0] {
        process["consoleSize"] =
            json!({"height": host.console_size[0], "width": host.console_size[1]});
    }
    if host.oom_score_adj != 0 {
        process["oomScoreAdj"] = host.oom_score_adj.into();
    }

    // 2. Mounts: docker's standard set, then the engine's files.
    let shm_size = if host.shm_size > 0 {
        host.shm_size
    } else {
        64 << 20
    };
    let sys_options = if host.privileged {
        json!(["nosuid", "noexec", "nodev", "rw"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime",
                           if host.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]}),
    ];
    for (destination, source) in [
        ("/etc/resolv.conf", &c.resolv_conf_path),
        ("/etc/hostname", &c.hostname_path),
        ("/etc/hosts", &c.hosts_path),
    ] {
        mounts.push(
            json!({"destination": destination, "type": "bind", "source": source,
                           "options": ["rbind", "rprivate"]}),
        );
    }
    // The user's binds, volumes and tmpfs, over the defaults.
    mounts.extend(super::volumes::oci_mounts(&c.mounts, &host.tmpfs));
    if let Some(init) = &inputs.init {
        mounts.push(json!({"destination": INIT_IN_CONTAINER, "type": "bind",
                           "source": init, "options": ["bind", "ro", "rprivate"]}));
    }

    // 3. Namespaces: the network one as the engine plumbed it: none for
    //    --network host, a new one, or one to join by path.
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &inputs.netns {
        super::network::NetNamespace::Host => {}
        super::network::NetNamespace::New => namespaces.push(json!({"type": "network"})),
        super::network::NetNamespace::Join(path) => {
            namespaces.push(json!({"type": "network", "path": path}))
        }
    }

    // 4. Resources, and the device rules (docker's, or all for --privileged).
    let mut resources = resources(c);
    let devices: Vec<LinuxDeviceCgroup> = if host.privileged {
        vec![LinuxDeviceCgroup::allow(DeviceType::All, None, None, "rwm")]
    } else {
        let extra = host
            .device_cgroup_rules
            .iter()
            .flatten()
            .map(|rule| LinuxDeviceCgroup::parse_docker(rule).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        default_rules(&extra)
    };
    resources["devices"] = devices.iter().map(device_rule).collect();

    let mut linux = json!({
        "resources": resources,
        "cgroupsPath": inputs.cgroups_path,
        "namespaces": namespaces,
    });
    if !host.privileged {
        let masked = if host.masked_paths.is_empty() {
            default_masked_paths()
        } else {
            host.masked_paths.clone()
        };
        let readonly = if host.readonly_paths.is_empty() {
            default_readonly_paths()
        } else {
            host.readonly_paths.clone()
        };
        linux["maskedPaths"] = masked.into();
        linux["readonlyPaths"] = readonly.into();
    } else if !inputs.host_devices.is_empty() {
        linux["devices"] = inputs.host_devices.clone().into();
    }
    if let Some(seccomp) = &inputs.seccomp {
        linux["seccomp"] = seccomp.clone();
    }

    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inputs.rootfs, "readonly": host.readonly_rootfs},
        "hostname": config.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    // 5. A rootless engine: the container's root is the engine's user.
    if let Some((uid, gid)) = inputs.rootless {
        make_rootless(&mut spec, uid, gid);
    }
    Ok(spec)
}

/// A normal user's container (runc's `spec --rootless` changes, keeping
/// the network namespace the engine chose): a user namespace in which
/// the user's own ids, and only they, are root's; no device rules, which
/// need the host's devices cgroup (the runtime still writes the limits a
/// user asked for where the host delegates a cgroup, and says plainly
/// where it does not); sysfs and the cgroup filesystem, which only the
/// host's root may mount, as the host's, read-only; no `uid=`/`gid=`
/// mount options naming ids the namespace does not map.
pub fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(namespaces) = linux["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "user");
        namespaces.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(resources) = linux["resources"].as_object_mut() {
        resources.remove("devices");
        if resources.is_empty() {
            linux.as_object_mut().map(|l| l.remove("resources"));
        }
    }
    let Some(mounts) = spec["mounts"].as_array_mut() else {
        return;
    };
    mounts.retain(|m| m["type"] != "cgroup");
    for mount in mounts.iter_mut() {
        if mount["type"] == "sysfs" {
            *mount = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        } else if let Some(options) = mount["options"].as_array_mut() {
            options.retain(|o| {
                let o = o.as_str().unwrap_or("");
                !o.starts_with("uid=") && !o.starts_with("gid=")
            });
        }
    }
}

/// `linux.resources` from `HostConfig`.
pub fn resources(c: &Container) -> Value {
    let host = &c.host_config;
    let mut resources = json!({});
    let mut memory = json!({});
    if host.memory > 0 {
        memory["limit"] = host.memory.into();
    }
    if host.memory_swap != 0 {
        memory["swap"] = host.memory_swap.into();
    }
    if memory != json!({}) {
        resources["memory"] = memory;
    }
    let mut cpu = json!({});
    if host.cpu_shares > 0 {
        cpu["shares"] = host.cpu_shares.into();
    }
    if host.nano_cpus > 0 {
        cpu["quota"] = (host.nano_cpus * CPU_PERIOD / 1_000_000_000).into();
        cpu["period"] = CPU_PERIOD.into();
    } else if host.cpu_quota > 0 {
        cpu["quota"] = host.cpu_quota.into();
        cpu["period"] = (if host.cpu_period > 0 {
            host.cpu_period
        } else {
            CPU_PERIOD
        })
        .into();
    }
    if !host.cpuset_cpus.is_empty() {
        cpu["cpus"] = host.cpuset_cpus.clone().into();
    }
    if !host.cpuset_mems.is_empty() {
        cpu["mems"] = host.cpuset_mems.clone().into();
    }
    if cpu != json!({}) {
        resources["cpu"] = cpu;
    }
    if let Some(limit) = host.pids_limit.filter(|l| *l != 0) {
        resources["pids"] = json!({"limit": limit});
    }
    if host.blkio_weight > 0 {
        resources["blockIO"] = json!({"weight": host.blkio_weight});
    }
    resources
}

fn device_rule(rule: &LinuxDeviceCgroup) -> Value {
    let mut value = json!({
        "allow": rule.allow,
        "type": rule.typ.letter().to_string(),
        "access": rule.access,
    });
    if let Some(major) = rule.major {
        value["major"] = major.into();
    }
    if let Some(minor) = rule.minor {
        value["minor"] = minor.into();
    }
    value
}

/// The host's device nodes, for `--privileged` (docker gives them all).
pub fn host_devices(dev: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devices = Vec::new();
    let mut stack = vec![dev.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            // /dev/pts and /dev/shm are the container's own.
            if kind.is_dir() {
                let name = entry.file_name();
                if name != "pts" && name != "shm" && name != "mqueue" {
                    stack.push(path);
                }
                continue;
            }
            let typ = if kind.is_char_device() {
                "c"
            } else if kind.is_block_device() {
                "b"
            } else {
                continue;
            };
            let rdev = meta.rdev();
            let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
            // The console and the ptmx of the host stay the host's.
            if path == dev.join("console") || path == dev.join("ptmx") || path == dev.join("tty") {
                continue;
            }
            devices.push(json!({
                "path": path, "type": typ, "major": major, "minor": minor,
                "fileMode": meta.mode() & 0o7777, "uid": 0, "gid": 0,
            }));
        }
    }
    devices.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    devices
}
