//! The embedded DNS server: containers of a user-defined network find
//! each other by name.
//!
//! Docker answers a container's DNS queries at 127.0.0.11 inside the
//! container's own namespace (an iptables redirect to a socket dockerd
//! opened in that namespace): one listener per container, kept by the
//! daemon. Podman's aardvark-dns listens on each network's gateway
//! address instead. Berth has no daemon to keep per-container sockets, so
//! it takes podman's way: **one small server process per network,
//! listening on the bridge's gateway address (UDP and TCP port 53) in the
//! host's namespace**, started with the network's first container and
//! stopped with its last. Containers reach it as their `nameserver` (see
//! `etc`); it runs in the host's namespace, so the host's own resolvers,
//! loopback ones included (systemd-resolved's 127.0.0.53), are its
//! upstreams.
//!
//! What it answers:
//! - `A` for a container's name, its `--network-alias`es and its short ID
//!   (alone, or followed by `.NETWORK`), with every matching container's
//!   address (several containers may share an alias: round robin);
//!   `AAAA` and other types for those names: an empty answer (the name
//!   exists, it has no such record), never NXDOMAIN;
//! - `PTR` for the network's addresses;
//! - anything else: forwarded to the container's `--dns` servers, or the
//!   host's, and the answer relayed. No upstream: SERVFAIL.
//! - Queries from outside the network's subnet are REFUSED. The gateway
//!   address is a host address, reachable from every network (the
//!   isolation rules only cover forwarded traffic): without this check a
//!   container of another network could ask this server for this
//!   network's names, and anyone who can route to the host could use it
//!   as an open resolver.
//!
//! Its data is the network's endpoints file (see `store`), read again
//! whenever it changes. It exits by itself when the file is gone or
//! empty (the network's last container left), and on SIGTERM.
//!
//! The DNS wire format is hickory-proto's, not ours.
//!
//! Man pages: resolv.conf(5); RFC 1035 (the protocol).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::Ipv4Net;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::error::{NetworkError, Result, io_err};
use crate::etc::parse_resolv_conf;
use crate::store::{
    Endpoint, Endpoints, NetworkConfig, Store, read_json, remove_if_exists, write_atomic,
};

/// How long an answer may be cached (docker's embedded DNS uses 600 s).
const TTL: u32 = 600;
/// How long to wait for one upstream server.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// The names of one network, as the endpoints file says.
#[derive(Default)]
struct Zone {
    network: String,
    subnet: Option<Ipv4Net>,
    /// `--internal`: nothing leaves the network, DNS queries neither.
    internal: bool,
    endpoints: Vec<Endpoint>,
    /// (inode, mtime, size) of the file read: reread when they change.
    stamp: Option<(u64, i64, u64)>,
}

impl Zone {
    /// Reread the endpoints file if it changed; false once it is gone or
    /// empty (the server then exits).
    fn refresh(&mut self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let stamp = (
            meta.ino(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
            meta.size(),
        );
        if self.stamp != Some(stamp) {
            match read_json::<Endpoints>(path) {
                Ok(endpoints) => {
                    self.endpoints = endpoints.endpoints.into_values().collect();
                    self.stamp = Some(stamp);
                }
                Err(e) => eprintln!("berth dns: {e}"),
            }
        }
        !self.endpoints.is_empty()
    }

    /// The addresses a (lowercase, dotless-at-the-end) name stands for.
    fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        let suffix = format!(".{}", self.network.to_ascii_lowercase());
        let bare = name.strip_suffix(&suffix).unwrap_or(name);
        self.endpoints
            .iter()
            .filter(|e| e.dns_names().iter().any(|n| n.eq_ignore_ascii_case(bare)))
            .map(|e| e.ip)
            .collect()
    }

    fn name_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| e.ip == ip)
            .map(|e| e.container_name.as_str())
    }

    fn endpoint_at(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| IpAddr::V4(e.ip) == ip)
    }
}

/// What to do with one query.
enum Verdict {
    /// Send this answer.
    Answer(Vec<u8>),
    /// Ask these upstream servers, relay their answer.
    Forward(Vec<IpAddr>),
    /// Not a DNS message: ignore.
    Ignore,
}

fn reply_to(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::error_msg(query.id(), query.op_code(), code);
    reply.set_recursion_desired(query.recursion_desired());
    reply.set_recursion_available(true);
    reply.add_queries(query.queries().to_vec());
    reply
}

fn encode(message: &Message) -> Verdict {
    match message.to_vec() {
        Ok(bytes) => Verdict::Answer(bytes),
        Err(e) => {
            eprintln!("berth dns: encode an answer: {e}");
            Verdict::Ignore
        }
    }
}

// ANCHOR: answer
/// Decide about one query from `client`.
fn answer(zone: &Zone, bytes: &[u8], client: IpAddr, upstreams: &[IpAddr]) -> Verdict {
    // 1. A query; what does not parse gets FORMERR, if it has an id to
    //    answer to.
    let query = match Message::from_vec(bytes) {
        Ok(q) if q.message_type() == MessageType::Query => q,
        Ok(_) => return Verdict::Ignore,
        Err(_) if bytes.len() >= 2 => {
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            return encode(&Message::error_msg(
                id,
                OpCode::Query,
                ResponseCode::FormErr,
            ));
        }
        Err(_) => return Verdict::Ignore,
    };
    // 2. Only from the network's own subnet: the gateway's address is
    //    reachable from other networks too.
    let from_network = match (zone.subnet, client) {
        (Some(subnet), IpAddr::V4(ip)) => subnet.contains(&ip),
        _ => false,
    };
    if !from_network {
        return encode(&reply_to(&query, ResponseCode::Refused));
    }
    // 3. A standard query, with a question.
    let Some(question) = query
        .queries()
        .first()
        .filter(|_| query.op_code() == OpCode::Query)
    else {
        return encode(&reply_to(&query, ResponseCode::NotImp));
    };
    // 4. The network's own names and addresses, answered here.
    if let Some(reply) = local_answer(zone, &query, question) {
        return encode(&reply);
    }
    // 5. Everything else: the container's own --dns servers, or the
    //    host's; none on an --internal network.
    let own = zone
        .endpoint_at(client)
        .map(|e| e.dns_servers.clone())
        .unwrap_or_default();
    let servers = match (zone.internal, own.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => upstreams.to_vec(),
        (false, false) => own,
    };
    if servers.is_empty() {
        return encode(&reply_to(&query, ResponseCode::ServFail));
    }
    Verdict::Forward(servers)
}
// ANCHOR_END: answer

/// The authoritative answer for a name or an address of this network,
/// if `question` asks for one.
// ANCHOR: local_answer
fn local_answer(
    zone: &Zone,
    query: &Message,
    question: &hickory_proto::op::Query,
) -> Option<Message> {
    let qname = question.name().to_lowercase().to_ascii();
    let qname = qname.trim_end_matches('.');
    // Names of this network's containers: A records; any other type, an
    // empty answer (the name exists).
    let addresses = zone.lookup(qname);
    if !addresses.is_empty() {
        let mut reply = reply_to(query, ResponseCode::NoError);
        reply.set_authoritative(true);
        if question.query_type() == RecordType::A {
            for ip in addresses {
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    TTL,
                    RData::A(A(ip)),
                ));
            }
        }
        return Some(reply);
    }
    // Reverse lookups of this network's addresses.
    if question.query_type() == RecordType::PTR
        && let Ok(IpAddr::V4(ip)) = question.name().parse_arpa_name().map(|net| net.addr())
        && let Some(name) = zone
            .name_of(ip)
            .and_then(|n| Name::from_ascii(format!("{n}.")).ok())
    {
        let mut reply = reply_to(query, ResponseCode::NoError);
        reply.set_authoritative(true);
        reply.add_answer(Record::from_rdata(
            question.name().clone(),
            TTL,
            RData::PTR(PTR(name)),
        ));
        return Some(reply);
    }
    None
}
// ANCHOR_END: local_answer

/// Ask `servers` in turn over UDP; the first answer with the query's ID wins.
async fn forward_udp(query: &[u8], servers: &[IpAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for server in servers {
        let bind: SocketAddr = match server {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(socket) = UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.connect((*server, 53)).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            if buf.get(..2) == Some(id) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

/// Ask `servers` in turn over TCP (for clients that asked over TCP).
async fn forward_tcp(query: &[u8], servers: &[IpAddr]) -> Option<Vec<u8>> {
    for server in servers {
        let attempt = async {
            let mut stream = TcpStream::connect((*server, 53)).await.ok()?;
            stream
                .write_all(&(query.len() as u16).to_be_bytes())
                .await
                .ok()?;
            stream.write_all(query).await.ok()?;
            let len = stream.read_u16().await.ok()?;
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        if let Ok(Some(answer)) = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(answer);
        }
    }
    None
}

fn servfail_for(query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    reply_to(&query, ResponseCode::ServFail).to_vec().ok()
}

/// The server's state shared by its tasks.
struct Shared {
    zone: Mutex<Zone>,
    endpoints_file: PathBuf,
    resolv_conf: PathBuf,
    gateway: Ipv4Addr,
}

impl Shared {
    /// The host's nameservers (reread each time: the host's file may
    /// change), without our own address, which would loop.
    fn upstreams(&self) -> Vec<IpAddr> {
        let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        parse_resolv_conf(&text)
            .nameservers
            .into_iter()
            .filter(|ip| *ip != IpAddr::V4(self.gateway))
            .collect()
    }

    fn decide(&self, bytes: &[u8], client: IpAddr) -> Verdict {
        let upstreams = self.upstreams();
        let mut zone = self.zone.lock().unwrap_or_else(|p| p.into_inner());
        zone.refresh(&self.endpoints_file);
        answer(&zone, bytes, client, &upstreams)
    }
}

async fn serve_udp_query(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    bytes: Vec<u8>,
    client: SocketAddr,
) {
    let reply = match shared.decide(&bytes, client.ip()) {
        Verdict::Answer(a) => Some(a),
        Verdict::Forward(servers) => forward_udp(&bytes, &servers)
            .await
            .or_else(|| servfail_for(&bytes)),
        Verdict::Ignore => None,
    };
    if let Some(reply) = reply {
        let _ = socket.send_to(&reply, client).await;
    }
}

async fn serve_tcp_client(shared: Arc<Shared>, mut stream: TcpStream, client: SocketAddr) {
    // A client may send several queries on one connection; give up on an
    // idle one after a while so connections cannot pile up.
    while let Ok(Ok(len)) = tokio::time::timeout(Duration::from_secs(10), stream.read_u16()).await {
        let mut bytes = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut bytes).await.is_err() {
            return;
        }
        let reply = match shared.decide(&bytes, client.ip()) {
            Verdict::Answer(a) => Some(a),
            Verdict::Forward(servers) => forward_tcp(&bytes, &servers)
                .await
                .or_else(|| servfail_for(&bytes)),
            Verdict::Ignore => None,
        };
        let Some(reply) = reply else { return };
        let framed = [&(reply.len() as u16).to_be_bytes()[..], &reply].concat();
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// Where a DNS server's configuration comes from.
#[derive(Clone, Debug)]
pub struct DnsServerConfig {
    /// The network state directory.
    pub state_dir: PathBuf,
    /// The network's ID.
    pub network_id: String,
    /// The host's resolv.conf: the upstream servers.
    pub resolv_conf: PathBuf,
}

// ANCHOR: serve
/// Run the DNS server of one network until SIGTERM or until the network
/// has no container left. `ready` is called once the sockets are bound.
pub fn serve(config: &DnsServerConfig, ready: impl FnOnce()) -> Result<()> {
    let store = Store::open(&config.state_dir)?;
    let network: NetworkConfig = store
        .networks()?
        .into_iter()
        .find(|n| n.id == config.network_id)
        .ok_or_else(|| NetworkError::NotFound(config.network_id.clone()))?;
    let gateway = network
        .gateway
        .ok_or_else(|| NetworkError::Invalid(format!("network {} has no gateway", network.name)))?;
    let shared = Arc::new(Shared {
        zone: Mutex::new(Zone {
            network: network.name.clone(),
            subnet: network.subnet,
            internal: network.internal,
            ..Default::default()
        }),
        endpoints_file: store.endpoints_path(&network.id),
        resolv_conf: config.resolv_conf.clone(),
        gateway,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime for the DNS server"))?;
    runtime.block_on(async {
        let listen = SocketAddr::from((gateway, 53));
        let udp = Arc::new(UdpSocket::bind(listen).await.map_err(io_err(format!("bind udp {listen}")))?);
        let tcp = TcpListener::bind(listen).await.map_err(io_err(format!("bind tcp {listen}")))?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io_err("SIGTERM handler"))?;
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        ready();
        let mut buf = vec![0u8; 65535];
        loop {
            tokio::select! {
                received = udp.recv_from(&mut buf) => {
                    if let Ok((n, client)) = received {
                        let task = serve_udp_query(shared.clone(), udp.clone(), buf[..n].to_vec(), client);
                        tokio::spawn(task);
                    }
                }
                accepted = tcp.accept() => {
                    if let Ok((stream, client)) = accepted {
                        tokio::spawn(serve_tcp_client(shared.clone(), stream, client));
                    }
                }
                _ = watchdog.tick() => {
                    let mut zone = shared.zone.lock().unwrap_or_else(|p| p.into_inner());
                    if !zone.refresh(&shared.endpoints_file) {
                        return Ok(());
                    }
                }
                _ = term.recv() => return Ok(()),
            }
        }
    })
}
// ANCHOR_END: serve

/// The program that runs [`serve`]: the engine's own binary with the
/// arguments of its DNS subcommand (`berth` re-executes itself, as podman
/// runs aardvark-dns). The server's options are appended: `--state DIR
/// --network ID --resolv-conf PATH`.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// A process's start time (field 22 of /proc/PID/stat): with the PID it
/// names one process, even after the PID is reused.
fn start_time(proc_root: &Path, pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let state = rest.split(' ').next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.split(' ').nth(19)?.parse().ok()
}

/// The PID of network `id`'s DNS server, if it runs.
pub fn running(store: &Store, proc_root: &Path, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(store.dns_pid_path(id)).ok()?;
    let mut words = text.split_whitespace();
    let pid: i32 = words.next()?.parse().ok()?;
    let started: u64 = words.next()?.parse().ok()?;
    (start_time(proc_root, pid) == Some(started)).then_some(pid)
}

// ANCHOR: start_dns
/// Start network `network`'s DNS server unless it runs, and wait until it
/// listens. The server is a daemon: in a session of its own, its parent
/// gone (so no command has to wait for it), its stderr appended to
/// `dns/<id>.log`.
pub fn start(
    launcher: &Launcher,
    store: &Store,
    proc_root: &Path,
    network: &NetworkConfig,
    resolv_conf: &Path,
) -> Result<i32> {
    // 1. One server per network: a live one (pid and start time) is kept.
    if let Some(pid) = running(store, proc_root, &network.id) {
        return Ok(pid);
    }
    let helper_err = |message: String| NetworkError::Helper {
        program: launcher.program.display().to_string(),
        message,
    };
    // 2. The daemon, its stdout a pipe back to us.
    let log_path = store.root().join("dns").join(format!("{}.log", network.id));
    let stdout = spawn_daemon(launcher, store, network, resolv_conf, &log_path)?
        .ok_or_else(|| helper_err("no stdout pipe".into()))?;
    // 3. Its `ready PID`, once it listens; or its last words.
    let pid = wait_until_ready(stdout).ok_or_else(|| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = log.lines().last().unwrap_or("exited without a word");
        helper_err(format!(
            "the DNS server of network {} did not start: {last}",
            network.name
        ))
    })?;
    // 4. Its pid and start time, for the next command to find it.
    let started = start_time(proc_root, pid)
        .ok_or_else(|| helper_err(format!("DNS server {pid} vanished")))?;
    write_atomic(
        &store.dns_pid_path(&network.id),
        format!("{pid} {started}\n").as_bytes(),
    )?;
    Ok(pid)
}
// ANCHOR_END: start_dns

/// Run the server as a daemon: `setsid`, then a second fork whose parent
/// exits at once, so the server is nobody's child but init's (or the
/// subreaper's). Returns its stdout, where it says when it is ready.
// ANCHOR: spawn_daemon
fn spawn_daemon(
    launcher: &Launcher,
    store: &Store,
    network: &NetworkConfig,
    resolv_conf: &Path,
    log_path: &Path,
) -> Result<Option<std::process::ChildStdout>> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(io_err(log_path))?;
    let mut command = Command::new(&launcher.program);
    command
        .args(&launcher.args)
        .arg("--state")
        .arg(store.root())
        .arg("--network")
        .arg(&network.id)
        .arg("--resolv-conf")
        .arg(resolv_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid(2)
    // and fork(2), and _exit(2) in the intermediate process, which has
    // nothing to clean up.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            match nix::unistd::fork().map_err(std::io::Error::from)? {
                nix::unistd::ForkResult::Parent { .. } => libc::_exit(0),
                nix::unistd::ForkResult::Child => Ok(()),
            }
        });
    }
    let mut intermediate = command.spawn().map_err(io_err(&launcher.program))?;
    let _ = intermediate.wait();
    Ok(intermediate.stdout.take())
}
// ANCHOR_END: spawn_daemon

/// The server's first line, `ready PID`, read within ten seconds; `None`
/// if it exits (EOF) or says something else first.
fn wait_until_ready(stdout: std::process::ChildStdout) -> Option<i32> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    line.strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
}

/// Stop network `id`'s DNS server (SIGTERM, then SIGKILL after 3 s) and
/// remove its pid file. Not running is fine.
pub fn stop(store: &Store, proc_root: &Path, id: &str) -> Result<()> {
    if let Some(pid) = running(store, proc_root, id) {
        stop_process(proc_root, pid);
    }
    remove_if_exists(&store.dns_pid_path(id))
}

/// SIGTERM, wait up to 3 s, SIGKILL; reaps it if it is our child.
pub(crate) fn stop_process(proc_root: &Path, pid: i32) {
    let started = start_time(proc_root, pid);
    let alive = || started.is_some() && start_time(proc_root, pid) == started;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive() && Instant::now() < deadline {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    if alive() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        let ep = |name: &str, alias: &str, ip: [u8; 4], id: char| Endpoint {
            container_id: id.to_string().repeat(64),
            container_name: name.into(),
            endpoint_id: String::new(),
            aliases: vec![alias.into()],
            ip: Ipv4Addr::from(ip),
            mac: String::new(),
            host_veth: String::new(),
            ifname: "eth0".into(),
            netns: PathBuf::new(),
            ports: vec![],
            dns_servers: if name == "picky" {
                vec!["192.0.2.53".parse().unwrap()]
            } else {
                vec![]
            },
        };
        Zone {
            network: "mynet".into(),
            subnet: Some("10.78.0.0/24".parse().unwrap()),
            endpoints: vec![
                ep("web", "www", [10, 78, 0, 2], 'a'),
                ep("web2", "www", [10, 78, 0, 3], 'b'),
                ep("picky", "p", [10, 78, 0, 4], 'c'),
            ],
            internal: false,
            stamp: None,
        }
    }

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(4242).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_vec().unwrap()
    }

    fn ask(name: &str, kind: RecordType, client: [u8; 4]) -> Message {
        let upstream = ["203.0.113.53".parse().unwrap()];
        match answer(&zone(), &query(name, kind), IpAddr::from(client), &upstream) {
            Verdict::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
            Verdict::Forward(servers) => panic!("forwarded to {servers:?}"),
            Verdict::Ignore => panic!("ignored"),
        }
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(A(ip)) => Some(*ip),
                _ => None,
            })
            .collect()
    }

    const INSIDE: [u8; 4] = [10, 78, 0, 9];

    #[test]
    fn names_aliases_and_short_ids_resolve() {
        let m = ask("web.", RecordType::A, INSIDE);
        assert_eq!(m.id(), 4242);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(a_records(&m), vec![Ipv4Addr::new(10, 78, 0, 2)]);
        assert_eq!(
            a_records(&ask("WEB.mynet.", RecordType::A, INSIDE)),
            vec![Ipv4Addr::new(10, 78, 0, 2)]
        );
        assert_eq!(
            a_records(&ask("bbbbbbbbbbbb.", RecordType::A, INSIDE)),
            vec![Ipv4Addr::new(10, 78, 0, 3)]
        );
        // A shared alias: every container that has it.
        assert_eq!(
            a_records(&ask("www.", RecordType::A, INSIDE)),
            vec![Ipv4Addr::new(10, 78, 0, 2), Ipv4Addr::new(10, 78, 0, 3)]
        );
        // The name exists but has no IPv6 address: empty NOERROR.
        let m = ask("web.", RecordType::AAAA, INSIDE);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
    }

    #[test]
    fn reverse_lookups_name_the_container() {
        let m = ask("2.0.78.10.in-addr.arpa.", RecordType::PTR, INSIDE);
        match m.answers()[0].data() {
            RData::PTR(PTR(name)) => assert_eq!(name.to_ascii(), "web."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clients_outside_the_subnet_are_refused() {
        let m = ask("web.", RecordType::A, [10, 78, 1, 2]);
        assert_eq!(m.response_code(), ResponseCode::Refused);
        assert!(m.answers().is_empty());
    }

    #[test]
    fn other_names_go_upstream_the_containers_own_first() {
        let upstream = ["203.0.113.53".parse().unwrap()];
        let forwarded = |client: [u8; 4]| match answer(
            &zone(),
            &query("example.org.", RecordType::A),
            IpAddr::from(client),
            &upstream,
        ) {
            Verdict::Forward(servers) => servers,
            _ => panic!("not forwarded"),
        };
        assert_eq!(forwarded(INSIDE), upstream.to_vec());
        assert_eq!(
            forwarded([10, 78, 0, 4]),
            vec!["192.0.2.53".parse::<IpAddr>().unwrap()]
        );
        // An internal network's queries never leave it.
        let mut internal = zone();
        internal.internal = true;
        match answer(
            &internal,
            &query("example.org.", RecordType::A),
            IpAddr::from(INSIDE),
            &upstream,
        ) {
            Verdict::Answer(bytes) => {
                assert_eq!(
                    Message::from_vec(&bytes).unwrap().response_code(),
                    ResponseCode::ServFail
                )
            }
            _ => panic!("an internal network forwarded"),
        }
        // No upstream at all: SERVFAIL.
        match answer(
            &zone(),
            &query("example.org.", RecordType::A),
            IpAddr::from(INSIDE),
            &[],
        ) {
            Verdict::Answer(bytes) => {
                assert_eq!(
                    Message::from_vec(&bytes).unwrap().response_code(),
                    ResponseCode::ServFail
                )
            }
            _ => panic!("expected SERVFAIL"),
        }
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        match answer(&zone(), &[0x12, 0x34, 0xff], IpAddr::from(INSIDE), &[]) {
            Verdict::Answer(bytes) => {
                let m = Message::from_vec(&bytes).unwrap();
                assert_eq!((m.id(), m.response_code()), (0x1234, ResponseCode::FormErr));
            }
            _ => panic!("expected FORMERR"),
        }
        assert!(matches!(
            answer(&zone(), &[1], IpAddr::from(INSIDE), &[]),
            Verdict::Ignore
        ));
    }

    #[test]
    fn start_times_come_from_proc_stat() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("77")).unwrap();
        let stat = "77 (a b) c) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        std::fs::write(tmp.path().join("77/stat"), stat).unwrap();
        assert_eq!(start_time(tmp.path(), 77), Some(123456));
        std::fs::write(tmp.path().join("77/stat"), stat.replace(") S ", ") Z ")).unwrap();
        assert_eq!(start_time(tmp.path(), 77), None, "a zombie is not running");
        assert_eq!(start_time(tmp.path(), 78), None);
    }
}
