//! Two PostgreSQL types Debezium writes other than as their text, in its
//! modes: `point` as its `io.debezium.data.geometry.Point` struct, and
//! `hstore` as a JSON object in a string (`hstore.handling.mode=json`, its
//! default). Both come from the server as text; `None` means a text this
//! cannot read, which is then written as it is.

use base64::Engine as _;

/// `(x,y)` as `{"x":…,"y":…,"wkb":"<base64>","srid":null}`: the WKB is the
/// point's little-endian well-known binary, as Debezium builds it.
pub fn write_point(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (x, y) = inner.split_once(',')?;
    let (x, y): (f64, f64) = (x.trim().parse().ok()?, y.trim().parse().ok()?);
    let mut wkb = Vec::with_capacity(21);
    wkb.push(1); // little-endian
    wkb.extend_from_slice(&1u32.to_le_bytes()); // Point
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    out.extend_from_slice(b"{\"x\":");
    write_double(x, out);
    out.extend_from_slice(b",\"y\":");
    write_double(y, out);
    out.extend_from_slice(b",\"wkb\":\"");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(&wkb)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"srid\":null}");
    Some(())
}

/// A double as JSON; the infinities and NaN, which JSON has no number for,
/// as JsonConverter writes them: strings.
fn write_double(value: f64, out: &mut Vec<u8>) {
    if value.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &value);
    } else if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// The pairs of hstore's text (`"k"=>"v", "n"=>NULL`), in its order.
fn hstore_pairs(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = quoted(rest)?;
        rest = after.trim_start().strip_prefix("=>")?.trim_start();
        let value = if let Some(after) = rest.strip_prefix("NULL") {
            rest = after;
            None
        } else {
            let (value, after) = quoted(rest)?;
            rest = after;
            Some(value)
        };
        pairs.push((key, value));
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(pairs)
}

/// A double-quoted string with backslash escapes, and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &body[at + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// Java's `String.hashCode`, over UTF-16 units.
fn java_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The order a `java.util.HashMap` filled in `keys`' order iterates them:
/// by bucket of the spread hash in the table it grew to (16, doubled
/// whenever it is more than three quarters full), in insertion order within
/// a bucket. pgjdbc's `HStoreConverter` parses into one, and Jackson writes
/// it in that order.
fn java_hash_map_order(keys: &[&str]) -> Vec<usize> {
    let mut capacity = 16usize;
    while keys.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&at| {
        let h = java_hash(keys[at]) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    });
    order
}

/// hstore's text as Debezium's JSON object text, written as a JSON string
/// by `write_str`.
pub fn write_hstore_json(
    text: &str,
    out: &mut Vec<u8>,
    write_str: fn(&str, &mut Vec<u8>),
) -> Option<()> {
    let pairs = hstore_pairs(text)?;
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let mut object = Vec::with_capacity(text.len() + 2);
    object.push(b'{');
    for (i, at) in java_hash_map_order(&keys).into_iter().enumerate() {
        if i > 0 {
            object.push(b',');
        }
        let (key, value) = &pairs[at];
        write_str(key, &mut object);
        object.push(b':');
        match value {
            Some(value) => write_str(value, &mut object),
            None => object.extend_from_slice(b"null"),
        }
    }
    object.push(b'}');
    write_str(std::str::from_utf8(&object).ok()?, out);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_str(text: &str, out: &mut Vec<u8>) {
        let _ = serde_json::to_writer(out, text);
    }

    #[test]
    fn a_point_is_debeziums_struct_with_its_wkb() {
        let mut out = Vec::new();
        write_point("(1.5,-2)", &mut out).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"x":1.5,"y":-2.0,"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAADA","srid":null}"#
        );
        assert!(write_point("1,2", &mut Vec::new()).is_none());
    }

    #[test]
    fn hstore_becomes_a_json_object_in_java_hash_map_order() {
        assert_eq!(java_hash("zz"), 3904);
        // "hello".hashCode() in Java.
        assert_eq!(java_hash("hello"), 99_162_322);
        let mut out = Vec::new();
        write_hstore_json(r#""a"=>"2", "b"=>NULL, "zz"=>"q\"x""#, &mut out, json_str)
            .unwrap_or_default();
        let text: String = serde_json::from_slice(&out).unwrap_or_default();
        // "zz" hashes to bucket 0, "a" to 1, "b" to 2.
        assert_eq!(text, r#"{"zz":"q\"x","a":"2","b":null}"#);
        let mut empty = Vec::new();
        write_hstore_json("", &mut empty, json_str).unwrap_or_default();
        assert_eq!(empty, br#""{}""#);
        assert!(write_hstore_json(r#""a"=>"#, &mut Vec::new(), json_str).is_none());
        // 20 keys outgrow 16 buckets; the order java.util.HashMap printed
        // for them, put in this order (Java 17).
        let keys = [
            "a", "b", "zz", "key10", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9",
            "k10", "k11", "k12", "héllo", "Aa", "BB",
        ];
        let order: Vec<&str> = java_hash_map_order(&keys)
            .into_iter()
            .map(|at| keys[at])
            .collect();
        assert_eq!(
            order.join(","),
            "zz,Aa,BB,a,b,k0,k1,k2,k3,k4,k5,k11,k6,k10,héllo,k7,key10,k8,k12,k9"
        );
    }
}
