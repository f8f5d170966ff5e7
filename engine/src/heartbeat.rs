//! Debezium's heartbeat records (`heartbeat.interval.ms`): one record every
//! interval, busy or idle, keyed by the capture's name and carrying the
//! time, so a consumer can tell a quiet database from a stalled pipeline
//! (docs/architecture.md, "Heartbeat records").
//!
//! A stage on the processor's output; the time comes in from the caller,
//! so the logic stays pure.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::{Event, Op, Position, SourceInfo, SourceMeta};
use crate::pipeline::Stage;
use crate::value::{Row, Value};

pub struct Heartbeats {
    every: Duration,
    last: Option<Instant>,
    meta: Arc<SourceMeta>,
    key_columns: Arc<[String]>,
}

impl Heartbeats {
    pub fn new(every: Duration, meta: Arc<SourceMeta>) -> Self {
        Heartbeats {
            every,
            last: None,
            meta,
            key_columns: Arc::from(vec!["serverName".to_string()]),
        }
    }

    /// A record when the interval has passed since the last one.
    pub fn beat(&mut self, now: Instant, wall_ms: i64, out: &mut Vec<Event>) {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            return;
        }
        self.last = Some(now);
        out.push(Event {
            update: None,
            schema: None,
            op: Op::Heartbeat,
            table: None,
            key: Some(Row::new(
                self.key_columns.clone(),
                vec![Value::Text(self.meta.name.clone())],
            )),
            before: None,
            after: None,
            source: SourceInfo {
                ts_ms: wall_ms,
                ts_us: wall_ms.saturating_mul(1000),
                ..SourceInfo::new(self.meta.clone(), Position::from_bytes(Vec::new()))
            },
            message: None,
            transaction: None,
        });
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Stage for Heartbeats {
    fn after(&mut self, _start: usize, out: &mut Vec<Event>) {
        self.beat(Instant::now(), wall_ms(), out);
    }

    /// Ticks while the log is quiet: heartbeats go on when nothing else
    /// does.
    fn wants_tick(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeWriter;
    use crate::pipeline::{Passthrough, Processor, Staged};
    use crate::source::LogItem;

    fn meta() -> Arc<SourceMeta> {
        Arc::new(SourceMeta {
            connector: "postgresql",
            name: "dbz".into(),
            db: "app".into(),
            block: &crate::PLAIN_BLOCK,
        })
    }

    #[test]
    fn one_record_per_interval_shaped_as_debeziums() {
        let mut h = Heartbeats::new(Duration::from_secs(1), meta());
        let start = Instant::now();
        let mut out = Vec::new();
        for ms in [0u64, 10, 999, 1000, 1500, 2100, 2200] {
            h.beat(
                start + Duration::from_millis(ms),
                5_000 + ms as i64,
                &mut out,
            );
        }
        let times: Vec<i64> = out.iter().map(|e| e.source.ts_ms).collect();
        assert_eq!(times, [5_000, 6_000, 7_100]);
        let mut writer = EnvelopeWriter::default();
        let (mut key, mut value) = (Vec::new(), Vec::new());
        writer.write_row(out[0].key.as_ref().unwrap(), &mut key);
        writer.write_value(&out[0], 1, &mut value);
        assert_eq!(key, br#"{"serverName":"dbz"}"#);
        assert_eq!(value, br#"{"ts_ms":5000}"#);
    }

    #[test]
    fn the_wrapped_processor_still_gets_everything_and_ticks_while_quiet() {
        let mut h = Staged::new(
            Passthrough,
            Heartbeats::new(Duration::from_secs(3600), meta()),
        );
        assert!(h.wants_tick());
        let mut out = Vec::new();
        h.tick(&mut out);
        h.tick(&mut out);
        assert_eq!(out.len(), 1, "one at start, then one per interval");
        h.process(LogItem::Heartbeat(Position::from_u64(1)), &mut out);
        assert_eq!(out.len(), 1);
    }
}
