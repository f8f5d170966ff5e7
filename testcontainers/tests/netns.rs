//! The network-fault tools on a real cluster: a server in a namespace is
//! reachable through the veth, a blackhole makes connecting time out (not
//! fail fast, as a closed port would), healing brings it back, and the
//! handle's own Unix-socket path works throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use cdc_testcontainers::{Netns, Postgres};

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
}

fn exists(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn a_blackholed_namespace_times_out_and_heals() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let ns = Netns::create().unwrap();
    let name = ns.name().to_string();
    let pg = Postgres::builder().netns(&ns).start().unwrap();
    let addr = SocketAddr::from((ns.address(), pg.port()));
    assert_eq!(pg.psql("SELECT 1").unwrap(), "1");
    connect(addr).unwrap();

    ns.blackhole().unwrap();
    let err = connect(addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    // The control path is the Unix socket: untouched.
    assert_eq!(pg.psql("SELECT 2").unwrap(), "2");

    ns.heal().unwrap();
    connect(addr).unwrap();
    // Healing twice is fine.
    ns.heal().unwrap();

    drop(pg);
    assert!(exists(&name));
    drop(ns);
    assert!(!exists(&name), "{name} left behind");
}
