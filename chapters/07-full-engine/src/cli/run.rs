//! `run`, `create` and `start`: the flags of `docker run`, turned into
//! docker's `Config` and `HostConfig`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ch03_cgroups::ResourceFlags;
use clap::Args;

use super::attach::{AttachOptions, parse_detach_keys, pump};
use super::{Failure, Outcome};
use crate::engine::Engine;
use crate::engine::create::{CreateRequest, PullPolicy};
use crate::engine::network::default_network_mode;
use crate::engine::record::{Config, HostConfig, LogConfig, NetworkFields, Ulimit};
use crate::engine::runtime_client::{DEFAULT_RUNTIME, find_runtime};
use crate::engine::security::{default_masked_paths, default_readonly_paths};
use crate::engine::start::{StartMode, Started};
use crate::engine::volumes;
use crate::monitor::protocol::AttachRequest;
use crate::monitor::restart::parse_policy;
use ch07_network::inspect::port_key;
use ch07_network::mode::{NetworkMode, RunNetworkFlags, check_options};
use ch07_network::ports::{self, HostPort};

/// The flags of `run` and `create`.
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Add Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<PathBuf>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int")]
    pub cpu_quota: Option<i64>,
    #[command(flatten)]
    pub limits: ResourceFlags,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    pub label_file: Vec<PathBuf>,
    /// Logging driver for the container (json-file)
    #[arg(long, value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long, value_name = "list")]
    pub log_opt: Vec<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME, or a network's name)
    #[arg(long = "network", alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "list")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "list")]
    pub dns_search: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string", default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long, value_name = "list")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long, value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, value_name = "bool", default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Signal to stop the container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The image, then the command and its arguments (one list, so that
    /// everything after the image is the command's, flags included).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

/// The rlimits `--ulimit` knows, by docker's names.
pub const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit nofile=1024:2048` (or `nofile=1024`, soft = hard).
pub fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {text}"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let number = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {text}"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => {
            let v = number(values)?;
            (v, v)
        }
    };
    if soft > hard && hard >= 0 {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `-e NAME=VALUE`, or `-e NAME` (the value from our own environment;
/// dropped if we have none), as docker reads them.
pub fn parse_env(entries: &[String], files: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut env = Vec::new();
    let mut add = |entry: &str| {
        if entry.contains('=') {
            env.push(entry.to_string());
        } else if let Ok(value) = std::env::var(entry) {
            env.push(format!("{entry}={value}"));
        }
    };
    for file in files {
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("open {}: {e}", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('=') {
                return Err(format!("invalid environment variable: {line}"));
            }
            add(line);
        }
    }
    for entry in entries {
        if entry.starts_with('=') || entry.is_empty() {
            return Err(format!("invalid environment variable: {entry}"));
        }
        add(entry);
    }
    Ok(env)
}

/// `-l KEY=VALUE` (and label files); `-l KEY` is an empty value.
fn parse_labels(entries: &[String], files: &[PathBuf]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut lines: Vec<String> = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("open {}: {e}", file.display()))?;
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    lines.extend(entries.iter().cloned());
    for line in lines {
        let (key, value) = line.split_once('=').unwrap_or((&line, ""));
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// The terminal's size (rows, columns), if stdout is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let mut size: nix::libc::winsize = unsafe_zeroed_winsize();
    // SAFETY: TIOCGWINSZ writes a winsize into `size`, which is one.
    let rc = unsafe { nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_row > 0).then_some((size.ws_row, size.ws_col))
}

fn unsafe_zeroed_winsize() -> nix::libc::winsize {
    nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl RunArgs {
    pub fn image(&self) -> &str {
        &self.image_and_command[0]
    }

    pub fn command(&self) -> &[String] {
        &self.image_and_command[1..]
    }

    /// docker's `Config` and `HostConfig` for these flags, checked; the
    /// runtime is `default_runtime` unless `--runtime` names one.
    pub fn request(&self, default_runtime: &str) -> Result<CreateRequest, String> {
        if self.rm && !matches!(self.restart.as_str(), "no" | "") {
            return Err("Conflicting options: --restart and --rm".into());
        }
        if self.detach && !self.attach.is_empty() {
            return Err("Conflicting options: -a and -d".into());
        }
        let attach: Vec<String> = self.attach.iter().map(|a| a.to_ascii_lowercase()).collect();
        for stream in &attach {
            if !matches!(stream.as_str(), "stdin" | "stdout" | "stderr") {
                return Err(format!(
                    "invalid argument \"{stream}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                ));
            }
        }
        let resources =
            ch03_cgroups::LinuxResources::from_flags(&self.limits).map_err(|e| e.to_string())?;
        let pull: PullPolicy = self.pull.parse()?;
        let restart = parse_policy(&self.restart)?;
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>, _>>()?;
        let env = parse_env(&self.env, &self.env_file)?;
        let labels = parse_labels(&self.label, &self.label_file)?;
        let network = self.network_request()?;
        if let Some(driver) = &self.log_driver
            && driver != "json-file"
        {
            return Err(format!(
                "logging driver {driver:?} is not supported: berth writes json-file logs"
            ));
        }
        let mut log_config = BTreeMap::new();
        for opt in &self.log_opt {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| format!("invalid key value pair format in log-opt: {opt}"))?;
            log_config.insert(key.to_string(), value.to_string());
        }
        crate::engine::start::log_options(&log_config)?;
        crate::engine::security::capabilities(self.privileged, &self.cap_add, &self.cap_drop)?;
        crate::engine::security::parse_security_opts(&self.security_opt)?;
        if let Some(signal) = &self.stop_signal {
            crate::runtime::signals::parse_signal(signal)
                .map_err(|_| format!("Invalid signal: {signal}"))?;
        }
        let shm_size = match &self.shm_size {
            Some(text) => ch03_cgroups::parse_size(text).map_err(|e| e.to_string())? as i64,
            None => 64 << 20,
        };
        let runtime_name = self.runtime.as_deref().unwrap_or(default_runtime);
        let runtime_path = find_runtime(runtime_name).map_err(|e| e.to_string())?;
        let stdin = self.interactive;
        let attach_all = attach.is_empty() && !self.detach;
        let memory = resources.memory.as_ref();
        let cpu = resources.cpu.as_ref();
        let config = Config {
            hostname: self.hostname.clone().unwrap_or_default(),
            domainname: self.domainname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin: attach.contains(&"stdin".to_string()) || (attach_all && stdin),
            attach_stdout: attach.contains(&"stdout".to_string()) || attach_all,
            attach_stderr: attach.contains(&"stderr".to_string()) || attach_all,
            tty: self.tty,
            open_stdin: stdin,
            stdin_once: stdin && !self.detach,
            env,
            cmd: (!self.command().is_empty()).then(|| self.command().to_vec()),
            image: self.image().to_string(),
            working_dir: self.workdir.clone().unwrap_or_default(),
            entrypoint: self.entrypoint.clone().map(|e| vec![e]),
            labels,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            exposed_ports: network.exposed_ports.clone(),
            ..Config::default()
        };
        // -v, --mount and --tmpfs, checked here so that a bad spec is
        // refused before anything is made.
        for volume in &self.volume {
            volumes::parse_volume_flag(volume)?;
        }
        let mounts = self
            .mount
            .iter()
            .map(|m| volumes::parse_mount_flag(m).map(|spec| spec.to_api()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tmpfs = BTreeMap::new();
        for flag in &self.tmpfs {
            if let volumes::MountSpec::Tmpfs { target, options } = volumes::parse_tmpfs_flag(flag)?
            {
                tmpfs.insert(target, options.join(","));
            }
        }
        let host_config = HostConfig {
            binds: (!self.volume.is_empty()).then(|| self.volume.clone()),
            mounts,
            tmpfs,
            log_config: LogConfig {
                kind: "json-file".into(),
                config: log_config,
            },
            network_mode: network.mode.clone(),
            port_bindings: network.port_bindings.clone(),
            publish_all_ports: self.publish_all,
            dns: self.dns.clone(),
            dns_options: self.dns_option.clone(),
            dns_search: self.dns_search.clone(),
            extra_hosts: (!self.add_host.is_empty()).then(|| self.add_host.clone()),
            restart_policy: restart,
            auto_remove: self.rm,
            console_size: if self.tty {
                terminal_size().map(|(r, c)| [r, c]).unwrap_or([0, 0])
            } else {
                [0, 0]
            },
            cap_add: (!self.cap_add.is_empty()).then(|| self.cap_add.clone()),
            cap_drop: (!self.cap_drop.is_empty()).then(|| self.cap_drop.clone()),
            cgroupns_mode: "host".into(),
            ipc_mode: "private".into(),
            oom_score_adj: self.oom_score_adj.unwrap_or(0),
            privileged: self.privileged,
            readonly_rootfs: self.read_only,
            security_opt: (!self.security_opt.is_empty()).then(|| self.security_opt.clone()),
            shm_size,
            cpu_shares: cpu.and_then(|c| c.shares).unwrap_or(0) as i64,
            memory: memory.and_then(|m| m.limit).unwrap_or(0),
            nano_cpus: cpu
                .and_then(|c| c.quota.zip(c.period))
                .filter(|_| self.limits.cpus.is_some())
                .map(|(q, p)| q * 1_000_000_000 / p as i64)
                .unwrap_or(0),
            blkio_weight: resources
                .block_io
                .as_ref()
                .and_then(|b| b.weight)
                .unwrap_or(0),
            cpu_period: self.cpu_period.unwrap_or(0),
            cpu_quota: self.cpu_quota.unwrap_or(0),
            cpuset_cpus: self.limits.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.limits.cpuset_mems.clone().unwrap_or_default(),
            device_cgroup_rules: (!self.limits.device_cgroup_rule.is_empty())
                .then(|| self.limits.device_cgroup_rule.clone()),
            memory_swap: memory.and_then(|m| m.swap).unwrap_or(0),
            pids_limit: resources.pids.as_ref().map(|p| p.limit),
            ulimits,
            masked_paths: if self.privileged {
                vec![]
            } else {
                default_masked_paths()
            },
            readonly_paths: if self.privileged {
                vec![]
            } else {
                default_readonly_paths()
            },
            init: self.init.then_some(true),
            ..HostConfig::default()
        };
        Ok(CreateRequest {
            name: self.name.clone(),
            config,
            host_config,
            pull,
            platform: self.platform.clone(),
            runtime_path,
            network: network.fields,
        })
    }
}

/// The network half of `run`'s flags, checked.
struct NetworkRequest {
    mode: String,
    port_bindings: BTreeMap<String, serde_json::Value>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    fields: NetworkFields,
}

impl RunArgs {
    /// `--network` and the flags that go with it, checked as docker
    /// checks them; `-p` becomes `PortBindings`, `--expose` and `-p`
    /// `ExposedPorts`.
    fn network_request(&self) -> Result<NetworkRequest, String> {
        let mode = self
            .network
            .clone()
            .unwrap_or_else(|| default_network_mode().into());
        let parsed = NetworkMode::parse(&mode).map_err(|e| e.to_string())?;
        let flags = RunNetworkFlags {
            publish: !self.publish.is_empty() || self.publish_all,
            hostname: self.hostname.is_some(),
            dns: !self.dns.is_empty() || !self.dns_search.is_empty() || !self.dns_option.is_empty(),
            add_host: !self.add_host.is_empty(),
            mac_address: false,
            aliases: !self.network_alias.is_empty(),
            ip: self.ip.is_some(),
        };
        for warning in check_options(&parsed, &flags).map_err(|e| e.to_string())? {
            eprintln!("{warning}");
        }
        if let Some(hostname) = &self.hostname {
            ch07_network::etc::check_hostname(hostname).map_err(|e| e.to_string())?;
        }
        for entry in &self.add_host {
            ch07_network::etc::parse_add_host(entry, Some(std::net::Ipv4Addr::UNSPECIFIED))
                .map_err(|e| e.to_string())?;
        }
        for server in &self.dns {
            server
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("{server} is not an ip address"))?;
        }
        if let Some(ip) = &self.ip {
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|_| format!("invalid IPv4 address: {ip}"))?;
        }
        let mut exposed = BTreeMap::new();
        for text in &self.expose {
            for (port, protocol) in ports::parse_exposed(text).map_err(|e| e.to_string())? {
                exposed.insert(port_key(port, protocol), serde_json::json!({}));
            }
        }
        let mut port_bindings: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        let host_mode = parsed == NetworkMode::Host;
        for text in &self.publish {
            for spec in ports::parse_publish(text).map_err(|e| e.to_string())? {
                let key = port_key(spec.container_port, spec.protocol);
                exposed.insert(key.clone(), serde_json::json!({}));
                let host_port = match spec.host_port {
                    HostPort::Any => String::new(),
                    HostPort::Fixed(p) => p.to_string(),
                    HostPort::Range(lo, hi) => format!("{lo}-{hi}"),
                };
                let host_ip = if spec.host_ip.is_unspecified() {
                    String::new()
                } else {
                    spec.host_ip.to_string()
                };
                let binding = serde_json::json!({"HostIp": host_ip, "HostPort": host_port});
                match port_bindings
                    .entry(key)
                    .or_insert_with(|| serde_json::json!([]))
                {
                    serde_json::Value::Array(list) => list.push(binding),
                    _ => unreachable!("inserted as an array"),
                }
            }
        }
        Ok(NetworkRequest {
            mode,
            port_bindings: if host_mode {
                BTreeMap::new()
            } else {
                port_bindings
            },
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            fields: NetworkFields {
                aliases: self.network_alias.clone(),
                ip: self.ip.clone(),
                publish: if host_mode {
                    vec![]
                } else {
                    self.publish.clone()
                },
                networks: vec![],
                netns: String::new(),
            },
        })
    }
}

/// `create` and `run`'s first half: the container's id.
fn create_container(
    engine: &Engine,
    args: &RunArgs,
) -> Result<crate::engine::record::Container, Failure> {
    let runtime = engine.settings().default_runtime.as_deref();
    let mut request = args
        .request(runtime.unwrap_or(DEFAULT_RUNTIME))
        .map_err(|m| Failure::new(m, 125))?;
    engine.settings().apply_defaults(&mut request.host_config);
    // The network must exist (docker checks at create).
    match NetworkMode::parse(&request.host_config.network_mode) {
        Ok(NetworkMode::Named(name)) => {
            let networks = engine
                .networks()
                .map_err(|e| Failure::new(e.to_string(), 125))?;
            networks
                .find(&name)
                .map_err(|e| Failure::new(e.to_string(), 125))?;
        }
        Ok(NetworkMode::Container(name)) => {
            engine
                .resolve(&name)
                .map_err(|e| Failure::new(e.to_string(), 125))?;
        }
        _ => {}
    }
    if let Some(path) = &args.cidfile
        && path.exists()
    {
        return Err(Failure::new(
            format!(
                "Container ID file found, make sure the other container isn't running or delete {}",
                path.display()
            ),
            125,
        ));
    }
    let c = engine
        .create(request, &mut std::io::stderr())
        .map_err(|e| Failure::new(e.to_string(), e.run_exit_code()))?;
    if let Some(path) = &args.cidfile {
        std::fs::write(path, &c.id)
            .map_err(|e| Failure::new(format!("write the container ID file: {e}"), 125))?;
    }
    Ok(c)
}

/// `create`.
pub fn create(engine: &Engine, args: RunArgs) -> Outcome {
    let c = create_container(engine, &args)?;
    println!("{}", c.id);
    Ok(0)
}

/// `run`.
pub fn run(engine: &Engine, args: RunArgs) -> Outcome {
    let detach_keys =
        parse_detach_keys(args.detach_keys.as_deref()).map_err(|m| Failure::new(m, 125))?;
    let c = create_container(engine, &args)?;
    // A start that fails leaves the container Created, as docker's does,
    // unless --rm: then it goes (and its anonymous volumes), as dockerd
    // removes an auto-remove container whose start failed.
    let failed = |e: crate::engine::EngineError| {
        if args.rm {
            let _ = engine.remove(&c.id, true);
        }
        Failure::new(e.to_string(), e.run_exit_code())
    };
    if args.detach {
        engine.start(&c.id, StartMode::Detached).map_err(failed)?;
        println!("{}", c.id);
        return Ok(0);
    }
    let request = AttachRequest {
        stdin: c.config.attach_stdin,
        stdout: c.config.attach_stdout,
        stderr: c.config.attach_stderr,
        start: true,
    };
    let stream = match engine.start(&c.id, StartMode::Attached(request)) {
        Ok(Started::Attached(stream)) => stream,
        Ok(_) => return Ok(0),
        Err(e) => return Err(failed(e)),
    };
    let options = AttachOptions {
        stdin: request.stdin,
        tty: c.config.tty,
        detach_keys,
        sig_proxy: args.sig_proxy && !c.config.tty,
        run_dir: engine.roots().run_dir(&c.id),
    };
    pump_to_the_end(engine, stream, &options).map_err(|m| Failure::new(m, 125))
}

/// [`pump`], and once the container is done, wait for its monitor to be
/// gone too: when `run --rm` returns, nothing of the container is left.
fn pump_to_the_end(
    engine: &Engine,
    stream: std::os::unix::net::UnixStream,
    options: &AttachOptions,
) -> Result<i32, String> {
    use crate::monitor::config::{ProcessId, pid_file};
    let monitor = ProcessId::read(&pid_file(&options.run_dir));
    let outcome = pump(stream, options)?;
    if let Some(monitor) = monitor
        && outcome.exited
    {
        crate::engine::monitor_client::wait_for_process_exit(
            monitor,
            engine.proc_root(),
            std::time::Duration::from_secs(10),
        );
    }
    Ok(outcome.code)
}

/// The flags of `start`.
#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `start`.
pub fn start(engine: &Engine, args: &StartArgs) -> Outcome {
    let detach_keys =
        parse_detach_keys(args.detach_keys.as_deref()).map_err(|m| Failure::new(m, 1))?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            return Err(Failure::new(
                "you cannot start and attach multiple containers at once",
                1,
            ));
        }
        let id = engine.resolve(&args.containers[0])?;
        let c = engine.container(&id)?;
        let request = AttachRequest {
            stdin: args.interactive && c.config.open_stdin,
            stdout: true,
            stderr: true,
            start: true,
        };
        let stream = match engine.start(&id, StartMode::Attached(request))? {
            Started::Attached(stream) => stream,
            _ => return Ok(0),
        };
        let options = AttachOptions {
            stdin: request.stdin,
            tty: c.config.tty,
            detach_keys,
            sig_proxy: !c.config.tty,
            run_dir: engine.roots().run_dir(&id),
        };
        return pump_to_the_end(engine, stream, &options).map_err(|m| Failure::new(m, 1));
    }
    let mut failed = false;
    for name in &args.containers {
        let result = engine
            .resolve(name)
            .and_then(|id| engine.start(&id, StartMode::Detached));
        match result {
            Ok(_) => println!("{name}"),
            Err(err) => {
                eprintln!("Error response from daemon: {err}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Failure::new("failed to start containers", 1))
    } else {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_dockers() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = parse_ulimit("nproc=64").unwrap();
        assert_eq!((u.soft, u.hard), (64, 64));
        assert_eq!(
            parse_ulimit("fly=1").unwrap_err(),
            "invalid ulimit type: fly"
        );
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn env_entries_and_files_read_as_dockers() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("env");
        std::fs::write(&file, "# comment\nA=1\n\nPATH\nB=two words\n").unwrap();
        let env = parse_env(&["C=3".into(), "BERTH_NO_SUCH_VAR".into()], &[file]).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            env,
            [
                "A=1".to_string(),
                format!("PATH={path}"),
                "B=two words".into(),
                "C=3".into()
            ]
        );
        assert!(parse_env(&["=x".into()], &[]).is_err());
    }
}
