//! A private loopback for tests that must use fixed ports (the shipped configurations
//! listen on 61613/61616/61623/61626).
//!
//! [`with_private_loopback`] runs a closure on a new thread that has left the host's
//! network namespace (`unshare(CLONE_NEWNET)` affects only the calling thread) and
//! brought its own `lo` up. Sockets that thread opens, and every process it spawns
//! (brokers, stomp.py, the JMS probes), live in that namespace: the fixed ports are
//! free there whatever runs on the host, and several such tests run in parallel.
//!
//! Creating a network namespace needs CAP_SYS_ADMIN (CI runs as root). Without it the
//! closure runs on the host's loopback instead, and the test checks the ports are free.

use std::io;

/// Where [`with_private_loopback`] ran the closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loopback {
    /// A network namespace of its own: fixed ports are free.
    Private,
    /// The host's (no permission to create a namespace): fixed ports may be taken.
    Host,
}

/// Runs `f` on a thread inside a fresh network namespace with `lo` up, or on the host's
/// loopback if namespaces are not allowed here. A panic in `f` is re-raised.
pub fn with_private_loopback<T: Send + 'static>(
    f: impl FnOnce(Loopback) -> T + Send + 'static,
) -> T {
    let thread = std::thread::spawn(move || {
        let where_ = match enter_new_netns() {
            Ok(()) => Loopback::Private,
            Err(e) => {
                eprintln!(
                    "netns: cannot create a network namespace ({e}); using the host's loopback"
                );
                Loopback::Host
            }
        };
        f(where_)
    });
    match thread.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Panics unless every port in `ports` can be bound on 127.0.0.1 (for [`Loopback::Host`]).
pub fn assert_ports_free(ports: &[u16]) {
    for &p in ports {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", p)) {
            panic!(
                "port {p} is taken on this host ({e}) and no private network namespace could \
                 be made (run as root); the shipped configurations need it"
            );
        }
    }
}

fn enter_new_netns() -> io::Result<()> {
    // SAFETY: unshare with CLONE_NEWNET only changes this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    bring_loopback_up()
}

/// `ip link set lo up`, by ioctl (iproute2 need not be installed).
fn bring_loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed `ifreq` naming "lo"; the fd is
    // closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut res = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if res == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            res = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if res != 0 {
            return Err(err);
        }
    }
    Ok(())
}
