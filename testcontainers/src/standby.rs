//! Physical standbys and failover, for the tests of PostgreSQL failover.
//!
//! There is no `pg_basebackup` in every server build we test (npm's
//! `@embedded-postgres` ships only initdb, pg_ctl and postgres), so the base
//! backup is a cold copy: checkpoint, a clean stop, a copy of the data
//! directory, and the primary starts again on its port.

use std::path::Path;
use std::process::Command;

use crate::conf::append_conf;
use crate::{path_str, process, Error, Inner, Local, Postgres, READY_TIMEOUT};

impl Postgres {
    /// Starts a hot standby of this cluster on a free port, streaming from
    /// it through the physical slot `slot` (created here), with
    /// `hot_standby_feedback` on and `settings` added (for example
    /// `sync_replication_slots = on` on PostgreSQL 17). The primary is
    /// stopped cleanly for the copy and started again on its port.
    pub fn start_standby(&self, slot: &str, settings: &[(&str, &str)]) -> Result<Postgres, Error> {
        let Inner::Local(local) = &self.inner else {
            return Err(Error::ExternalUnsupported("start_standby"));
        };
        if slot.is_empty()
            || !slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::InvalidArgument(format!(
                "slot name {slot:?}: use lower-case letters, digits and _"
            )));
        }
        self.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{slot}', true); CHECKPOINT;"
        ))?;
        let mut stop = self.pg_ctl(local);
        stop.args(["-m", "fast", "-w", "stop"]);
        process::run(stop)?;

        let dir = tempfile::Builder::new()
            .prefix("cdc-pg-standby-")
            .tempdir_in(process::temp_base(local.run_as))
            .map_err(|e| Error::io("creating the standby's temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let sock = root.join("sock");
        std::fs::create_dir(&sock).map_err(|e| Error::io("creating the socket directory", e))?;
        let data = root.join("data");
        let copied = copy_tree(&local.data, &data);
        // The primary comes back whatever happened to the copy.
        self.relaunch(local)?;
        copied?;
        // The copy holds the primary's own slots: a standby must not.
        for entry in std::fs::read_dir(data.join("pg_replslot"))
            .map_err(|e| Error::io("listing the standby's pg_replslot", e))?
            .flatten()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        std::fs::write(data.join("standby.signal"), "")
            .map_err(|e| Error::io("writing standby.signal", e))?;
        let mut conf = vec![
            (
                "unix_socket_directories".to_owned(),
                path_str(&sock)?.to_owned(),
            ),
            (
                "primary_conninfo".to_owned(),
                format!(
                    "host={} port={} user={} dbname={} application_name={slot}",
                    self.host, self.port, self.superuser, self.database
                ),
            ),
            ("primary_slot_name".to_owned(), slot.to_owned()),
            ("hot_standby".to_owned(), "on".to_owned()),
            ("hot_standby_feedback".to_owned(), "on".to_owned()),
        ];
        conf.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        append_conf(&data.join("postgresql.conf"), &conf)?;
        if let Some(who) = local.run_as {
            process::chown_tree(&root, who)?;
        }
        let mut standby = Postgres {
            host: self.host.clone(),
            port: 0,
            database: self.database.clone(),
            superuser: self.superuser.clone(),
            bindir: self.bindir.clone(),
            inner: Inner::Local(Local {
                logfile: root.join("postgres.log"),
                data,
                ca_cert: None,
                run_as: local.run_as,
                server_bindir: local.server_bindir.clone(),
                netns: None,
                dir,
            }),
        };
        standby.launch_on_free_port()?;
        standby.wait_ready()?;
        Ok(standby)
    }

    /// Promotes a standby to primary (`pg_ctl promote`) and waits until it
    /// accepts writes.
    pub fn promote(&self) -> Result<(), Error> {
        let Inner::Local(local) = &self.inner else {
            return Err(Error::ExternalUnsupported("promote"));
        };
        let mut cmd = self.pg_ctl(local);
        cmd.args(["-w", "-t", "60", "promote"]);
        process::run(cmd)?;
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        while self.psql("SELECT pg_is_in_recovery()")? != "f" {
            if std::time::Instant::now() >= deadline {
                return Err(self.start_error("still in recovery after promotion".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// Crashes the server (`pg_ctl stop -m immediate`) and leaves it down,
    /// as a dead host would be.
    pub fn kill(&self) -> Result<(), Error> {
        let Inner::Local(local) = &self.inner else {
            return Err(Error::ExternalUnsupported("kill"));
        };
        self.stop(local)
    }

    fn relaunch(&self, local: &Local) -> Result<(), Error> {
        self.launch_on_own_port(local)?;
        self.wait_ready()
    }
}

/// `cp -a`: keeps owners and modes, which the server checks.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let mut cmd = Command::new("cp");
    cmd.arg("-a").arg(from).arg(to);
    process::run(cmd).map(drop)
}
