//! Finding the PostgreSQL binaries and running them (as an unprivileged user when we are root).

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Error;

/// The account the server processes run as when this process is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Locates the directory holding `initdb`, `pg_ctl`, `postgres`, `psql`, ...
///
/// `pg_config` first (it names the build the system chose), else the highest
/// versioned Debian-style directory.
/// Where the server's programs (`initdb`, `pg_ctl`, `postgres`) come from:
/// `CDC_TEST_POSTGRES_BINDIR` names another build (a major version fetched
/// into a cache, e.g. PostgreSQL 17 from npm's `@embedded-postgres`), else
/// the machine's own. Client programs (`psql`) always come from the
/// machine: they speak to any newer server.
pub(crate) fn server_bindir() -> Result<PathBuf, Error> {
    match std::env::var_os(SERVER_BINDIR_VAR) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => find_bindir("initdb"),
    }
}

/// Names the directory of the server programs to test against.
pub const SERVER_BINDIR_VAR: &str = "CDC_TEST_POSTGRES_BINDIR";

pub(crate) fn find_bindir(required: &'static str) -> Result<PathBuf, Error> {
    if let Some(dir) = pg_config_bindir() {
        if dir.join(required).is_file() {
            return Ok(dir);
        }
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            // Directories are major versions ("15", "16"); compare numerically so 9 < 10.
            let Some(version) = name
                .to_str()
                .and_then(|s| s.split('.').next()?.parse().ok())
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join(required).is_file() && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    if let Some((_, dir)) = best {
        return Ok(dir);
    }
    // For psql alone (external servers) a client-only install on PATH is enough.
    if required == "psql" {
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.join("psql").is_file() {
                    return Ok(dir);
                }
            }
        }
    }
    Err(Error::BinariesNotFound { missing: required })
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Whether this process runs with effective uid 0 (initdb and pg_ctl refuse that).
///
/// `/proc/self` is owned by the effective uid, which avoids an unsafe `geteuid()`.
pub(crate) fn is_root() -> bool {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return meta.uid() == 0;
    }
    // Without /proc assume not root; initdb would then say so itself.
    false
}

/// The unprivileged account to own clusters: `postgres` if present, else `nobody`.
pub(crate) fn unprivileged_user() -> Result<RunAs, Error> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0] != wanted {
                continue;
            }
            if let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse()) {
                if uid != 0 {
                    return Ok(RunAs { uid, gid });
                }
            }
        }
    }
    Err(Error::NoUnprivilegedUser)
}

/// Where to create cluster directories.
///
/// When the server runs as another user, every ancestor must be traversable by it;
/// a private `$TMPDIR` (e.g. under /root) is not, so fall back to /tmp.
pub(crate) fn temp_base(run_as: Option<RunAs>) -> PathBuf {
    let base = std::env::temp_dir();
    if run_as.is_none() {
        return base;
    }
    let traversable = base.ancestors().all(|dir| {
        std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if traversable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

/// Gives `path` and everything below it to `who`.
pub(crate) fn chown_tree(path: &Path, who: RunAs) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid))
        .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
            chown_tree(&entry.path(), who)?;
        }
    }
    Ok(())
}

/// A command for one of the PostgreSQL programs, with a clean `PG*` environment.
///
/// Stray `PGPASSWORD`/`PGHOST`/`PGSSLMODE`... from the developer's shell would
/// silently change what the harness connects to, so they are removed.
pub(crate) fn pg_command(
    bindir: &Path,
    program: &str,
    run_as: Option<RunAs>,
    cwd: &Path,
) -> Command {
    let mut cmd = Command::new(bindir.join(program));
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        // The server user may not be able to enter our working directory.
        .current_dir(cwd);
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
    cmd
}

/// Runs `cmd` to completion, turning a non-zero exit into [`Error::Command`].
pub(crate) fn run(mut cmd: Command) -> Result<Output, Error> {
    let name = describe(&cmd);
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("spawning {name}"), e))?;
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(Error::Command {
        command: name,
        status: out.status.to_string(),
        stderr,
    })
}

/// `program arg1 arg2` for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(OsStr::new("?"))
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        program
    } else {
        format!("{program} {}", args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_initdb() {
        let dir = find_bindir("initdb").unwrap();
        assert!(dir.join("pg_ctl").is_file());
    }

    #[test]
    fn describe_command() {
        let mut cmd = Command::new("/usr/bin/psql");
        cmd.args(["-X", "-q"]);
        assert_eq!(describe(&cmd), "psql -X -q");
    }
}
