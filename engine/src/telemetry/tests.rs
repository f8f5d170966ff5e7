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
