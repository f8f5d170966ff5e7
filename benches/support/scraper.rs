//! A stand-in for a very eager Prometheus: the bench's observe-on runs.

use std::time::Duration;

/// GETs `/metrics` every 100 ms on a thread of its own until stopped.
pub struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Scraper {
    pub fn start(port: u16) -> Scraper {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = stream.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: cdc\r\nConnection: close\r\n\r\n",
                    );
                    let mut body = String::new();
                    if stream.read_to_string(&mut body).is_ok() && body.contains("cdc_build_info") {
                        scrapes += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            scrapes
        });
        Scraper { stop, thread }
    }

    pub fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
