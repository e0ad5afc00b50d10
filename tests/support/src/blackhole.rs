//! A black hole: a TCP listener that accepts connections and never answers, standing in for a
//! hung dependency (an API server, a broker or a Prometheus that accepts and stays silent).

use std::{
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

/// A listener on 127.0.0.1 that holds every accepted connection open, silent, until dropped.
#[derive(Debug)]
pub struct BlackHole {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a black hole");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let (accepted, closed, held) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (a, c, h) = (accepted.clone(), closed.clone(), held.clone());
        std::thread::spawn(move || {
            while !c.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((s, _)) => {
                        a.fetch_add(1, Ordering::AcqRel);
                        h.lock().expect("held lock").push(s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BlackHole {
            port,
            accepted,
            closed,
            held,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (a check that the hang was actually met).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }

    /// Waits until at least `n` connections were accepted; panics naming `who` otherwise.
    pub fn wait_accepted(&self, n: usize, timeout: Duration, who: &str) {
        let deadline = std::time::Instant::now() + timeout;
        while self.accepted() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{who} never connected to the black hole at {} within {timeout:?}: the hang was \
                 not met",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.held.lock().map(|mut h| h.clear()).ok();
    }
}
