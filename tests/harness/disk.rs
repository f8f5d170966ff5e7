//! A full disk for the file sink: a small tmpfs of the test's own, filled
//! by `dd`, and a check that the sink's file holds only whole lines.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs of the test's own, unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (and a line saying so) where a tmpfs cannot be mounted.
    pub fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file of its own.
    pub fn fill(&self) -> PathBuf {
        self.fill_leaving(0)
    }

    /// Fills all but about `bytes` (rounded to the filler's 64 KiB blocks).
    pub fn fill_leaving(&self, bytes: u64) -> PathBuf {
        let filler = self.path().join("filler");
        // dd stops with "No space left on device": that is the point.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .output();
        if bytes > 0 {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&filler)
                .unwrap();
            let len = file.metadata().unwrap().len();
            file.set_len(len.saturating_sub(bytes)).unwrap();
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Points the file sink of `config` (from `write_config`) at `events`.
pub fn write_events_to(config: &Path, events: &Path) {
    let text: String = std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("path = ") {
                format!("path = {:?}\n", events.display().to_string())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(config, text).unwrap();
}

/// Every line of the sink's file is whole JSON (`read_events` skips what
/// does not parse; a write cut short by the full disk must not leave any).
pub fn assert_whole_lines(events: &Path) {
    let text = std::fs::read_to_string(events).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the file ends in a torn line"
    );
    for (n, line) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "line {} of {} is not whole JSON: {:?}",
            n + 1,
            events.display(),
            &line[..line.len().min(200)]
        );
    }
}
