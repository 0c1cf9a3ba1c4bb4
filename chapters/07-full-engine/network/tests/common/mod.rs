//! What the network tests share: a test host (the throwaway namespace the
//! test runs in, see `berth_test_support::test_host`), an "outside"
//! namespace on its uplink, containers (further namespaces running
//! busybox), and probes.
//!
//! Addresses: the test host's uplink is 198.51.100.2/24 (TEST-NET-2), the
//! outside host is 198.51.100.1 and also holds 203.0.113.10 (TEST-NET-3)
//! behind it; it serves HTTP on both and DNS (a small responder that knows
//! `outside.example`) on 198.51.100.1. Nothing leaves the test host's
//! namespaces.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_test_support::{ChildGuard, skip};
use ch07_network::dns::Launcher;
use ch07_network::etc::HostResolv;
use ch07_network::netlink::Netlink;
use ch07_network::ports::parse_publish;
use ch07_network::store::{Endpoint, random_id};
use ch07_network::{AttachRequest, HostConfig, Networks, firewall, netns};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

pub const HOST_UPLINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const FAR_AWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// The programs the tests drive; false (and a SKIPPED line) if one is missing.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            skip(test, &format!("needs {tool} on PATH"));
            return false;
        }
    }
    true
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

pub fn sh(args: &[&str]) {
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container: an ID and its network namespace.
#[derive(Clone, Debug)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub netns: PathBuf,
}

/// The test host: state, namespaces and the processes it started.
pub struct Host {
    pub tmp: tempfile::TempDir,
    pub networks: Networks,
    pub netns_dir: PathBuf,
    pub outside: Option<PathBuf>,
    children: Vec<ChildGuard>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ch07-network"))
}

impl Host {
    /// Set up inside a fresh test host: `lo` up, a state directory, a
    /// resolv.conf naming the outside host's DNS.
    pub fn new() -> Host {
        sh(&["ip", "link", "set", "lo", "up"]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let resolv = tmp.path().join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {OUTSIDE}\nsearch test.example\n"),
        )
        .unwrap();
        let netns_dir = tmp.path().join("netns");
        let host = HostConfig {
            state_dir: tmp.path().join("state"),
            netns_dir: netns_dir.clone(),
            proc_root: "/proc".into(),
            resolv: HostResolv {
                path: resolv,
                systemd_path: tmp.path().join("no-systemd"),
            },
            dns_launcher: Launcher {
                program: bin(),
                args: vec!["dns-serve".into()],
            },
        };
        let networks = Networks::open(host).expect("open the network state");
        Host {
            tmp,
            networks,
            netns_dir,
            outside: None,
            children: Vec::new(),
        }
    }

    /// The CLI with this host's state options.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(bin());
        let h = self.networks.host();
        cmd.arg("--state")
            .arg(&h.state_dir)
            .arg("--netns-dir")
            .arg(&h.netns_dir)
            .arg("--resolv-conf")
            .arg(&h.resolv.path);
        cmd
    }

    /// An uplink to an "outside" namespace: 198.51.100.2/24 here, the
    /// outside host at .1 (with 203.0.113.10 behind it), default route
    /// via it. The outside serves HTTP (its log names each client) and DNS.
    pub fn uplink(&mut self) {
        let outside = netns::create_netns(&self.netns_dir, "outside").unwrap();
        let nl = Netlink::open().unwrap();
        nl.add_veth_into("up0", "eth0", &outside, [0x02, 0, 0, 0, 0, 2])
            .unwrap();
        nl.add_address("up0", HOST_UPLINK, 24).unwrap();
        nl.set_up("up0").unwrap();
        nl.add_default_route(OUTSIDE, "up0").unwrap();
        let out = Netlink::open_in(&outside).unwrap();
        out.add_address("eth0", OUTSIDE, 24).unwrap();
        out.add_address("lo", FAR_AWAY, 32).unwrap();
        out.set_up("eth0").unwrap();
        let www = self.tmp.path().join("outside-www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "outside says hello\n").unwrap();
        let log = std::fs::File::create(self.tmp.path().join("outside-httpd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", outside.display()))
            .args(["busybox", "httpd", "-f", "-vv", "-p", "80", "-h"])
            .arg(&www)
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(ChildGuard(child));
        wait_listening(&outside, 80);
        fake_upstream_dns(&outside);
        self.outside = Some(outside);
    }

    /// What the outside's httpd logged (one line per request, with the
    /// client's address).
    pub fn outside_log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("outside-httpd.log")).unwrap_or_default()
    }

    /// A new container namespace.
    pub fn container(&self, name: &str) -> Ctr {
        let id = random_id().unwrap();
        let netns = netns::create_netns(&self.netns_dir, &id).unwrap();
        Ctr {
            id,
            name: name.to_string(),
            netns,
        }
    }

    pub fn request(
        &self,
        c: &Ctr,
        network: &str,
        aliases: &[&str],
        publish: &[&str],
    ) -> AttachRequest {
        AttachRequest {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            netns: c.netns.clone(),
            network: network.to_string(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            publish: publish
                .iter()
                .flat_map(|p| parse_publish(p).unwrap())
                .collect(),
            ..Default::default()
        }
    }

    pub fn attach(&self, c: &Ctr, network: &str, aliases: &[&str], publish: &[&str]) -> Endpoint {
        self.networks
            .attach(&self.request(c, network, aliases, publish))
            .unwrap_or_else(|e| panic!("attach {} to {network}: {e}", c.name))
            .1
    }

    /// Start a process in a namespace, kept until the host is dropped.
    pub fn spawn_in(&mut self, netns: &Path, args: &[&str]) -> u32 {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(ChildGuard(child));
        pid
    }

    pub fn keep(&mut self, child: Child) {
        self.children.push(ChildGuard(child));
    }

    /// busybox httpd on port 80 of the container, serving `body`.
    pub fn httpd(&mut self, c: &Ctr, body: &str) {
        let www = self.tmp.path().join(format!("www-{}", &c.id[..12]));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), body).unwrap();
        self.spawn_in(
            &c.netns.clone(),
            &[
                "busybox",
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
                www.to_str().unwrap(),
            ],
        );
        wait_listening(&c.netns, 80);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.children.clear();
        // Whatever a failed test left: the reconcile removes it all.
        let _ = self.networks.reconcile(&BTreeSet::new());
    }
}

/// Wait until something listens on TCP `port` in the namespace.
pub fn wait_listening(netns: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = netns::run_in_netns(netns, || {
            TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(200),
            )
            .is_ok()
        })
        .unwrap();
        if up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} in {}",
            netns.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `busybox wget -q -O - URL`, from the test host or from a namespace;
/// Ok(body) or Err(stderr).
pub fn wget(from: Option<&Path>, url: &str) -> Result<String, String> {
    let mut cmd = match from {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("timeout");
            c
        }
        None => Command::new("timeout"),
    };
    // busybox 1.35's wget crashes on -T: timeout(1) bounds it instead.
    let out = run(cmd.args(["5", "busybox", "wget", "-q", "-O", "-", url]));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// Ask `server` for `name`'s A records from inside `netns`, with hickory's
/// wire format; the answer's code and addresses (None: no answer at all).
pub fn dns_query(
    netns: &Path,
    server: Ipv4Addr,
    name: &str,
    kind: RecordType,
) -> Option<(ResponseCode, Vec<Ipv4Addr>)> {
    let mut query = Message::new();
    query.set_id(0x4242).set_recursion_desired(true);
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    let bytes = query.to_vec().unwrap();
    netns::run_in_netns(netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        socket.send_to(&bytes, (server, 53)).ok()?;
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).ok()?;
        let reply = Message::from_vec(&buf[..n]).ok()?;
        let addresses = reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(A(ip)) => Some(*ip),
                _ => None,
            })
            .collect();
        Some((reply.response_code(), addresses))
    })
    .unwrap()
}

/// The same question over TCP (two-byte length prefix, RFC 1035 4.2.2).
pub fn dns_query_tcp(
    netns: &Path,
    server: Ipv4Addr,
    name: &str,
) -> Option<(ResponseCode, Vec<Ipv4Addr>)> {
    use std::io::{Read, Write};
    let mut query = Message::new();
    query.set_id(0x4243).set_recursion_desired(true);
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = query.to_vec().unwrap();
    netns::run_in_netns(netns, move || {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from((server, 53)), Duration::from_secs(5))
                .ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(&(bytes.len() as u16).to_be_bytes()).ok()?;
        stream.write_all(&bytes).ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).ok()?;
        let reply = Message::from_vec(&buf).ok()?;
        let addresses = reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(A(ip)) => Some(*ip),
                _ => None,
            })
            .collect();
        Some((reply.response_code(), addresses))
    })
    .unwrap()
}

/// A DNS server of the outside world, on 198.51.100.1:53 in `outside`:
/// `outside.example` is 203.0.113.10, every other name NXDOMAIN.
fn fake_upstream_dns(outside: &Path) {
    let outside = outside.to_path_buf();
    std::thread::spawn(move || {
        netns::run_in_netns(&outside, || {
            let socket = UdpSocket::bind((OUTSIDE, 53)).expect("bind the outside DNS");
            let mut buf = [0u8; 4096];
            while let Ok((n, client)) = socket.recv_from(&mut buf) {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply =
                    Message::error_msg(query.id(), query.op_code(), ResponseCode::NXDomain);
                reply.add_queries(query.queries().to_vec());
                if let Some(q) = query.queries().first()
                    && q.name().to_ascii().eq_ignore_ascii_case("outside.example.")
                {
                    reply.set_response_code(ResponseCode::NoError);
                    if q.query_type() == RecordType::A {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A(FAR_AWAY)),
                        ));
                    }
                }
                let _ = socket.send_to(&reply.to_vec().unwrap(), client);
            }
        })
        .unwrap();
    });
}

/// A UDP echo server on `port` in the namespace: answers `pong <data>`.
pub fn udp_echo(netns: &Path, port: u16) {
    let netns = netns.to_path_buf();
    let (ready, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        netns::run_in_netns(&netns, || {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind the echo");
            ready.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while let Ok((n, client)) = socket.recv_from(&mut buf) {
                let reply = [b"pong ", &buf[..n]].concat();
                let _ = socket.send_to(&reply, client);
            }
        })
        .unwrap();
    });
    wait.recv().unwrap();
}

/// Send `data` to `to` over UDP from the current namespace; the reply.
pub fn udp_ask(to: SocketAddr, data: &str) -> Option<String> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    socket.send_to(data.as_bytes(), to).ok()?;
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The kernel resources of ours left in the test host: links with our
/// prefixes, our nftables table, DNS servers, leases.
pub fn leftovers(host: &Host) -> Vec<String> {
    let mut left = Vec::new();
    for link in Netlink::open().unwrap().links().unwrap() {
        if link.name.starts_with("bveth") || link.name.starts_with("berth") {
            left.push(format!("link {}", link.name));
        }
    }
    if firewall::current_table().unwrap().is_some() {
        left.push("table inet berth".into());
    }
    let store = host.networks.store();
    for network in host.networks.list().unwrap() {
        for id in store.endpoints(&network.id).unwrap().endpoints.keys() {
            left.push(format!("lease of {id} on {}", network.name));
        }
        if ch07_network::dns::running(store, Path::new("/proc"), &network.id).is_some() {
            left.push(format!("DNS server of {}", network.name));
        }
    }
    left
}

pub fn ip(endpoint: &Endpoint) -> IpAddr {
    IpAddr::V4(endpoint.ip)
}
