//! An in-process TCP proxy that can delay, blackhole and cut: the fallback
//! for what the kernel here cannot do (it has no `netem` qdisc, so no
//! delay). Faults of the network itself use [`crate::netns`].
//!
//! Each connection gets, per direction, a reader thread that stamps every
//! chunk with its due time and a writer thread that sends it then, so order
//! is kept and a delay adds latency without limiting throughput.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;

#[derive(Debug, Default)]
struct State {
    delay_ms: AtomicU64,
    blackhole: AtomicBool,
    stopped: AtomicBool,
    /// Both sockets of every connection, for `cut`.
    open: Mutex<Vec<TcpStream>>,
}

/// Listens on 127.0.0.1 and forwards every connection to `target`.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Result<Proxy, Error> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::io("binding the proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("binding the proxy", e))?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    // The client sees a closed connection, as from a server that is down.
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let Ok(mut open) = shared.open.lock() {
                    open.extend(client.try_clone().ok());
                    open.extend(server.try_clone().ok());
                }
                pipe(&client, &server, shared.clone());
                pipe(&server, &client, shared.clone());
            }
        });
        Ok(Proxy { addr, state })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Latency added to every chunk, each way, from now on.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Hold every byte, both ways, while `on` (the sockets stay open).
    pub fn blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::SeqCst);
    }

    /// Close every open connection (the peers see a reset or an end).
    pub fn cut(&self) {
        if let Ok(mut open) = self.state.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copy `from` to `to` through a delay line.
fn pipe(from: &TcpStream, to: &TcpStream, state: Arc<State>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader_state = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while reader_state.blackhole.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let delay = Duration::from_millis(reader_state.delay_ms.load(Ordering::SeqCst));
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send((Instant::now() + delay, chunk)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            let wait = due.saturating_duration_since(Instant::now());
            std::thread::sleep(wait);
            while state.blackhole.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        // The reading side ended: pass the end on.
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_with_delay_both_ways() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let target = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let proxy = Proxy::start(target).unwrap();
        proxy.set_delay(Duration::from_millis(100));
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
    }

    #[test]
    fn holds_bytes_while_blackholed_and_cuts() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let target = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 1];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        let proxy = Proxy::start(target).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        proxy.blackhole(true);
        c.write_all(b"x").unwrap();
        let mut back = [0u8; 1];
        let held = c.read(&mut back).unwrap_err();
        assert!(matches!(
            held.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
        proxy.blackhole(false);
        c.set_read_timeout(None).unwrap();
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"x");
        proxy.cut();
        assert!(!matches!(c.read(&mut back), Ok(1)));
    }
}
