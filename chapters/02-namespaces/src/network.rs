//! The network namespace: a fresh network stack with one interface, `lo`,
//! which starts DOWN. We bring it up ourselves.
//!
//! Kernel feature: every network namespace gets its own loopback device.
//! Interfaces are switched up and down with the `SIOCGIFFLAGS` and
//! `SIOCSIFFLAGS` ioctls on any socket (this is what `ifconfig lo up` does;
//! `ip link set lo up` does the same over netlink). Chapter 7 adds veth
//! pairs and a bridge.
//!
//! Man pages: network_namespaces(7), netdevice(7), ioctl(2), lo(4).

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// `ip link set lo up`, with two ioctls.
// ANCHOR: bring_up_loopback
pub fn bring_up_loopback() -> Result<(), (&'static str, Errno)> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| ("socket for the interface ioctls", e))?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`,
    // which lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(("read the flags of lo (SIOCGIFFLAGS)", Errno::last()));
    }
    // SAFETY: after SIOCGIFFLAGS the flags member is the initialised one.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(("bring lo up (SIOCSIFFLAGS)", Errno::last()));
    }
    Ok(())
}
// ANCHOR_END: bring_up_loopback
