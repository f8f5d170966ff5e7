//! The cluster's configuration files.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::{quote_literal, Error, PasswordUser, HOST};

pub(crate) fn append_conf(path: &Path, settings: &[(String, String)]) -> Result<(), Error> {
    let mut text = String::from("\n# added by cdc-testcontainers\n");
    for (name, value) in settings {
        let quoted = if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
            value.clone()
        } else {
            quote_literal(value)
        };
        text.push_str(&format!("{name} = {quoted}\n"));
    }
    // Appending keeps the file's owner (the server user when we are root).
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Password users first (first matching line wins), then trust for everyone
/// else; `peer` is the host's end of a test namespace (see `netns.rs`).
pub(crate) fn write_hba(
    path: &Path,
    users: &[PasswordUser],
    peer: Option<Ipv4Addr>,
) -> Result<(), Error> {
    let mut text = String::from("# written by cdc-testcontainers\n");
    for user in users {
        for database in ["all", "replication"] {
            text.push_str(&format!(
                "host {database} \"{}\" {HOST}/32 {}\n",
                user.name,
                user.method.name()
            ));
        }
    }
    text.push_str(
        "local all all trust\n\
         local replication all trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host replication postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 trust\n\
         host replication all 127.0.0.1/32 trust\n",
    );
    if let Some(peer) = peer {
        text.push_str(&format!(
            "host all all {peer}/32 trust\nhost replication all {peer}/32 trust\n"
        ));
    }
    // Truncating (not replacing) keeps the file's owner.
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
