//! UDP multicast sockets for ASAP Server Announces (RFC 5352 §3.6).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// The default ASAP announce group and port (RSPLIB's): 239.0.0.50:3863.
pub const DEFAULT_ANNOUNCE_GROUP: SocketAddr = SocketAddr::new(
    IpAddr::V4(Ipv4Addr::new(239, 0, 0, 50)),
    crate::wire::ASAP_PORT,
);

/// A socket that sends announces to `group`, from UDP port `source_port` (the registrar's ASAP
/// port: RSPLIB takes the announce's source address and port as the registrar's endpoint) on
/// the interface with address `interface` (the default route's if unspecified).
pub fn sender(
    group: SocketAddr,
    source_port: u16,
    interface: Option<IpAddr>,
    ttl: u32,
) -> io::Result<UdpSocket> {
    let s = shared_socket(group, source_port)?;
    if group.is_ipv4() {
        if let Some(IpAddr::V4(i)) = interface {
            s.set_multicast_if_v4(&i)?;
        }
        s.set_multicast_ttl_v4(ttl)?;
        s.set_multicast_loop_v4(true)?;
    } else {
        s.set_multicast_hops_v6(ttl)?;
        s.set_multicast_loop_v6(true)?;
    }
    UdpSocket::from_std(s.into())
}

/// A non-blocking UDP socket of `group`'s family, bound to the wildcard address and `port`,
/// that other processes of the host may bind too (announce senders and listeners coexist).
fn shared_socket(group: SocketAddr, port: u16) -> io::Result<Socket> {
    let (domain, any): (Domain, IpAddr) = if group.is_ipv4() {
        (Domain::IPV4, Ipv4Addr::UNSPECIFIED.into())
    } else {
        (Domain::IPV6, Ipv6Addr::UNSPECIFIED.into())
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    if group.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&SocketAddr::new(any, port).into())?;
    Ok(s)
}

/// A socket that receives announces sent to `group` (joined on the interface with address
/// `interface`, or the default one). Several processes of a host can listen at once.
pub fn listener(group: SocketAddr, interface: Option<IpAddr>) -> io::Result<UdpSocket> {
    let s = shared_socket(group, group.port())?;
    match group.ip() {
        IpAddr::V4(g) => {
            let i = match interface {
                Some(IpAddr::V4(i)) => i,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            s.join_multicast_v4(&g, &i)?;
        }
        IpAddr::V6(g) => s.join_multicast_v6(&g, 0)?,
    }
    UdpSocket::from_std(s.into())
}
