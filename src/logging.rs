//! Logging: text (the default) or one JSON object per line on stderr,
//! passwords masked in both, and every WARN and ERROR line counted in the
//! telemetry so an alert can fire on any of them.

use std::io::Write;

use cdc_engine::Telemetry;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

/// Counts WARN events in `cdc_warnings_total` and ERROR events in
/// `cdc_log_errors_total`, by target crate. It sits beside the fmt layer with its
/// own filter, so a `CDC_LOG` that hides warnings still counts them.
pub struct WarningCounter {
    telemetry: Telemetry,
}

impl WarningCounter {
    pub fn new(telemetry: Telemetry) -> Self {
        WarningCounter { telemetry }
    }
}

impl<S: Subscriber> Layer<S> for WarningCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        match *meta.level() {
            Level::WARN => self.telemetry.warning(meta.target()),
            Level::ERROR => self.telemetry.log_error(meta.target()),
            _ => {}
        }
    }
}

/// stderr, with every password masked in every line (`crate::redact`). The fmt
/// layer hands each formatted event over in one `write_all`, so a URL is
/// never split between two calls.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        if crate::redact::may_hold_password(buf) {
            let text = String::from_utf8_lossy(buf);
            stderr.write_all(crate::redact::redact(&text).as_bytes())?;
        } else {
            stderr.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

/// Install the global subscriber: `CDC_LOG` filters what is printed
/// (default `info`); warnings and errors are counted whatever it says.
pub fn init(format: LogFormat, telemetry: &Telemetry) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("CDC_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let counter = WarningCounter::new(telemetry.clone()).with_filter(LevelFilter::WARN);
    let registry = tracing_subscriber::registry().with(counter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(RedactingStderr)
                    // Colours for a person at a terminal, plain text for
                    // files and log collectors.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false)
                    .with_filter(filter()),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(RedactingStderr)
                    .with_filter(filter()),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn count(text: &str, line_start: &str) -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn every_warning_and_error_is_counted_by_target() {
        let telemetry = Telemetry::default();
        let subscriber = tracing_subscriber::registry()
            .with(WarningCounter::new(telemetry.clone()).with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "cdc_postgres::stream", "one");
            tracing::warn!(target: "cdc_postgres::stream", "two");
            tracing::warn!("three");
            tracing::error!(target: "cdc_engine::snapshot", "bad");
            tracing::info!("not counted");
        });
        let text = telemetry.encode().unwrap();
        let expect = [
            ("cdc_warnings_total{target=\"cdc_postgres\"}", 2),
            ("cdc_warnings_total{target=\"cdc\"}", 1),
            ("cdc_warnings_total{target=\"cdc_sink_kafka\"}", 0),
            ("cdc_log_errors_total{target=\"cdc_engine\"}", 1),
        ];
        for (series, n) in expect {
            assert_eq!(count(&text, series), Some(n), "{series}: {text}");
        }
    }
}
