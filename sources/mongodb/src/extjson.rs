//! BSON → JSON text exactly as Debezium 3.6.3's MongoDB connector writes it
//! (MongoDB Java driver 5.9.2's `JsonWriter`), in the three settings the
//! connector uses:
//!
//! * [`Settings::Compact`] — `JsonSerialization.COMPACT_JSON_SETTINGS`:
//!   `JsonMode.STRICT` (the legacy extended JSON: `{"$numberLong": "7"}`,
//!   `{"$date": 1700000000000}`, `{"$binary": "…","$type": "00"}`, bare
//!   `NaN`), `indent(true)` with empty indent and newline, so members are
//!   joined by `,` alone. Debezium's `after`/`before` and `source.lsid`.
//! * [`Settings::Simple`] — `JsonSerialization.SIMPLE_JSON_SETTINGS`:
//!   `JsonMode.RELAXED` (`7`, `{"$date": "2023-11-14T22:13:20Z"}`,
//!   `{"$numberDouble": "NaN"}`), the same `,` joins. The key's `id`
//!   (`getDocumentId` renders `{"_": <_id>}` and cuts the value out).
//! * [`Settings::Default`] — `BsonDocument.toJson()`: relaxed, members joined
//!   by `, `. `updateDescription.updatedFields`.
//!
//! Every BSON type is covered; the golden test (`tests/golden.rs`) compares
//! these functions with Debezium's own output byte for byte.

use base64::Engine as _;
use bson::{Bson, Document};

use crate::java_text;

/// Which of Debezium's `JsonWriterSettings` to write with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// `COMPACT_JSON_SETTINGS`: strict mode, `,` between members.
    Compact,
    /// `SIMPLE_JSON_SETTINGS`: relaxed mode, `,` between members.
    Simple,
    /// `BsonDocument.toJson()`: relaxed mode, `, ` between members.
    Default,
}

impl Settings {
    fn relaxed(self) -> bool {
        !matches!(self, Settings::Compact)
    }

    fn separator(self) -> &'static str {
        match self {
            Settings::Default => ", ",
            Settings::Compact | Settings::Simple => ",",
        }
    }
}

/// Debezium's `after`/`before` of a document (`JsonSerialization.getDocumentValue`).
pub fn document_json(doc: &Document) -> String {
    let mut out = String::new();
    write_document(doc, Settings::Compact, &mut out);
    out
}

/// Debezium's key `id`: the document key's `_id` in the simple settings,
/// `null` without one (`JsonSerialization.getDocumentId`).
pub fn id_json(document_key: &Document) -> String {
    let mut out = String::new();
    write_value(
        document_key.get("_id").unwrap_or(&Bson::Null),
        Settings::Simple,
        &mut out,
    );
    out
}

/// Debezium's `updateDescription.updatedFields` (`BsonDocument.toJson()`).
pub fn updated_fields_json(updated_fields: &Document) -> String {
    let mut out = String::new();
    write_document(updated_fields, Settings::Default, &mut out);
    out
}

/// Appends `doc` as a JSON object.
pub fn write_document(doc: &Document, settings: Settings, out: &mut String) {
    let mut object = Object::start(settings, out);
    for (name, value) in doc {
        object.name(name);
        write_value(value, settings, object.out);
    }
    object.end();
}

/// Appends one value.
pub fn write_value(value: &Bson, settings: Settings, out: &mut String) {
    let relaxed = settings.relaxed();
    match value {
        Bson::Double(v) if relaxed && !v.is_finite() => {
            let mut text = String::new();
            java_text::write_double(*v, &mut text);
            wrapped_string(settings, out, "$numberDouble", &text);
        }
        Bson::Double(v) => java_text::write_double(*v, out),
        Bson::String(s) => write_string(s, out),
        Bson::Document(doc) => write_document(doc, settings, out),
        Bson::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(settings.separator());
                }
                write_value(item, settings, out);
            }
            out.push(']');
        }
        Bson::Binary(binary) => {
            let base64 = base64::engine::general_purpose::STANDARD.encode(&binary.bytes);
            // `String.format("%02X", type)`.
            let subtype = format!("{:02X}", u8::from(binary.subtype));
            let mut object = Object::start(settings, out);
            object.name("$binary");
            if relaxed {
                let mut inner = Object::start(settings, object.out);
                inner.name("base64");
                write_string(&base64, inner.out);
                inner.name("subType");
                write_string(&subtype, inner.out);
                inner.end();
            } else {
                write_string(&base64, object.out);
                object.name("$type");
                write_string(&subtype, object.out);
            }
            object.end();
        }
        Bson::Undefined => wrapped_raw(settings, out, "$undefined", "true"),
        Bson::ObjectId(id) => wrapped_string(settings, out, "$oid", &id.to_hex()),
        Bson::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Bson::DateTime(dt) => {
            let ms = dt.timestamp_millis();
            match java_text::iso_instant(ms).filter(|_| relaxed) {
                Some(iso) => wrapped_string(settings, out, "$date", &iso),
                None if relaxed => {
                    let mut object = Object::start(settings, out);
                    object.name("$date");
                    wrapped_string(settings, object.out, "$numberLong", &ms.to_string());
                    object.end();
                }
                None => wrapped_raw(settings, out, "$date", &ms.to_string()),
            }
        }
        Bson::Null => out.push_str("null"),
        Bson::RegularExpression(regex) => {
            // `BsonRegularExpression` keeps its options sorted.
            let mut options: Vec<char> = regex.options.chars().collect();
            options.sort_unstable();
            let options: String = options.into_iter().collect();
            let mut object = Object::start(settings, out);
            if relaxed {
                object.name("$regularExpression");
                let mut inner = Object::start(settings, object.out);
                inner.name("pattern");
                write_string(&regex.pattern, inner.out);
                inner.name("options");
                write_string(&options, inner.out);
                inner.end();
            } else {
                object.name("$regex");
                write_string(&regex.pattern, object.out);
                object.name("$options");
                write_string(&options, object.out);
            }
            object.end();
        }
        Bson::DbPointer(pointer) => {
            let (namespace, id) = db_pointer_parts(pointer);
            let mut object = Object::start(settings, out);
            object.name("$ref");
            write_string(&namespace, object.out);
            object.name("$id");
            wrapped_string(settings, object.out, "$oid", &id);
            object.end();
        }
        Bson::JavaScriptCode(code) => wrapped_string(settings, out, "$code", code),
        Bson::JavaScriptCodeWithScope(js) => {
            let mut object = Object::start(settings, out);
            object.name("$code");
            write_string(&js.code, object.out);
            object.name("$scope");
            write_document(&js.scope, settings, object.out);
            object.end();
        }
        Bson::Symbol(symbol) => wrapped_string(settings, out, "$symbol", symbol),
        Bson::Int32(i) => out.push_str(&i.to_string()),
        Bson::Timestamp(ts) => {
            let mut object = Object::start(settings, out);
            object.name("$timestamp");
            let mut inner = Object::start(settings, object.out);
            inner.name("t");
            inner.out.push_str(&ts.time.to_string());
            inner.name("i");
            inner.out.push_str(&ts.increment.to_string());
            inner.end();
            object.end();
        }
        Bson::Int64(i) if relaxed => out.push_str(&i.to_string()),
        Bson::Int64(i) => wrapped_string(settings, out, "$numberLong", &i.to_string()),
        Bson::Decimal128(d) => wrapped_string(
            settings,
            out,
            "$numberDecimal",
            &java_text::decimal128_to_string(d.bytes()),
        ),
        Bson::MinKey => wrapped_raw(settings, out, "$minKey", "1"),
        Bson::MaxKey => wrapped_raw(settings, out, "$maxKey", "1"),
    }
}

/// A DBPointer's namespace and ObjectId hex: the bson crate keeps both
/// private, but writes them into its extended JSON.
fn db_pointer_parts(pointer: &bson::DbPointer) -> (String, String) {
    let json = Bson::DbPointer(pointer.clone()).into_relaxed_extjson();
    let inner = &json["$dbPointer"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (text(&inner["$ref"]), text(&inner["$id"]["$oid"]))
}

/// An open JSON object: `name` writes the separator (after the first
/// member) and `"name": `, the caller the value.
struct Object<'a> {
    out: &'a mut String,
    separator: &'static str,
    first: bool,
}

impl<'a> Object<'a> {
    fn start(settings: Settings, out: &'a mut String) -> Self {
        out.push('{');
        Object {
            out,
            separator: settings.separator(),
            first: true,
        }
    }

    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push_str(self.separator);
        }
        self.first = false;
        write_string(name, self.out);
        self.out.push_str(": ");
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// `{"<name>": "<text>"}`.
fn wrapped_string(settings: Settings, out: &mut String, name: &str, text: &str) {
    let mut object = Object::start(settings, out);
    object.name(name);
    write_string(text, object.out);
    object.end();
}

/// `{"<name>": <raw>}`.
fn wrapped_raw(settings: Settings, out: &mut String, name: &str, raw: &str) {
    let mut object = Object::start(settings, out);
    object.name(name);
    object.out.push_str(raw);
    object.end();
}

/// A JSON string as `StrictCharacterStreamJsonWriter.writeStringHelper`
/// writes it: short escapes for `" \ \b \f \n \r \t`, UTF-16 code units of
/// letters, digits, numbers, punctuation, symbols and spaces as they are,
/// every other code unit (controls, marks, format characters, surrogate
/// halves of characters beyond the BMP, …) as `\uxxxx` in lower-case hex.
pub fn write_string(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Printable ASCII is always copied: the common case, no lookup.
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                let units = c.encode_utf16(&mut units);
                if let [unit] = units {
                    if java_text::is_raw(*unit) {
                        out.push(c);
                        continue;
                    }
                }
                for unit in units.iter() {
                    out.push_str("\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
                    }
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
#[path = "extjson_tests.rs"]
mod tests;
