//! Column filters and masks, as Debezium's `column.include.list`,
//! `column.exclude.list`, `column.truncate.to.N.chars`,
//! `column.mask.with.N.chars` and `column.mask.hash[.v2].ALG.with.salt.SALT`
//! (README, "Column filters and masks"): the values of personal data never
//! leave the engine.
//!
//! A stage on the snapshot processor's output, so every event passes it, from the log
//! and from snapshots alike, whatever the sink. The `before` and `after`
//! rows are rewritten; keys are not (Debezium keeps them too). Rules are
//! Debezium's: comma lists of regular expressions, each matching a whole
//! `schema.table.column` name, case-insensitively (`\,` is a comma inside
//! one); a rule applies to a column by the table's current schema, which
//! the log item stream keeps up to date. Pure logic, no I/O.

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

/// One of a rule's regular expressions, matching whole
/// `schema.table.column` names regardless of case, as Debezium's
/// `Pattern.compile(…, CASE_INSENSITIVE).matcher(name).matches()`.
#[derive(Debug, Clone)]
pub struct ColumnPattern {
    source: String,
    regex: regex::Regex,
}

/// Why a rule's list was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{pattern}' is not a regular expression cdc can read ({reason}); write one per schema.table.column, for example public\\.users\\.(email|phone)")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl ColumnPattern {
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .case_insensitive(true)
            .build()
            .map_err(|e| PatternError {
                pattern: source.to_owned(),
                // The builder's message spans lines; its last line says what.
                reason: e
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .unwrap_or("invalid")
                    .trim_start_matches("error: ")
                    .to_owned(),
            })?;
        Ok(ColumnPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// A comma list as Debezium splits it (`RegExSplitter`): `\,` is a
    /// literal comma, each item is trimmed, empty items are skipped.
    pub fn list(list: &str) -> Result<Vec<Self>, PatternError> {
        let mut items = Vec::new();
        let mut current = String::new();
        let mut chars = list.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&',') => {
                    current.push(',');
                    chars.next();
                }
                ',' => items.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        items.push(current);
        items
            .iter()
            .map(|item| item.trim())
            .filter(|item| !item.is_empty())
            .map(ColumnPattern::new)
            .collect()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

impl PartialEq for ColumnPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ColumnPattern {}

/// The rules of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnRules {
    /// When set, only these columns are kept (Debezium's
    /// `column.include.list`; never with `exclude`).
    pub include: Vec<ColumnPattern>,
    pub exclude: Vec<ColumnPattern>,
    pub masks: Vec<(ColumnPattern, Mask)>,
}

impl ColumnRules {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.masks.is_empty()
    }

    /// The patterns no column of `schemas` matches: most likely misspelt
    /// (Debezium takes them silently).
    pub fn unmatched<'a>(&'a self, schemas: &[Arc<TableSchema>]) -> Vec<&'a ColumnPattern> {
        let names: Vec<String> = schemas
            .iter()
            .flat_map(|s| {
                s.columns
                    .iter()
                    .map(|c| format!("{}.{}.{}", s.table.schema, s.table.name, c.name))
            })
            .collect();
        self.include
            .iter()
            .chain(&self.exclude)
            .chain(self.masks.iter().map(|(p, _)| p))
            .filter(|p| !names.iter().any(|n| p.matches(n)))
            .collect()
    }
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
        for pattern in rules.unmatched(&schemas) {
            tracing::warn!(
                pattern = pattern.as_str(),
                "column rule '{}' matches no column of the captured tables (a name is schema.table.column, matched whole, as a regular expression): check its spelling; it applies to columns added later",
                pattern.as_str()
            );
        }
        ColumnFilter {
            rules,
            shapes: TableShapes::new(schemas),
            plans: HashMap::new(),
        }
    }

    fn action(&self, table: &TableRef, column: &str) -> Action {
        let name = format!("{}.{}.{column}", table.schema, table.name);
        let included =
            self.rules.include.is_empty() || self.rules.include.iter().any(|p| p.matches(&name));
        if !included || self.rules.exclude.iter().any(|p| p.matches(&name)) {
            return Action::Drop;
        }
        let Some((_, mask)) = self.rules.masks.iter().find(|(p, _)| p.matches(&name)) else {
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
