//! Conversion of PostgreSQL text-format values to typed engine values.
//!
//! Sessions run with `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=iso_8601`,
//! `extra_float_digits=3` and `bytea_output=hex`, so each type has one output
//! shape to handle. Types without a better JSON form (and every unknown type:
//! enums, user types) become UTF-8 checked text. Domains are converted as
//! their base type: callers pass [`ColumnInfo::value_oid`](crate::catalog::ColumnInfo::value_oid).

use cdc_engine::{TextType, Value, DEFAULT_TIME_PRECISION};

use crate::pgoutput::TupleValue;

/// Type OIDs from `pg_type.dat` that get a conversion of their own.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const MONEY_ARRAY: u32 = 791;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const POINT: u32 = 600;
    pub const TSVECTOR: u32 = 3614;
    pub const JSONB: u32 = 3802;
    pub const JSONPATH: u32 = 4072;
}

/// A type's SQL name from its OID and modifier, as `format_type` spells
/// the common ones, for log lines about a table's shape. Other types are
/// named by OID (the log carries no names for them).
pub fn type_name(type_oid: u32, type_mod: i32) -> String {
    let modifier = type_mod - 4;
    let plain = match type_oid {
        oid::BOOL => "boolean",
        oid::BYTEA => "bytea",
        oid::CHAR => "\"char\"",
        oid::NAME => "name",
        oid::INT8 => "bigint",
        oid::INT2 => "smallint",
        oid::INT4 => "integer",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::JSON => "json",
        oid::XML => "xml",
        oid::CIDR => "cidr",
        oid::FLOAT4 => "real",
        oid::FLOAT8 => "double precision",
        oid::MONEY => "money",
        oid::MACADDR => "macaddr",
        oid::INET => "inet",
        oid::DATE => "date",
        oid::INTERVAL => "interval",
        oid::UUID => "uuid",
        oid::JSONB => "jsonb",
        oid::TIME => "time without time zone",
        oid::TIMETZ => "time with time zone",
        oid::TIMESTAMP => "timestamp without time zone",
        oid::TIMESTAMPTZ => "timestamp with time zone",
        oid::VARCHAR if modifier >= 0 => return format!("character varying({modifier})"),
        oid::VARCHAR => "character varying",
        oid::BPCHAR if modifier >= 0 => return format!("character({modifier})"),
        oid::BPCHAR => "bpchar",
        oid::NUMERIC if modifier >= 0 => {
            return format!(
                "numeric({},{})",
                (modifier >> 16) & 0xffff,
                modifier & 0xffff
            )
        }
        oid::NUMERIC => "numeric",
        other => return format!("type {other}"),
    };
    plain.to_owned()
}

/// Why a value could not be converted; names the type OID of the value (of
/// the element, for a bad element inside an array).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    #[error("type {type_oid}: value is not valid UTF-8")]
    InvalidUtf8 { type_oid: u32 },
    #[error("type {type_oid}: invalid boolean {text:?}")]
    InvalidBool { type_oid: u32, text: String },
    #[error("type {type_oid}: invalid integer {text:?}")]
    InvalidInt { type_oid: u32, text: String },
    #[error("type {type_oid}: invalid float {text:?}")]
    InvalidFloat { type_oid: u32, text: String },
    #[error("type {type_oid}: invalid money {text:?}")]
    InvalidMoney { type_oid: u32, text: String },
    #[error("type {type_oid}: invalid JSON: {reason}")]
    InvalidJson { type_oid: u32, reason: String },
    #[error("type {type_oid}: invalid bytea at byte {offset}: {reason}")]
    InvalidBytea {
        type_oid: u32,
        offset: usize,
        reason: &'static str,
    },
    #[error("type {type_oid}: {reason}")]
    InvalidBinary { type_oid: u32, reason: &'static str },
    #[error("type {type_oid}: invalid array literal at byte {offset}: {reason}")]
    InvalidArray {
        type_oid: u32,
        offset: usize,
        reason: &'static str,
    },
}

/// Nesting bound for array literals. PostgreSQL allows 6 dimensions; the
/// bound keeps hostile input from building values too deep to drop safely.
const MAX_ARRAY_DEPTH: usize = 16;

/// At most this much of a bad value is quoted in an error, so one huge value
/// cannot flood the logs.
const ERROR_SNIPPET: usize = 64;

fn snippet(text: &[u8]) -> String {
    String::from_utf8_lossy(text.get(..ERROR_SNIPPET).unwrap_or(text)).into_owned()
}

fn utf8(type_oid: u32, text: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(text).map_err(|_| ValueError::InvalidUtf8 { type_oid })
}

/// The element type of a supported array type.
pub fn element_type(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1011 => oid::XID,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1028 => oid::OID,
        1040 => oid::MACADDR,
        1041 => oid::INET,
        1115 => oid::TIMESTAMP,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1185 => oid::TIMESTAMPTZ,
        1187 => oid::INTERVAL,
        1231 => oid::NUMERIC,
        1270 => oid::TIMETZ,
        1561 => oid::BIT,
        1563 => oid::VARBIT,
        143 => oid::XML,
        199 => oid::JSON,
        651 => oid::CIDR,
        oid::MONEY_ARRAY => oid::MONEY,
        2951 => oid::UUID,
        3807 => oid::JSONB,
        4073 => oid::JSONPATH,
        _ => return None,
    })
}

/// Convert one value in PostgreSQL text output format to a typed value, by
/// the column's type OID.
pub fn text_to_value(type_oid: u32, text: &[u8]) -> Result<Value, ValueError> {
    match type_oid {
        oid::BOOL => match text {
            b"t" | b"true" => Ok(Value::Bool(true)),
            b"f" | b"false" => Ok(Value::Bool(false)),
            _ => Err(ValueError::InvalidBool {
                type_oid,
                text: snippet(text),
            }),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID | oid::XID => parse_int(type_oid, text),
        oid::FLOAT4 | oid::FLOAT8 => parse_float(type_oid, text),
        // jsonb text is the server's own rendering of a parsed document, so
        // it is valid JSON; checking it again was a tenth of a snapshot's
        // CPU. `json` keeps the text as the user wrote it: checked.
        oid::JSONB => Ok(Value::Json(utf8(type_oid, text)?.to_owned())),
        oid::JSON => {
            let s = utf8(type_oid, text)?;
            // RawValue validates without building a tree, and without a
            // nesting limit, so every document PostgreSQL accepts passes.
            let raw: &serde_json::value::RawValue =
                serde_json::from_str(s).map_err(|e| ValueError::InvalidJson {
                    type_oid,
                    reason: e.to_string(),
                })?;
            Ok(Value::Json(raw.get().to_owned()))
        }
        oid::TIMESTAMP => Ok(Value::Typed(
            TextType::Timestamp(DEFAULT_TIME_PRECISION),
            timestamp(utf8(type_oid, text)?),
        )),
        oid::TIMESTAMPTZ => Ok(Value::Typed(
            TextType::TimestampTz(DEFAULT_TIME_PRECISION),
            timestamptz(utf8(type_oid, text)?),
        )),
        // Kept as the server prints them; the format's modes may render
        // them otherwise (see cdc_engine::format).
        // Money here is a snapshot's `money::numeric` text (chunk_sql.rs), or
        // an element of the log's money array, turned into its decimal by
        // `money_elements`.
        oid::NUMERIC
        | oid::MONEY
        | oid::DATE
        | oid::TIME
        | oid::TIMETZ
        | oid::INTERVAL
        | oid::BIT
        | oid::VARBIT => {
            let kind = match type_oid {
                oid::MONEY => TextType::Money,
                oid::NUMERIC => TextType::Numeric(None),
                oid::DATE => TextType::Date,
                oid::TIME => TextType::Time(DEFAULT_TIME_PRECISION),
                oid::TIMETZ => TextType::TimeTz(DEFAULT_TIME_PRECISION),
                oid::INTERVAL => TextType::Interval,
                _ => TextType::Bits,
            };
            Ok(Value::Typed(kind, utf8(type_oid, text)?.to_owned()))
        }
        oid::BYTEA => parse_bytea(type_oid, text).map(Value::Bytes),
        _ => match element_type(type_oid) {
            Some(elem) => parse_array(type_oid, elem, text),
            None => Ok(Value::Text(utf8(type_oid, text)?.to_owned())),
        },
    }
}

/// Convert one pgoutput tuple column; `money_digits` is
/// [`TableInfo::money_digits`](crate::catalog::TableInfo::money_digits).
pub fn tuple_value_to_value(
    type_oid: u32,
    v: &TupleValue,
    money_digits: u32,
) -> Result<Value, ValueError> {
    match v {
        TupleValue::Null => Ok(Value::Null),
        TupleValue::UnchangedToast => Ok(Value::Unchanged),
        TupleValue::Text(text) if type_oid == oid::MONEY => {
            money_to_decimal(type_oid, text, money_digits).map(|d| Value::Typed(TextType::Money, d))
        }
        TupleValue::Text(text) if type_oid == oid::MONEY_ARRAY => {
            money_elements(text_to_value(type_oid, text)?, money_digits)
        }
        TupleValue::Text(text) => text_to_value(type_oid, text),
        // Only sent with pgoutput's `binary` option, which cdc asks for
        // only when every column has a decoder (the decoder checks each
        // Relation).
        TupleValue::Binary(data) => crate::binary::binary_to_value(type_oid, data),
    }
}

/// `cash_out`'s locale text (`$1,234.56`, `-$0.01`, `(1.234,56 €)`) → the
/// decimal `money::numeric` prints (`1234.56`, `-0.01`): every digit it
/// writes is one of the amount, the last `digits` of them the fraction; a
/// minus or an opening parenthesis is the locale's negative sign.
pub fn money_to_decimal(type_oid: u32, text: &[u8], digits: u32) -> Result<String, ValueError> {
    let negative = text.iter().any(|&c| c == b'-' || c == b'(');
    let amount: Vec<u8> = text.iter().copied().filter(u8::is_ascii_digit).collect();
    if amount.is_empty() {
        return Err(ValueError::InvalidMoney {
            type_oid,
            text: snippet(text),
        });
    }
    let digits = digits as usize;
    // At least one integer digit and all `digits` of the fraction, no
    // leading zeros beyond those.
    let mut amount = amount;
    if amount.len() <= digits {
        let pad = digits + 1 - amount.len();
        amount.splice(0..0, std::iter::repeat_n(b'0', pad));
    }
    let significant = amount
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(amount.len());
    let start = significant.min(amount.len() - digits - 1);
    let amount = amount.get(start..).unwrap_or_default();
    let integer_len = amount.len() - digits;
    let mut out = String::with_capacity(amount.len() + 2);
    if negative {
        out.push('-');
    }
    for (i, &c) in amount.iter().enumerate() {
        if i == integer_len {
            out.push('.');
        }
        out.push(char::from(c));
    }
    Ok(out)
}

/// A money array's elements (parsed as their locale text) as decimals.
fn money_elements(value: Value, digits: u32) -> Result<Value, ValueError> {
    match value {
        Value::Text(s) | Value::Typed(TextType::Money, s) => {
            money_to_decimal(oid::MONEY, s.as_bytes(), digits)
                .map(|d| Value::Typed(TextType::Money, d))
        }
        Value::Array(items) => items
            .into_iter()
            .map(|v| money_elements(v, digits))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other),
    }
}

fn parse_int(type_oid: u32, text: &[u8]) -> Result<Value, ValueError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(Value::Int)
        .ok_or_else(|| ValueError::InvalidInt {
            type_oid,
            text: snippet(text),
        })
}

fn parse_float(type_oid: u32, text: &[u8]) -> Result<Value, ValueError> {
    let invalid = || ValueError::InvalidFloat {
        type_oid,
        text: snippet(text),
    };
    let s = std::str::from_utf8(text).map_err(|_| invalid())?;
    let f: f64 = s.parse().map_err(|_| invalid())?;
    // JSON has no NaN or infinities; they travel as the server spelled them.
    Ok(if f.is_finite() {
        Value::Float(f)
    } else {
        Value::Text(s.to_owned())
    })
}

/// Infinite and BC timestamps have no ISO-8601 form; they stay as given.
fn is_special_timestamp(s: &str) -> bool {
    s == "infinity" || s == "-infinity" || s.ends_with(" BC")
}

/// `2024-01-02 03:04:05.123456` → `2024-01-02T03:04:05.123456`.
fn timestamp(s: &str) -> String {
    match s.split_once(' ') {
        Some((date, time)) if !is_special_timestamp(s) => {
            let mut out = String::with_capacity(s.len());
            out.push_str(date);
            out.push('T');
            out.push_str(time);
            out
        }
        _ => s.to_owned(),
    }
}

/// `2024-01-02 03:04:05.123+00` → `2024-01-02T03:04:05.123Z`; other offsets
/// become `+HH:MM`. Shapes other than ISO output stay as given.
fn timestamptz(s: &str) -> String {
    if is_special_timestamp(s) {
        return s.to_owned();
    }
    let Some((date, rest)) = s.split_once(' ') else {
        return s.to_owned();
    };
    // The time part has no sign, so the first one starts the offset.
    let Some((time, offset)) = rest
        .find(['+', '-'])
        .and_then(|at| rest.split_at_checked(at))
    else {
        return s.to_owned();
    };
    let Some(offset) = iso_offset(offset) else {
        return s.to_owned();
    };
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str(date);
    out.push('T');
    out.push_str(time);
    match offset {
        IsoOffset::Utc => out.push('Z'),
        IsoOffset::Hours(o) => {
            out.push_str(o);
            out.push_str(":00");
        }
        IsoOffset::AsGiven(o) => out.push_str(o),
    }
    out
}

enum IsoOffset<'a> {
    Utc,
    /// `+HH`: needs `:00` appended.
    Hours(&'a str),
    /// `+HH:MM` or `+HH:MM:SS`.
    AsGiven(&'a str),
}

/// Classify a `±HH[:MM[:SS]]` offset; `None` for anything else.
fn iso_offset(o: &str) -> Option<IsoOffset<'_>> {
    let b = o.as_bytes();
    let sign_ok = matches!(b.first(), Some(b'+' | b'-'));
    let shape_ok = match b.len() {
        3 => two_digits(b, 1),
        6 => two_digits(b, 1) && b.get(3) == Some(&b':') && two_digits(b, 4),
        9 => {
            two_digits(b, 1)
                && b.get(3) == Some(&b':')
                && two_digits(b, 4)
                && b.get(6) == Some(&b':')
                && two_digits(b, 7)
        }
        _ => false,
    };
    if !sign_ok || !shape_ok {
        return None;
    }
    let zero = b.iter().skip(1).all(|&c| c == b'0' || c == b':');
    Some(if zero {
        IsoOffset::Utc
    } else if b.len() == 3 {
        IsoOffset::Hours(o)
    } else {
        IsoOffset::AsGiven(o)
    })
}

fn two_digits(b: &[u8], at: usize) -> bool {
    matches!(b.get(at..at + 2), Some([x, y]) if x.is_ascii_digit() && y.is_ascii_digit())
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Hex format (`\x0001ff`), or the legacy escape format (`a\\b\001`).
fn parse_bytea(type_oid: u32, text: &[u8]) -> Result<Vec<u8>, ValueError> {
    let err = |offset, reason| ValueError::InvalidBytea {
        type_oid,
        offset,
        reason,
    };
    if let Some(hex) = text.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err(err(text.len(), "odd number of hex digits"));
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let byte = match pair {
                [hi, lo] => hex_digit(*hi)
                    .zip(hex_digit(*lo))
                    .map(|(h, l)| (h << 4) | l),
                _ => None,
            };
            out.push(byte.ok_or_else(|| err(2 + 2 * i, "invalid hex digit"))?);
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        if text.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(&[a @ b'0'..=b'3', b @ b'0'..=b'7', d @ b'0'..=b'7']) =
            text.get(i + 1..i + 4)
        {
            out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (d - b'0'));
            i += 4;
        } else {
            return Err(err(i, "invalid escape"));
        }
    }
    Ok(out)
}

/// Whitespace as PostgreSQL's array parser sees it (`array_isspace`).
fn is_array_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn skip_space(text: &[u8], mut i: usize) -> usize {
    while text.get(i).copied().is_some_and(is_array_space) {
        i += 1;
    }
    i
}

#[derive(Clone, Copy)]
enum ArrayState {
    /// Just after `{`: an element, `{` or `}` may follow.
    Open,
    /// After an element: `,` or `}`.
    Item,
    /// After `,`: an element or `{`.
    Comma,
}

/// Parse an array literal (`{1,2,NULL}`, `{{"a b","c\"d"}}`, `[0:1]={1,2}`)
/// into nested `Value::Array`s, converting each element by `elem_oid`.
fn parse_array(type_oid: u32, elem_oid: u32, text: &[u8]) -> Result<Value, ValueError> {
    let err = |offset, reason| ValueError::InvalidArray {
        type_oid,
        offset,
        reason,
    };
    let mut i = skip_space(text, 0);
    if text.get(i) == Some(&b'[') {
        // Dimension decoration for non-default lower bounds; the bounds do
        // not change the values.
        let rest = text.get(i..).unwrap_or_default();
        match rest.iter().position(|&c| c == b'=' || c == b'{') {
            Some(eq) if rest.get(eq) == Some(&b'=') => i = skip_space(text, i + eq + 1),
            _ => return Err(err(i, "dimension decoration without '='")),
        }
    }
    if text.get(i) != Some(&b'{') {
        return Err(err(i, "expected '{'"));
    }
    i += 1;
    let mut stack: Vec<Vec<Value>> = vec![Vec::new()];
    let mut state = ArrayState::Open;
    // Reused for elements with escapes; others are converted in place.
    let mut scratch = Vec::new();
    loop {
        i = skip_space(text, i);
        let Some(&c) = text.get(i) else {
            return Err(err(i, "unterminated array"));
        };
        match (state, c) {
            (ArrayState::Open | ArrayState::Comma, b'{') => {
                if stack.len() >= MAX_ARRAY_DEPTH {
                    return Err(err(i, "too deeply nested"));
                }
                stack.push(Vec::new());
                state = ArrayState::Open;
                i += 1;
            }
            (ArrayState::Open | ArrayState::Item, b'}') => {
                i += 1;
                let Some(done) = stack.pop() else {
                    return Err(err(i, "unbalanced '}'"));
                };
                match stack.last_mut() {
                    Some(parent) => {
                        parent.push(Value::Array(done));
                        state = ArrayState::Item;
                    }
                    None if skip_space(text, i) == text.len() => return Ok(Value::Array(done)),
                    None => return Err(err(i, "characters after the array")),
                }
            }
            (ArrayState::Item, b',') => {
                state = ArrayState::Comma;
                i += 1;
            }
            (ArrayState::Open | ArrayState::Comma, b'"') => {
                let (raw, next) = quoted_element(text, i + 1, &mut scratch)
                    .ok_or_else(|| err(i, "unterminated quoted element"))?;
                let value = text_to_value(elem_oid, raw.resolve(text, &scratch))?;
                push_element(&mut stack, value);
                state = ArrayState::Item;
                i = next;
            }
            (ArrayState::Open | ArrayState::Comma, b',' | b'}') => {
                return Err(err(i, "missing element"));
            }
            (ArrayState::Open | ArrayState::Comma, _) => {
                let (raw, next) =
                    unquoted_element(text, i, &mut scratch).map_err(|reason| err(i, reason))?;
                let bytes = raw.resolve(text, &scratch);
                let value = if matches!(raw, Raw::Slice(..)) && bytes.eq_ignore_ascii_case(b"NULL")
                {
                    Value::Null
                } else {
                    text_to_value(elem_oid, bytes)?
                };
                push_element(&mut stack, value);
                state = ArrayState::Item;
                i = next;
            }
            (ArrayState::Item, _) => return Err(err(i, "expected ',' or '}'")),
        }
    }
}

fn push_element(stack: &mut [Vec<Value>], value: Value) {
    // The parser pushes a level before any element, so there is a last one.
    if let Some(level) = stack.last_mut() {
        level.push(value);
    }
}

/// Where an element's bytes are: a range of the literal (no escapes), or the
/// scratch buffer (escapes resolved).
enum Raw {
    Slice(usize, usize),
    Scratch,
}

impl Raw {
    fn resolve<'a>(&self, text: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        match *self {
            Raw::Slice(start, end) => text.get(start..end).unwrap_or_default(),
            Raw::Scratch => scratch,
        }
    }
}

/// A quoted element starting after its opening quote; returns its bytes and
/// the position after the closing quote, `None` if unterminated.
fn quoted_element(text: &[u8], start: usize, scratch: &mut Vec<u8>) -> Option<(Raw, usize)> {
    let rest = text.get(start..)?;
    let end = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
    if rest.get(end) == Some(&b'"') {
        return Some((Raw::Slice(start, start + end), start + end + 1));
    }
    // Slow path: escapes present.
    scratch.clear();
    scratch.extend_from_slice(rest.get(..end)?);
    let mut i = start + end;
    loop {
        match *text.get(i)? {
            b'"' => return Some((Raw::Scratch, i + 1)),
            b'\\' => {
                scratch.push(*text.get(i + 1)?);
                i += 2;
            }
            c => {
                scratch.push(c);
                i += 1;
            }
        }
    }
}

/// An unquoted element starting at its first non-space byte; returns its
/// bytes (trailing unescaped whitespace trimmed) and the position of the
/// `,` or `}` after it.
fn unquoted_element(
    text: &[u8],
    start: usize,
    scratch: &mut Vec<u8>,
) -> Result<(Raw, usize), &'static str> {
    const UNTERMINATED: &str = "unterminated array";
    const STRAY: &str = "'\"' or '{' inside an unquoted element";
    let rest = text.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&c| matches!(c, b',' | b'}' | b'"' | b'{' | b'\\'))
        .ok_or(UNTERMINATED)?;
    match rest.get(end) {
        Some(b',' | b'}') => {
            let body = rest.get(..end).unwrap_or_default();
            let trimmed = body
                .iter()
                .rposition(|&c| !is_array_space(c))
                .map_or(0, |p| p + 1);
            return Ok((Raw::Slice(start, start + trimmed), start + end));
        }
        Some(b'\\') => {}
        _ => return Err(STRAY),
    }
    // Slow path: escapes present. Escaped bytes are content even if they
    // are whitespace, so trimming stops at the last one.
    scratch.clear();
    scratch.extend_from_slice(rest.get(..end).unwrap_or_default());
    let mut keep = scratch.len();
    let mut i = start + end;
    loop {
        match *text.get(i).ok_or(UNTERMINATED)? {
            b',' | b'}' => break,
            b'"' | b'{' => return Err(STRAY),
            b'\\' => {
                scratch.push(*text.get(i + 1).ok_or(UNTERMINATED)?);
                keep = scratch.len();
                i += 2;
            }
            c => {
                scratch.push(c);
                if !is_array_space(c) {
                    keep = scratch.len();
                }
                i += 1;
            }
        }
    }
    scratch.truncate(keep);
    Ok((Raw::Scratch, i))
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
