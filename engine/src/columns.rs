//! Column filters and masks, as Debezium's `column.include.list`,
//! `column.exclude.list`, `column.truncate.to.N.chars`,
//! `column.mask.with.N.chars` and `column.mask.hash[.v2].ALG.with.salt.SALT`
//! (README, "Column filters and masks"): the values of personal data never
//! leave the engine.
//!
//! A stage on the snapshot processor's output, so every event passes it, from the log
//! and from snapshots alike, whatever the sink. The `before` and `after`
//! rows are rewritten; keys are not (Debezium keeps them too). Rules name
//! columns as `schema.table.column`, exactly or with `*` and `?`; a rule
//! applies to a column by the table's current schema, which the log item
//! stream keeps up to date. Pure logic, no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::Digest as _;

use crate::event::Event;
use crate::pipeline::Stage;
use crate::schema::{TableSchema, TableShapes};
use crate::source::LogItem;
use crate::value::{Row, Value};
use cdc_signal::TableRef;

/// A hash for `column.mask.hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Java's `MessageDigest` names, as Debezium's property spells them.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA-256" | "SHA256" => Some(HashAlgorithm::Sha256),
            "SHA-384" | "SHA384" => Some(HashAlgorithm::Sha384),
            "SHA-512" | "SHA512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => sha2::Sha256::new()
                .chain_update(salt)
                .chain_update(data)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::new()
                .chain_update(salt)
                .chain_update(data)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::new()
                .chain_update(salt)
                .chain_update(data)
                .finalize()
                .to_vec(),
        }
    }
}

/// What a rule does to a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// `column.mask.with.N.chars`: N asterisks, null included.
    Chars(usize),
    /// `column.truncate.to.N.chars`: at most N characters, counted as
    /// Java counts them (UTF-16 units), never splitting a character.
    Truncate(usize),
    /// `column.mask.hash.ALG.with.salt.SALT`: the hex digest, cut to the
    /// column's declared length; null stays null. `v2` hashes the text's
    /// UTF-8 bytes; version 1 hashes the Java serialization of the string,
    /// as Debezium's default does.
    Hash {
        algorithm: HashAlgorithm,
        salt: String,
        v2: bool,
    },
}

/// The rules of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnRules {
    /// When set, only these columns are kept (Debezium's
    /// `column.include.list`; never with `exclude`).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub masks: Vec<(String, Mask)>,
}

impl ColumnRules {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.masks.is_empty()
    }
}

/// `*` any run of characters, `?` one; the rest literal.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Keep,
    Drop,
    Mask(Mask, Option<usize>),
}

/// What happens to the rows of one column list of one table.
struct Plan {
    columns: Arc<[String]>,
    /// `None`: every column is kept as it is.
    rewrite: Option<(Arc<[String]>, Vec<Action>)>,
}

pub struct ColumnFilter {
    rules: ColumnRules,
    shapes: TableShapes,
    plans: HashMap<TableRef, Vec<Plan>>,
}

/// Whether a type (as SQL spells it) holds text, and its declared length.
fn text_type(type_name: &str) -> Option<Option<usize>> {
    let base = type_name.split('(').next().unwrap_or_default().trim();
    let length = type_name
        .split_once('(')
        .and_then(|(_, rest)| rest.trim_end_matches(')').trim().parse().ok());
    matches!(
        base,
        "text" | "character varying" | "varchar" | "character" | "char" | "bpchar" | "name"
    )
    .then_some(length)
}

impl ColumnFilter {
    /// `schemas`: the captured tables' shapes at start; later shapes come
    /// with the log.
    pub fn new(rules: ColumnRules, schemas: Vec<Arc<TableSchema>>) -> Self {
        ColumnFilter {
            rules,
            shapes: TableShapes::new(schemas),
            plans: HashMap::new(),
        }
    }

    fn action(&self, table: &TableRef, column: &str) -> Action {
        let name = format!("{}.{}.{column}", table.schema, table.name);
        let included =
            self.rules.include.is_empty() || self.rules.include.iter().any(|p| glob(p, &name));
        if !included || self.rules.exclude.iter().any(|p| glob(p, &name)) {
            return Action::Drop;
        }
        let Some((_, mask)) = self.rules.masks.iter().find(|(p, _)| glob(p, &name)) else {
            return Action::Keep;
        };
        let declared = self
            .shapes
            .get(table)
            .and_then(|s| s.columns.iter().find(|c| c.name == column))
            .map(|c| c.type_name.clone());
        match declared.as_deref().map(text_type) {
            Some(Some(length)) => Action::Mask(mask.clone(), length),
            // Debezium masks string columns only.
            Some(None) => {
                tracing::warn!(
                    column = %name,
                    "a column mask names {name}, which is not a text column: its values are left as they are"
                );
                Action::Keep
            }
            // Not in the schema (yet): masked without a length, never shown.
            None => Action::Mask(mask.clone(), None),
        }
    }

    fn plan(&mut self, table: &TableRef, columns: &Arc<[String]>) -> usize {
        if let Some(at) = self
            .plans
            .get(table)
            .and_then(|plans| plans.iter().position(|p| Arc::ptr_eq(&p.columns, columns)))
        {
            return at;
        }
        let actions: Vec<Action> = columns.iter().map(|c| self.action(table, c)).collect();
        let rewrite = actions.iter().any(|a| *a != Action::Keep).then(|| {
            let kept: Vec<String> = columns
                .iter()
                .zip(&actions)
                .filter(|(_, a)| **a != Action::Drop)
                .map(|(c, _)| c.clone())
                .collect();
            (Arc::from(kept), actions)
        });
        let plans = self.plans.entry(table.clone()).or_default();
        // Column lists change only with the schema: a few per table.
        if plans.len() >= 8 {
            plans.remove(0);
        }
        plans.push(Plan {
            columns: columns.clone(),
            rewrite,
        });
        plans.len() - 1
    }

    fn rewrite_row(&mut self, table: &TableRef, row: &mut Option<Row>) {
        let Some(current) = row.as_ref() else {
            return;
        };
        let at = self.plan(table, &current.columns);
        let Some((columns, actions)) = self
            .plans
            .get(table)
            .and_then(|plans| plans.get(at))
            .and_then(|p| p.rewrite.as_ref())
        else {
            return;
        };
        let Some(old) = row.take() else {
            return;
        };
        let values = old
            .values
            .into_iter()
            .zip(actions)
            .filter_map(|(value, action)| match action {
                Action::Keep => Some(value),
                Action::Drop => None,
                Action::Mask(mask, length) => Some(masked(mask, *length, value)),
            })
            .collect();
        *row = Some(Row::new(columns.clone(), values));
    }

    fn apply(&mut self, out: &mut [Event]) {
        for event in out {
            let Some(table) = event.table.clone() else {
                continue;
            };
            self.rewrite_row(&table, &mut event.before);
            self.rewrite_row(&table, &mut event.after);
        }
    }
}

fn masked(mask: &Mask, length: Option<usize>, value: Value) -> Value {
    match (mask, value) {
        (Mask::Chars(n), Value::Text(_) | Value::Null) => Value::Text("*".repeat(*n)),
        (Mask::Truncate(n), Value::Text(mut text)) => {
            let mut units = 0;
            let cut = text
                .char_indices()
                .find(|(_, c)| {
                    units += c.len_utf16();
                    units > *n
                })
                .map(|(at, _)| at);
            if let Some(at) = cut {
                text.truncate(at);
            }
            Value::Text(text)
        }
        (
            Mask::Hash {
                algorithm,
                salt,
                v2,
            },
            Value::Text(text),
        ) => {
            let data = if *v2 {
                text.into_bytes()
            } else {
                java_serialized(&text)
            };
            let digest = algorithm.digest(salt.as_bytes(), &data);
            let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(length) = length {
                hex.truncate(length);
            }
            Value::Text(hex)
        }
        // Null stays null under a hash; unchanged TOAST shows nothing.
        (_, other) => other,
    }
}

/// `ObjectOutputStream.writeObject(String)`: the stream header, then
/// `TC_STRING` with a 2-byte length or `TC_LONGSTRING` with an 8-byte one,
/// in Java's modified UTF-8. Debezium's version 1 hash digests this.
fn java_serialized(text: &str) -> Vec<u8> {
    let mut utf = Vec::with_capacity(text.len());
    for unit in text.encode_utf16() {
        match unit {
            0x0001..=0x007f => utf.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                utf.push(0xc0 | (unit >> 6) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                utf.push(0xe0 | (unit >> 12) as u8);
                utf.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    let mut out = vec![0xac, 0xed, 0x00, 0x05];
    match u16::try_from(utf.len()) {
        Ok(len) => {
            out.push(0x74);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(0x7c);
            out.extend_from_slice(&(utf.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&utf);
    out
}

impl Stage for ColumnFilter {
    fn before(&mut self, item: &LogItem) {
        if let Some(table) = self.shapes.observe(item) {
            self.plans.remove(&table);
        }
    }

    fn after(&mut self, start: usize, out: &mut Vec<Event>) {
        self.apply(&mut out[start..]);
    }
}

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
