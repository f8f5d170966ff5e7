//! `_id` values as the scheduler's opaque chunk bounds, and BSON's
//! comparison order, in which an `_id` index and so the chunks run.
//!
//! A collection's `_id`s may mix types (numbers, strings, ObjectIds…).
//! Query operators compare within one type only (`{_id: {$gt: 5}}` never
//! matches a string), so chunks bounded by `$gt`/`$lte` would skip every
//! `_id` of another type than the bounds. The chunk reader bounds the
//! `_id` index instead (`hint`, `min`, `max`), which runs in BSON order
//! across types; [`compare`] is that order, for the bounds the reader
//! checks itself (dropping the previous chunk's last row, which `min`
//! includes).

use std::cmp::Ordering;

use bson::{Bson, Document};

/// A bound as text: the value's canonical extended JSON, which keeps its
/// exact type (`1`, `1L` and `1.0` are three different `_id`s to a
/// client, even if the index orders them equal).
pub fn encode(value: &Bson) -> String {
    value.clone().into_canonical_extjson().to_string()
}

/// A bound back from [`encode`].
pub fn decode(text: &str) -> Result<Bson, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("chunk bound {text:?}: {e}"))?;
    Bson::try_from(json).map_err(|e| format!("chunk bound {text:?}: {e}"))
}

/// MongoDB's canonical type rank (`canonicalizeBSONType`): numbers of all
/// widths share one rank, as do strings and symbols.
fn rank(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// A number for comparison. Integers stay exact; a Decimal128 is read
/// through its decimal text (exact for the values `_id`s hold in practice,
/// beyond `f64`'s precision an approximation).
enum Number {
    Int(i64),
    Float(f64),
}

fn number(value: &Bson) -> Option<Number> {
    Some(match value {
        Bson::Int32(n) => Number::Int(i64::from(*n)),
        Bson::Int64(n) => Number::Int(*n),
        Bson::Double(d) => Number::Float(*d),
        Bson::Decimal128(d) => {
            let text = d.to_string();
            Number::Float(match text.as_str() {
                "NaN" | "-NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().ok()?,
            })
        }
        _ => return None,
    })
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => a.cmp(b),
        (Number::Float(a), Number::Float(b)) => compare_floats(*a, *b),
        (Number::Int(a), Number::Float(b)) => compare_int_float(*a, *b),
        (Number::Float(a), Number::Int(b)) => compare_int_float(*b, *a).reverse(),
    }
}

/// NaN sorts before every number, as in MongoDB.
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact, also where `i64` does not fit `f64`.
fn compare_int_float(a: i64, b: f64) -> Ordering {
    if b.is_nan() {
        return Ordering::Greater;
    }
    // 2^63 as f64: every i64 is below it, and at or above -2^63.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if b >= LIMIT {
        return Ordering::Less;
    }
    if b < -LIMIT {
        return Ordering::Greater;
    }
    let whole = b.trunc();
    // In range: the cast is exact for a whole f64 of this size.
    let b_int = whole as i64;
    match a.cmp(&b_int) {
        Ordering::Equal if b > whole => Ordering::Less,
        Ordering::Equal if b < whole => Ordering::Greater,
        other => other,
    }
}

/// BSON's comparison order (the `_id` index's order under the simple
/// collation).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let by_rank = rank(a).cmp(&rank(b));
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                let c = compare(x, y);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        // Length first, then subtype, then bytes.
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .cmp(&y.pattern)
            .then_with(|| x.options.cmp(&y.options)),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => compare_numbers(&x, &y),
            // MinKey, MaxKey, null, undefined: one value each; the rare
            // rest (DBPointer, code with scope) by their text.
            _ => format!("{a:?}").cmp(&format!("{b:?}")),
        },
    }
}

/// Field by field: each element's type rank, then its name, then its value;
/// a prefix sorts first.
fn compare_documents(a: &Document, b: &Document) -> Ordering {
    let mut b_iter = b.iter();
    for (a_key, a_value) in a {
        let Some((b_key, b_value)) = b_iter.next() else {
            return Ordering::Greater;
        };
        let c = rank(a_value)
            .cmp(&rank(b_value))
            .then_with(|| a_key.as_bytes().cmp(b_key.as_bytes()))
            .then_with(|| compare(a_value, b_value));
        if c != Ordering::Equal {
            return c;
        }
    }
    if b_iter.next().is_some() {
        Ordering::Less
    } else {
        Ordering::Equal
    }
}

/// The rows of one chunk from an index range read: `fetched` came from
/// `[after, max)` in index order (`min` is inclusive, `max` exclusive),
/// `max_row` is the document at `max` itself when the range ran out. Drops
/// `after` (the previous chunk's last row) and keeps at most `limit`.
/// Returns the rows and whether the collection is done up to `max`.
pub fn chunk_rows(
    after: Option<&Bson>,
    fetched: Vec<Document>,
    limit: usize,
) -> (Vec<Document>, bool) {
    let mut rows: Vec<Document> = fetched
        .into_iter()
        .filter(|doc| match (after, doc.get("_id")) {
            (Some(after), Some(id)) => compare(id, after) == Ordering::Greater,
            _ => true,
        })
        .collect();
    let full = rows.len() >= limit;
    rows.truncate(limit);
    (rows, !full)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
