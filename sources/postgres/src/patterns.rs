//! Table patterns in `source.tables` (`public.*`, `sales.order_*`) and their
//! expansion against the catalog (README, "Table patterns").
//!
//! Patterns are matched in Rust against names read from the catalog; the
//! pattern text never reaches SQL. Only an unquoted part can hold a
//! wildcard: PostgreSQL's unquoted identifiers cannot contain `*` or `?`,
//! so a quoted part is always an exact name.

use std::fmt;

use cdc_engine::TableRef;
use tokio_postgres::Client;

use crate::catalog::CatalogError;

/// One part (schema or table) of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Exact(String),
    /// `*` matches any run of characters, `?` any one character.
    Glob(String),
}

impl Part {
    fn matches(&self, name: &str) -> bool {
        match self {
            Part::Exact(exact) => exact == name,
            Part::Glob(glob) => glob_match(glob, name),
        }
    }
}

/// An entry of `source.tables`: an exact name or a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    schema: Part,
    name: Part,
    /// As written in the config, for messages.
    text: String,
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TablePattern {
    /// Parse with [`TableRef::parse`]'s rules (a bare name is in `public`,
    /// double quotes keep a part exact and case-sensitive).
    pub fn parse(text: &str) -> Result<TablePattern, cdc_signal::TableRefError> {
        let table = TableRef::parse(text)?;
        let quoted = quoted_parts(text);
        // A bare name has one part: the table's; the schema is the default.
        let (schema_quoted, name_quoted) = match quoted.as_slice() {
            [name] => (true, *name),
            [schema, name] => (*schema, *name),
            _ => (true, true),
        };
        let part = |value: String, quoted: bool| {
            if !quoted && value.contains(['*', '?']) {
                Part::Glob(value)
            } else {
                Part::Exact(value)
            }
        };
        Ok(TablePattern {
            schema: part(table.schema, schema_quoted),
            name: part(table.name, name_quoted),
            text: text.trim().to_string(),
        })
    }

    /// The table named, when no part holds a wildcard.
    pub fn exact(&self) -> Option<TableRef> {
        match (&self.schema, &self.name) {
            (Part::Exact(schema), Part::Exact(name)) => Some(TableRef::new(schema, name)),
            _ => None,
        }
    }

    pub fn matches(&self, table: &TableRef) -> bool {
        self.schema.matches(&table.schema) && self.name.matches(&table.name)
    }

    /// The line for a pattern that matches no table at start.
    pub fn no_match_line(&self) -> String {
        format!(
            "source.tables pattern '{self}' matches no table: check the schema and table names \
             (case matters; unquoted parts are not folded to lower case); a matching table created \
             later is captured as soon as it appears"
        )
    }
}

/// Which parts of a name (as [`TableRef::parse`] splits it) are quoted.
/// Only called on text that parsed, so quotes are balanced.
fn quoted_parts(text: &str) -> Vec<bool> {
    let mut parts = Vec::with_capacity(2);
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' && chars.next_if_eq(&'"').is_none() {
                    break;
                }
            }
        }
        while chars.next_if(|&c| c != '.').is_some() {}
        parts.push(quoted);
        if chars.next().is_none() {
            break;
        }
    }
    parts
}

/// `*` any run of characters (none included), `?` exactly one; everything
/// else literally, case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative with backtracking to the last star: linear for one star,
    // O(p·t) at worst, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Tables a pattern may match: ordinary and partitioned tables outside the
/// system schemas, never a partition (captured through its root) and never
/// one of `own` (cdc's own tables).
const CANDIDATES_SQL: &str = "SELECT n.nspname::text, c.relname::text, c.oid FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' \
     ORDER BY 1, 2";

/// The candidate tables, with their oids (a table dropped and created
/// again under the same name is another table).
pub async fn candidates(
    client: &Client,
    own: &[TableRef],
) -> Result<Vec<(TableRef, u32)>, CatalogError> {
    let rows = client.query(CANDIDATES_SQL, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let table = TableRef::new(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?);
        if !own.contains(&table) {
            out.push((table, row.try_get(2)?));
        }
    }
    Ok(out)
}

/// The candidates some pattern matches, in candidate order, and the
/// patterns that match none.
pub fn expand<'a>(
    patterns: &'a [TablePattern],
    candidates: &[TableRef],
) -> (Vec<TableRef>, Vec<&'a TablePattern>) {
    let matched = candidates
        .iter()
        .filter(|t| patterns.iter().any(|p| p.matches(t)))
        .cloned()
        .collect();
    let unmatched = patterns
        .iter()
        .filter(|p| !candidates.iter().any(|t| p.matches(t)))
        .collect();
    (matched, unmatched)
}

/// cdc's own tables, next to the signal table: never captured by a pattern.
pub fn own_tables(signal_table: &TableRef) -> Vec<TableRef> {
    vec![
        signal_table.clone(),
        crate::snapshot::state_table(signal_table),
        crate::positions::positions_table(signal_table),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> TablePattern {
        TablePattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn t(schema: &str, name: &str) -> TableRef {
        TableRef::new(schema, name)
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("order_*", "order_"));
        assert!(glob_match("order_*", "order_items"));
        assert!(!glob_match("order_*", "orders"));
        assert!(glob_match("o?der", "order"));
        assert!(!glob_match("o?der", "oder"));
        assert!(glob_match("*_log", "audit_log"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("**", "x"));
        assert!(!glob_match("Order*", "order_a"), "case-sensitive");
        assert!(glob_match("données_*", "données_été"));
    }

    #[test]
    fn exact_names_stay_exact() {
        assert_eq!(
            pattern("public.orders").exact(),
            Some(t("public", "orders"))
        );
        assert_eq!(pattern("orders").exact(), Some(t("public", "orders")));
        // Quoted: a star is part of the name.
        let quoted = pattern("\"Sales\".\"Order*\"");
        assert_eq!(quoted.exact(), Some(t("Sales", "Order*")));
        assert!(quoted.matches(&t("Sales", "Order*")));
        assert!(!quoted.matches(&t("Sales", "Order_a")));
        // A bare quoted name is in public, like an unquoted one.
        assert_eq!(pattern("\"a*\"").exact(), Some(t("public", "a*")));
    }

    #[test]
    fn patterns_match_per_part() {
        let all = pattern("public.*");
        assert!(all.exact().is_none());
        assert!(all.matches(&t("public", "a")));
        assert!(!all.matches(&t("sales", "a")));
        let orders = pattern("sales.order_*");
        assert!(orders.matches(&t("sales", "order_2024")));
        assert!(!orders.matches(&t("sales", "customers")));
        assert!(!orders.matches(&t("sales2", "order_x")));
        // The star stays within one part: it never spans the dot.
        assert!(!pattern("sa*").matches(&t("sales", "x")));
        assert!(pattern("sa*").matches(&t("public", "sales")));
        // Wildcard schema, quoted exact name; quoted schema, wildcard name.
        let mixed = pattern("*.\"T\"");
        assert!(mixed.matches(&t("a", "T")) && !mixed.matches(&t("a", "t")));
        let mixed = pattern("\"My Schema\".t?");
        assert!(mixed.matches(&t("My Schema", "t1")) && !mixed.matches(&t("My Schema", "t")));
        assert_eq!(pattern(" public . * ").to_string(), "public . *");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(TablePattern::parse("a.b.c").is_err());
        assert!(TablePattern::parse("\"open").is_err());
        assert!(TablePattern::parse("").is_err());
    }

    #[test]
    fn expansion_reports_unmatched_patterns() {
        let patterns = vec![pattern("sales.order_*"), pattern("nosuch.*")];
        let candidates = vec![
            t("sales", "customers"),
            t("sales", "order_a"),
            t("sales", "order_b"),
        ];
        let (matched, unmatched) = expand(&patterns, &candidates);
        assert_eq!(matched, vec![t("sales", "order_a"), t("sales", "order_b")]);
        assert_eq!(unmatched.len(), 1);
        let line = unmatched[0].no_match_line();
        assert!(
            line.contains("'nosuch.*'") && !line.contains('\n'),
            "{line}"
        );
    }
}
