//! Where the network state lives, and the lock that serialises changes.
//!
//! Kernel feature: flock(2), an advisory lock held by an open file. Every
//! change (a network created or removed, an address leased, a container
//! attached or detached) happens under one exclusive lock on
//! `STATE/lock`, so two `berth` commands started at once, in separate
//! processes, can never lease one address twice or publish one host port
//! twice. The lock dies with its holder: a `kill -9` cannot leave it taken.
//!
//! Every file is written whole to a temporary name, fsynced and renamed
//! over the old one (rename(2) is atomic), so a crash leaves the old state
//! or the new one, never half of either. Layout of the state directory
//! (the engine passes it in: `/var/lib/berth/network` for root):
//!
//! ```text
//! lock                         the flock(2) every change holds
//! networks/<name>.json         one network's definition (subnet, bridge, ...)
//! endpoints/<network-id>.json  its endpoints: the address leases
//! dns/<network-id>.pid         its DNS server's process, while one runs
//! ```
//!
//! Man pages: flock(2), rename(2), fsync(2).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{NetworkError, Result, io_err};
use crate::ports::PortMapping;

/// One network's definition, as `network create` made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The name containers and users give (`bridge`, `mynet`).
    pub name: String,
    /// 64 hex digits, random, as docker's network IDs.
    pub id: String,
    /// `bridge` for networks with a bridge; `host` and `null` for the two
    /// pre-defined networks without one.
    pub driver: String,
    /// The bridge device (`berth0`, `berth1`, ...); empty without one.
    pub bridge: String,
    /// The subnet its containers get addresses from.
    pub subnet: Option<Ipv4Net>,
    /// The bridge's own address: the containers' default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`: no traffic in or out of the network but between its
    /// own containers.
    pub internal: bool,
    /// Containers resolve each other's names (user-defined networks).
    pub dns: bool,
    /// `--label KEY=VALUE`.
    pub labels: BTreeMap<String, String>,
    /// `--opt KEY=VALUE` (kept and shown by inspect).
    pub options: BTreeMap<String, String>,
    /// When it was created, RFC 3339.
    pub created: String,
}

impl NetworkConfig {
    /// True for the networks that get a bridge, addresses and rules.
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// The subnet's prefix length (16 for a /16).
    pub fn prefix_len(&self) -> u8 {
        self.subnet.map_or(0, |s| s.prefix_len())
    }
}

/// One container on one network: what its attach made and leased.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's 64-hex ID.
    pub container_id: String,
    /// The container's name (without docker's leading `/`).
    pub container_name: String,
    /// 64 hex digits, random, as docker's endpoint IDs.
    pub endpoint_id: String,
    /// `--network-alias`: more names the network's DNS answers for.
    pub aliases: Vec<String>,
    /// The leased address.
    pub ip: Ipv4Addr,
    /// The container interface's MAC address (`be:27:` + the address).
    pub mac: String,
    /// The veth's end on the host, plugged into the bridge.
    pub host_veth: String,
    /// The veth's end in the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// The container's network namespace (a bind-mounted nsfs file).
    pub netns: PathBuf,
    /// Published ports (`-p`), resolved to host ports.
    pub ports: Vec<PortMapping>,
    /// `--dns`: the upstream servers the network's DNS server uses for
    /// this container's queries for names outside the network.
    pub dns_servers: Vec<IpAddr>,
}

impl Endpoint {
    /// The names this endpoint answers to in the network's DNS: the
    /// container's name, its aliases and its short ID, as docker's.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if !self.container_name.is_empty() {
            names.push(self.container_name.clone());
        }
        names.extend(self.aliases.iter().cloned());
        names.push(self.container_id.chars().take(12).collect());
        names
    }
}

/// A network's endpoints: its address leases.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The address leased last: the next lease starts after it (docker's
    /// IPAM does the same), so a just-freed address is not reused at once.
    pub last: Option<Ipv4Addr>,
    /// By container ID.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// The network state directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive state lock; released when dropped.
pub struct StateLock {
    _flock: Flock<File>,
}

impl Store {
    /// Open (creating its directories) the state under `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for dir in ["networks", "endpoints", "dns"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    // ANCHOR: state_lock
    /// Take the state lock, waiting while another process holds it. Every
    /// read-modify-write of the state happens while the guard lives.
    pub fn lock(&self) -> Result<StateLock> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let flock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| NetworkError::Sys {
                what: format!("flock {}", path.display()),
                errno,
            })?;
        Ok(StateLock { _flock: flock })
    }
    // ANCHOR_END: state_lock

    fn network_path(&self, name: &str) -> PathBuf {
        self.root.join("networks").join(format!("{name}.json"))
    }

    /// The endpoints file of network `id` (the DNS server watches it).
    pub fn endpoints_path(&self, id: &str) -> PathBuf {
        self.root.join("endpoints").join(format!("{id}.json"))
    }

    /// The pid file of network `id`'s DNS server.
    pub fn dns_pid_path(&self, id: &str) -> PathBuf {
        self.root.join("dns").join(format!("{id}.pid"))
    }

    /// Every network, sorted by name.
    pub fn networks(&self) -> Result<Vec<NetworkConfig>> {
        let dir = self.root.join("networks");
        let mut networks = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                networks.push(read_json(&path)?);
            }
        }
        networks.sort_by(|a: &NetworkConfig, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// Write (create or replace) a network's definition.
    pub fn save_network(&self, network: &NetworkConfig) -> Result<()> {
        write_json(&self.network_path(&network.name), network)
    }

    /// Remove a network's definition and its (empty) endpoints file.
    pub fn delete_network(&self, network: &NetworkConfig) -> Result<()> {
        remove_if_exists(&self.endpoints_path(&network.id))?;
        remove_if_exists(&self.network_path(&network.name))
    }

    /// Network `id`'s endpoints (none if it never had any).
    pub fn endpoints(&self, id: &str) -> Result<Endpoints> {
        let path = self.endpoints_path(id);
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Endpoints::default()),
            _ => read_json(&path),
        }
    }

    /// Write network `id`'s endpoints.
    pub fn save_endpoints(&self, id: &str, endpoints: &Endpoints) -> Result<()> {
        write_json(&self.endpoints_path(id), endpoints)
    }
}

/// Read and parse a JSON state file.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|cause| NetworkError::State {
        path: path.to_path_buf(),
        cause,
    })
}

/// Write `value` as JSON to `path` atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|cause| NetworkError::State {
        path: path.to_path_buf(),
        cause,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Write `bytes` to a temporary file beside `path`, fsync it, rename it
/// over `path`, fsync the directory: readers see the old or the new file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map_or("state".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// Remove a file; a file already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// 64 random hex digits: a network or endpoint ID, as docker's.
pub fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    let path = Path::new("/dev/urandom");
    let mut file = File::open(path).map_err(io_err(path))?;
    io::Read::read_exact(&mut file, &mut bytes).map_err(io_err(path))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_and_missing_file_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.endpoints("abc").unwrap(), Endpoints::default());
        let eps = Endpoints {
            last: Some(Ipv4Addr::new(10, 77, 0, 2)),
            ..Default::default()
        };
        store.save_endpoints("abc", &eps).unwrap();
        assert_eq!(store.endpoints("abc").unwrap(), eps);
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(tmp.path().join("endpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc.json")]);
    }

    #[test]
    fn a_damaged_state_file_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        fs::write(store.endpoints_path("bad"), b"{not json").unwrap();
        let err = store.endpoints("bad").unwrap_err().to_string();
        assert!(
            err.starts_with("state file ") && err.contains("bad.json"),
            "{err}"
        );
    }

    #[test]
    fn random_ids_are_64_hex_and_differ() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
