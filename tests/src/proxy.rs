//! A TCP proxy that can fail the link between Kith and its database on command, so outage tests
//! never touch the real server.
//!
//! [`Link::Up`] forwards bytes both ways. [`Link::Cut`] closes every connection and closes each
//! new one as soon as it is accepted (the client reads EOF at once, as from a stopped server).
//! [`Link::Blackhole`] stops forwarding on every connection and holds new ones open without
//! answering, as a network that drops packets would: only the client's own timeouts end its
//! wait. Leaving a blackhole closes the stalled connections, as a peer that has forgotten
//! them would answer the first packet after the network heals with a reset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The state of the proxied link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow.
    Up,
    /// Connections are closed and refused.
    Cut,
    /// Connections stay open but nothing flows.
    Blackhole,
}

impl Link {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Cut,
            2 => Self::Blackhole,
            _ => Self::Up,
        }
    }
}

#[derive(Debug)]
struct Shared {
    link: AtomicU8,
    stopped: AtomicBool,
    /// Every socket of every open connection, both sides, to close them on a cut.
    sockets: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn link(&self) -> Link {
        Link::from_u8(self.link.load(Ordering::SeqCst))
    }

    fn close_all(&self) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn register(&self, s: &TcpStream) {
        if let Ok(clone) = s.try_clone() {
            self.sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(clone);
        }
    }
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            link: AtomicU8::new(0),
            stopped: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        thread::spawn(move || accept_loop(&listener, upstream, &s));
        Ok(Self { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current state of the link.
    pub fn link(&self) -> Link {
        self.shared.link()
    }

    /// Changes the state of the link. Cutting, and leaving a blackhole, close every connection.
    pub fn set(&self, link: Link) {
        let before = self.shared.link();
        if link == Link::Cut || (before == Link::Blackhole && link != Link::Blackhole) {
            // Close before switching, so that no stalled byte slips through on the way up.
            self.shared.link.store(1, Ordering::SeqCst);
            self.shared.close_all();
        }
        let v = match link {
            Link::Up => 0,
            Link::Cut => 1,
            Link::Blackhole => 2,
        };
        self.shared.link.store(v, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        match shared.link() {
            Link::Cut => {
                let _ = client.shutdown(Shutdown::Both);
            }
            Link::Blackhole => {
                // Held open by the registered clone, never answered, closed when the blackhole
                // ends.
                shared.register(&client);
            }
            Link::Up => {
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                shared.register(&client);
                shared.register(&server);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let a = shared.clone();
                let b = shared.clone();
                thread::spawn(move || pump(client, server, &a));
                thread::spawn(move || pump(s2, c2, &b));
            }
        }
    }
}

/// Copies `from` to `to` while the link is up; stalls in a blackhole; ends on EOF or error.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            break;
        }
        match shared.link() {
            Link::Up => {}
            Link::Blackhole => {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            Link::Cut => break,
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Bytes read just as the link went into a blackhole stall with it; leaving the
                // blackhole closes the connection, so they are never delivered.
                while shared.link() == Link::Blackhole {
                    thread::sleep(Duration::from_millis(20));
                }
                if shared.link() != Link::Up || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
