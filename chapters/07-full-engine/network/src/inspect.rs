//! What `inspect` shows of networks, as docker shows it: the field names
//! and shapes of the Docker Engine API's `NetworkSettings` (a container's
//! inspect) and `NetworkResource` (`network inspect`), so scripts that
//! read `docker inspect` output (`{{.NetworkSettings.IPAddress}}`,
//! `.NetworkSettings.Ports["80/tcp"][0].HostPort`) work unchanged.
//!
//! As in docker, the top-level `IPAddress`, `Gateway`, `MacAddress`... of
//! `NetworkSettings` describe the default `bridge` network only (empty for
//! a container on a user-defined network); `Networks` has an entry per
//! network. `Ports` lists every exposed or published port: published ones
//! with their host bindings, exposed-only ones as `null`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ports::{PortMapping, Protocol};
use crate::store::{Endpoint, NetworkConfig};

/// One host binding of a port (`{"HostIp": "0.0.0.0", "HostPort": "8080"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// `"80/tcp" -> [bindings]` (`None`: exposed, not published).
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// A container's endpoint on one network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<serde_json::Value>,
    pub links: Option<Vec<String>>,
    pub mac_address: String,
    pub aliases: Option<Vec<String>>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

/// A container's `NetworkSettings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub sandbox_key: String,
    pub ports: PortMap,
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: u8,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// The key of a port in `Ports`: `80/tcp`.
pub fn port_key(port: u16, protocol: Protocol) -> String {
    format!("{port}/{protocol}")
}

/// `Ports`: published ports with their bindings, exposed ones as null.
pub fn port_map(exposed: &[(u16, Protocol)], published: &[PortMapping]) -> PortMap {
    let mut map = PortMap::new();
    for &(port, protocol) in exposed {
        map.insert(port_key(port, protocol), None);
    }
    for p in published {
        map.entry(port_key(p.container_port, p.protocol))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port.to_string(),
            });
    }
    map
}

/// One network's entry in `NetworkSettings.Networks`.
pub fn endpoint_settings(network: &NetworkConfig, endpoint: &Endpoint) -> EndpointSettings {
    let user_defined = network.dns;
    EndpointSettings {
        mac_address: endpoint.mac.clone(),
        aliases: user_defined.then(|| endpoint.aliases.clone()),
        network_id: network.id.clone(),
        endpoint_id: endpoint.endpoint_id.clone(),
        gateway: if network.internal {
            String::new()
        } else {
            network.gateway.map(|g| g.to_string()).unwrap_or_default()
        },
        ip_address: endpoint.ip.to_string(),
        ip_prefix_len: network.prefix_len(),
        dns_names: user_defined.then(|| endpoint.dns_names()),
        ..Default::default()
    }
}

// ANCHOR: network_settings
/// A container's `NetworkSettings` from its endpoints (in the order it
/// joined the networks), its namespace path and its exposed ports.
/// `mode_network` is the entry shown for `host` and `none` containers.
pub fn network_settings(
    endpoints: &[(NetworkConfig, Endpoint)],
    sandbox_key: Option<&Path>,
    exposed: &[(u16, Protocol)],
    mode_network: Option<&NetworkConfig>,
) -> NetworkSettings {
    let published: Vec<PortMapping> = endpoints
        .iter()
        .flat_map(|(_, e)| e.ports.iter().copied())
        .collect();
    let mut settings = NetworkSettings {
        sandbox_key: sandbox_key
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        sandbox_id: sandbox_key
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ports: port_map(exposed, &published),
        ..Default::default()
    };
    for (network, endpoint) in endpoints {
        let entry = endpoint_settings(network, endpoint);
        if network.name == "bridge" {
            settings.endpoint_id = entry.endpoint_id.clone();
            settings.gateway = entry.gateway.clone();
            settings.ip_address = entry.ip_address.clone();
            settings.ip_prefix_len = entry.ip_prefix_len;
            settings.mac_address = entry.mac_address.clone();
        }
        settings.networks.insert(network.name.clone(), entry);
    }
    if let Some(network) = mode_network {
        settings.networks.insert(
            network.name.clone(),
            EndpointSettings {
                network_id: network.id.clone(),
                ..Default::default()
            },
        );
    }
    settings
}
// ANCHOR_END: network_settings

/// `network inspect`'s IPAM section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
}

/// A container as `network inspect` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `network inspect`'s document for one network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: BTreeMap<String, String>,
    pub config_only: bool,
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A network's inspect document, with its current endpoints.
pub fn network_resource(network: &NetworkConfig, endpoints: &[Endpoint]) -> NetworkResource {
    let mut options = network.options.clone();
    if network.is_bridge() {
        options.insert(
            "com.docker.network.bridge.name".into(),
            network.bridge.clone(),
        );
    }
    NetworkResource {
        name: network.name.clone(),
        id: network.id.clone(),
        created: network.created.clone(),
        scope: "local".into(),
        driver: network.driver.clone(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: None,
            config: match (network.subnet, network.gateway) {
                (Some(subnet), Some(gateway)) => vec![IpamConfig {
                    subnet: subnet.to_string(),
                    gateway: gateway.to_string(),
                }],
                _ => Vec::new(),
            },
        },
        internal: network.internal,
        attachable: false,
        ingress: false,
        config_from: [("Network".to_string(), String::new())]
            .into_iter()
            .collect(),
        config_only: false,
        containers: endpoints
            .iter()
            .map(|e| {
                (
                    e.container_id.clone(),
                    NetworkContainer {
                        name: e.container_name.clone(),
                        endpoint_id: e.endpoint_id.clone(),
                        mac_address: e.mac.clone(),
                        ipv4_address: format!("{}/{}", e.ip, network.prefix_len()),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect(),
        options,
        labels: network.labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn bridge() -> NetworkConfig {
        NetworkConfig {
            name: "bridge".into(),
            id: "f".repeat(64),
            driver: "bridge".into(),
            bridge: "berth0".into(),
            subnet: Some("10.77.0.0/16".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(10, 77, 0, 1)),
            internal: false,
            dns: false,
            labels: Default::default(),
            options: Default::default(),
            created: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            container_id: "c".repeat(64),
            container_name: "web".into(),
            endpoint_id: "e".repeat(64),
            aliases: vec![],
            ip: Ipv4Addr::new(10, 77, 0, 2),
            mac: "be:27:0a:4d:00:02".into(),
            host_veth: "bveth0123456789".into(),
            ifname: "eth0".into(),
            netns: "/run/berth/netns/ccc".into(),
            ports: vec![PortMapping {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            dns_servers: vec![],
        }
    }

    #[test]
    fn container_inspect_has_dockers_field_names() {
        let settings = network_settings(
            &[(bridge(), endpoint())],
            Some(Path::new("/run/berth/netns/ccc")),
            &[(80, Protocol::Tcp), (443, Protocol::Tcp)],
            None,
        );
        let json = serde_json::to_value(&settings).unwrap();
        assert_eq!(json["IPAddress"], "10.77.0.2");
        assert_eq!(json["IPPrefixLen"], 16);
        assert_eq!(json["Gateway"], "10.77.0.1");
        assert_eq!(json["MacAddress"], "be:27:0a:4d:00:02");
        assert_eq!(json["SandboxKey"], "/run/berth/netns/ccc");
        assert_eq!(json["Ports"]["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(json["Ports"]["80/tcp"][0]["HostIp"], "0.0.0.0");
        assert!(json["Ports"]["443/tcp"].is_null());
        let net = &json["Networks"]["bridge"];
        assert_eq!(net["NetworkID"], "f".repeat(64));
        assert_eq!(net["EndpointID"], "e".repeat(64));
        assert_eq!(net["IPAddress"], "10.77.0.2");
        assert!(net["Aliases"].is_null(), "no aliases on the default bridge");
        for key in [
            "IPAMConfig",
            "Links",
            "DriverOpts",
            "IPv6Gateway",
            "GlobalIPv6Address",
            "DNSNames",
        ] {
            assert!(net.get(key).is_some(), "{key} missing");
        }
    }

    #[test]
    fn user_networks_fill_only_the_networks_map() {
        let mut net = bridge();
        net.name = "mynet".into();
        net.dns = true;
        let mut ep = endpoint();
        ep.aliases = vec!["www".into()];
        let settings = network_settings(&[(net, ep)], None, &[], None);
        assert_eq!(settings.ip_address, "");
        let entry = &settings.networks["mynet"];
        assert_eq!(entry.aliases.as_deref(), Some(&["www".to_string()][..]));
        assert_eq!(
            entry.dns_names.as_ref().unwrap()[..2],
            ["web".to_string(), "www".to_string()]
        );
    }

    #[test]
    fn network_inspect_lists_containers_and_the_bridge_name() {
        let json = serde_json::to_value(network_resource(&bridge(), &[endpoint()])).unwrap();
        assert_eq!(json["Name"], "bridge");
        assert_eq!(json["Driver"], "bridge");
        assert_eq!(json["Scope"], "local");
        assert_eq!(json["IPAM"]["Config"][0]["Subnet"], "10.77.0.0/16");
        assert_eq!(json["IPAM"]["Config"][0]["Gateway"], "10.77.0.1");
        assert_eq!(json["Options"]["com.docker.network.bridge.name"], "berth0");
        assert_eq!(
            json["Containers"]["c".repeat(64)]["IPv4Address"],
            "10.77.0.2/16"
        );
    }
}
