//! PostgreSQL types as the engine's source-neutral column kinds, and column
//! defaults as values: what the encoder's Connect schemas declare
//! (docs/architecture.md, "Connect schemas").

use bytes::Bytes;
use cdc_engine::{ColumnKind, Value, DEFAULT_TIME_PRECISION};

use crate::pgoutput::TupleValue;
use crate::types::{element_type, oid, tuple_value_to_value};

/// The longest a `varbit` without a limit may be, as Debezium declares it.
const UNLIMITED_BITS: u32 = 2_147_483_647;

/// The kind of a column whose values are converted by `value_oid` (a
/// domain's base type; see
/// [`ColumnInfo::value_oid`](crate::catalog::ColumnInfo::value_oid)),
/// declared with `type_mod`; `enum_labels` when the type is an enum.
pub fn column_kind(value_oid: u32, type_mod: i32, enum_labels: Option<&[String]>) -> ColumnKind {
    if let Some(labels) = enum_labels {
        return ColumnKind::Enum {
            allowed: labels.to_vec(),
        };
    }
    if let Some(element) = element_type(value_oid) {
        // An array's modifier is its elements'.
        return ColumnKind::Array(Box::new(column_kind(element, type_mod, None)));
    }
    let precision =
        || u8::try_from(type_mod).map_or(DEFAULT_TIME_PRECISION, |p| p.min(DEFAULT_TIME_PRECISION));
    match value_oid {
        oid::BOOL => ColumnKind::Boolean,
        oid::INT2 => ColumnKind::Int16,
        oid::INT4 => ColumnKind::Int32,
        oid::INT8 | oid::OID | oid::XID => ColumnKind::Int64,
        oid::FLOAT4 => ColumnKind::Float32,
        oid::FLOAT8 => ColumnKind::Float64,
        // numeric's modifier is (precision << 16 | scale) + 4.
        oid::NUMERIC => match u32::try_from(type_mod - 4) {
            Ok(m) => ColumnKind::Decimal {
                precision: Some((m >> 16) & 0xffff),
                scale: Some(m & 0xffff),
            },
            Err(_) => ColumnKind::Decimal {
                precision: None,
                scale: None,
            },
        },
        oid::MONEY => ColumnKind::Money,
        oid::DATE => ColumnKind::Date,
        oid::TIME => ColumnKind::Time {
            precision: precision(),
        },
        oid::TIMETZ => ColumnKind::TimeTz,
        oid::TIMESTAMP => ColumnKind::Timestamp {
            precision: precision(),
        },
        oid::TIMESTAMPTZ => ColumnKind::TimestampTz,
        oid::INTERVAL => ColumnKind::Interval,
        oid::BYTEA => ColumnKind::Bytes,
        // `bit` without a length is bit(1).
        oid::BIT => ColumnKind::Bits {
            length: u32::try_from(type_mod).unwrap_or(1),
        },
        oid::VARBIT => ColumnKind::Bits {
            length: u32::try_from(type_mod).unwrap_or(UNLIMITED_BITS),
        },
        oid::JSON | oid::JSONB => ColumnKind::Json,
        oid::XML => ColumnKind::Xml,
        oid::UUID => ColumnKind::Uuid,
        oid::POINT => ColumnKind::Point,
        oid::TSVECTOR => ColumnKind::NamedString("io.debezium.data.Tsvector"),
        _ => ColumnKind::String,
    }
}

/// The kind of an extension's type, which has no fixed oid, by its name as
/// `format_type` spells it (schema-qualified when its schema is not on the
/// search path): `hstore` and `ltree`, as Debezium knows them.
pub fn extension_kind(type_sql: &str) -> Option<ColumnKind> {
    let name = type_sql.rsplit('.').next().unwrap_or(type_sql);
    match name {
        "hstore" => Some(ColumnKind::HStore),
        "ltree" => Some(ColumnKind::NamedString("io.debezium.data.Ltree")),
        _ => None,
    }
}

/// The default of a column as a value, from its expression as
/// `pg_get_expr` prints it, the way Debezium declares it: a literal
/// (`'-1'::integer`, `1.5`, `true`, `'x'::text`) is its value; an
/// expression it cannot evaluate (`now()`, `nextval(…)`, `CURRENT_DATE`)
/// is the zero of the type (0, the epoch, the nil uuid, ''); `NULL`, and
/// arrays and enums, have none.
pub fn column_default(
    expr: &str,
    value_oid: u32,
    type_mod: i32,
    money_digits: u32,
    kind: &ColumnKind,
) -> Option<Value> {
    let expr = expr.trim();
    if expr.is_empty()
        || expr.starts_with("NULL")
        || matches!(kind, ColumnKind::Array(_) | ColumnKind::Enum { .. })
    {
        return None;
    }
    let text = match literal(expr) {
        Some(text) => text,
        None => zero(kind)?.to_owned(),
    };
    let value = tuple_value_to_value(
        value_oid,
        &TupleValue::Text(Bytes::from(text.into_bytes())),
        money_digits,
    )
    .ok()?;
    Some(value.with_type_mod(type_mod))
}

/// The text of a literal default: `'it''s'::text` → `it's`, `-1.5` and
/// `true` as they are; `None` for anything else.
fn literal(expr: &str) -> Option<String> {
    if let Some(quoted) = expr.strip_prefix('\'') {
        let mut text = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '\'' {
                text.push(c);
                continue;
            }
            if chars.peek().is_some_and(|(_, c)| *c == '\'') {
                chars.next();
                text.push('\'');
                continue;
            }
            // The closing quote: only a cast to a type name may follow.
            let rest = &quoted[at + 1..];
            let cast = rest.strip_prefix("::").is_some_and(|ty| {
                !ty.contains("::")
                    && ty
                        .chars()
                        .all(|c| c.is_alphanumeric() || " _.,\"()[]".contains(c))
            });
            return (rest.is_empty() || cast).then_some(text);
        }
        return None;
    }
    let number = expr.strip_prefix('-').unwrap_or(expr);
    let numeric = !number.is_empty()
        && number.starts_with(|c: char| c.is_ascii_digit())
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    (numeric || expr == "true" || expr == "false").then(|| expr.to_owned())
}

/// The text of a kind's zero, for a default that is an expression.
fn zero(kind: &ColumnKind) -> Option<&'static str> {
    Some(match kind {
        ColumnKind::Boolean => "false",
        ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 => "0",
        ColumnKind::Float32 | ColumnKind::Float64 | ColumnKind::Decimal { .. } => "0",
        ColumnKind::String => "",
        ColumnKind::Uuid => "00000000-0000-0000-0000-000000000000",
        ColumnKind::Date => "1970-01-01",
        ColumnKind::Time { .. } => "00:00:00",
        ColumnKind::Timestamp { .. } => "1970-01-01 00:00:00",
        ColumnKind::TimestampTz => "1970-01-01 00:00:00+00",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_read_and_expressions_are_zero() {
        assert_eq!(literal("'it''s'::text").as_deref(), Some("it's"));
        assert_eq!(literal("'-1'::integer").as_deref(), Some("-1"));
        assert_eq!(literal("1.5").as_deref(), Some("1.5"));
        assert_eq!(literal("false").as_deref(), Some("false"));
        assert_eq!(literal("now()"), None);
        assert_eq!(literal("upper('x'::text)"), None);
        assert_eq!(literal("'a'::text || 'b'::text"), None);
        let int = column_kind(oid::INT4, -1, None);
        assert_eq!(
            column_default("'-1'::integer", oid::INT4, -1, 2, &int),
            Some(Value::Int(-1))
        );
        assert_eq!(
            column_default("nextval('s'::regclass)", oid::INT4, -1, 2, &int),
            Some(Value::Int(0))
        );
        assert_eq!(
            column_default("NULL::integer", oid::INT4, -1, 2, &int),
            None
        );
        let text = column_kind(oid::TEXT, -1, None);
        assert_eq!(
            column_default("upper('x'::text)", oid::TEXT, -1, 2, &text),
            Some(Value::Text(String::new()))
        );
    }

    #[test]
    fn extension_types_are_known_by_name_schema_qualified_or_not() {
        assert_eq!(extension_kind("hstore"), Some(ColumnKind::HStore));
        assert_eq!(extension_kind("ext.hstore"), Some(ColumnKind::HStore));
        assert_eq!(
            extension_kind("ltree"),
            Some(ColumnKind::NamedString("io.debezium.data.Ltree"))
        );
        assert_eq!(extension_kind("text"), None);
        assert_eq!(column_kind(oid::POINT, -1, None), ColumnKind::Point);
    }

    #[test]
    fn types_map_to_kinds() {
        assert_eq!(
            column_kind(oid::NUMERIC, (12 << 16 | 3) + 4, None),
            ColumnKind::Decimal {
                precision: Some(12),
                scale: Some(3)
            }
        );
        assert_eq!(
            column_kind(1182, -1, None),
            ColumnKind::Array(Box::new(ColumnKind::Date))
        );
        assert_eq!(
            column_kind(oid::TIME, 3, None),
            ColumnKind::Time { precision: 3 }
        );
        assert_eq!(
            column_kind(oid::VARBIT, -1, None),
            ColumnKind::Bits {
                length: UNLIMITED_BITS
            }
        );
        let labels = ["sad".to_string(), "happy".to_string()];
        assert_eq!(
            column_kind(99999, -1, Some(&labels)),
            ColumnKind::Enum {
                allowed: labels.to_vec()
            }
        );
    }
}
