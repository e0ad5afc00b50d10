//! A TCP proxy the test can pause: while paused, bytes stop flowing both ways and new
//! connections wait, as with a hung peer (an API server that accepts and never answers), for
//! one client only; the real server stays up for everyone else.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// A pausable proxy on 127.0.0.1 to `target`.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    paused: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    /// Bytes forwarded (both ways), to check traffic flowed and then stopped.
    forwarded: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("local address").port();
        let (paused, closed, forwarded) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (p, c, f) = (paused.clone(), closed.clone(), forwarded.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (p, c, f) = (p.clone(), c.clone(), f.clone());
                    std::thread::spawn(move || pump(from, to, &p, &c, &f));
                }
            }
        });
        Proxy {
            port,
            paused,
            closed,
            forwarded,
        }
    }

    /// Stops forwarding (connections stay open, silent).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Acquire)
    }
}

/// Copies `from` → `to`; while paused, holds what it read.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    paused: &AtomicBool,
    closed: &AtomicBool,
    forwarded: &AtomicU64,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if closed.load(Ordering::Acquire) {
            return;
        }
        if paused.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                while paused.load(Ordering::Acquire) && !closed.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
                forwarded.fetch_add(n as u64, Ordering::AcqRel);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        // Unblocks the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
