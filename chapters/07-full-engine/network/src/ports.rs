//! Published ports: `-p` and `-P` as docker reads them, and the host ports
//! they get.
//!
//! `-p` forms (docker's): `CONTAINER`, `HOST:CONTAINER`, `IP:HOST:CONTAINER`,
//! `IP::CONTAINER`, each with an optional `/tcp` or `/udp`, and ranges on
//! either side (`8000-8001:80-81` maps port to port; `8000-8010:80` takes
//! one free host port of the range). Without a host port (`-p 80`, or
//! `-P` for each port the image EXPOSEs) the host port is chosen: the
//! first one of the host's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, as docker's port allocator
//! reads it) that no container publishes and no socket of the host holds.
//!
//! A host port is reserved by the endpoint record that names it (under
//! the state lock, see `store`): a second container asking for it gets
//! docker's "port is already allocated". A port a process of the host is
//! bound to is refused too (a test bind(2) on it fails): the DNAT rule
//! would otherwise steal that process's traffic without a word.
//!
//! Man pages: ip(7) (ip_local_port_range), bind(2).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetworkError, Result, io_err};

/// The transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Err(NetworkError::Invalid(
                "sctp ports are not supported by berth's networking: use tcp or udp".into(),
            )),
            _ => Err(NetworkError::Invalid(format!(
                "invalid proto: {s} (expected tcp or udp)"
            ))),
        }
    }
}

/// Which host port a `-p` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPort {
    /// Chosen from the ephemeral range (`-p 80`, `-P`).
    Any,
    /// That one (`-p 8080:80`).
    Fixed(u16),
    /// One free port of the range (`-p 8000-8010:80`).
    Range(u16, u16),
}

/// One published port as asked for, before a host port is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address it listens on; 0.0.0.0 for all of them.
    pub host_ip: Ipv4Addr,
    pub host_port: HostPort,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// One published port with its host port: what the DNAT rule says, what
/// `port` and inspect show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// As `docker port` prints it: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port, self.protocol, self.host_ip, self.host_port
        )
    }
}

fn parse_port(text: &str, what: &str) -> Result<u16> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(NetworkError::Invalid(format!(
            "invalid {what}: {text:?} (expected a port number 1-65535 or a range like 8000-8010)"
        ))),
    }
}

fn parse_range(text: &str, what: &str) -> Result<(u16, u16)> {
    match text.split_once('-') {
        None => {
            let p = parse_port(text, what)?;
            Ok((p, p))
        }
        Some((lo, hi)) => {
            let (lo, hi) = (parse_port(lo, what)?, parse_port(hi, what)?);
            if lo > hi {
                return Err(NetworkError::Invalid(format!(
                    "invalid {what}: {text:?} (the range's start is above its end)"
                )));
            }
            Ok((lo, hi))
        }
    }
}

// ANCHOR: parse_publish
/// Parse one `-p` value into the ports it publishes.
pub fn parse_publish(text: &str) -> Result<Vec<PortSpec>> {
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, proto)) => (rest, proto.parse()?),
        None => (text, Protocol::Tcp),
    };
    if rest.starts_with('[') {
        return Err(NetworkError::Invalid(format!(
            "invalid publish {text:?}: IPv6 host addresses are not supported by berth's networking (IPv4 only)"
        )));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => {
            return Err(NetworkError::Invalid(format!(
                "invalid publish {text:?}: expected [[IP:]HOST:]CONTAINER[/PROTO]"
            )));
        }
    };
    let host_ip = if ip.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        ip.parse().map_err(|_| {
            NetworkError::Invalid(format!("invalid IP address in publish {text:?}: {ip:?}"))
        })?
    };
    let (c_lo, c_hi) = parse_range(container, "containerPort")?;
    let count = c_hi - c_lo + 1;
    let host = if host.is_empty() {
        None
    } else {
        Some(parse_range(host, "hostPort")?)
    };
    let spec = |container_port, host_port| PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    };
    match host {
        None => Ok((c_lo..=c_hi).map(|c| spec(c, HostPort::Any)).collect()),
        // 8000-8010:80: one port of the host range.
        Some((h_lo, h_hi)) if count == 1 && h_hi > h_lo => {
            Ok(vec![spec(c_lo, HostPort::Range(h_lo, h_hi))])
        }
        Some((h_lo, h_hi)) if h_hi - h_lo + 1 == count => Ok((0..count)
            .map(|i| spec(c_lo + i, HostPort::Fixed(h_lo + i)))
            .collect()),
        Some(_) => Err(NetworkError::Invalid(format!(
            "invalid ranges specified for container and host Ports: {text:?} (the two ranges must be as long, or the container side one port)"
        ))),
    }
}
// ANCHOR_END: parse_publish

/// Parse an image's EXPOSE entry (`80`, `80/tcp`, `53/udp`, `8000-8002`).
pub fn parse_exposed(text: &str) -> Result<Vec<(u16, Protocol)>> {
    let (port, protocol) = match text.split_once('/') {
        Some((p, proto)) => (p, proto.parse()?),
        None => (text, Protocol::Tcp),
    };
    let (lo, hi) = parse_range(port, "exposed port")?;
    Ok((lo..=hi).map(|p| (p, protocol)).collect())
}

/// `-P`: every exposed port published on a host port chosen for it.
pub fn publish_all(exposed: &[(u16, Protocol)]) -> Vec<PortSpec> {
    exposed
        .iter()
        .map(|&(container_port, protocol)| PortSpec {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: HostPort::Any,
            container_port,
            protocol,
        })
        .collect()
}

/// The host's ephemeral port range, read from `PROC/sys/net/ipv4/ip_local_port_range`.
pub fn ephemeral_range(proc_root: &Path) -> Result<(u16, u16)> {
    let path = proc_root.join("sys/net/ipv4/ip_local_port_range");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Ok((lo, hi)),
        _ => Err(NetworkError::Invalid(format!(
            "{}: expected two port numbers, found {text:?}",
            path.display()
        ))),
    }
}

/// True if two host addresses can receive the same packets (0.0.0.0
/// overlaps every address).
fn addresses_meet(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Try to bind `ip:port` for `protocol`, to see whether a socket of the
/// host already holds it; the test socket is closed at once.
pub fn probe_bind(ip: Ipv4Addr, port: u16, protocol: Protocol) -> std::io::Result<()> {
    let addr = SocketAddrV4::new(ip, port);
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    }
}

// ANCHOR: choose_host_ports
/// Give every spec a host port: fixed ones are checked against `taken`
/// (every port published by a container) and against the host's sockets,
/// the others get the first free port of their range or of `ephemeral`.
pub fn choose_host_ports(
    specs: &[PortSpec],
    taken: &[PortMapping],
    ephemeral: (u16, u16),
) -> Result<Vec<PortMapping>> {
    let mut chosen: Vec<PortMapping> = Vec::new();
    for spec in specs {
        let in_use = |port: u16, chosen: &[PortMapping]| {
            taken.iter().chain(chosen).any(|m| {
                m.protocol == spec.protocol
                    && m.host_port == port
                    && addresses_meet(m.host_ip, spec.host_ip)
            })
        };
        let mapping = |host_port| PortMapping {
            host_ip: spec.host_ip,
            host_port,
            container_port: spec.container_port,
            protocol: spec.protocol,
        };
        let host_port = match spec.host_port {
            HostPort::Fixed(port) => {
                if in_use(port, &chosen) {
                    return Err(NetworkError::PortAllocated(format!(
                        "{}:{port}",
                        spec.host_ip
                    )));
                }
                probe_bind(spec.host_ip, port, spec.protocol).map_err(|cause| {
                    NetworkError::PortInUse {
                        addr: format!("{}:{port}/{}", spec.host_ip, spec.protocol),
                        cause,
                    }
                })?;
                port
            }
            HostPort::Any | HostPort::Range(..) => {
                let (lo, hi) = match spec.host_port {
                    HostPort::Range(lo, hi) => (lo, hi),
                    _ => ephemeral,
                };
                (lo..=hi)
                    .find(|&p| {
                        !in_use(p, &chosen) && probe_bind(spec.host_ip, p, spec.protocol).is_ok()
                    })
                    .ok_or_else(|| {
                        NetworkError::PortAllocated(format!(
                            "{}:{lo}-{hi}/{} (every port of the range)",
                            spec.host_ip, spec.protocol
                        ))
                    })?
            }
        };
        chosen.push(mapping(host_port));
    }
    Ok(chosen)
}
// ANCHOR_END: choose_host_ports

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ip: [u8; 4], host: HostPort, c: u16, p: Protocol) -> PortSpec {
        PortSpec {
            host_ip: Ipv4Addr::from(ip),
            host_port: host,
            container_port: c,
            protocol: p,
        }
    }

    #[test]
    fn publish_forms_parse_as_docker_reads_them() {
        use HostPort::*;
        use Protocol::*;
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![spec([0; 4], Any, 80, Tcp)]
        );
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            vec![spec([0; 4], Fixed(8080), 80, Tcp)]
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            vec![spec([127, 0, 0, 1], Fixed(8080), 80, Udp)]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            vec![spec([127, 0, 0, 1], Any, 80, Tcp)]
        );
        assert_eq!(
            parse_publish("8000-8001:80-81/TCP").unwrap(),
            vec![
                spec([0; 4], Fixed(8000), 80, Tcp),
                spec([0; 4], Fixed(8001), 81, Tcp)
            ]
        );
        assert_eq!(
            parse_publish("8000-8010:80").unwrap(),
            vec![spec([0; 4], Range(8000, 8010), 80, Tcp)]
        );
    }

    #[test]
    fn bad_publish_values_say_what_is_wrong() {
        for (bad, says) in [
            ("abc", "invalid containerPort"),
            ("0:80", "invalid hostPort"),
            ("8080:70000", "invalid containerPort"),
            ("1.2.3:8080:80", "invalid IP address"),
            ("8080:80/icmp", "invalid proto"),
            ("8080:80/sctp", "sctp"),
            ("8000-8002:80-81", "ranges"),
            ("81-80", "start is above"),
            ("[::1]:8080:80", "IPv6"),
            ("a:b:c:d", "expected [[IP:]HOST:]CONTAINER"),
        ] {
            let err = parse_publish(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn exposed_ports_become_any_host_port() {
        let exposed: Vec<_> = ["80/tcp", "53/udp", "9000-9001"]
            .iter()
            .flat_map(|e| parse_exposed(e).unwrap())
            .collect();
        assert_eq!(
            exposed,
            vec![
                (80, Protocol::Tcp),
                (53, Protocol::Udp),
                (9000, Protocol::Tcp),
                (9001, Protocol::Tcp)
            ]
        );
        assert!(
            publish_all(&exposed)
                .iter()
                .all(|s| s.host_port == HostPort::Any)
        );
    }

    #[test]
    fn the_ephemeral_range_is_read_from_proc() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sys/net/ipv4")).unwrap();
        std::fs::write(
            tmp.path().join("sys/net/ipv4/ip_local_port_range"),
            "32768\t60999\n",
        )
        .unwrap();
        assert_eq!(ephemeral_range(tmp.path()).unwrap(), (32768, 60999));
        std::fs::write(tmp.path().join("sys/net/ipv4/ip_local_port_range"), "x\n").unwrap();
        assert!(ephemeral_range(tmp.path()).is_err());
    }

    #[test]
    fn taken_ports_are_refused_or_skipped() {
        // Ports in a range no test of this machine binds.
        let taken = [PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 47001,
            container_port: 80,
            protocol: Protocol::Tcp,
        }];
        let fixed = spec([127, 0, 0, 1], HostPort::Fixed(47001), 80, Protocol::Tcp);
        let err = choose_host_ports(&[fixed], &taken, (47001, 47010)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 127.0.0.1:47001 failed: port is already allocated"
        );
        // The same port in UDP is free.
        let udp = spec([127, 0, 0, 1], HostPort::Fixed(47001), 80, Protocol::Udp);
        assert_eq!(
            choose_host_ports(&[udp], &taken, (47001, 47010)).unwrap()[0].host_port,
            47001
        );
        // Any: the first free one, and two specs of one call never share.
        let any = spec([127, 0, 0, 1], HostPort::Any, 80, Protocol::Tcp);
        let got = choose_host_ports(&[any, any], &taken, (47001, 47010)).unwrap();
        assert_eq!(got[0].host_port, 47002);
        assert_eq!(got[1].host_port, 47003);
        // A port a socket of the host holds is refused.
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let held = spec([127, 0, 0, 1], HostPort::Fixed(port), 80, Protocol::Tcp);
        let err = choose_host_ports(&[held], &[], (47001, 47010))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Address already in use") || err.contains("in use"),
            "{err}"
        );
    }
}
