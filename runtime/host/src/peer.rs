//! Who is on the other end of a socket.
//!
//! A Unix socket's peer is read from the kernel (`SO_PEERCRED`: pid and uid at
//! `connect`). A loopback TCP connection carries no credentials, but on Linux
//! the kernel lists every TCP socket with its owner in `/proc/net/tcp` and
//! `/proc/net/tcp6`: the peer of an accepted connection is the socket whose
//! local address is our peer address and whose remote address is ours.
//! Servers use these to refuse connections from other local users.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;

/// The credentials of a Unix socket's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: u32,
    pub uid: u32,
}

/// The peer of a connected Unix socket (`SO_PEERCRED`).
#[cfg(target_os = "linux")]
pub fn unix_peer(stream: &UnixStream) -> std::io::Result<PeerCred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &raw mut len)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(PeerCred { pid: cred.pid as u32, uid: cred.uid })
}

/// The peer of a connected Unix socket (not available on this platform).
#[cfg(not(target_os = "linux"))]
pub fn unix_peer(_stream: &UnixStream) -> std::io::Result<PeerCred> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "peer credentials are read on Linux only"))
}

/// Checks that a Unix socket's peer runs as our effective uid and, when
/// `pid` is given, is that process. The error says who it was instead. Where
/// the platform gives no credentials (not Linux) the socket's private
/// directory is the only guard, and this returns `None`.
pub fn check_unix_peer(stream: &UnixStream, pid: Option<u32>) -> Result<Option<PeerCred>, String> {
    let peer = match unix_peer(stream) {
        Ok(peer) => peer,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(None),
        Err(e) => return Err(format!("cannot read the peer's credentials: {e}")),
    };
    let uid = crate::rundir::euid();
    if peer.uid != uid {
        return Err(format!("the peer (pid {}) runs as uid {}, not uid {uid}", peer.pid, peer.uid));
    }
    if let Some(pid) = pid.filter(|&p| p != peer.pid) {
        return Err(format!("the peer is pid {}, not the child ax started (pid {pid})", peer.pid));
    }
    Ok(Some(peer))
}

/// The uid owning the other end of an accepted loopback TCP connection, read
/// from `/proc/net/tcp` and `/proc/net/tcp6`; `None` when it is not listed
/// (not a local peer, or not Linux).
pub fn tcp_peer_uid(stream: &TcpStream) -> std::io::Result<Option<u32>> {
    let (ours, theirs) = (canonical(stream.local_addr()?), canonical(stream.peer_addr()?));
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(uid)) = (fields.get(1), fields.get(2), fields.get(7)) else {
                continue;
            };
            if parse_address(local) == Some(theirs) && parse_address(remote) == Some(ours) {
                return Ok(uid.parse().ok());
            }
        }
    }
    Ok(None)
}

/// Checks that an accepted TCP connection comes from a local socket owned by
/// our effective uid. The error says who it was instead.
pub fn check_tcp_peer(stream: &TcpStream) -> Result<(), String> {
    let uid = crate::rundir::euid();
    match tcp_peer_uid(stream) {
        Ok(Some(peer)) if peer == uid => Ok(()),
        Ok(Some(peer)) => Err(format!("its socket belongs to uid {peer}, not uid {uid}")),
        Ok(None) => Err("its owner is not a local socket listed in /proc/net/tcp{,6}".to_owned()),
        Err(e) => Err(format!("cannot find its owner: {e}")),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 one.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// `0100007F:1F90` (an IPv4 address as the kernel prints it: the 32-bit word in
/// host order) or 32 hex digits for IPv6 (four such words), then the port.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&ip[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn a_loopback_connection_of_our_own_is_ours() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(tcp_peer_uid(&accepted).unwrap(), Some(crate::rundir::euid()));
            check_tcp_peer(&accepted).unwrap();
        }
    }

    #[test]
    fn a_unix_peer_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        if cfg!(target_os = "linux") {
            let peer = check_unix_peer(&a, Some(std::process::id())).unwrap().expect("Linux gives credentials");
            assert_eq!(peer.uid, crate::rundir::euid());
            assert!(check_unix_peer(&a, Some(1)).unwrap_err().contains("not the child"));
        }
    }
}
