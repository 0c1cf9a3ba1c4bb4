//! The library's one error type: each variant names what failed and on
//! what (the path, the interface, the network), so the engine can print
//! it as it is. Messages the docker CLI prints word for word (a port
//! already allocated, a network in use) keep docker's wording, so scripts
//! that match on them carry over.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A file or directory operation failed.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    /// A system call failed: `what` names the call and its object.
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
    /// A netlink request failed: `what` says which (with the interface).
    #[error("netlink: {what}: {cause}")]
    Netlink { what: String, cause: String },
    /// `nft` refused a ruleset or could not run.
    #[error("nft: {0}")]
    Nft(String),
    /// A state file does not parse: the state directory was damaged.
    #[error("state file {}: {cause}", path.display())]
    State {
        path: PathBuf,
        cause: serde_json::Error,
    },
    /// Bad input from the user: the message says what and what to do.
    #[error("{0}")]
    Invalid(String),
    /// No network of that name or ID.
    #[error("network {0} not found")]
    NotFound(String),
    /// `network create` with a name in use.
    #[error("network with name {0} already exists")]
    Exists(String),
    /// `network rm` of a network with containers attached.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    InUse { name: String, id: String },
    /// `bridge`, `host` and `none` always exist.
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    /// A host port another container already publishes (docker's words).
    #[error("Bind for {0} failed: port is already allocated")]
    PortAllocated(String),
    /// A host port a process of the host already holds.
    #[error("bind for {addr} failed: {cause}")]
    PortInUse { addr: String, cause: io::Error },
    /// Every address of the subnet is leased.
    #[error("no available IPv4 addresses on network {0}")]
    Exhausted(String),
    /// The container is already on that network.
    #[error("endpoint with name {name} already exists in network {network}")]
    EndpointExists { name: String, network: String },
    /// Detach or disconnect from a network the container is not on.
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    /// A helper process (the DNS server, pasta) failed to start or stop.
    #[error("{program}: {message}")]
    Helper { program: String, message: String },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, NetworkError>;

/// `map_err` helper for I/O on `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> NetworkError {
    let path = path.into();
    move |cause| NetworkError::Io { path, cause }
}

/// `map_err` helper for a system call described by `what`.
pub(crate) fn sys_err(what: impl Into<String>) -> impl FnOnce(Errno) -> NetworkError {
    let what = what.into();
    move |errno| NetworkError::Sys { what, errno }
}
