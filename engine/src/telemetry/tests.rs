#![allow(clippy::unwrap_used)]
use super::*;
use crate::event::{Event, Op, SnapshotFlag};

#[test]
fn names_follow_the_prometheus_conventions() {
    for name in names::ALL {
        assert!(name.starts_with("cdc_"), "{name}");
    }
    let telemetry = Telemetry::new("1.2.3");
    // Families by table appear with their first table.
    let mut tally = telemetry.event_tally();
    tally.count(&[event(Op::Read, SnapshotFlag::Incremental)]);
    tally.flushed();
    telemetry.snapshot_estimate(&TableRef::parse("public.t").unwrap(), 10);
    let text = telemetry.encode().unwrap();
    assert!(
        text.contains("cdc_build_info{version=\"1.2.3\"} 1"),
        "{text}"
    );
    assert!(text.contains("cdc_errors_total{kind=\"sink\"} 0"), "{text}");
    assert!(text.contains("cdc_active 1"), "{text}");
    // Every constant is what the encoder exposes.
    for name in names::ALL {
        assert!(
            text.contains(&format!("# HELP {}", base(base(name, "_total"), "_info"))),
            "{name}"
        );
    }
}

fn event(op: Op, snapshot: SnapshotFlag) -> Event {
    use crate::event::{Position, SourceInfo, SourceMeta};
    Event {
        update: None,
        schema: None,
        op,
        table: Some(Arc::new(TableRef::parse("public.t").unwrap())),
        key: None,
        before: None,
        after: None,
        source: SourceInfo {
            session: None,
            meta: Arc::new(SourceMeta {
                connector: "postgresql",
                name: "cdc".into(),
                db: "db".into(),
                block: &crate::PLAIN_BLOCK,
            }),
            position: Position::from_u64(1),
            offset: None,
            tx_id: None,
            ts_ms: 1_000,
            ts_us: 1_000_000,
            last_commit: None,
            snapshot,
        },
        message: None,
        transaction: None,
    }
}

#[test]
fn events_count_by_table_and_op_once_flushed() {
    let telemetry = Telemetry::default();
    let mut tally = telemetry.event_tally();
    let mut batch = vec![event(Op::Create, SnapshotFlag::No); 3];
    batch.extend(vec![event(Op::Read, SnapshotFlag::Incremental); 2]);
    batch.push(event(Op::Create, SnapshotFlag::No));
    tally.count(&batch);
    tally.count(&batch[..1]);
    let text = telemetry.encode().unwrap();
    assert!(
        text.contains("cdc_events_total{table=\"public.t\",op=\"c\"} 0"),
        "not durable yet: {text}"
    );
    tally.flushed();
    let text = telemetry.encode().unwrap();
    for line in [
        "cdc_events_total{table=\"public.t\",op=\"c\"} 5",
        "cdc_events_total{table=\"public.t\",op=\"r\"} 2",
        "cdc_snapshot_rows_total{table=\"public.t\"} 2",
        // One sample per written batch, from its oldest commit.
        "cdc_commit_to_sink_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
    // The Arcs of one table differ between the log and a snapshot:
    // still one series.
    assert_eq!(tally.entries.len(), 2);
}

#[test]
fn readiness_names_the_first_failing_component() {
    let t = Telemetry::default();
    assert_eq!(t.ready(), Err("starting".into()));
    t.set_up(Component::Reader);
    assert_eq!(t.ready(), Ok(()));
    t.set_down(Component::Sink, "sink failing: disk\nfull");
    assert_eq!(t.ready(), Err("sink failing: disk full".into()));
    t.set_up(Component::Sink);
    t.set_active(false);
    assert_eq!(t.ready(), Err("standing by".into()));
    assert!(t.encode().unwrap().contains("cdc_ready 0"));
}

/// Every crate of the workspace that goes into the binary logs under its
/// own name: each has its series at 0 from the start.
#[test]
fn every_crate_of_the_binary_is_a_log_target_counted_from_zero() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap();
    let mut crates = vec!["cdc".to_owned()];
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() || member == "testcontainers" {
            continue;
        }
        let text = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        crates.push(name.replace('-', "_"));
    }
    assert!(crates.len() >= 7, "{crates:?}");
    let telemetry = Telemetry::new("1.2.3");
    let text = telemetry.encode().unwrap();
    for krate in &crates {
        assert!(LOG_TARGETS.contains(&krate.as_str()), "{krate}");
        for family in ["cdc_warnings_total", "cdc_log_errors_total"] {
            let series = format!("{family}{{target=\"{krate}\"}} 0");
            assert!(text.contains(&series), "{series}:\n{text}");
        }
    }
    // A first warning of the MongoDB source is an increase from 0.
    telemetry.warning("cdc_mongodb::stream");
    assert!(telemetry
        .encode()
        .unwrap()
        .contains("cdc_warnings_total{target=\"cdc_mongodb\"} 1"));
}
