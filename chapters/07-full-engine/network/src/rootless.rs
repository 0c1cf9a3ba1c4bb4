//! Rootless networking: pasta.
//!
//! A normal user cannot make bridges, veths or nftables rules: those need
//! CAP_NET_ADMIN in the host's namespace. A rootless container still gets
//! a network namespace of its own (inside its user namespace), and
//! **pasta** (Debian's `passt` package; podman's default since 5.0)
//! connects it to the world from user space: it creates a tap device in
//! the container's namespace (`--config-net` copies the host's address
//! and default route onto it), and turns the container's connections into
//! ordinary sockets of the user on the host (so outbound traffic leaves
//! with the host's address, no NAT rule involved), and listens on the
//! host for each published port (`-t`/`-u`), passing those connections
//! into the namespace. `--dns-forward 169.254.1.1` gives the container a
//! resolver address that pasta forwards to the host's (which may be a
//! loopback stub the container could not reach); `--no-map-gw` keeps the
//! gateway address from being a way into the host's loopback services,
//! as podman does by default.
//!
//! pasta runs as the user, in the user's own namespace (the host's, or
//! the test host's), and puts itself in the background once its ports
//! listen; its PID file is how the engine stops it with the container.
//!
//! Man pages: pasta(1), user_namespaces(7).

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use crate::dns::stop_process;
use crate::error::{NetworkError, Result, io_err};
use crate::ports::{PortMapping, Protocol};
use crate::store::remove_if_exists;

/// The resolver address pasta answers at inside the container.
pub const PASTA_DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// What pasta is started for.
#[derive(Clone, Debug)]
pub struct PastaRequest<'a> {
    /// The `pasta` program (`pasta` from PATH normally).
    pub program: &'a Path,
    /// The container's network namespace.
    pub netns: &'a Path,
    /// The user namespace that owns it (the container's).
    pub userns: Option<&'a Path>,
    /// Published ports, host ports already chosen.
    pub ports: &'a [PortMapping],
    /// Where pasta writes its PID.
    pub pidfile: &'a Path,
}

fn port_specs(ports: &[PortMapping], protocol: Protocol) -> String {
    let specs: Vec<String> = ports
        .iter()
        .filter(|p| p.protocol == protocol)
        .map(|p| {
            let address = if p.host_ip.is_unspecified() {
                String::new()
            } else {
                format!("{}/", p.host_ip)
            };
            format!("{address}{}:{}", p.host_port, p.container_port)
        })
        .collect();
    if specs.is_empty() {
        "none".to_string()
    } else {
        specs.join(",")
    }
}

// ANCHOR: pasta_args
/// pasta's command line for `request`.
pub fn pasta_args(request: &PastaRequest) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--config-net",
        "--ns-ifname",
        "eth0",
        "--quiet",
        "--no-map-gw",
        "--dns-forward",
        "169.254.1.1",
        // Only the published ports go in; nothing is forwarded from the
        // container to the host's own ports.
        "-T",
        "none",
        "-U",
        "none",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("-t".into());
    args.push(port_specs(request.ports, Protocol::Tcp).into());
    args.push("-u".into());
    args.push(port_specs(request.ports, Protocol::Udp).into());
    args.push("--pid".into());
    args.push(request.pidfile.into());
    if let Some(userns) = request.userns {
        args.push("--userns".into());
        args.push(userns.into());
    }
    args.push("--netns".into());
    args.push(request.netns.into());
    args
}
// ANCHOR_END: pasta_args

/// The device pasta opens in the container's namespace to make its tap
/// device. udev makes it 0666 (`50-udev-default.rules`); on a machine
/// without udev it may be left 0600, root's only.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// Start pasta for a container; returns its PID once its ports listen.
pub fn start_pasta(request: &PastaRequest) -> Result<i32> {
    // pasta's own message ("Failed to open tun socket in namespace") does
    // not say why: check first, as the user pasta runs as.
    if let Err(errno) = nix::unistd::access(
        TUN_DEVICE,
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    ) {
        return Err(NetworkError::Invalid(format!(
            "rootless networking needs {TUN_DEVICE} open to users ({errno}): \
             as root, `chmod 0666 {TUN_DEVICE}` (what udev does), or run the container with --network none"
        )));
    }
    let output = Command::new(request.program)
        .args(pasta_args(request))
        .output()
        .map_err(io_err(request.program))?;
    if !output.status.success() {
        // pasta also tries syslog, and says so when there is none.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said: Vec<&str> = stderr.lines().filter(|l| !l.contains("syslog")).collect();
        return Err(NetworkError::Helper {
            program: "pasta".into(),
            message: format!("{} ({})", said.join("; "), output.status),
        });
    }
    let text = std::fs::read_to_string(request.pidfile).map_err(io_err(request.pidfile))?;
    text.trim().parse().map_err(|_| NetworkError::Helper {
        program: "pasta".into(),
        message: format!("{}: not a PID: {text:?}", request.pidfile.display()),
    })
}

/// Stop the pasta whose PID file is `pidfile` (not running is fine).
pub fn stop_pasta(pidfile: &Path, proc_root: &Path) -> Result<()> {
    if let Ok(text) = std::fs::read_to_string(pidfile)
        && let Ok(pid) = text.trim().parse::<i32>()
    {
        // Only if it is pasta: the PID may have been reused.
        let comm = std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
            .unwrap_or_default();
        if comm.starts_with("pasta") || comm.starts_with("passt") {
            stop_process(proc_root, pid);
        }
    }
    remove_if_exists(pidfile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_become_pasta_specs() {
        let ports = [
            PortMapping {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 8443,
                container_port: 443,
                protocol: Protocol::Tcp,
            },
        ];
        let request = PastaRequest {
            program: Path::new("pasta"),
            netns: Path::new("/proc/42/ns/net"),
            userns: Some(Path::new("/proc/42/ns/user")),
            ports: &ports,
            pidfile: Path::new("/run/user/1000/berth/pasta.pid"),
        };
        let args: Vec<String> = pasta_args(&request)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("-t 8080:80,127.0.0.1/8443:443 -u none"),
            "{joined}"
        );
        assert!(
            joined.ends_with("--userns /proc/42/ns/user --netns /proc/42/ns/net"),
            "{joined}"
        );
        assert!(joined.contains("--dns-forward 169.254.1.1"));
    }
}
