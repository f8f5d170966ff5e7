//! Conversion of PostgreSQL binary-format values to typed engine values.
//!
//! Chunk selects ask for some columns in binary: the server then skips its
//! text output functions (timestamp and numeric formatting are a large part
//! of what a snapshot costs the database). Each decoder here yields exactly
//! the value [`text_to_value`](crate::types::text_to_value) makes of the
//! same column's text under the session settings of
//! [`SESSION_OPTIONS`](crate::connect::SESSION_OPTIONS), so a row reads the
//! same whether it came from a chunk or from the log. The integration test
//! `binary_values` checks that through a real server.

use cdc_engine::{TextType, Value, DEFAULT_TIME_PRECISION};

use crate::types::{oid, text_to_value, ValueError};

/// Types whose binary form is their text. `char(n)` must come this way: its
/// cast to text drops the padding its output (and so the log) keeps.
pub fn binary_is_text(type_oid: u32) -> bool {
    matches!(type_oid, oid::BPCHAR | oid::TEXT | oid::VARCHAR | oid::NAME)
}

/// Types read in binary by chunk selects. Others (json, intervals, arrays,
/// user types) gain nothing or have no decoder here.
///
/// float4 stays text: the log reads its text as a double, and which digits
/// that text has is PostgreSQL's choice (its Ryu never prints a value on a
/// rounding boundary: -78319776 is `-7.8319776e+07`, not the shorter
/// `-7.831978e7`), so rebuilding the same double from the bits would mean
/// copying that variant of the algorithm for a rare type.
pub fn has_binary_decoder(type_oid: u32) -> bool {
    binary_is_text(type_oid)
        || matches!(
            type_oid,
            oid::BOOL
                | oid::INT2
                | oid::INT4
                | oid::INT8
                | oid::OID
                | oid::FLOAT8
                | oid::NUMERIC
                | oid::DATE
                | oid::TIME
                | oid::TIMESTAMP
                | oid::TIMESTAMPTZ
                | oid::UUID
                | oid::BYTEA
        )
}

/// Types the log may send in binary (pgoutput's `binary` option sends
/// every column so): those of [`has_binary_decoder`], and json and jsonb,
/// whose send functions write the text their output functions make
/// (`json_send`: the text; `jsonb_send`: version 1, then `JsonbToCString`,
/// as `jsonb_out`). Chunk selects gain nothing from those two in binary.
pub fn has_log_binary_decoder(type_oid: u32) -> bool {
    has_binary_decoder(type_oid) || matches!(type_oid, oid::JSON | oid::JSONB)
}

/// Convert one value in PostgreSQL binary format, by the column's type OID.
pub fn binary_to_value(type_oid: u32, raw: &[u8]) -> Result<Value, ValueError> {
    let bad = |reason| ValueError::InvalidBinary { type_oid, reason };
    match type_oid {
        oid::BOOL => match raw {
            [0] => Ok(Value::Bool(false)),
            [1] => Ok(Value::Bool(true)),
            _ => Err(bad("boolean is not one byte of 0 or 1")),
        },
        oid::INT2 => be::<2>(raw)
            .map(|b| Value::Int(i16::from_be_bytes(b).into()))
            .ok_or(bad("int2 is not 2 bytes")),
        oid::INT4 => be::<4>(raw)
            .map(|b| Value::Int(i32::from_be_bytes(b).into()))
            .ok_or(bad("int4 is not 4 bytes")),
        oid::OID => be::<4>(raw)
            .map(|b| Value::Int(u32::from_be_bytes(b).into()))
            .ok_or(bad("oid is not 4 bytes")),
        oid::INT8 => be::<8>(raw)
            .map(|b| Value::Int(i64::from_be_bytes(b)))
            .ok_or(bad("int8 is not 8 bytes")),
        oid::FLOAT8 => be::<8>(raw)
            .map(|b| float8(f64::from_be_bytes(b)))
            .ok_or(bad("float8 is not 8 bytes")),
        oid::NUMERIC => numeric(raw)
            .map(|t| Value::Typed(TextType::Numeric(None), t))
            .ok_or(bad("malformed numeric")),
        oid::DATE => be::<4>(raw)
            .and_then(|b| date(i32::from_be_bytes(b)))
            .map(|t| Value::Typed(TextType::Date, t))
            .ok_or(bad("date is not 4 bytes in range")),
        oid::TIME => be::<8>(raw)
            .and_then(|b| time(i64::from_be_bytes(b)))
            .map(|t| Value::Typed(TextType::Time(DEFAULT_TIME_PRECISION), t))
            .ok_or(bad("time is not 8 bytes in range")),
        oid::TIMESTAMP => be::<8>(raw)
            .and_then(|b| timestamp(i64::from_be_bytes(b), false))
            .map(|t| Value::Typed(TextType::Timestamp(DEFAULT_TIME_PRECISION), t))
            .ok_or(bad("timestamp is not 8 bytes in range")),
        oid::TIMESTAMPTZ => be::<8>(raw)
            .and_then(|b| timestamp(i64::from_be_bytes(b), true))
            .map(|t| Value::Typed(TextType::TimestampTz(DEFAULT_TIME_PRECISION), t))
            .ok_or(bad("timestamptz is not 8 bytes in range")),
        oid::UUID => be::<16>(raw)
            .map(|b| Value::Text(uuid(&b)))
            .ok_or(bad("uuid is not 16 bytes")),
        oid::BYTEA => Ok(Value::Bytes(raw.to_vec())),
        oid::JSON => text_to_value(type_oid, raw),
        oid::JSONB => match raw.split_first() {
            Some((1, text)) => text_to_value(type_oid, text),
            _ => Err(bad("jsonb is not version 1")),
        },
        _ if binary_is_text(type_oid) => text_to_value(type_oid, raw),
        _ => Err(bad("no binary decoder for this type")),
    }
}

fn be<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.try_into().ok()
}

/// Non-finite floats keep the server's spelling, as their text does.
fn non_finite(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn float8(x: f64) -> Value {
    if x.is_finite() {
        Value::Float(x)
    } else {
        Value::Text(non_finite(x).to_owned())
    }
}

/// `numeric_send`: ndigits, weight, sign, dscale, then base-10000 digits.
/// Rendered as `numeric_out` does (`get_str_from_var`).
fn numeric(raw: &[u8]) -> Option<String> {
    const POS: u16 = 0x0000;
    const NEG: u16 = 0x4000;
    const NAN: u16 = 0xC000;
    const PINF: u16 = 0xD000;
    const NINF: u16 = 0xF000;
    let word = |at: usize| {
        raw.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = i32::from(word(6)? as i16);
    if raw.len() != 8 + 2 * ndigits || dscale < 0 {
        return None;
    }
    match sign {
        NAN => return Some("NaN".to_owned()),
        PINF => return Some("Infinity".to_owned()),
        NINF => return Some("-Infinity".to_owned()),
        POS | NEG => {}
        _ => return None,
    }
    let digit_at = |d: i32| -> Option<u16> {
        match usize::try_from(d) {
            Ok(d) if d < ndigits => word(8 + 2 * d).filter(|&digit| digit <= 9999),
            _ => Some(0),
        }
    };
    let mut out = String::with_capacity(ndigits * 4 + dscale.unsigned_abs() as usize + 4);
    if sign == NEG {
        out.push('-');
    }
    let mut d: i32;
    if weight < 0 {
        d = weight + 1;
        out.push('0');
    } else {
        // The first group without leading zeros, the rest four digits each.
        push_unpadded(&mut out, digit_at(0)?.into());
        d = 1;
        while d <= weight {
            push_digits(&mut out, digit_at(d)?.into(), 4);
            d += 1;
        }
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + dscale as usize;
        let mut written = 0;
        while written < dscale {
            push_digits(&mut out, digit_at(d)?.into(), 4);
            d += 1;
            written += 4;
        }
        out.truncate(end);
    }
    Some(out)
}

/// `n` in exactly `width` decimal digits (zero-padded; `n` must fit).
/// Hand-rolled: `write!` was a tenth of a chunk worker's time.
fn push_digits(out: &mut String, n: u32, width: u32) {
    let mut divisor = 10u32.pow(width.saturating_sub(1));
    while divisor > 0 {
        out.push(char::from(b'0' + (n / divisor % 10) as u8));
        divisor /= 10;
    }
}

/// `n` in as many digits as it needs.
fn push_unpadded(out: &mut String, n: u32) {
    push_digits(out, n, n.checked_ilog10().unwrap_or(0) + 1);
}

/// Julian day of 2000-01-01, the epoch of binary dates and timestamps.
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// PostgreSQL's `j2date`: Julian day → proleptic Gregorian (year ≤ 0 is BC).
fn j2date(jd: u32) -> (i32, u32, u32) {
    let mut julian = jd.wrapping_add(32_044);
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y as i32 - 4800;
    let quad = julian * 2141 / 65_536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month, day)
}

/// `YYYY-MM-DD` as `EncodeDateOnly` (ISO) writes it; returns whether BC.
fn push_date(out: &mut String, jd: u32) -> bool {
    let (year, month, day) = j2date(jd);
    let bc = year <= 0;
    let shown = (if bc { 1 - year } else { year }).unsigned_abs();
    if shown < 10_000 {
        push_digits(out, shown, 4);
    } else {
        push_unpadded(out, shown);
    }
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
    bc
}

/// `HH:MM:SS` and a fraction without trailing zeros, as `EncodeTimeOnly`.
fn push_time(out: &mut String, micros: i64) {
    // Callers pass 0..=24h, so every part fits a u32.
    let secs = (micros / 1_000_000) as u32;
    let mut fraction = (micros % 1_000_000) as u32;
    push_digits(out, secs / 3600, 2);
    out.push(':');
    push_digits(out, secs / 60 % 60, 2);
    out.push(':');
    push_digits(out, secs % 60, 2);
    if fraction != 0 {
        let mut width = 6;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push('.');
        push_digits(out, fraction, width);
    }
}

/// `None` outside the range PostgreSQL accepts.
fn date(days: i32) -> Option<String> {
    match days {
        i32::MAX => return Some("infinity".to_owned()),
        i32::MIN => return Some("-infinity".to_owned()),
        _ => {}
    }
    let jd = julian_day(i64::from(days))?;
    let mut out = String::with_capacity(14);
    if push_date(&mut out, jd) {
        out.push_str(" BC");
    }
    Some(out)
}

/// Days since 2000-01-01 → Julian day, if in the range `j2date` handles.
fn julian_day(days: i64) -> Option<u32> {
    u32::try_from(days + POSTGRES_EPOCH_JDATE)
        .ok()
        .filter(|&jd| jd <= i32::MAX as u32)
}

/// `None` outside 00:00:00..=24:00:00.
fn time(micros: i64) -> Option<String> {
    if !(0..=USECS_PER_DAY).contains(&micros) {
        return None;
    }
    let mut out = String::with_capacity(15);
    push_time(&mut out, micros);
    Some(out)
}

/// The ISO-8601 form the text path makes of the server's output:
/// `2024-01-02T03:04:05.5` (`Z` appended for timestamptz, whose session
/// time zone is UTC). BC values keep the server's own form, as in the text
/// path. `None` outside the range PostgreSQL accepts.
fn timestamp(micros: i64, with_zone: bool) -> Option<String> {
    match micros {
        i64::MAX => return Some("infinity".to_owned()),
        i64::MIN => return Some("-infinity".to_owned()),
        _ => {}
    }
    let jd = julian_day(micros.div_euclid(USECS_PER_DAY))?;
    let mut out = String::with_capacity(32);
    let bc = push_date(&mut out, jd);
    out.push(if bc { ' ' } else { 'T' });
    push_time(&mut out, micros.rem_euclid(USECS_PER_DAY));
    match (with_zone, bc) {
        (true, false) => out.push('Z'),
        (true, true) => out.push_str("+00 BC"),
        (false, true) => out.push_str(" BC"),
        (false, false) => {}
    }
    Some(out)
}

fn uuid(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        for nibble in [byte >> 4, byte & 0xf] {
            out.push(char::from_digit(nibble.into(), 16).unwrap_or('0'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: i16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        raw.extend_from_slice(&weight.to_be_bytes());
        raw.extend_from_slice(&sign.to_be_bytes());
        raw.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    fn text(v: Value) -> String {
        match v {
            Value::Text(s) | Value::Typed(_, s) => s,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn numerics_render_as_numeric_out() {
        let n = |w, s, ds, d: &[u16]| numeric(&numeric_bytes(w, s, ds, d)).unwrap();
        assert_eq!(n(0, 0, 0, &[]), "0");
        assert_eq!(n(0, 0, 2, &[]), "0.00");
        assert_eq!(n(0, 0, 2, &[12, 3400]), "12.34");
        assert_eq!(n(2, 0x4000, 3, &[1, 2, 3, 4500]), "-100020003.450");
        assert_eq!(n(-2, 0, 10, &[12]), "0.0000001200");
        assert_eq!(n(1, 0, 0, &[5]), "50000");
        assert_eq!(n(0, 0xC000, 0, &[]), "NaN");
        assert_eq!(n(0, 0xD000, 0, &[]), "Infinity");
        assert_eq!(n(0, 0xF000, 0, &[]), "-Infinity");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[10_000])), None);
        assert_eq!(numeric(&numeric_bytes(0, 0x1234, 0, &[1])), None);
        assert_eq!(numeric(&[0, 1, 0, 0]), None);
    }

    #[test]
    fn dates_and_times_render_as_iso_output() {
        let d = |days| date(days).unwrap();
        assert_eq!(d(0), "2000-01-01");
        assert_eq!(d(-1), "1999-12-31");
        assert_eq!(d(59), "2000-02-29");
        assert_eq!(d(i32::MAX), "infinity");
        assert_eq!(d(-(2_451_545 - 1_721_426)), "0001-01-01");
        assert_eq!(d(-(2_451_545 - 1_721_425)), "0001-12-31 BC");
        assert_eq!(date(-2_451_546), None);
        assert_eq!(time(0).unwrap(), "00:00:00");
        assert_eq!(time(USECS_PER_DAY).unwrap(), "24:00:00");
        assert_eq!(time(3_723_450_000).unwrap(), "01:02:03.45");
        assert_eq!(time(-1), None);
        let ts = |us, tz| timestamp(us, tz).unwrap();
        assert_eq!(ts(0, true), "2000-01-01T00:00:00Z");
        assert_eq!(ts(-1, false), "1999-12-31T23:59:59.999999");
        assert_eq!(ts(i64::MIN, true), "-infinity");
        assert_eq!(
            ts(-(2_451_545 - 1_721_425) * USECS_PER_DAY + 1, true),
            "0001-12-31 00:00:00.000001+00 BC"
        );
        assert_eq!(timestamp(i64::MIN + 1, true), None);
    }

    #[test]
    fn malformed_values_are_errors_naming_the_type() {
        let err = binary_to_value(oid::INT4, &[0, 1]).unwrap_err();
        assert_eq!(err.to_string(), "type 23: int4 is not 4 bytes");
        assert!(binary_to_value(oid::BOOL, &[2]).is_err());
        assert!(binary_to_value(oid::JSON, b"{").is_err());
        assert!(binary_to_value(oid::JSONB, b"{}").is_err());
        assert!(binary_to_value(oid::JSONB, b"").is_err());
        assert_eq!(
            binary_to_value(oid::JSONB, b"\x01{\"a\": 1}").unwrap(),
            Value::Json("{\"a\": 1}".into())
        );
        assert!(binary_to_value(oid::INTERVAL, &[0; 16]).is_err());
        assert_eq!(
            text(binary_to_value(oid::UUID, &[0xab; 16]).unwrap()),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            type_oid in prop::sample::select(vec![
                oid::BOOL, oid::INT2, oid::INT4, oid::INT8, oid::OID, oid::FLOAT8,
                oid::NUMERIC, oid::DATE, oid::TIME, oid::TIMESTAMP, oid::TIMESTAMPTZ,
                oid::UUID, oid::BYTEA, oid::JSON, oid::JSONB,
            ]),
            raw in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let _ = binary_to_value(type_oid, &raw);
        }
    }
}
