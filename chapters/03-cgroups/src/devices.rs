//! The devices controller: which device nodes a container may use.
//!
//! Kernel feature: a device node (`/dev/vda`, `/dev/null`) is a file that
//! names a driver by type and number: `b 254:0` is the first virtio disk,
//! `c 1:3` is /dev/null. Anyone with `CAP_MKNOD` can make one anywhere, so
//! a root container that makes `b 254:0` in its /tmp would open the host's
//! disk, whatever its mount namespace shows. The devices controller stops
//! that at open(2) and mknod(2): the kernel checks every device node a
//! process opens or creates against its cgroup's rules, and refuses with
//! EPERM what the rules do not allow.
//!
//! A rule, in the OCI runtime spec (`linux.resources.devices[]`, here
//! [`LinuxDeviceCgroup`]), names a type (`a` all, `b` block, `c` char), a
//! major and a minor number (absent: any), an access (`r` read, `w` write,
//! `m` mknod) and whether it allows or denies. Docker's default, applied
//! to every container that is not `--privileged`, denies everything and
//! then allows mknod of any node (so images may carry device files) but
//! opening only the harmless ones: null, zero, full, random, urandom, tty,
//! console, ptmx and the container's own terminals (`/dev/pts/*`), and
//! tun. [`default_rules`] builds that list.
//!
//! cgroup v1 keeps the rules as a default (allow or deny all) plus a list
//! of exceptions, written line by line into `devices.allow` and
//! `devices.deny`. It cannot "punch a hole" into a wildcard exception:
//! denying `c 1:3` after allowing `c *:*` is silently ignored. So the rule
//! list is first played through [`DeviceCgroupState`], which holds what v1
//! would hold and refuses what v1 would silently ignore (as runc's emulator
//! does). Its [`v1_writes`](DeviceCgroupState::v1_writes) are the lines for
//! v1; cgroup v2 has no devices files at all and runs a BPF program built
//! from the same state ([`crate::device_filter`]).
//!
//! Man pages: mknod(2), makedev(3); the kernel's
//! Documentation/admin-guide/cgroup-v1/devices.rst and
//! Documentation/admin-guide/devices.txt (who has which number); the OCI
//! runtime spec, config-linux.md ("Allowed Device List").

use std::collections::BTreeMap;
use std::fmt;

use crate::resources::ResourceError;

/// The largest major number Linux gives a device (12 bits).
pub const MAX_MAJOR: i64 = (1 << 12) - 1;
/// The largest minor number (20 bits).
pub const MAX_MINOR: i64 = (1 << 20) - 1;

/// The `type` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceType {
    /// `a`: every device, block and char, whatever its numbers.
    All,
    /// `b`: block devices (disks, partitions).
    Block,
    /// `c`: character devices (terminals, /dev/null, ...).
    Char,
}

impl DeviceType {
    /// `a`, `b` or `c`.
    pub fn parse(text: &str) -> Option<DeviceType> {
        match text {
            "a" => Some(DeviceType::All),
            "b" => Some(DeviceType::Block),
            "c" => Some(DeviceType::Char),
            _ => None,
        }
    }

    pub fn letter(self) -> char {
        match self {
            DeviceType::All => 'a',
            DeviceType::Block => 'b',
            DeviceType::Char => 'c',
        }
    }
}

/// `linux.resources.devices[]`: one rule of the device list, as the OCI
/// runtime spec writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxDeviceCgroup {
    /// Allow (`true`) or deny what the rule matches.
    pub allow: bool,
    /// The spec's `type`; when it is absent, `a`.
    pub typ: DeviceType,
    /// `None`: every major number.
    pub major: Option<i64>,
    /// `None`: every minor number.
    pub minor: Option<i64>,
    /// Some of `r` (read), `w` (write) and `m` (mknod), e.g. `rwm`.
    pub access: String,
}

impl LinuxDeviceCgroup {
    /// An `allow` rule.
    pub fn allow(typ: DeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> Self {
        LinuxDeviceCgroup {
            allow: true,
            typ,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// A `deny` rule.
    pub fn deny(typ: DeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> Self {
        LinuxDeviceCgroup {
            allow: false,
            ..LinuxDeviceCgroup::allow(typ, major, minor, access)
        }
    }

    /// Parse docker's `--device-cgroup-rule` (an allow rule, in v1's
    /// format): `TYPE MAJOR:MINOR ACCESS`, e.g. `c 1:3 rwm` or `b 8:* r`.
    pub fn parse_docker(text: &str) -> Result<LinuxDeviceCgroup, ResourceError> {
        let bad = |why: &str| ResourceError::Invalid {
            flag: "--device-cgroup-rule",
            value: format!("{text:?}"),
            why: why.to_string(),
        };
        let fields: Vec<&str> = text.split(' ').collect();
        let [typ, numbers, access] = fields[..] else {
            return Err(bad(
                "write TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm' or 'b 8:* r'",
            ));
        };
        let typ = DeviceType::parse(typ).ok_or_else(|| bad("the type is a, b or c"))?;
        let (major, minor) = numbers
            .split_once(':')
            .ok_or_else(|| bad("write the numbers as MAJOR:MINOR, each a number or *"))?;
        let number = |n: &str| -> Result<Option<i64>, ResourceError> {
            match n {
                "*" => Ok(None),
                n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                    .parse()
                    .map(Some)
                    .map_err(|_| bad("the number is too large")),
                _ => Err(bad("a major or minor is a number or *")),
            }
        };
        let rule = LinuxDeviceCgroup::allow(typ, number(major)?, number(minor)?, access);
        rule.validate()?;
        Ok(rule)
    }

    /// Check the rule: known access letters, numbers Linux can have.
    pub fn validate(&self) -> Result<(), ResourceError> {
        let bad = |why: String| ResourceError::Invalid {
            flag: "device rule",
            value: self.to_string(),
            why,
        };
        if self.access.is_empty() || !self.access.chars().all(|c| "rwm".contains(c)) {
            return Err(bad(
                "the access is some of r (read), w (write) and m (mknod)".to_string(),
            ));
        }
        for (what, number, max) in [
            ("major", self.major, MAX_MAJOR),
            ("minor", self.minor, MAX_MINOR),
        ] {
            if let Some(n) = number.filter(|n| !(0..=max).contains(n)) {
                return Err(bad(format!(
                    "{what} {n}: Linux device numbers have majors 0 to {MAX_MAJOR} and minors 0 to {MAX_MINOR}"
                )));
            }
        }
        Ok(())
    }
}

/// `allow c 1:3 rwm`: the rule as docker and v1 write it.
impl fmt::Display for LinuxDeviceCgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {} {}:{} {}",
            if self.allow { "allow" } else { "deny" },
            self.typ.letter(),
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

// ANCHOR: default_rules
/// What `docker run` writes into every container's config.json
/// (moby's `oci.DefaultLinuxSpec`): deny everything, then allow the
/// standard character devices; /dev/fuse stays denied.
pub fn docker_rules() -> Vec<LinuxDeviceCgroup> {
    use DeviceType::Char;
    let rwm = |major, minor| LinuxDeviceCgroup::allow(Char, Some(major), Some(minor), "rwm");
    vec![
        LinuxDeviceCgroup::deny(DeviceType::All, None, None, "rwm"),
        rwm(1, 5),                                                 // /dev/zero
        rwm(1, 3),                                                 // /dev/null
        rwm(1, 9),                                                 // /dev/urandom
        rwm(1, 8),                                                 // /dev/random
        rwm(5, 0),                                                 // /dev/tty
        rwm(5, 1),                                                 // /dev/console
        LinuxDeviceCgroup::deny(Char, Some(10), Some(229), "rwm"), // /dev/fuse
    ]
}

/// What runc adds after a container's own rules, whatever config.json
/// says (`specconv.AllowedDevices`): mknod of any node, the standard
/// devices again, /dev/full, the terminals, and tun.
pub fn runtime_rules() -> Vec<LinuxDeviceCgroup> {
    use DeviceType::{Block, Char};
    let rwm = |major, minor| LinuxDeviceCgroup::allow(Char, Some(major), minor, "rwm");
    vec![
        LinuxDeviceCgroup::allow(Char, None, None, "m"),
        LinuxDeviceCgroup::allow(Block, None, None, "m"),
        rwm(1, Some(3)),    // /dev/null
        rwm(1, Some(8)),    // /dev/random
        rwm(1, Some(7)),    // /dev/full
        rwm(5, Some(0)),    // /dev/tty
        rwm(1, Some(5)),    // /dev/zero
        rwm(1, Some(9)),    // /dev/urandom
        rwm(136, None),     // /dev/pts/*
        rwm(5, Some(2)),    // /dev/ptmx
        rwm(10, Some(200)), // /dev/net/tun
    ]
}

/// The rules docker and runc give a container: docker's, then the
/// container's own (`--device-cgroup-rule`), then runc's.
pub fn default_rules(extra: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    let mut rules = docker_rules();
    rules.extend_from_slice(extra);
    rules.extend(runtime_rules());
    rules
}
// ANCHOR_END: default_rules

/// Access bits, with the values `bpf_cgroup_dev_ctx` uses
/// (`BPF_DEVCG_ACC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    /// From `rwm` letters (checked by [`LinuxDeviceCgroup::validate`]).
    pub fn from_letters(letters: &str) -> Access {
        let mut bits = 0;
        for c in letters.chars() {
            bits |= match c {
                'r' => Access::READ.0,
                'w' => Access::WRITE.0,
                'm' => Access::MKNOD.0,
                _ => 0,
            };
        }
        Access(bits)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    fn minus(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    fn overlaps(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
}

/// `rwm`, in that order.
impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.overlaps(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// Which devices an exception is about. `None`: any number. Ordered with
/// the wildcards first, then by major, minor and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey {
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Block or Char, never All.
    pub typ: DeviceType,
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{}",
            self.typ.letter(),
            number(self.major),
            number(self.minor)
        )
    }
}

/// What a v1 devices cgroup holds once a list of rules is applied in
/// order: a default for every device, and exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCgroupState {
    /// Every device not in `exceptions` is allowed (`true`) or denied.
    pub default_allow: bool,
    /// Devices treated the other way, with the access concerned.
    pub exceptions: BTreeMap<DeviceKey, Access>,
}

impl DeviceCgroupState {
    /// Apply `rules` in order to a cgroup that allows everything (a new
    /// v1 cgroup under the root does), as the kernel would.
    // ANCHOR: from_rules
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<DeviceCgroupState, ResourceError> {
        let mut state = DeviceCgroupState {
            default_allow: true,
            exceptions: BTreeMap::new(),
        };
        for rule in rules {
            rule.validate()?;
            if rule.typ == DeviceType::All {
                // `a`: a new default, and no exceptions left.
                state.default_allow = rule.allow;
                state.exceptions.clear();
                continue;
            }
            let key = DeviceKey {
                typ: rule.typ,
                major: rule.major.map(|n| n as u32),
                minor: rule.minor.map(|n| n as u32),
            };
            let access = Access::from_letters(&rule.access);
            if rule.allow != state.default_allow {
                // An exception to the default: add it (merging access).
                let entry = state.exceptions.entry(key).or_default();
                *entry = entry.union(access);
            } else {
                // The same as the default: remove the exception, which v1
                // does only for an exact match.
                state.remove_exception(rule, key, access)?;
            }
        }
        Ok(state)
    }
    // ANCHOR_END: from_rules

    /// v1 removes an exception only where type and numbers match exactly:
    /// `deny c 1:3 r` after `allow c *:* r` leaves /dev/null readable.
    /// Refuse such a rule rather than let it look as if it worked.
    fn remove_exception(
        &mut self,
        rule: &LinuxDeviceCgroup,
        key: DeviceKey,
        access: Access,
    ) -> Result<(), ResourceError> {
        let wider = [
            DeviceKey { major: None, ..key },
            DeviceKey { minor: None, ..key },
            DeviceKey {
                major: None,
                minor: None,
                ..key
            },
        ];
        for wide in wider.into_iter().filter(|wide| *wide != key) {
            if let Some(held) = self.exceptions.get(&wide).filter(|a| a.overlaps(access)) {
                return Err(ResourceError::Invalid {
                    flag: "device rule",
                    value: rule.to_string(),
                    why: format!(
                        "the devices cgroup cannot make a hole in the earlier rule for {wide} {held}: remove that rule or narrow it"
                    ),
                });
            }
        }
        if let Some(held) = self.exceptions.get_mut(&key) {
            *held = held.minus(access);
            if held.is_empty() {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }

    /// Whether a process in the cgroup may have `access` to device
    /// `typ major:minor`, as v1 decides at open(2) and mknod(2): with a
    /// deny default, one exception must allow all of the access; with an
    /// allow default, no exception may deny any of it.
    // ANCHOR: allows
    pub fn allows(&self, typ: DeviceType, major: u32, minor: u32, access: Access) -> bool {
        let hit = self.exceptions.iter().any(|(key, held)| {
            key.typ == typ
                && key.major.is_none_or(|m| m == major)
                && key.minor.is_none_or(|m| m == minor)
                && if self.default_allow {
                    held.overlaps(access)
                } else {
                    access.minus(*held).is_empty()
                }
        });
        hit != self.default_allow
    }
    // ANCHOR_END: allows

    /// The writes that turn a new v1 cgroup (allowing everything) into
    /// this state, in order: (file, line).
    // ANCHOR: v1_writes
    pub fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (default_file, exception_file) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        let mut writes = vec![(default_file, "a".to_string())];
        for (key, access) in &self.exceptions {
            writes.push((exception_file, format!("{key} {access}")));
        }
        writes
    }
    // ANCHOR_END: v1_writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceType::{Block, Char};

    #[test]
    fn dockers_defaults_become_a_deny_list_with_exceptions() {
        let state = DeviceCgroupState::from_rules(&default_rules(&[])).unwrap();
        assert!(!state.default_allow);
        let writes: Vec<String> = state
            .v1_writes()
            .iter()
            .map(|(file, line)| format!("{file} {line}"))
            .collect();
        assert_eq!(
            writes,
            [
                "devices.deny a",
                "devices.allow b *:* m",
                "devices.allow c *:* m",
                "devices.allow c 1:3 rwm",
                "devices.allow c 1:5 rwm",
                "devices.allow c 1:7 rwm",
                "devices.allow c 1:8 rwm",
                "devices.allow c 1:9 rwm",
                "devices.allow c 5:0 rwm",
                "devices.allow c 5:1 rwm",
                "devices.allow c 5:2 rwm",
                "devices.allow c 10:200 rwm",
                "devices.allow c 136:* rwm",
            ]
        );
        // What the kernel would decide with these rules.
        let vda = (Block, 254, 0);
        assert!(state.allows(vda.0, vda.1, vda.2, Access::MKNOD));
        assert!(!state.allows(vda.0, vda.1, vda.2, Access::READ));
        assert!(!state.allows(Char, 1, 1, Access::READ), "/dev/mem");
        assert!(state.allows(Char, 1, 3, Access::ALL));
        assert!(state.allows(Char, 136, 7, Access::READ), "a pts");
        assert!(!state.allows(Char, 10, 229, Access::READ), "/dev/fuse");
        assert!(state.allows(Char, 10, 229, Access::MKNOD));
    }

    #[test]
    fn an_allow_all_default_lists_what_is_denied() {
        let rules = [
            LinuxDeviceCgroup::allow(DeviceType::All, None, None, "rwm"),
            LinuxDeviceCgroup::deny(Block, Some(8), None, "rw"),
            LinuxDeviceCgroup::deny(Block, Some(8), None, "m"),
            LinuxDeviceCgroup::allow(Block, Some(8), None, "m"),
        ];
        let state = DeviceCgroupState::from_rules(&rules).unwrap();
        assert!(state.default_allow);
        assert_eq!(
            state.v1_writes(),
            [
                ("devices.allow", "a".to_string()),
                ("devices.deny", "b 8:* rw".to_string())
            ]
        );
        assert!(!state.allows(Block, 8, 1, Access::READ));
        // Denied in part is denied: read and mknod at once.
        assert!(!state.allows(Block, 8, 1, Access::from_letters("rm")));
        assert!(state.allows(Block, 8, 1, Access::MKNOD));
        assert!(state.allows(Block, 9, 1, Access::READ));
    }

    #[test]
    fn a_hole_in_a_wildcard_is_refused() {
        let rules = [
            LinuxDeviceCgroup::deny(DeviceType::All, None, None, "rwm"),
            LinuxDeviceCgroup::allow(Char, None, None, "rw"),
            LinuxDeviceCgroup::deny(Char, Some(1), Some(3), "r"),
        ];
        let err = DeviceCgroupState::from_rules(&rules)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "device rule deny c 1:3 r: the devices cgroup cannot make a hole in the earlier rule for c *:* rw: remove that rule or narrow it"
        );
        // Removing part of an exact exception is fine.
        let rules = [
            LinuxDeviceCgroup::deny(DeviceType::All, None, None, "rwm"),
            LinuxDeviceCgroup::allow(Char, Some(1), Some(3), "rwm"),
            LinuxDeviceCgroup::deny(Char, Some(1), Some(3), "w"),
        ];
        let state = DeviceCgroupState::from_rules(&rules).unwrap();
        assert_eq!(state.v1_writes()[1].1, "c 1:3 rm");
    }

    #[test]
    fn dockers_rule_format() {
        let rule = LinuxDeviceCgroup::parse_docker("b 8:* r").unwrap();
        assert_eq!(rule, LinuxDeviceCgroup::allow(Block, Some(8), None, "r"));
        assert_eq!(rule.to_string(), "allow b 8:* r");
        let rule = LinuxDeviceCgroup::parse_docker("a *:* rwm").unwrap();
        assert_eq!(rule.typ, DeviceType::All);
        for (bad, why) in [
            ("c 1:3", "write TYPE MAJOR:MINOR ACCESS"),
            ("x 1:3 r", "the type is a, b or c"),
            ("c 1-3 r", "write the numbers as MAJOR:MINOR"),
            ("c -1:3 r", "a major or minor is a number or *"),
            ("c 1:3 rx", "the access is some of r (read)"),
            ("c 1:3 ", "the access is some of r (read)"),
            (
                "c 4096:0 r",
                "major 4096: Linux device numbers have majors 0 to 4095",
            ),
            ("c 1:99999999999999999999 r", "the number is too large"),
        ] {
            let err = LinuxDeviceCgroup::parse_docker(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let err = LinuxDeviceCgroup::parse_docker("c 1:3")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--device-cgroup-rule \"c 1:3\": "), "{err}");
    }

    #[test]
    fn access_letters_round_trip() {
        assert_eq!(Access::from_letters("mwr"), Access::ALL);
        assert_eq!(Access::from_letters("mwr").to_string(), "rwm");
        assert_eq!(Access::from_letters("m").bits(), 1);
        assert_eq!(Access::from_letters("r").bits(), 2);
        assert_eq!(Access::from_letters("w").bits(), 4);
    }
}
