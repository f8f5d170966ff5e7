//! The nemesis checks: the sink's output held against the workload's own
//! history, key by key.
//!
//! Delivery is at least once: after a crash cdc sends again what it had not
//! acknowledged. A re-sent change has the position of the original (commit
//! and change LSN), so a state seen again at a position already seen is a
//! duplicate. Without those, each key's output must walk its committed
//! history forwards: every change present, in commit order, none
//! rolled back, none never committed. A snapshot read (`r`) may repeat the
//! state last streamed but never show an older one.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::workload::{Key, KeyHistory};
use crate::common::key_of;

/// One event of a key, as the sink holds it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub op: String,
    pub state: Option<i64>,
    pub position: String,
}

/// Per key, its events in output order.
pub type Output = BTreeMap<Key, Vec<Seen>>;

/// Collects the events of `tables` (name, key columns) from envelopes.
pub fn output_of<'a>(
    events: impl IntoIterator<Item = &'a Value>,
    tables: &[(&str, &[&str])],
) -> Output {
    let mut out = Output::new();
    for e in events {
        let Some(op) = e["op"].as_str() else { continue };
        let Some((table, cols)) = tables
            .iter()
            .find(|(t, _)| e["source"]["table"].as_str() == Some(t))
        else {
            continue;
        };
        if !matches!(op, "c" | "u" | "d" | "r") {
            continue;
        }
        let row = if op == "d" { &e["before"] } else { &e["after"] };
        out.entry((table.to_string(), key_of(row, cols)))
            .or_default()
            .push(Seen {
                op: op.to_string(),
                state: (op != "d").then(|| e["after"]["v"].as_i64()).flatten(),
                position: e["source"]["position"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
    }
    out
}

/// What the checks counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    pub changes: usize,
    pub duplicates: usize,
    pub snapshot_reads: usize,
}

/// Checks every key; on the first (in key order) that breaks a rule, the
/// rule and that key's history and output.
pub fn check(
    history: &KeyHistory,
    rolled_back: &HashSet<i64>,
    output: &Output,
) -> Result<Checked, String> {
    let mut checked = Checked::default();
    let empty = Vec::new();
    let keys: std::collections::BTreeSet<&Key> = history.keys().chain(output.keys()).collect();
    for key in keys {
        let h = history.get(key).unwrap_or(&empty);
        let out = output.get(key).map(Vec::as_slice).unwrap_or_default();
        check_key(h, rolled_back, out, &mut checked).map_err(|rule| {
            format!(
                "{} key {}: {rule}\n  committed history ({}): {}\n  output ({}): {}",
                key.0,
                key.1,
                h.len(),
                shorten(h.iter().map(|s| format!("{s:?}"))),
                out.len(),
                shorten(
                    out.iter()
                        .map(|s| format!("{} {:?} @{}", s.op, s.state, s.position))
                )
            )
        })?;
        checked.changes += h.len();
    }
    Ok(checked)
}

fn check_key(
    h: &[Option<i64>],
    rolled_back: &HashSet<i64>,
    out: &[Seen],
    checked: &mut Checked,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    // Index in `h` of the state the output last showed.
    let mut at: Option<usize> = None;
    let mut matched = vec![false; h.len()];
    for (i, o) in out.iter().enumerate() {
        if let Some(v) = o.state.filter(|v| rolled_back.contains(v)) {
            return Err(format!("output #{i} is version {v}, which was rolled back"));
        }
        if o.op == "r" {
            checked.snapshot_reads += 1;
        }
        if !o.position.is_empty() && !seen.insert((o.position.as_str(), o.op == "r", o.state)) {
            checked.duplicates += 1;
            continue;
        }
        let from = match at {
            None => 0,
            Some(a) if o.op == "r" => a,
            Some(a) => a + 1,
        };
        match (from..h.len()).find(|&j| h[j] == o.state) {
            Some(j) => {
                matched[j] = true;
                at = Some(j);
            }
            None if h.contains(&o.state) => {
                return Err(format!(
                    "output #{i} ({} {:?}) goes back in time: the key was already at change #{}",
                    o.op,
                    o.state,
                    at.map_or(0, |a| a + 1)
                ))
            }
            None => {
                return Err(format!(
                    "output #{i} ({} {:?}) was never committed",
                    o.op, o.state
                ))
            }
        }
    }
    match matched.iter().position(|m| !m) {
        Some(j) => Err(format!(
            "committed change #{} ({:?}) is missing from the output",
            j + 1,
            h[j]
        )),
        None => Ok(()),
    }
}

/// The fault matrix's check (tests/faults.rs, crashes.rs, kafka.rs), the
/// nemesis's rules over a history numbered by `(table, id)`: every
/// committed change present in commit order, nothing never committed, and
/// no state older than one already shown. A change sent again at its own
/// position is a duplicate, not a step back; without positions a replay
/// could not be told from time travel (`v1, v3, v2, v3` would pass).
/// Keys the history lacks (rows only a snapshot brings) are left to the
/// fold.
pub fn assert_history_in_order<'a>(
    history: &HashMap<(String, i64), Vec<Option<i64>>>,
    events: impl IntoIterator<Item = &'a Value>,
    tables: &[(&str, &[&str])],
) -> Checked {
    let keyed: super::workload::KeyHistory = history
        .iter()
        .map(|((t, id), h)| ((t.clone(), id.to_string()), h.clone()))
        .collect();
    let mut output = output_of(events, tables);
    output.retain(|k, _| keyed.contains_key(k));
    match check(&keyed, &HashSet::new(), &output) {
        Ok(checked) => checked,
        Err(violation) => panic!("{violation}"),
    }
}

/// The first and last few of a long list.
fn shorten(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.len() <= 40 {
        return all.join(", ");
    }
    format!(
        "{}, … {} more …, {}",
        all[..20].join(", "),
        all.len() - 40,
        all[all.len() - 20..].join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(op: &str, state: Option<i64>, position: &str) -> Seen {
        Seen {
            op: op.into(),
            state,
            position: position.into(),
        }
    }

    fn one(h: &[Option<i64>], out: &[Seen]) -> Result<Checked, String> {
        let key = ("t".to_string(), "1".to_string());
        let history = [(key.clone(), h.to_vec())].into_iter().collect();
        let output = [(key, out.to_vec())].into_iter().collect();
        check(&history, &[9].into_iter().collect(), &output)
    }

    #[test]
    fn replays_are_duplicates_and_time_travel_is_not() {
        let h = [Some(1), Some(2), None, Some(3)];
        let ok = [
            seen("c", Some(1), "a"),
            seen("u", Some(2), "b"),
            seen("r", Some(2), "w1"),
            seen("u", Some(2), "b"),
            seen("d", None, "c"),
            seen("c", Some(3), "d"),
        ];
        let checked = one(&h, &ok).unwrap();
        assert_eq!((checked.changes, checked.duplicates), (4, 1));
        // A stale snapshot read after a newer change.
        let stale = [
            seen("c", Some(1), "a"),
            seen("u", Some(2), "b"),
            seen("r", Some(1), "w1"),
        ];
        assert!(one(&h[..2], &stale).unwrap_err().contains("back in time"));
        let lost = [seen("c", Some(1), "a"), seen("c", Some(3), "d")];
        assert!(one(&h, &lost).unwrap_err().contains("missing"));
        let rolled = [seen("c", Some(9), "a")];
        assert!(one(&[], &rolled).unwrap_err().contains("rolled back"));
        let ghost = [seen("c", Some(7), "a")];
        assert!(one(&[], &ghost).unwrap_err().contains("never committed"));
    }

    fn event(op: &str, v: Option<i64>, position: &str) -> Value {
        let row = serde_json::json!({"id": 1, "v": v});
        let (before, after) = if op == "d" {
            (row, Value::Null)
        } else {
            (Value::Null, row)
        };
        serde_json::json!({"op": op, "before": before, "after": after,
                           "source": {"table": "t", "position": position}})
    }

    fn matrix(events: &[Value]) -> Checked {
        let history = [(("t".to_string(), 1), vec![Some(1), Some(2), Some(3)])]
            .into_iter()
            .collect();
        assert_history_in_order(&history, events, &[("t", &["id"])])
    }

    /// A replay of what followed the last acknowledgement passes: the
    /// same changes at the same positions.
    #[test]
    fn the_matrix_check_takes_a_replay_at_the_same_positions() {
        let replayed = [
            event("c", Some(1), "a"),
            event("u", Some(2), "b"),
            event("u", Some(3), "c"),
            event("u", Some(2), "b"),
            event("u", Some(3), "c"),
        ];
        assert_eq!(matrix(&replayed).duplicates, 2);
    }

    /// v1, v3, v2, v3 for one key, each at a position of its own: the key
    /// went back from v3 to v2. `assert_history_kept` (tests/common) finds
    /// v1, v2, v3 in order in it and passes; this check must not.
    #[test]
    #[should_panic(expected = "goes back in time")]
    fn the_matrix_check_fails_on_a_state_older_than_one_shown() {
        let travelled = [
            event("c", Some(1), "a"),
            event("u", Some(3), "c"),
            event("u", Some(2), "b"),
            event("u", Some(3), "c2"),
        ];
        let history = [(1_i64, vec![Some(1), Some(2), Some(3)])]
            .into_iter()
            .collect();
        let emitted = [(1_i64, vec![Some(1), Some(3), Some(2), Some(3)])]
            .into_iter()
            .collect();
        crate::common::assert_history_kept(&history, &emitted);
        matrix(&travelled);
    }

    #[test]
    #[should_panic(expected = "missing")]
    fn the_matrix_check_fails_on_a_lost_change() {
        matrix(&[event("c", Some(1), "a"), event("u", Some(3), "c")]);
    }
}
