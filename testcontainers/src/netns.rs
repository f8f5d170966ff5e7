//! Network faults with the kernel's own tools: a network namespace of the
//! test's own, joined to the host by a veth pair, with a server inside it.
//!
//! ```text
//!  host (cdc) ── cdcfNh 10.200.a.b+1 ══ veth ══ 10.200.a.b+2 cdcfNn ── namespace cdcfN (postgres)
//! ```
//!
//! Faults are `nft` rules inside the namespace, on its end of the veth
//! only: [`Netns::blackhole`] drops every packet both ways (a partition that
//! is not a clean close: no RST, no FIN), [`Netns::loss`] drops a share of
//! them at random. [`Netns::heal`] removes the rules. [`Netns::netem`] puts
//! the kernel's `netem` qdisc (delay, loss, reordering) on both ends of the
//! veth where the kernel has it; [`Netns::netem_support`] says plainly why
//! not where it does not (the development machine's kernel is built without
//! `CONFIG_NET_SCH_NETEM` and cannot load modules), and delay then comes from
//! [`crate::proxy`] instead.
//!
//! Only addresses and interfaces this module created are touched: each
//! namespace reserves one /30 of 10.200.0.0/16 with a file under
//! `/tmp/cdc-netns/`, so parallel tests never share a subnet. Dropping the
//! last handle deletes the veth, the namespace and the reservation.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::process::{self, RunAs};
use crate::Error;

/// /30 subnets in 10.200.0.0/16.
const SUBNETS: u32 = 1 << 14;
const RESERVATIONS: &str = "/tmp/cdc-netns";
/// The nft table holding the faults, inside the namespace.
const TABLE: &str = "cdc_fault";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth to the host; clones share it.
#[derive(Debug, Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    host_if: String,
    ns_if: String,
    host_addr: Ipv4Addr,
    ns_addr: Ipv4Addr,
    reservation: PathBuf,
    /// A netem qdisc is on the veth, for `heal`.
    netem: AtomicBool,
}

/// What [`Netns::netem`] does to every packet leaving either end of the
/// veth (so each way).
#[derive(Debug, Clone, Copy, Default)]
pub struct Netem {
    pub delay: Duration,
    pub loss_percent: u32,
    /// Sent at once, ahead of the delayed ones (needs a delay).
    pub reorder_percent: u32,
}

impl Netns {
    /// Creates the namespace and its veth. Needs root, `ip` (iproute2) and,
    /// for faults, `nft` (nftables).
    pub fn create() -> Result<Netns, Error> {
        if !process::is_root() {
            return Err(Error::InvalidArgument(
                "network namespaces need root (ip netns add)".into(),
            ));
        }
        std::fs::create_dir_all(RESERVATIONS)
            .map_err(|e| Error::io(format!("creating {RESERVATIONS}"), e))?;
        let start = (std::process::id().wrapping_mul(2_654_435_761))
            .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(97));
        for probe in 0..256 {
            let index = start.wrapping_add(probe) % SUBNETS;
            if let Some(inner) = reserve(index)? {
                let ns = Netns {
                    inner: Arc::new(inner),
                };
                ns.setup()?;
                return Ok(ns);
            }
        }
        Err(Error::InvalidArgument(
            "no free /30 in 10.200.0.0/16 for a test namespace".into(),
        ))
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address inside the namespace, where its server listens.
    pub fn address(&self) -> Ipv4Addr {
        self.inner.ns_addr
    }

    /// The host's end: connections from the host come from here.
    pub fn peer_address(&self) -> Ipv4Addr {
        self.inner.host_addr
    }

    /// Drop every packet in and out of the namespace, until [`Netns::heal`].
    pub fn blackhole(&self) -> Result<(), Error> {
        let dev = &self.inner.ns_if;
        self.set_rules(
            &format!(r#"iifname "{dev}" drop"#),
            &format!(r#"oifname "{dev}" drop"#),
        )
    }

    /// Drop `percent` % of the packets each way, at random.
    pub fn loss(&self, percent: u32) -> Result<(), Error> {
        let dev = &self.inner.ns_if;
        let rule =
            |dir: &str| format!(r#"{dir}ifname "{dev}" numgen random mod 100 < {percent} drop"#);
        self.set_rules(&rule("i"), &rule("o"))
    }

    /// Drop every packet of one TCP connection only: the one whose host end
    /// is `host_port` (e.g. a walsender's `client_port`). Other connections
    /// to the same server stay up.
    pub fn blackhole_connection(&self, host_port: u16) -> Result<(), Error> {
        let dev = &self.inner.ns_if;
        self.set_rules(
            &format!(r#"iifname "{dev}" tcp sport {host_port} drop"#),
            &format!(r#"oifname "{dev}" tcp dport {host_port} drop"#),
        )
    }

    /// `Ok` where this kernel has the `netem` qdisc; else why not, in one
    /// line. Probed on the namespace's loopback, which carries no test
    /// traffic.
    pub fn netem_support(&self) -> Result<(), Error> {
        let mut add = Command::new("ip");
        add.args([
            "netns",
            "exec",
            self.name(),
            "tc",
            "qdisc",
            "add",
            "dev",
            "lo",
        ])
        .args(["root", "netem", "delay", "1ms"]);
        match process::run(add) {
            Ok(_) => {
                let mut del = Command::new("ip");
                del.args(["netns", "exec", self.name(), "tc", "qdisc", "del", "dev", "lo"])
                    .arg("root");
                process::run(del).map(drop)
            }
            Err(Error::Command { stderr, .. }) if stderr.contains("qdisc kind is unknown") => {
                Err(Error::InvalidArgument(format!(
                    "this kernel has no netem qdisc (built without CONFIG_NET_SCH_NETEM, and `modprobe sch_netem` is not possible here): tc says {stderr:?}; use cdc_testcontainers::proxy for delay and Netns::loss for loss"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Delay, loss and reordering by the kernel's `netem` qdisc on both ends
    /// of the veth, until [`Netns::heal`]. Fails in one line naming the
    /// missing qdisc where the kernel has none ([`Netns::netem_support`]).
    pub fn netem(&self, netem: &Netem) -> Result<(), Error> {
        self.netem_support()?;
        let mut args = vec![
            "root".to_string(),
            "netem".into(),
            "delay".into(),
            format!("{}ms", netem.delay.as_millis()),
        ];
        if netem.loss_percent > 0 {
            args.extend(["loss".into(), format!("{}%", netem.loss_percent)]);
        }
        if netem.reorder_percent > 0 {
            args.extend(["reorder".into(), format!("{}%", netem.reorder_percent)]);
        }
        self.inner.netem.store(true, Ordering::SeqCst);
        let mut inside = Command::new("ip");
        inside
            .args([
                "netns",
                "exec",
                self.name(),
                "tc",
                "qdisc",
                "replace",
                "dev",
            ])
            .arg(&self.inner.ns_if)
            .args(&args);
        process::run(inside)?;
        let mut host = Command::new("tc");
        host.args(["qdisc", "replace", "dev", &self.inner.host_if])
            .args(&args);
        process::run(host).map(drop)
    }

    /// Remove every fault.
    pub fn heal(&self) -> Result<(), Error> {
        if self.inner.netem.swap(false, Ordering::SeqCst) {
            // Back to the default qdisc on both ends.
            let mut inside = Command::new("ip");
            inside
                .args(["netns", "exec", self.name(), "tc", "qdisc", "del", "dev"])
                .arg(&self.inner.ns_if)
                .arg("root");
            process::run(inside)?;
            let mut host = Command::new("tc");
            host.args(["qdisc", "del", "dev", &self.inner.host_if, "root"]);
            process::run(host)?;
        }
        // `add` first: deleting a table that is not there is an error.
        self.nft(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
    }

    /// `cmd` (built for the host) run inside the namespace, as `run_as`.
    /// Its arguments, environment and directory are kept.
    pub(crate) fn wrap(&self, cmd: &Command, run_as: Option<RunAs>) -> Command {
        let mut out = Command::new("ip");
        out.args(["netns", "exec", self.name()]);
        if let Some(who) = run_as {
            // `ip netns exec` needs root; the server must not run as root.
            out.arg("setpriv")
                .args(["--reuid", &who.uid.to_string()])
                .args(["--regid", &who.gid.to_string()])
                .args(["--clear-groups", "--"]);
        }
        out.arg(cmd.get_program()).args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => out.env(key, value),
                None => out.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            out.current_dir(dir);
        }
        out
    }

    fn set_rules(&self, input: &str, output: &str) -> Result<(), Error> {
        // One transaction: replace whatever fault was there.
        self.nft(&format!(
            "add table inet {TABLE}\n\
             delete table inet {TABLE}\n\
             table inet {TABLE} {{\n\
             chain input {{ type filter hook input priority 0; policy accept; {input}; }}\n\
             chain output {{ type filter hook output priority 0; policy accept; {output}; }}\n\
             }}\n"
        ))
    }

    fn nft(&self, script: &str) -> Result<(), Error> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(), "nft", "-f", "-"]);
        run_with_input(cmd, script)
    }

    fn setup(&self) -> Result<(), Error> {
        let i = &self.inner;
        let host = format!("{}/30", i.host_addr);
        let inside = format!("{}/30", i.ns_addr);
        ip(&["netns", "add", &i.name])?;
        ip(&[
            "link", "add", &i.host_if, "type", "veth", "peer", "name", &i.ns_if, "netns", &i.name,
        ])?;
        ip(&["addr", "add", &host, "dev", &i.host_if])?;
        ip(&["link", "set", &i.host_if, "up"])?;
        ip(&["-n", &i.name, "addr", "add", &inside, "dev", &i.ns_if])?;
        ip(&["-n", &i.name, "link", "set", &i.ns_if, "up"])?;
        ip(&["-n", &i.name, "link", "set", "lo", "up"])
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Deleting one end deletes the pair, at once (deleting the
        // namespace would remove it later, in the background).
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
        let _ = std::fs::remove_file(&self.reservation);
    }
}

/// Claims subnet `index`, or `None` if a live test holds it. A reservation
/// left by a dead process is taken over, with what that process made.
fn reserve(index: u32) -> Result<Option<Inner>, Error> {
    let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + index * 4;
    let inner = Inner {
        name: format!("cdcf{index}"),
        host_if: format!("cdcf{index}h"),
        ns_if: format!("cdcf{index}n"),
        host_addr: Ipv4Addr::from(base + 1),
        ns_addr: Ipv4Addr::from(base + 2),
        reservation: PathBuf::from(RESERVATIONS).join(index.to_string()),
        netem: AtomicBool::new(false),
    };
    let claim = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&inner.reservation)
    };
    let file = match claim() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let owner = std::fs::read_to_string(&inner.reservation).unwrap_or_default();
            let alive = owner
                .trim()
                .parse::<u32>()
                .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if alive || owner.trim().is_empty() {
                return Ok(None);
            }
            // Left by a test that died: its namespace and veth are ours.
            let _ = ip(&["link", "del", &inner.host_if]);
            let _ = ip(&["netns", "del", &inner.name]);
            let _ = std::fs::remove_file(&inner.reservation);
            match claim() {
                Ok(file) => file,
                Err(_) => return Ok(None),
            }
        }
        Err(e) => {
            return Err(Error::io(
                format!("reserving {}", inner.reservation.display()),
                e,
            ))
        }
    };
    use std::io::Write;
    let mut file = file;
    file.write_all(std::process::id().to_string().as_bytes())
        .map_err(|e| Error::io(format!("writing {}", inner.reservation.display()), e))?;
    Ok(Some(inner))
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("ip");
    cmd.args(args).stdin(std::process::Stdio::null());
    process::run(cmd).map(drop)
}

fn run_with_input(mut cmd: Command, input: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::process::Stdio;
    let name = process::describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("spawning {name} (apt-get install nftables)"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| Error::io(format!("writing to {name}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for {name}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: name,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}
