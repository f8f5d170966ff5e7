//! The value modes of the JSON encoder, with Debezium's names and values
//! (README, "Value encodings"). Each mode left unset keeps cdc's own form;
//! set, it renders values as Debezium's PostgreSQL connector does with that
//! mode and Kafka's `JsonConverter` without schemas (tests/debezium.rs
//! compares the two against the real connector).
//!
//! There is one encoder ([`crate::envelope`]; docs/architecture.md, "Value
//! formats"); these modes only change how it writes a
//! [`Value::Typed`](crate::Value::Typed), `bytea` and `json`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use crate::value::TextType;

pub mod connect;
mod decimal;
pub mod text_types;
#[cfg(test)]
use crate::value::DEFAULT_TIME_PRECISION;

/// Why a mode's value was not accepted: names the key and the valid values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} must be one of {valid}, not '{given}'")]
pub struct ModeError {
    pub key: &'static str,
    pub valid: &'static str,
    pub given: String,
}

macro_rules! mode {
    ($(#[$doc:meta])* $name:ident, $key:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const KEY: &'static str = $key;
            pub const VALID: &'static str = concat!($($text, ", "),+);
        }

        impl FromStr for $name {
            type Err = ModeError;
            fn from_str(s: &str) -> Result<Self, ModeError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ModeError {
                        key: $key,
                        valid: Self::VALID.trim_end_matches(", "),
                        given: s.to_owned(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text),+ })
            }
        }
    };
}

mode!(
    /// `decimal.handling.mode`: `numeric` and `money`.
    DecimalMode, "decimal.handling.mode", { Precise = "precise", Double = "double", String = "string" }
);
mode!(
    /// `time.precision.mode`: `date`, `time`, `timetz`, `timestamp`, `timestamptz`.
    TimePrecisionMode, "time.precision.mode", {
        Adaptive = "adaptive",
        AdaptiveTimeMicroseconds = "adaptive_time_microseconds",
        Connect = "connect",
        IsoString = "isostring",
    }
);
mode!(
    /// `binary.handling.mode`: `bytea`; set at all, `bit`/`varbit` become
    /// Debezium's bytes (base64 in every mode, as Debezium writes them).
    BinaryMode, "binary.handling.mode", {
        Bytes = "bytes",
        Base64 = "base64",
        Base64UrlSafe = "base64-url-safe",
        Hex = "hex",
    }
);
mode!(
    /// `interval.handling.mode`.
    IntervalMode, "interval.handling.mode", { Numeric = "numeric", String = "string" }
);
mode!(
    /// `json.handling.mode` (cdc's; Debezium always writes a string,
    /// `io.debezium.data.Json`): `json` and `jsonb`.
    JsonMode, "json.handling.mode", { Embedded = "embedded", String = "string" }
);

/// The encoder's modes; `None`: cdc's own form of those types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    pub decimal: Option<DecimalMode>,
    pub time: Option<TimePrecisionMode>,
    pub binary: Option<BinaryMode>,
    pub interval: Option<IntervalMode>,
    pub json: Option<JsonMode>,
    /// `money.fraction.digits`: money's scale as a `precise` decimal
    /// (Debezium's default 2).
    pub money_fraction_digits: Option<u16>,
    /// `schemas.enable`: keys and values as `{schema, payload}` with
    /// Connect schemas, as Kafka's `JsonConverter` writes them
    /// ([`connect`]).
    pub schemas: bool,
    /// Leave cdc's `source.position` out (`"source.position" = false`; the
    /// `debezium` preset): Debezium's source block has no such member.
    pub omit_position: bool,
}

impl Format {
    /// Debezium 3.6's defaults with Kafka Connect's (`format = "debezium"`):
    /// precise decimals, adaptive times, bytes, numeric intervals, json as
    /// a string, two money digits, Connect schemas, and no `source.position`.
    pub fn debezium() -> Format {
        Format {
            decimal: Some(DecimalMode::Precise),
            time: Some(TimePrecisionMode::Adaptive),
            binary: Some(BinaryMode::Bytes),
            interval: Some(IntervalMode::Numeric),
            json: Some(JsonMode::String),
            money_fraction_digits: Some(2),
            schemas: true,
            omit_position: true,
        }
    }

    /// The modes left unset take Debezium's defaults: what Connect schemas
    /// need, since cdc's own forms (numeric as text, json embedded) have no
    /// Connect type.
    pub fn or_debezium_defaults(self) -> Format {
        let defaults = Format::debezium();
        Format {
            decimal: self.decimal.or(defaults.decimal),
            time: self.time.or(defaults.time),
            binary: self.binary.or(defaults.binary),
            interval: self.interval.or(defaults.interval),
            json: self.json.or(defaults.json),
            money_fraction_digits: self
                .money_fraction_digits
                .or(defaults.money_fraction_digits),
            schemas: self.schemas,
            omit_position: self.omit_position,
        }
    }

    /// Whether any of Debezium's value modes or Connect schemas is on: then
    /// unchanged TOAST values take Debezium's typed placeholders, which need
    /// each row's table shape (stamped on the events).
    pub fn debezium_values(&self) -> bool {
        self.decimal.is_some()
            || self.time.is_some()
            || self.binary.is_some()
            || self.interval.is_some()
            || self.schemas
    }

    /// Whether `json`/`jsonb` are written as a string.
    pub fn json_as_string(&self) -> bool {
        self.json == Some(JsonMode::String)
    }

    /// `bytea` as a JSON string.
    pub fn write_bytes(&self, bytes: &[u8], out: &mut Vec<u8>) {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        out.push(b'"');
        match self.binary {
            // JsonConverter writes Connect bytes as base64.
            None | Some(BinaryMode::Base64 | BinaryMode::Bytes) => {
                out.extend_from_slice(STANDARD.encode(bytes).as_bytes())
            }
            Some(BinaryMode::Base64UrlSafe) => {
                out.extend_from_slice(URL_SAFE.encode(bytes).as_bytes())
            }
            Some(BinaryMode::Hex) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for b in bytes {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0x0f)]);
                }
            }
        }
        out.push(b'"');
    }

    /// A [`Value::Typed`](crate::Value::Typed) as JSON. `write_str` writes a
    /// JSON string (the envelope's escaper).
    pub fn write_typed(
        &self,
        kind: TextType,
        text: &str,
        out: &mut Vec<u8>,
        write_str: fn(&str, &mut Vec<u8>),
    ) {
        let rendered = match kind {
            TextType::Numeric(_) | TextType::Money => match self.decimal {
                None => None,
                Some(DecimalMode::Double) => return write_double(text, out),
                Some(DecimalMode::String) => Some(special_decimal(text).unwrap_or(text).to_owned()),
                Some(DecimalMode::Precise) => {
                    let written = match kind {
                        TextType::Numeric(Some(scale)) => {
                            decimal::write_fixed(text, usize::from(scale), out)
                        }
                        TextType::Numeric(None) => decimal::write_variable(text, out),
                        _ => decimal::write_fixed(
                            text,
                            usize::from(self.money_fraction_digits.unwrap_or(2)),
                            out,
                        ),
                    };
                    // NaN and infinities have no Decimal (Debezium stops on
                    // them in this mode): null, as a value it cannot write.
                    if written.is_none() {
                        out.extend_from_slice(b"null");
                    }
                    return;
                }
            },
            TextType::Date
            | TextType::Time(_)
            | TextType::TimeTz(_)
            | TextType::Timestamp(_)
            | TextType::TimestampTz(_) => match self.time.and_then(|m| temporal(m, kind, text)) {
                None => None,
                Some(Temporal::Text(s)) => Some(s),
                Some(Temporal::Number(n)) => {
                    let mut buf = itoa::Buffer::new();
                    out.extend_from_slice(buf.format(n).as_bytes());
                    return;
                }
            },
            TextType::Interval => match self.interval {
                None => None,
                Some(IntervalMode::String) => debezium_interval(text),
                Some(IntervalMode::Numeric) => match interval_micros(text) {
                    Some(micros) => {
                        let mut buf = itoa::Buffer::new();
                        out.extend_from_slice(buf.format(micros).as_bytes());
                        return;
                    }
                    None => None,
                },
            },
            // Debezium's `io.debezium.data.Bits` are Connect bytes whatever
            // `binary.handling.mode` says (it applies to bytea), and
            // JsonConverter writes bytes as base64.
            TextType::Bits if self.binary.is_some() => {
                return Format::default().write_bytes(&bits_le(text), out);
            }
            _ => None,
        };
        write_str(rendered.as_deref().unwrap_or(text), out);
    }
}

/// A date or time in one of Debezium's time modes.
enum Temporal {
    Text(String),
    Number(i64),
}

/// `kind`'s text in `mode`, as Debezium's `time.precision.mode` has it:
/// timetz and timestamptz are ISO strings in every mode (`ZonedTime`,
/// `ZonedTimestamp`); dates are epoch days outside `isostring`; times and
/// timestamps are millis (`connect`, or a precision up to 3 in the
/// adaptive modes) or micros. `None`: a text this cannot read (kept as is).
fn temporal(mode: TimePrecisionMode, kind: TextType, text: &str) -> Option<Temporal> {
    use TimePrecisionMode::*;
    let micros_or_millis = |micros: i64, millis: bool| {
        Temporal::Number(if millis {
            micros.div_euclid(1000)
        } else {
            micros
        })
    };
    Some(match (kind, mode) {
        (TextType::TimeTz(_), _) => Temporal::Text(iso_timetz(text)?),
        (TextType::TimestampTz(p), _) => Temporal::Text(iso_timestamptz(text, p)?),
        (TextType::Date, IsoString) => Temporal::Text(iso_date(text)? + "Z"),
        (TextType::Date, _) => Temporal::Number(epoch_days(&iso_date(text)?)?),
        (TextType::Time(_), IsoString) => Temporal::Text(iso_time(text)?),
        (TextType::Time(p), _) => micros_or_millis(
            time_micros(text)?,
            mode == Connect || (mode == Adaptive && p <= 3),
        ),
        (TextType::Timestamp(_), IsoString) => Temporal::Text(iso_timestamp(text)?),
        (TextType::Timestamp(p), _) => {
            micros_or_millis(timestamp_micros(text)?, mode == Connect || p <= 3)
        }
        _ => return None,
    })
}

/// Days since 1970-01-01 of an astronomical ISO date (`-0043-03-15`,
/// `+12345-01-01`), proleptic Gregorian as Java's `LocalDate`.
fn epoch_days(iso: &str) -> Option<i64> {
    let (negative, rest) = match iso.as_bytes().first()? {
        b'-' => (true, &iso[1..]),
        b'+' => (false, &iso[1..]),
        _ => (false, iso),
    };
    let mut parts = rest.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let year = if negative { -year } else { year };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `01:02:03.5` → microseconds since midnight (`24:00:00` is a whole day).
fn time_micros(text: &str) -> Option<i64> {
    let (hms, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut fields = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (fields.next()??, fields.next()??, fields.next()??);
    let digits = fraction.get(..fraction.len().min(6))?;
    let micros = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
    };
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// A timestamp's microseconds since the epoch; the infinities are
/// PostgreSQL's own (`DT_NOEND`), as Debezium reads them.
fn timestamp_micros(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(9_223_372_036_825_200_000),
        "-infinity" => return Some(-9_223_372_036_832_400_000),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, " BC"),
        None => (text, ""),
    };
    let (date, time) = text.split_once(['T', ' '])?;
    let days = epoch_days(&iso_date(&format!("{date}{bc}"))?)?;
    Some(days * 86_400_000_000 + time_micros(time)?)
}

/// Debezium's names of numeric's special values (`SpecialValueDecimal`).
fn special_decimal(text: &str) -> Option<&'static str> {
    Some(match text {
        "NaN" => "NAN",
        "Infinity" => "POSITIVE_INFINITY",
        "-Infinity" => "NEGATIVE_INFINITY",
        _ => return None,
    })
}

/// A decimal as a JSON number (Jackson writes non-finite doubles as strings).
fn write_double(text: &str, out: &mut Vec<u8>) {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        Ok(f) if f.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Ok(f) if f > 0.0 => out.extend_from_slice(b"\"Infinity\""),
        Ok(_) => out.extend_from_slice(b"\"-Infinity\""),
        Err(_) => out.extend_from_slice(b"null"),
    }
}

/// The bits of `101` as Debezium's bytes: little-endian, the last bit the
/// lowest, as few bytes as the highest set bit needs (none for all zeros).
fn bits_le(text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, c) in text.bytes().rev().enumerate() {
        if c == b'1' {
            let at = i / 8;
            if bytes.len() <= at {
                bytes.resize(at + 1, 0);
            }
            bytes[at] |= 1 << (i % 8);
        }
    }
    bytes
}

/// Java's `ISO_LOCAL_DATE` year: four digits at least, `+` above 9999,
/// astronomical (1 BC is 0) below 1.
fn iso_year(year: i64, out: &mut String) {
    use std::fmt::Write as _;
    let _ = match year {
        y if y > 9999 => write!(out, "+{y}"),
        y if y < 0 => write!(out, "-{:04}", -y),
        y => write!(out, "{y:04}"),
    };
}

/// `2024-02-29` or `0044-03-15 BC` (a date or the date of a timestamp) in
/// Java's ISO form, without offset. PostgreSQL's infinite dates are
/// Debezium's sentinel dates (`PostgresValueConverter`).
fn iso_date(text: &str) -> Option<String> {
    match text {
        "infinity" => return Some("-5877611-06-21".into()),
        "-infinity" => return Some("-5877611-06-22".into()),
        _ => {}
    }
    let (date, bc) = match text.strip_suffix(" BC") {
        Some(date) => (date, true),
        None => (text, false),
    };
    let (year, rest) = date.split_once('-')?;
    let year: i64 = year.parse().ok()?;
    let mut out = String::with_capacity(16);
    iso_year(if bc { 1 - year } else { year }, &mut out);
    out.push('-');
    out.push_str(rest);
    Some(out)
}

/// `01:02:03.5` → `01:02:03.5Z`; `24:00:00` is the next midnight, as
/// Java's `LocalTime` wraps it.
fn iso_time(text: &str) -> Option<String> {
    if text.starts_with("24:") {
        return Some("00:00:00Z".into());
    }
    Some(format!("{text}Z"))
}

/// `03:04:05+05:30` → `21:34:05Z`: Debezium moves a timetz to UTC.
fn iso_timetz(text: &str) -> Option<String> {
    let at = text.rfind(['+', '-'])?;
    let (time, offset) = text.split_at(at);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset.get(1..)?.split(':');
    let mut offset_secs = 0i64;
    for unit in [3600, 60, 1] {
        if let Some(p) = parts.next() {
            offset_secs += p.parse::<i64>().ok()? * unit;
        }
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut fields = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (fields.next()??, fields.next()??, fields.next()??);
    let secs = (h * 3600 + m * 60 + s - sign * offset_secs).rem_euclid(86_400);
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out.push('Z');
    Some(out)
}

/// `2024-02-29T13:14:15.123456` → `…Z`; BC and infinities as Debezium's
/// `IsoTimestamp` (its sentinel instants for the infinities).
fn iso_timestamp(text: &str) -> Option<String> {
    match text {
        "infinity" => return Some("+294247-01-10T04:00:25.2Z".into()),
        "-infinity" => return Some("-290308-12-21T19:59:27.6Z".into()),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, " BC"),
        None => (text, ""),
    };
    let (date, time) = text.split_once(['T', ' '])?;
    let date = iso_date(&format!("{date}{bc}"))?;
    Some(format!("{date}T{time}Z"))
}

/// A UTC `2024-02-29T11:14:15Z` → `2024-02-29T11:14:15.000000Z`: Debezium's
/// `ZonedTimestamp` writes the column's `precision` fraction digits (none
/// for 0). Infinities stay as PostgreSQL spells them.
fn iso_timestamptz(text: &str, precision: u8) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_owned());
    }
    // BC: `0044-03-15 12:30:00.25+00 BC`, always UTC here.
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t.strip_suffix("+00")?, " BC"),
        None => (text.strip_suffix('Z')?, ""),
    };
    let (date, time) = body.split_once(['T', ' '])?;
    let date = iso_date(&format!("{date}{bc}"))?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    if precision == 0 {
        return Some(format!("{date}T{hms}Z"));
    }
    let width = usize::from(precision);
    Some(format!("{date}T{hms}.{fraction:0<width$}Z"))
}

/// The fields of an ISO 8601 interval as PostgreSQL's `iso_8601` style
/// prints it (`P-1Y-2M3DT-4H-5M-6.5S`, `PT0S`): years, months, days,
/// hours, minutes and the seconds' text.
fn interval_fields(text: &str) -> Option<([i64; 5], String)> {
    let mut rest = text.strip_prefix('P')?;
    let mut fields = [0i64; 5];
    let mut seconds = String::from("0");
    let mut in_time = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            in_time = true;
            rest = r;
            continue;
        }
        let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
        let (number, unit) = (&rest[..end], rest.as_bytes()[end]);
        rest = &rest[end + 1..];
        let slot = match (in_time, unit) {
            (false, b'Y') => 0,
            (false, b'M') => 1,
            (false, b'D') => 2,
            (true, b'H') => 3,
            (true, b'M') => 4,
            (true, b'S') => {
                seconds = number.to_owned();
                continue;
            }
            _ => return None,
        };
        fields[slot] = number.parse().ok()?;
    }
    Some((fields, seconds))
}

/// Debezium's `Interval.toIsoString`: every field spelled,
/// `P0Y0M-3DT4H5M6.000007S`, seconds without trailing zeros.
fn debezium_interval(text: &str) -> Option<String> {
    let ([y, mo, d, h, mi], seconds) = interval_fields(text)?;
    let seconds = match seconds.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => seconds,
    };
    let seconds = if seconds == "-0" { "0".into() } else { seconds };
    Some(format!("P{y}Y{mo}M{d}DT{h}H{mi}M{seconds}S"))
}

/// Debezium's `MicroDuration.durationMicros` with its average month of
/// 30.4375 days (`DAYS_PER_MONTH_AVG`): the interval in microseconds.
fn interval_micros(text: &str) -> Option<i64> {
    let ([y, mo, d, h, mi], seconds) = interval_fields(text)?;
    let seconds: f64 = seconds.parse().ok()?;
    const MICROS_PER_DAY: f64 = 86_400e6;
    let months = (y * 12 + mo) as f64;
    let total = months * 30.4375 * MICROS_PER_DAY
        + d as f64 * MICROS_PER_DAY
        + h as f64 * 3600e6
        + mi as f64 * 60e6
        + seconds * 1e6;
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_debezium_names_and_name_the_valid_ones() {
        assert_eq!("isostring".parse(), Ok(TimePrecisionMode::IsoString));
        assert_eq!("base64-url-safe".parse(), Ok(BinaryMode::Base64UrlSafe));
        let err = "exact".parse::<DecimalMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "decimal.handling.mode must be one of precise, double, string, not 'exact'"
        );
    }

    #[test]
    fn temporal_texts_become_debezium_iso_strings() {
        assert_eq!(iso_date("0044-03-15 BC").as_deref(), Some("-0043-03-15"));
        assert_eq!(iso_date("12345-01-01").as_deref(), Some("+12345-01-01"));
        assert_eq!(iso_time("24:00:00").as_deref(), Some("00:00:00Z"));
        assert_eq!(iso_timetz("03:04:05+05:30").as_deref(), Some("21:34:05Z"));
        assert_eq!(
            iso_timetz("00:00:00.25-14").as_deref(),
            Some("14:00:00.25Z")
        );
        assert_eq!(
            iso_timestamp("0044-03-15 12:30:00 BC").as_deref(),
            Some("-0043-03-15T12:30:00Z")
        );
        assert_eq!(
            iso_timestamptz("2024-02-29T11:14:15.5Z", 6).as_deref(),
            Some("2024-02-29T11:14:15.500000Z")
        );
        assert_eq!(
            iso_timestamptz("2024-02-29T11:14:15.5Z", 3).as_deref(),
            Some("2024-02-29T11:14:15.500Z")
        );
        assert_eq!(
            iso_timestamptz("0044-03-15 12:30:00.25+00 BC", 6).as_deref(),
            Some("-0043-03-15T12:30:00.250000Z")
        );
    }

    #[test]
    fn epoch_numbers_count_from_1970_proleptically() {
        assert_eq!(epoch_days("1970-01-01"), Some(0));
        assert_eq!(epoch_days("2024-02-29"), Some(19_782));
        assert_eq!(epoch_days("0000-12-31"), Some(-719_163));
        assert_eq!(time_micros("24:00:00"), Some(86_400_000_000));
        assert_eq!(time_micros("01:02:03.5"), Some(3_723_500_000));
        assert_eq!(
            timestamp_micros("2024-02-29T13:14:15.123456"),
            Some(1_709_212_455_123_456)
        );
        let ms = |kind, text| match temporal(TimePrecisionMode::Adaptive, kind, text) {
            Some(Temporal::Number(n)) => Some(n),
            _ => None,
        };
        assert_eq!(
            ms(TextType::Timestamp(3), "1969-12-31T23:59:59.9995"),
            Some(-1)
        );
        assert_eq!(ms(TextType::Time(6), "00:00:01"), Some(1_000_000));
    }

    #[test]
    fn intervals_spell_every_field_or_count_microseconds() {
        assert_eq!(
            debezium_interval("P-3DT4H5M6.000007S").as_deref(),
            Some("P0Y0M-3DT4H5M6.000007S")
        );
        assert_eq!(debezium_interval("PT0S").as_deref(), Some("P0Y0M0DT0H0M0S"));
        assert_eq!(
            debezium_interval("P-1Y-2M3DT-4H-5M-6S").as_deref(),
            Some("P-1Y-2M3DT-4H-5M-6S")
        );
        assert_eq!(interval_micros("P1DT0.5S"), Some(86_400_500_000));
        assert_eq!(interval_micros("P1M"), Some(2_629_800_000_000));
    }

    fn typed(format: &Format, kind: TextType, text: &str) -> String {
        let mut out = Vec::new();
        format.write_typed(kind, text, &mut out, crate::envelope::write_str);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn unset_modes_keep_cdc_forms_and_set_ones_render_debezium_forms() {
        let cdc = Format::default();
        assert_eq!(typed(&cdc, TextType::Numeric(None), "NaN"), r#""NaN""#);
        assert_eq!(typed(&cdc, TextType::Bits, "101"), r#""101""#);
        assert_eq!(typed(&cdc, TextType::Date, "2024-02-29"), r#""2024-02-29""#);
        assert_eq!(
            typed(&cdc, TextType::Time(DEFAULT_TIME_PRECISION), "01:02:03"),
            r#""01:02:03""#
        );
        let dbz = Format {
            decimal: Some(DecimalMode::Double),
            time: Some(TimePrecisionMode::IsoString),
            binary: Some(BinaryMode::Hex),
            interval: Some(IntervalMode::Numeric),
            json: Some(JsonMode::String),
            schemas: false,
            money_fraction_digits: None,
            omit_position: false,
        };
        let precise = Format {
            decimal: Some(DecimalMode::Precise),
            money_fraction_digits: Some(3),
            ..cdc
        };
        assert_eq!(
            typed(&precise, TextType::Numeric(Some(3)), "1.5"),
            r#""Bdw=""#
        );
        assert_eq!(
            typed(&precise, TextType::Numeric(None), "1.50"),
            r#"{"scale":1,"value":"Dw=="}"#
        );
        assert_eq!(typed(&precise, TextType::Money, "-0.01"), r#""9g==""#);
        assert_eq!(typed(&precise, TextType::Numeric(None), "NaN"), "null");
        assert_eq!(typed(&dbz, TextType::Numeric(None), "-1.25"), "-1.25");
        assert_eq!(typed(&dbz, TextType::Money, "NaN"), r#""NaN""#);
        assert_eq!(typed(&dbz, TextType::Bits, "100000001"), r#""AQE=""#);
        assert_eq!(
            typed(&dbz, TextType::Date, "2024-02-29"),
            r#""2024-02-29Z""#
        );
        assert_eq!(typed(&dbz, TextType::Interval, "PT1S"), "1000000");
        let mut out = Vec::new();
        Format {
            binary: Some(BinaryMode::Base64UrlSafe),
            ..cdc
        }
        .write_bytes(&[0xfb, 0xff], &mut out);
        assert_eq!(out, br#""-_8=""#);
        assert!(dbz.json_as_string() && !cdc.json_as_string());
    }

    #[test]
    fn bits_are_little_endian_bytes() {
        assert_eq!(bits_le("101"), [5]);
        assert_eq!(bits_le("000"), [] as [u8; 0]);
        assert_eq!(bits_le("100000001"), [1, 1]);
    }
}
