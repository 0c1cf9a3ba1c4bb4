//! `berth-runtime spec`: a starting `config.json`, the same as runc's.
//!
//! `runc spec` writes a config.json that runs `sh` in a busybox-like root
//! filesystem: every namespace but the user and cgroup ones, three
//! capabilities, no new privileges, the standard mounts, and the /proc
//! paths that leak the host masked or made read-only. It is the file people
//! learn the format from, so ours is the same field for field (the
//! hostname aside: `berth`), and a test compares it with the installed
//! runc's.
//!
//! `--rootless` changes it the way runc's does, for a user without root: a
//! user namespace mapping that user to root inside, no network namespace
//! (an unprivileged user cannot plumb one), `/sys` bind-mounted instead of
//! mounted (sysfs needs a network namespace of one's own), no `gid=5` on
//! devpts (group 5 is not mapped), and no cgroup limits (no cgroup to write
//! them in, without a delegation).
//!
//! Like runc's, it has no seccomp profile: that is the engine's choice
//! (docker's and podman's default profiles), not the runtime's.
//!
//! Specs: runtime-spec `config.md`, `config-linux.md`; runc-spec(8).

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceType, Mount, Spec};
use serde_json::json;

/// The runtime-spec version Berth writes and implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The default config.json, as JSON: what `spec` writes.
// ANCHOR: default_config
pub fn default_config() -> serde_json::Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
// ANCHOR_END: default_config

/// The default config as the spec's types.
pub fn default_spec() -> Spec {
    serde_json::from_value(default_config()).expect("the default config is a valid Spec")
}

/// runc's `--rootless` changes, for a user whose effective ids are
/// `uid` and `gid`.
// ANCHOR: to_rootless
pub fn to_rootless(spec: &mut Spec, uid: u32, gid: u32) {
    let map = |host: u32| -> Vec<LinuxIdMapping> {
        let one = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(1u32)
            .build()
            .expect("an id mapping has no required field left unset");
        vec![one]
    };
    if let Some(linux) = spec.linux_mut() {
        // No network namespace; a user namespace, last.
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.retain(|ns| {
            !matches!(
                ns.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::User
            )
        });
        let mut user = oci_spec::runtime::LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.push(user);
        linux.set_namespaces(Some(namespaces));
        linux.set_uid_mappings(Some(map(uid)));
        linux.set_gid_mappings(Some(map(gid)));
        // No cgroup to write limits in.
        linux.set_resources(None);
    }
    let mounts: Vec<Mount> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|mount| {
            let mut mount = mount.clone();
            if mount.destination().as_path() == std::path::Path::new("/sys") {
                // sysfs needs a network namespace of its own: bind the host's.
                mount.set_typ(Some("none".into()));
                mount.set_source(Some("/sys".into()));
                let options = ["rbind", "nosuid", "noexec", "nodev", "ro"];
                mount.set_options(Some(options.map(String::from).to_vec()));
            } else if let Some(options) = mount.options() {
                // Only our own ids are mapped: no uid=/gid= options.
                let kept = options
                    .iter()
                    .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
                    .cloned()
                    .collect();
                mount.set_options(Some(kept));
            }
            mount
        })
        .collect();
    spec.set_mounts(Some(mounts));
}
// ANCHOR_END: to_rootless

/// A spec as JSON with stable output: object keys sorted, and the
/// capability sets (sets in the spec's types) in name order.
pub fn to_stable_json(spec: &Spec) -> serde_json::Value {
    let mut value = serde_json::to_value(spec).expect("a Spec serializes");
    if let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    value
}

/// JSON with tabs for indentation, as runc writes config.json.
pub fn to_tabbed_json(value: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("JSON values serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::check_spec;
    use crate::runtime::validate::{Host, validate};

    #[test]
    fn the_default_spec_is_valid_and_accepted() {
        let spec = default_spec();
        check_spec(&spec).unwrap();
        let accepted = validate(&spec, Host::default()).unwrap();
        assert!(accepted.warnings.is_empty());
        // Serialized and read back, nothing changes.
        let again: Spec = serde_json::from_value(to_stable_json(&spec)).unwrap();
        assert_eq!(again, spec);
        // What the types kept is what the literal says, field for field.
        assert_eq!(to_stable_json(&spec), default_config());
    }

    #[test]
    fn rootless_maps_the_user_and_drops_what_needs_root() {
        let mut spec = default_spec();
        to_rootless(&mut spec, 1000, 1001);
        check_spec(&spec).unwrap();
        validate(&spec, Host::default()).unwrap();
        let v = to_stable_json(&spec);
        let types: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["pid", "ipc", "uts", "mount", "user"]);
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 1001, "size": 1}])
        );
        assert!(v["linux"].get("resources").is_none());
        assert_eq!(
            v["mounts"][5],
            json!({"destination": "/sys", "type": "none", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        );
        assert_eq!(
            v["mounts"][2]["options"],
            json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ])
        );
    }

    #[test]
    fn tabbed_json_reads_back() {
        let text = to_tabbed_json(&default_config());
        assert!(
            text.starts_with("{\n\t\"hostname\": \"berth\",\n"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, default_config());
    }
}
