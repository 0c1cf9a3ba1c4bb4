//! The engine's settings file: docker's `daemon.json`, with docker's key
//! names.
//!
//! `/etc/berth/daemon.json` for root, `$XDG_CONFIG_HOME/berth/daemon.json`
//! (`~/.config/berth/daemon.json`) otherwise, or the file `--config-file`
//! names. A missing default file means the defaults; a file named with
//! `--config-file` must exist. Every command reads it (there is no daemon
//! to restart: a change counts from the next command).
//!
//! ```json
//! {
//!   "registry-mirrors": ["http://127.0.0.1:5001"],
//!   "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"],
//!   "data-root": "/srv/berth",
//!   "default-runtime": "runc",
//!   "log-driver": "json-file",
//!   "log-opts": {"max-size": "10m", "max-file": "3"},
//!   "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 4096, "Soft": 1024}},
//!   "bip": "172.26.0.1/16",
//!   "default-address-pools": [{"base": "172.80.0.0/16", "size": 24}]
//! }
//! ```
//!
//! As dockerd does, a key it does not know is refused, naming the key —
//! a misspelt `registry-mirror` silently ignored would be worse — and so
//! is a value that does not make sense. `127.0.0.0/8` is always an insecure
//! registry range (nothing leaves the machine), as in docker.
//!
//! dockerd(8) "DAEMON CONFIGURATION FILE"; docker's `daemon/config`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ch05_images::mirrors::parse_mirror;
use ch07_network::networks::AddressPlan;
use ipnet::IpNet;
use serde::Deserialize;

use crate::cli::run::ULIMITS;
use crate::engine::record::{self, HostConfig};

/// The range docker always treats as insecure.
pub const LOOPBACK_CIDR: &str = "127.0.0.0/8";

/// The runtimes `default-runtime` may name.
const RUNTIMES: [&str; 3] = ["berth-runtime", "runc", "crun"];

/// A `default-ulimits` entry, as docker writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

/// A `default-address-pools` entry: networks of prefix `size` cut from
/// `base`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    pub base: IpNet,
    pub size: u8,
}

// ANCHOR: settings
/// What `daemon.json` may say; every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Tried in order for Docker Hub images, before Docker Hub.
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    /// Registries (`host[:port]`) or ranges (CIDR) spoken to over HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// The state root, unless `--root` says otherwise.
    pub data_root: Option<PathBuf>,
    pub default_runtime: Option<String>,
    pub log_driver: Option<String>,
    #[serde(default)]
    pub log_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub default_ulimits: BTreeMap<String, Ulimit>,
    /// The default bridge's address and prefix.
    pub bip: Option<String>,
    #[serde(default)]
    pub default_address_pools: Vec<AddressPool>,
}
// ANCHOR_END: settings

/// Why the settings file is refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}: fix the file (its keys are dockerd's, see dockerd(8))")]
    Parse { path: PathBuf, cause: String },
    #[error("{path}: {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        why: String,
    },
}

/// The default file: root's in `/etc`, a user's in their config directory.
pub fn default_path() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/etc/berth/daemon.json");
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    config.join("berth/daemon.json")
}

// ANCHOR: load
/// The settings in `explicit` (which must exist), or in the default file
/// (which may not: then the defaults).
pub fn load(explicit: Option<&Path>) -> Result<Settings, SettingsError> {
    let path = explicit.map_or_else(default_path, Path::to_path_buf);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(Settings::default());
        }
        Err(cause) => return Err(SettingsError::Read { path, cause }),
    };
    let settings = parse(&text).map_err(|cause| SettingsError::Parse {
        path: path.clone(),
        cause,
    })?;
    settings
        .check()
        .map_err(|(key, why)| SettingsError::Invalid { path, key, why })?;
    Ok(settings)
}
// ANCHOR_END: load

/// The JSON, every key known: serde's "unknown field" names the key.
pub fn parse(text: &str) -> Result<Settings, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.replace("unknown field", "unknown key");
        if at == "." || at.is_empty() {
            inner
        } else {
            format!("{at}: {inner}")
        }
    })
}

impl Settings {
    /// The values checked, each as dockerd checks it: `(key, why)` if not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for mirror in &self.registry_mirrors {
            parse_mirror(mirror).map_err(|e| ("registry-mirrors", e.to_string()))?;
        }
        for entry in &self.insecure_registries {
            if entry.contains("://") {
                return Err((
                    "insecure-registries",
                    format!("{entry:?}: give HOST[:PORT] or a CIDR range, without a scheme"),
                ));
            }
            if entry.contains('/') && entry.parse::<IpNet>().is_err() {
                return Err((
                    "insecure-registries",
                    format!("{entry:?} is not a CIDR range (e.g. 10.0.0.0/8)"),
                ));
            }
        }
        if let Some(root) = &self.data_root
            && !root.is_absolute()
        {
            return Err((
                "data-root",
                format!("{} is not an absolute path", root.display()),
            ));
        }
        if let Some(runtime) = &self.default_runtime
            && !RUNTIMES.contains(&runtime.as_str())
        {
            return Err((
                "default-runtime",
                format!(
                    "unknown runtime {runtime:?}: use one of {}",
                    RUNTIMES.join(", ")
                ),
            ));
        }
        if let Some(driver) = &self.log_driver
            && driver != "json-file"
        {
            return Err((
                "log-driver",
                format!("{driver:?}: berth has the json-file log driver only"),
            ));
        }
        crate::engine::start::log_options(&self.log_opts).map_err(|why| ("log-opts", why))?;
        self.check_ulimits()?;
        self.check_networks()
    }

    fn check_ulimits(&self) -> Result<(), (&'static str, String)> {
        for (key, limit) in &self.default_ulimits {
            let why = if !ULIMITS.contains(&key.as_str()) {
                format!(
                    "unknown resource {key:?}: use one of {}",
                    ULIMITS.join(", ")
                )
            } else if limit.name != *key {
                format!("{key}: its Name is {:?}, not {key:?}", limit.name)
            } else if limit.soft > limit.hard {
                format!(
                    "{key}: the soft limit {} is above the hard limit {}",
                    limit.soft, limit.hard
                )
            } else {
                continue;
            };
            return Err(("default-ulimits", why));
        }
        Ok(())
    }

    fn check_networks(&self) -> Result<(), (&'static str, String)> {
        if let Some(bip) = &self.bip {
            let net: IpNet = bip.parse().map_err(|_| {
                (
                    "bip",
                    format!("{bip:?} is not an address with a prefix (e.g. 172.26.0.1/16)"),
                )
            })?;
            if !matches!(net, IpNet::V4(_)) {
                return Err(("bip", format!("{bip}: berth's networks are IPv4")));
            }
            if net.addr() == net.network() {
                return Err((
                    "bip",
                    format!("{bip}: give the bridge's own address, not the network's"),
                ));
            }
        }
        for pool in &self.default_address_pools {
            if !matches!(pool.base, IpNet::V4(_)) {
                return Err((
                    "default-address-pools",
                    format!("{}: berth's networks are IPv4", pool.base),
                ));
            }
            // A /31 or /32 has no address for a container next to the gateway.
            if pool.size < pool.base.prefix_len() || pool.size > 30 {
                return Err((
                    "default-address-pools",
                    format!(
                        "size {} cannot cut networks from {} (between {} and 30)",
                        pool.size,
                        pool.base,
                        pool.base.prefix_len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A new container's host config, completed with the file's defaults
    /// as dockerd does: `log-opts` when the container gave none, and each
    /// `default-ulimits` entry the container did not set itself.
    pub fn apply_defaults(&self, host_config: &mut HostConfig) {
        if host_config.log_config.config.is_empty() {
            host_config.log_config.config = self.log_opts.clone();
        }
        for (name, limit) in &self.default_ulimits {
            if !host_config.ulimits.iter().any(|u| u.name == *name) {
                host_config.ulimits.push(record::Ulimit {
                    name: name.clone(),
                    soft: limit.soft,
                    hard: limit.hard,
                });
            }
        }
    }

    /// `bip` and `default-address-pools` for the networks (checked: IPv4).
    pub fn address_plan(&self) -> AddressPlan {
        let v4 = |net: &IpNet| match net {
            IpNet::V4(net) => Some(*net),
            IpNet::V6(_) => None,
        };
        AddressPlan {
            default_bridge: self
                .bip
                .as_deref()
                .and_then(|b| b.parse::<IpNet>().ok())
                .as_ref()
                .and_then(v4),
            pools: (self.default_address_pools.iter())
                .filter_map(|p| Some((v4(&p.base)?, p.size)))
                .collect(),
        }
    }

    /// The insecure registries as `docker info` lists them: CIDR ranges
    /// (loopback's always first), then names.
    pub fn insecure_list(&self) -> Vec<String> {
        let mut out = vec![LOOPBACK_CIDR.to_string()];
        let (ranges, names): (Vec<&String>, Vec<&String>) = self
            .insecure_registries
            .iter()
            .partition(|e| e.contains('/'));
        out.extend(ranges.into_iter().filter(|r| *r != LOOPBACK_CIDR).cloned());
        out.extend(names.into_iter().cloned());
        out
    }

    /// Whether `registry` (`host[:port]`) may be spoken to over plain HTTP:
    /// named, or an address in a listed range (loopback always).
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = registry
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(registry, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = host.parse().ok();
        self.insecure_list()
            .iter()
            .any(|entry| match entry.parse::<IpNet>() {
                Ok(net) => ip.is_some_and(|ip| net.contains(&ip)),
                Err(_) => entry == registry || entry == host,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_keys_are_read() {
        let s = parse(
            r#"{"registry-mirrors":["https://m.example"],"insecure-registries":["r:5000","10.0.0.0/8"],
                "data-root":"/srv/berth","default-runtime":"runc","log-driver":"json-file",
                "log-opts":{"max-size":"10m","max-file":"3"},
                "default-ulimits":{"nofile":{"Name":"nofile","Hard":4096,"Soft":1024}},
                "bip":"172.26.0.1/16","default-address-pools":[{"base":"172.80.0.0/16","size":24}]}"#,
        )
        .unwrap();
        assert_eq!(s.check(), Ok(()));
        assert_eq!(s.registry_mirrors, ["https://m.example"]);
        assert_eq!(s.data_root.as_deref(), Some(Path::new("/srv/berth")));
        assert_eq!(s.default_ulimits["nofile"].soft, 1024);
        assert_eq!(s.insecure_list(), ["127.0.0.0/8", "10.0.0.0/8", "r:5000"]);
        assert!(s.is_insecure("r:5000"));
        assert!(s.is_insecure("10.1.2.3:5000"));
        assert!(s.is_insecure("127.0.0.1:5001"));
        assert!(!s.is_insecure("11.0.0.1:5000"));
        assert!(!s.is_insecure("docker.io"));
        assert_eq!(parse("{}").unwrap(), Settings::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = parse(r#"{"registry-mirror":["https://m.example"]}"#).unwrap_err();
        assert!(err.contains("unknown key `registry-mirror`"), "{err}");
        let err = parse(r#"{"default-ulimits":{"nofile":{"name":"nofile"}}}"#).unwrap_err();
        assert!(err.contains("default-ulimits.nofile"), "{err}");
    }

    #[test]
    fn values_that_make_no_sense_are_refused() {
        let bad = [
            (r#"{"registry-mirrors":["m.example"]}"#, "registry-mirrors"),
            (
                r#"{"insecure-registries":["http://r"]}"#,
                "insecure-registries",
            ),
            (
                r#"{"insecure-registries":["10.0.0.0/99"]}"#,
                "insecure-registries",
            ),
            (r#"{"data-root":"relative"}"#, "data-root"),
            (r#"{"default-runtime":"kata"}"#, "default-runtime"),
            (r#"{"log-driver":"syslog"}"#, "log-driver"),
            (r#"{"log-opts":{"max-files":"3"}}"#, "log-opts"),
            (
                r#"{"default-ulimits":{"nofile":{"Name":"nofile","Hard":1,"Soft":2}}}"#,
                "default-ulimits",
            ),
            (
                r#"{"default-ulimits":{"files":{"Name":"files","Hard":1,"Soft":1}}}"#,
                "default-ulimits",
            ),
            (r#"{"bip":"172.26.0.0/16"}"#, "bip"),
            (r#"{"bip":"fd00::1/64"}"#, "bip"),
            (
                r#"{"default-address-pools":[{"base":"172.80.0.0/16","size":8}]}"#,
                "default-address-pools",
            ),
        ];
        for (text, key) in bad {
            let settings = parse(text).unwrap();
            assert_eq!(settings.check().map_err(|(k, _)| k), Err(key), "{text}");
        }
    }
}
