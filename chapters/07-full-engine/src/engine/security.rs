//! What root in a container may do: docker's defaults, and the flags that
//! change them (`--cap-add`, `--cap-drop`, `--privileged`,
//! `--security-opt`).
//!
//! - **Capabilities**: root in a container keeps 14 of the ~40 capabilities
//!   (docker's list, chapter 2's `DOCKER_DEFAULT`): enough to chown, bind low ports, change user,
//!   but not to mount, load modules, trace processes or change the clock.
//!   The runtime sets the bounding, effective and permitted sets to this
//!   list; inheritable and ambient stay empty (docker's since 23.0).
//! - **Masked paths**: files of /proc and /sys that leak the host (kernel
//!   memory, keyrings, timers, power meters) are hidden behind /dev/null.
//! - **Read-only paths**: the kernel's tunables (/proc/sys: the host's
//!   `kernel.core_pattern` runs a program as root on the host) cannot be
//!   written.
//! - **seccomp** ([`super::seccomp_profile`]) and **no_new_privs**
//!   (`--security-opt no-new-privileges`).
//!
//! `--privileged` lifts it all: every capability the engine holds, nothing
//! masked, /sys writable, every host device, no seccomp.
//!
//! The capability rules and the path lists are chapter 2's (its
//! `capabilities` and `security` modules: docker's default set, docker's
//! rules for `--cap-add`/`--cap-drop`/`ALL`, moby's masked and read-only
//! paths); this module turns them into config.json's names.
//!
//! Man pages: capabilities(7), prctl(2) ("PR_SET_NO_NEW_PRIVS"), proc(5).

use std::path::Path;

use ch02_namespaces::capabilities::{CapabilitySet, docker_default};
use ch02_namespaces::cli::{SecurityArgs, parse_cap_arg};
use ch02_namespaces::security::{READONLY_PATHS, held_capabilities, masked_paths};

/// The masked paths of a container that is not `--privileged`: moby's list
/// and each CPU's thermal_throttle directory.
pub fn default_masked_paths() -> Vec<String> {
    masked_paths(Path::new("/sys"))
}

/// The read-only paths of a container that is not `--privileged`.
pub fn default_readonly_paths() -> Vec<String> {
    READONLY_PATHS.map(String::from).to_vec()
}

/// What the engine can give: its own permitted set. A rootless engine's
/// containers get a user namespace of their own, in which their root
/// holds every capability (over that namespace's objects only), so all
/// can be given.
fn held() -> Result<CapabilitySet, String> {
    if !nix::unistd::geteuid().is_root() {
        let last = ch02_namespaces::capabilities::last_cap(Path::new("/proc"))
            .map_err(|e| format!("read /proc/sys/kernel/cap_last_cap: {e}"))?;
        return Ok(CapabilitySet::up_to(last));
    }
    static HELD: std::sync::OnceLock<Result<CapabilitySet, String>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        held_capabilities(Path::new("/proc"), false)
            .map_err(|e| format!("read our own capabilities: {e}"))
    })
    .clone()
}

/// The container's capabilities, by name: docker's default, or everything
/// held with `--privileged`, with `--cap-drop` and `--cap-add` applied by
/// docker's rules (chapter 2's `SecurityArgs::resolve`).
pub fn capabilities(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<Vec<String>, String> {
    capabilities_within(held()?, privileged, add, drop)
}

/// [`capabilities`] for an engine that holds `held`: a capability it does
/// not hold cannot be given (an engine run by a user holds none).
fn capabilities_within(
    held: CapabilitySet,
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<Vec<String>, String> {
    let args = |names: &[String]| {
        names
            .iter()
            .map(|n| parse_cap_arg(n))
            .collect::<Result<Vec<_>, _>>()
    };
    let flags = SecurityArgs {
        privileged,
        cap_add: args(add)?,
        cap_drop: args(drop)?,
        defaults: None,
    };
    let security = flags
        .resolve(docker_default(), held, Path::new("/sys"))
        .map_err(|e| e.to_string())?;
    Ok(security.capabilities.bounding.names())
}

/// What `--security-opt` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    /// `seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `seccomp=PROFILE.json`: the profile's text.
    pub seccomp_profile: Option<String>,
}

/// Parse `--security-opt` values (`no-new-privileges[:true|false]`,
/// `seccomp=unconfined|FILE`; `label` and `apparmor` have nothing to
/// apply to on a host without SELinux or AppArmor and are refused).
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, String> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((opt.as_str(), None));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => out.seccomp_unconfined = true,
            ("seccomp", Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("opening seccomp profile ({path}) failed: {e}"))?;
                out.seccomp_profile = Some(text);
            }
            _ => return Err(format!("Invalid --security-opt: {opt:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_then_adds_as_docker() {
        // An engine run as root holds every capability up to CAP_CHECKPOINT_RESTORE
        // (40); the rules are checked against that set, whoever runs the test.
        let held = CapabilitySet::up_to(40);
        let caps = |privileged, add: &[String], drop: &[String]| {
            capabilities_within(held, privileged, add, drop)
        };
        let none: [String; 0] = [];
        let default = caps(false, &none, &none).unwrap();
        assert_eq!(default, docker_default().names());
        assert_eq!(default.len(), 14);
        let without_chown = caps(false, &[], &["chown".into()]).unwrap();
        assert!(!without_chown.contains(&"CAP_CHOWN".to_string()));
        let only = caps(false, &["KILL".into()], &["ALL".into()]).unwrap();
        assert_eq!(only, ["CAP_KILL"]);
        assert_eq!(caps(true, &none, &none).unwrap(), held.names());
        assert!(
            caps(false, &["FLY".into()], &[])
                .unwrap_err()
                .contains("FLY")
        );
        // What the engine does not hold, it cannot give: an engine run by
        // a user (no capabilities) asked for the default set.
        let refused = capabilities_within(CapabilitySet::EMPTY, false, &none, &none).unwrap_err();
        assert!(
            refused.contains("the engine itself does not hold it"),
            "{refused}"
        );
        assert!(default_masked_paths().contains(&"/proc/kcore".to_string()));
        assert!(default_readonly_paths().contains(&"/proc/sys".to_string()));
    }

    #[test]
    fn security_opts_parse() {
        let opts = parse_security_opts(&["no-new-privileges".into(), "seccomp=unconfined".into()])
            .unwrap();
        assert!(opts.no_new_privileges && opts.seccomp_unconfined);
        assert!(
            parse_security_opts(&["seccomp=/nonexistent.json".into()])
                .unwrap_err()
                .starts_with("opening seccomp profile (/nonexistent.json) failed")
        );
        assert!(parse_security_opts(&["apparmor=x".into()]).is_err());
    }
}
