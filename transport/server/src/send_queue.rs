//! What a TCP connection has sent that its peer has not acknowledged, and
//! how long the kernel lets such bytes wait. A WebSocket client that reads
//! slowly through a backlog answers the server's ping only once it reaches
//! it, behind everything queued before it: while the kernel still holds
//! bytes the client has not acknowledged, the client is not yet silent
//! (see [`crate::websocket`]). A peer that acknowledges nothing (gone
//! from the network) is cut by the kernel itself once bytes have waited
//! unacknowledged for the idle timeout (`TCP_USER_TIMEOUT`, which also
//! bounds how long its receive window may stay shut).

use std::time::Duration;

use tokio::net::TcpStream;

/// The send queue of one accepted TCP socket, queried by descriptor.
///
/// It holds the socket's descriptor number, not the socket: it must only
/// be queried while the connection it was taken from is open (a
/// WebSocket session queries it while it reads from that connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendQueue {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
}

impl SendQueue {
    /// The send queue of `stream`; also bounds how long the bytes written
    /// to it may wait for the peer's acknowledgement to `timeout`, after
    /// which the kernel ends the connection (where the platform has it).
    pub(crate) fn of(stream: &TcpStream, timeout: Duration) -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = stream.as_raw_fd();
            let millis = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
            // SAFETY: `fd` is the open socket `stream` owns, and the option
            // value is a `c_uint` of the size passed.
            let set = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_USER_TIMEOUT,
                    std::ptr::from_ref(&millis).cast(),
                    std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
                )
            };
            if set != 0 {
                tracing::debug!(
                    "could not set TCP_USER_TIMEOUT: {}",
                    std::io::Error::last_os_error()
                );
            }
            Self { fd }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (stream, timeout);
            Self {}
        }
    }

    /// Whether bytes written to the socket wait for the peer to take or
    /// acknowledge them; `false` where the platform does not tell.
    pub(crate) fn holds_unacknowledged_bytes(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            let mut queued: libc::c_int = 0;
            // SAFETY: `fd` is an open TCP socket (see the type's
            // documentation); TIOCOUTQ (SIOCOUTQ for sockets) writes one
            // `c_int`.
            let asked = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut queued) };
            asked == 0 && queued > 0
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }
}
