//! The three files every container gets in /etc: `hostname`, `hosts` and
//! `resolv.conf`, with docker's content and rules.
//!
//! They are not part of the image: the engine writes them per container
//! (into the container's directory) and bind-mounts them over /etc/hostname,
//! /etc/hosts and /etc/resolv.conf, as docker and podman do.
//!
//! - `hostname`: `--hostname`, else the first 12 digits of the ID.
//! - `hosts`: localhost and the IPv6 names, then `--add-host` entries
//!   (`host-gateway` stands for the default bridge's gateway: the host as
//!   containers reach it), then each address of the container with its
//!   hostname. `--network host` gets a copy of the host's file instead.
//! - `resolv.conf` depends on the network:
//!   - the default bridge, `none`: the host's file (systemd-resolved's
//!     upstream file when the host's only names the local stub
//!     127.0.0.53), without the loopback nameservers (a container's
//!     127.0.0.1 is not the host's); none left: Google's 8.8.8.8 and
//!     8.8.4.4, as docker does.
//!   - a user-defined network: the network's DNS server, on the gateway
//!     address (see `dns`), with `options ndots:0` so single names go to
//!     it first; the host's nameservers become that server's upstreams.
//!   - `host`: the host's file as it is.
//!   - rootless (pasta): pasta's DNS forwarder at 169.254.1.1.
//!
//!   `--dns`, `--dns-search` (`.` for none) and `--dns-option` replace the
//!   host's values.
//!
//! Man pages: resolv.conf(5), hosts(5), hostname(5).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::error::{NetworkError, Result, io_err};
use crate::store::write_atomic;

/// What a resolv.conf says that matters here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Read the lines of a resolv.conf that a resolver reads (`nameserver`,
/// `search` and `domain`, `options`); the last `search`/`domain` wins.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // An IPv6 nameserver may carry a zone (fe80::1%eth0).
                if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse().ok()) {
                    conf.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => conf.search = words.map(str::to_string).collect(),
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// Where the host's resolver configuration lives.
#[derive(Clone, Debug)]
pub struct HostResolv {
    /// `/etc/resolv.conf`.
    pub path: PathBuf,
    /// `/run/systemd/resolve/resolv.conf`: systemd-resolved's upstreams.
    pub systemd_path: PathBuf,
}

impl Default for HostResolv {
    fn default() -> Self {
        HostResolv {
            path: "/etc/resolv.conf".into(),
            systemd_path: "/run/systemd/resolve/resolv.conf".into(),
        }
    }
}

impl HostResolv {
    /// The host's file to start from, and its text: systemd-resolved's
    /// upstream file when the host's file names only the 127.0.0.53 stub.
    pub fn read(&self) -> Result<(PathBuf, String)> {
        let text = std::fs::read_to_string(&self.path).map_err(io_err(&self.path))?;
        let stub: IpAddr = Ipv4Addr::new(127, 0, 0, 53).into();
        if parse_resolv_conf(&text).nameservers == [stub]
            && let Ok(upstream) = std::fs::read_to_string(&self.systemd_path)
        {
            return Ok((self.systemd_path.clone(), upstream));
        }
        Ok((self.path.clone(), text))
    }
}

/// `--dns`, `--dns-search`, `--dns-option`.
#[derive(Clone, Debug, Default)]
pub struct DnsFlags {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Which resolv.conf a container gets.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolvMode {
    /// Default bridge or `none`: the host's servers minus loopback.
    Filtered,
    /// User-defined network: its DNS server at this address.
    Embedded(Ipv4Addr),
    /// `--network host`: the host's file.
    Host,
    /// Rootless with pasta: pasta's forwarder at this address.
    Forwarder(Ipv4Addr),
}

/// Docker's fallback when no usable nameserver is left.
const FALLBACK_DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

// ANCHOR: resolv_conf
/// A container's resolv.conf, from the host's (`host_text`, read from
/// `host_path`), the network's mode and the container's flags.
pub fn resolv_conf(
    host_path: &Path,
    host_text: &str,
    mode: &ResolvMode,
    flags: &DnsFlags,
) -> String {
    // 1. `--network host` with no DNS flags: the host's file, as it is.
    if *mode == ResolvMode::Host
        && flags.servers.is_empty()
        && flags.search.is_empty()
        && flags.options.is_empty()
    {
        return host_text.to_string();
    }
    // 2. Otherwise the three lists, each from the flags or else the host.
    let host = parse_resolv_conf(host_text);
    let conf = ResolvConf {
        nameservers: nameservers(&host, mode, flags),
        search: match flags.search.as_slice() {
            [] => host.search.clone(),
            [dot] if dot == "." => Vec::new(),
            given => given.to_vec(),
        },
        options: if flags.options.is_empty() {
            host.options.clone()
        } else {
            flags.options.clone()
        },
    };
    // 3. The file, saying where it came from.
    render_resolv_conf(conf, host_path, &host, mode, flags)
}
// ANCHOR_END: resolv_conf

/// The `nameserver` lines: the network's DNS server, the `--dns` flags,
/// or the host's servers that a container can reach.
// ANCHOR: nameservers
fn nameservers(host: &ResolvConf, mode: &ResolvMode, flags: &DnsFlags) -> Vec<IpAddr> {
    match mode {
        ResolvMode::Embedded(ip) | ResolvMode::Forwarder(ip) => vec![IpAddr::V4(*ip)],
        _ if !flags.servers.is_empty() => flags.servers.clone(),
        ResolvMode::Host => host.nameservers.clone(),
        ResolvMode::Filtered => {
            // No IPv6 in berth's networks, and the container's loopback is
            // its own: keep only IPv4 servers off the loopback.
            let usable: Vec<IpAddr> = host
                .nameservers
                .iter()
                .copied()
                .filter(|ip| matches!(ip, IpAddr::V4(v4) if !v4.is_loopback()))
                .collect();
            if usable.is_empty() {
                FALLBACK_DNS.iter().map(|ip| IpAddr::V4(*ip)).collect()
            } else {
                usable
            }
        }
    }
}
// ANCHOR_END: nameservers

/// The text of a resolv.conf, with docker's comments.
fn render_resolv_conf(
    mut conf: ResolvConf,
    host_path: &Path,
    host: &ResolvConf,
    mode: &ResolvMode,
    flags: &DnsFlags,
) -> String {
    if matches!(mode, ResolvMode::Embedded(_))
        && !conf.options.iter().any(|o| o.starts_with("ndots:"))
    {
        conf.options.push("ndots:0".into());
    }
    let mut text = String::from("# Generated by Berth.\n");
    for ns in &conf.nameservers {
        text.push_str(&format!("nameserver {ns}\n"));
    }
    if !conf.search.is_empty() {
        text.push_str(&format!("search {}\n", conf.search.join(" ")));
    }
    if !conf.options.is_empty() {
        text.push_str(&format!("options {}\n", conf.options.join(" ")));
    }
    text.push_str(&format!(
        "\n# Based on host file: '{}'\n",
        host_path.display()
    ));
    if let ResolvMode::Embedded(_) = mode {
        let upstream = if flags.servers.is_empty() {
            &host.nameservers
        } else {
            &flags.servers
        };
        let upstream: Vec<String> = upstream.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "# The network's DNS server forwards other names to: [{}]\n",
            upstream.join(" ")
        ));
    }
    text
}

/// Parse `--add-host NAME:IP` (or `NAME=IP`); `host-gateway` as the IP
/// means `host_gateway`.
pub fn parse_add_host(text: &str, host_gateway: Option<Ipv4Addr>) -> Result<(String, IpAddr)> {
    let (name, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| {
            NetworkError::Invalid(format!(
                "bad format for add-host: {text:?} (expected NAME:IP)"
            ))
        })?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(NetworkError::Invalid(format!(
            "invalid hostname in add-host {text:?}"
        )));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" {
        IpAddr::V4(host_gateway.ok_or_else(|| {
            NetworkError::Invalid(
                "add-host host-gateway: the default bridge network has no gateway".into(),
            )
        })?)
    } else {
        ip.parse()
            .map_err(|_| NetworkError::Invalid(format!("invalid IP address in add-host: {ip:?}")))?
    };
    Ok((name.to_string(), ip))
}

/// Check a `--hostname` as docker does (RFC 1123 labels).
pub fn check_hostname(name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(NetworkError::Invalid(format!(
            "invalid hostname format: {name:?} (letters, digits and '-', in dot-separated labels of at most 63)"
        )));
    }
    Ok(())
}

// ANCHOR: hosts_file
/// A container's /etc/hosts: docker's fixed lines, the `--add-host`
/// entries, then each of the container's addresses with its hostname.
pub fn hosts_file(
    hostname: &str,
    domainname: &str,
    addresses: &[IpAddr],
    extra: &[(String, IpAddr)],
) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    let names = if domainname.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domainname} {hostname}")
    };
    for ip in addresses {
        text.push_str(&format!("{ip}\t{names}\n"));
    }
    text
}
// ANCHOR_END: hosts_file

/// What the engine knows when it writes a container's /etc files.
#[derive(Clone, Debug, Default)]
pub struct EtcRequest {
    pub hostname: String,
    pub domainname: String,
    /// The container's addresses (one per bridge network it is on).
    pub addresses: Vec<IpAddr>,
    /// Parsed `--add-host` entries.
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub dns: DnsFlags,
    pub mode: Option<ResolvMode>,
}

/// The three files written, for the engine to bind-mount.
#[derive(Clone, Debug, PartialEq)]
pub struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Write `hostname`, `hosts` and `resolv.conf` into `dir` (each atomically).
/// `host_hosts` is the host's /etc/hosts, copied for `--network host`.
pub fn write_etc_files(
    dir: &Path,
    request: &EtcRequest,
    resolv: &HostResolv,
    host_hosts: &Path,
) -> Result<EtcFiles> {
    check_hostname(&request.hostname)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mode = request.mode.clone().unwrap_or(ResolvMode::Filtered);
    let files = EtcFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
    };
    write_atomic(
        &files.hostname,
        format!("{}\n", request.hostname).as_bytes(),
    )?;
    let hosts = if mode == ResolvMode::Host {
        let mut text = std::fs::read_to_string(host_hosts).map_err(io_err(host_hosts))?;
        for (name, ip) in &request.extra_hosts {
            text.push_str(&format!("{ip}\t{name}\n"));
        }
        text
    } else {
        hosts_file(
            &request.hostname,
            &request.domainname,
            &request.addresses,
            &request.extra_hosts,
        )
    };
    write_atomic(&files.hosts, hosts.as_bytes())?;
    let (host_path, host_text) = resolv.read()?;
    write_atomic(
        &files.resolv_conf,
        resolv_conf(&host_path, &host_text, &mode, &request.dns).as_bytes(),
    )?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# comment\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nsearch corp.example lab.example\noptions edns0 trust-ad\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_host_file_parses() {
        let conf = parse_resolv_conf(HOST);
        assert_eq!(
            conf.nameservers,
            vec![ip("127.0.0.53"), ip("10.255.255.53"), ip("::1")]
        );
        assert_eq!(conf.search, vec!["corp.example", "lab.example"]);
        assert_eq!(conf.options, vec!["edns0", "trust-ad"]);
    }

    #[test]
    fn the_default_bridge_drops_loopback_servers_or_falls_back_to_google() {
        let text = resolv_conf(
            Path::new("/etc/resolv.conf"),
            HOST,
            &ResolvMode::Filtered,
            &DnsFlags::default(),
        );
        assert!(text.contains("nameserver 10.255.255.53\n"), "{text}");
        assert!(
            !text.contains("127.0.0.53") && !text.contains("::1"),
            "{text}"
        );
        assert!(text.contains("search corp.example lab.example\n"));
        assert!(text.contains("options edns0 trust-ad\n"));
        let only_local = "nameserver 127.0.0.1\n";
        let text = resolv_conf(
            Path::new("/etc/resolv.conf"),
            only_local,
            &ResolvMode::Filtered,
            &DnsFlags::default(),
        );
        assert!(
            text.contains("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
            "{text}"
        );
    }

    #[test]
    fn user_networks_use_their_dns_server_with_ndots_0() {
        let gw = Ipv4Addr::new(10, 78, 0, 1);
        let text = resolv_conf(
            Path::new("/etc/resolv.conf"),
            HOST,
            &ResolvMode::Embedded(gw),
            &DnsFlags::default(),
        );
        assert!(text.contains("nameserver 10.78.0.1\n"), "{text}");
        assert_eq!(text.matches("nameserver").count(), 1, "{text}");
        assert!(text.contains("options edns0 trust-ad ndots:0\n"), "{text}");
        assert!(
            text.contains("forwards other names to: [127.0.0.53 10.255.255.53 ::1]"),
            "{text}"
        );
    }

    #[test]
    fn flags_replace_the_hosts_values() {
        let flags = DnsFlags {
            servers: vec![ip("192.0.2.53")],
            search: vec![".".into()],
            options: vec!["ndots:2".into()],
        };
        let text = resolv_conf(
            Path::new("/etc/resolv.conf"),
            HOST,
            &ResolvMode::Filtered,
            &flags,
        );
        assert!(text.contains("nameserver 192.0.2.53\n"));
        assert!(!text.contains("search"), "{text}");
        assert!(text.contains("options ndots:2\n"));
        let host = resolv_conf(
            Path::new("/etc/resolv.conf"),
            HOST,
            &ResolvMode::Host,
            &DnsFlags::default(),
        );
        assert_eq!(host, HOST);
    }

    #[test]
    fn systemd_resolved_stub_is_replaced_by_its_upstream_file() {
        let tmp = tempfile::tempdir().unwrap();
        let stub = tmp.path().join("resolv.conf");
        let upstream = tmp.path().join("upstream.conf");
        std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        let resolv = HostResolv {
            path: stub.clone(),
            systemd_path: upstream.clone(),
        };
        assert_eq!(
            resolv.read().unwrap().0,
            stub,
            "no upstream file: the stub file"
        );
        std::fs::write(&upstream, "nameserver 192.0.2.1\n").unwrap();
        assert_eq!(
            resolv.read().unwrap(),
            (upstream, "nameserver 192.0.2.1\n".to_string())
        );
    }

    #[test]
    fn hosts_lists_extra_hosts_then_the_containers_addresses() {
        let text = hosts_file(
            "web",
            "",
            &[ip("10.77.0.2")],
            &[("db".into(), ip("192.0.2.9"))],
        );
        assert!(
            text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        );
        assert!(text.ends_with("192.0.2.9\tdb\n10.77.0.2\tweb\n"), "{text}");
        let text = hosts_file("web", "example.org", &[ip("10.77.0.2")], &[]);
        assert!(text.ends_with("10.77.0.2\tweb.example.org web\n"), "{text}");
    }

    #[test]
    fn add_host_forms_and_errors() {
        let gw = Some(Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(
            parse_add_host("db:192.0.2.9", gw).unwrap(),
            ("db".into(), ip("192.0.2.9"))
        );
        assert_eq!(
            parse_add_host("db=192.0.2.9", gw).unwrap(),
            ("db".into(), ip("192.0.2.9"))
        );
        assert_eq!(
            parse_add_host("v6:::1", gw).unwrap(),
            ("v6".into(), ip("::1"))
        );
        assert_eq!(
            parse_add_host("host.docker.internal:host-gateway", gw)
                .unwrap()
                .1,
            ip("10.77.0.1")
        );
        assert!(parse_add_host("nocolon", gw).is_err());
        assert!(parse_add_host("db:999.1.1.1", gw).is_err());
        assert!(parse_add_host("bad name:1.2.3.4", gw).is_err());
    }

    #[test]
    fn the_three_files_are_written_and_a_bad_hostname_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let host_resolv = tmp.path().join("host-resolv.conf");
        std::fs::write(&host_resolv, HOST).unwrap();
        let resolv = HostResolv {
            path: host_resolv,
            systemd_path: tmp.path().join("none"),
        };
        let request = EtcRequest {
            hostname: "web".into(),
            addresses: vec![ip("10.78.0.2")],
            mode: Some(ResolvMode::Embedded(Ipv4Addr::new(10, 78, 0, 1))),
            ..Default::default()
        };
        let dir = tmp.path().join("c");
        let files = write_etc_files(&dir, &request, &resolv, Path::new("/etc/hosts")).unwrap();
        assert_eq!(std::fs::read_to_string(&files.hostname).unwrap(), "web\n");
        assert!(
            std::fs::read_to_string(&files.hosts)
                .unwrap()
                .ends_with("10.78.0.2\tweb\n")
        );
        assert!(
            std::fs::read_to_string(&files.resolv_conf)
                .unwrap()
                .contains("nameserver 10.78.0.1\n")
        );
        let bad = EtcRequest {
            hostname: "-bad-".into(),
            ..Default::default()
        };
        let dir2 = tmp.path().join("d");
        assert!(write_etc_files(&dir2, &bad, &resolv, Path::new("/etc/hosts")).is_err());
        assert!(!dir2.exists());
    }
}
