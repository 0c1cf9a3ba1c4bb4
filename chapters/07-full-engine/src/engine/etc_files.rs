//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`: files the engine
//! writes for each container and bind-mounts over the image's.
//!
//! A program looks its own name up in `/etc/hosts`, and names on the
//! network in `/etc/resolv.conf`: the image's copies know nothing of this
//! container. Docker writes the three files in the container's directory
//! and mounts them in; so do we. Networking (issue 15) writes richer ones
//! (the container's address, user-defined networks); here:
//!
//! - `--network none`: localhost only; the host's resolver list (a
//!   container without a network resolves nothing, but programs that read
//!   the file expect one).
//! - `--network host`: the host's own `/etc/hosts` and `/etc/resolv.conf`,
//!   as docker copies them.
//!
//! For a private network namespace, nameservers on 127.0.0.0/8 (a local
//! caching resolver such as systemd-resolved's 127.0.0.53) mean nothing
//! inside and are dropped; if none is left, docker's fallback (Google's
//! public resolvers) is used.
//!
//! Man pages: hosts(5), resolv.conf(5), hostname(5).

use std::path::Path;

/// docker's fallback nameservers.
pub const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/hosts` for a container with only a loopback interface.
pub fn hosts_loopback(hostname: &str) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    // The container's own name resolves to itself.
    text.push_str(&format!("127.0.0.1\t{hostname}\n"));
    text
}

/// `/etc/resolv.conf` from the host's (`host_text`): kept whole for the
/// host's network; for a private one, loopback nameservers dropped and the
/// fallback used if none is left.
pub fn resolv_conf(host_text: &str, host_network: bool) -> String {
    if host_network {
        return host_text.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host_text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["nameserver", address, ..] = words.as_slice() {
            if address.starts_with("127.") || *address == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        for server in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {server}\n"));
        }
    }
    out
}

/// Write the three files in the container's directory `dir`; their paths
/// (hostname, hosts, resolv.conf).
pub fn write_etc_files(
    dir: &Path,
    hostname: &str,
    host_network: bool,
    host_etc: &Path,
) -> std::io::Result<[std::path::PathBuf; 3]> {
    let hostname_path = dir.join("hostname");
    let hosts_path = dir.join("hosts");
    let resolv_path = dir.join("resolv.conf");
    std::fs::write(&hostname_path, format!("{hostname}\n"))?;
    let hosts = if host_network {
        std::fs::read_to_string(host_etc.join("hosts")).unwrap_or_else(|_| hosts_loopback(hostname))
    } else {
        hosts_loopback(hostname)
    };
    std::fs::write(&hosts_path, hosts)?;
    let host_resolv = std::fs::read_to_string(host_etc.join("resolv.conf")).unwrap_or_default();
    std::fs::write(&resolv_path, resolv_conf(&host_resolv, host_network))?;
    Ok([hostname_path, hosts_path, resolv_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_dropped_for_a_private_network() {
        let host = "# generated\nnameserver 127.0.0.53\nsearch example.org\n";
        assert_eq!(
            resolv_conf(host, false),
            "# generated\nsearch example.org\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf(host, true), host);
        let real = "nameserver 10.0.0.2\nnameserver 127.0.0.1\n";
        assert_eq!(resolv_conf(real, false), "nameserver 10.0.0.2\n");
    }

    #[test]
    fn the_three_files_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("hosts"), "10.1.1.1 myhost\n").unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 10.0.0.2\n").unwrap();
        let [hostname, hosts, _] = write_etc_files(tmp.path(), "abc123", false, &etc).unwrap();
        assert_eq!(std::fs::read_to_string(hostname).unwrap(), "abc123\n");
        let hosts = std::fs::read_to_string(hosts).unwrap();
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(hosts.ends_with("127.0.0.1\tabc123\n"));
        let [_, hosts, resolv] = write_etc_files(tmp.path(), "abc123", true, &etc).unwrap();
        assert_eq!(std::fs::read_to_string(hosts).unwrap(), "10.1.1.1 myhost\n");
        assert_eq!(
            std::fs::read_to_string(resolv).unwrap(),
            "nameserver 10.0.0.2\n"
        );
    }
}
