//! `--network`: which network namespace a container gets.
//!
//! - `bridge` (the default when root) or a network's name: a namespace of
//!   its own ([`crate::netns::create_netns`]), attached to that network.
//! - `none`: a namespace of its own with only `lo`.
//! - `host`: no network namespace at all: the container uses the host's
//!   stack (the runtime's config.json lists no network namespace).
//! - `container:NAME|ID`: the other container's namespace, joined by path.
//!
//! Docker refuses some flags with some modes (a container that joins
//! another's stack cannot publish ports or set its own DNS); [`check_options`]
//! gives the same answers, with docker's words.

use crate::error::{NetworkError, Result};

/// A parsed `--network` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// The default bridge network (`bridge`, `default`, or no flag).
    Bridge,
    /// No network but `lo`.
    None,
    /// The host's network stack.
    Host,
    /// Another container's network namespace.
    Container(String),
    /// A user-defined network, by name or ID.
    Named(String),
}

impl NetworkMode {
    /// Parse `--network VALUE`.
    pub fn parse(value: &str) -> Result<NetworkMode> {
        Ok(match value {
            "" | "bridge" | "default" => NetworkMode::Bridge,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => match value.strip_prefix("container:") {
                Some("") => {
                    return Err(NetworkError::Invalid(
                        "--network container: needs a container name or ID (container:NAME)".into(),
                    ));
                }
                Some(other) => NetworkMode::Container(other.to_string()),
                None => NetworkMode::Named(value.to_string()),
            },
        })
    }

    /// The network to attach to, if the mode has one.
    pub fn network_name(&self) -> Option<&str> {
        match self {
            NetworkMode::Bridge => Some("bridge"),
            NetworkMode::Named(name) => Some(name),
            _ => None,
        }
    }

    /// True if the container gets a namespace of its own (made with
    /// [`crate::netns::create_netns`]).
    pub fn has_own_netns(&self) -> bool {
        matches!(
            self,
            NetworkMode::Bridge | NetworkMode::None | NetworkMode::Named(_)
        )
    }
}

/// The `run` flags that depend on the network mode.
#[derive(Clone, Debug, Default)]
pub struct RunNetworkFlags {
    pub publish: bool,
    pub hostname: bool,
    pub dns: bool,
    pub add_host: bool,
    pub mac_address: bool,
    pub aliases: bool,
    pub ip: bool,
}

/// Refuse the combinations docker refuses; return the warnings it prints.
pub fn check_options(mode: &NetworkMode, flags: &RunNetworkFlags) -> Result<Vec<String>> {
    let conflict = |what: &str| {
        Err(NetworkError::Invalid(format!(
            "conflicting options: {what}"
        )))
    };
    let mut warnings = Vec::new();
    match mode {
        NetworkMode::Container(_) => {
            if flags.publish {
                return conflict("port publishing and the container type network mode");
            }
            if flags.hostname {
                return conflict("hostname and the network mode");
            }
            if flags.dns {
                return conflict("dns and the network mode");
            }
            if flags.add_host {
                return conflict("custom host-to-IP mapping and the network mode");
            }
            if flags.mac_address {
                return conflict("mac-address and the network mode");
            }
        }
        NetworkMode::Host => {
            if flags.mac_address {
                return conflict("mac-address and the network mode");
            }
            if flags.publish {
                warnings.push(
                    "WARNING: Published ports are discarded when using host network mode".into(),
                );
            }
        }
        _ => {}
    }
    if flags.aliases && !matches!(mode, NetworkMode::Named(_)) {
        return Err(NetworkError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    if flags.ip && !matches!(mode, NetworkMode::Named(_)) {
        return Err(NetworkError::Invalid(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(NetworkMode::parse("bridge").unwrap(), NetworkMode::Bridge);
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert_eq!(
            NetworkMode::parse("container:web").unwrap(),
            NetworkMode::Container("web".into())
        );
        assert_eq!(
            NetworkMode::parse("mynet").unwrap(),
            NetworkMode::Named("mynet".into())
        );
        assert!(NetworkMode::parse("container:").is_err());
        assert_eq!(
            NetworkMode::parse("mynet").unwrap().network_name(),
            Some("mynet")
        );
        assert!(!NetworkMode::Host.has_own_netns());
    }

    #[test]
    fn docker_conflicts_are_refused() {
        let c = NetworkMode::Container("web".into());
        let publish = RunNetworkFlags {
            publish: true,
            ..Default::default()
        };
        assert_eq!(
            check_options(&c, &publish).unwrap_err().to_string(),
            "conflicting options: port publishing and the container type network mode"
        );
        let warnings = check_options(&NetworkMode::Host, &publish).unwrap();
        assert_eq!(warnings.len(), 1);
        let alias = RunNetworkFlags {
            aliases: true,
            ..Default::default()
        };
        assert!(check_options(&NetworkMode::Bridge, &alias).is_err());
        assert!(check_options(&NetworkMode::Named("n".into()), &alias).is_ok());
    }
}
