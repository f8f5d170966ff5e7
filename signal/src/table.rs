//! Schema-qualified table names as operators write them in signals and config.

use std::fmt::{self, Write as _};
use std::iter::Peekable;
use std::str::{Chars, FromStr};

/// Schema used when a name has no schema part, as PostgreSQL's default
/// search path would: the PostgreSQL source's namespace, and the default of
/// [`TableRef::parse`]. Other sources parse with their own
/// ([`TableRef::parse_in`]).
pub const DEFAULT_SCHEMA: &str = "public";

/// A table named by a signal or config: schema-qualified.
///
/// Parsing accepts `table` (schema defaults to [`DEFAULT_SCHEMA`]), `schema.table`, and
/// double-quoted parts with PostgreSQL rules (`"My Schema"."Order""s"`). Unquoted parts are
/// kept as written: Debezium treats names as case-sensitive, so folding to lower case would
/// silently select a different table than the operator typed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

/// Why a table name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableRefError {
    #[error("table name is empty")]
    Empty,
    #[error("empty identifier (expected `table`, `schema.table`, or double-quoted parts)")]
    EmptyPart,
    #[error(
        "too many dot-separated parts (expected `table` or `schema.table`; \
         double-quote names that contain dots)"
    )]
    TooManyParts,
    #[error("unterminated double quote")]
    UnterminatedQuote,
    #[error(
        "double quote inside an unquoted identifier (quote the whole part and double \
         embedded quotes, e.g. \"Order\"\"s\")"
    )]
    UnexpectedQuote,
    #[error("unexpected {0:?} after a closing double quote (expected '.' or end of name)")]
    UnexpectedAfterQuote(char),
    #[error("whitespace inside an unquoted identifier (double-quote names that contain spaces)")]
    UnquotedWhitespace,
    #[error(
        "the name has no namespace part: write it as `database.collection` (or `schema.table`)"
    )]
    Unqualified,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableRef {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `table`, `schema.table` or their double-quoted forms.
    ///
    /// Whitespace around a part is ignored (as in SQL); whitespace inside an unquoted part is
    /// rejected because it almost always means a missing quote or comma. A bare `table` is in
    /// [`DEFAULT_SCHEMA`].
    pub fn parse(s: &str) -> Result<TableRef, TableRefError> {
        TableRef::parse_in(s, Some(DEFAULT_SCHEMA))
    }

    /// As [`TableRef::parse`], a bare `table` being in `namespace`; without one a bare name
    /// is [`TableRefError::Unqualified`].
    pub fn parse_in(s: &str, namespace: Option<&str>) -> Result<TableRef, TableRefError> {
        if s.trim().is_empty() {
            return Err(TableRefError::Empty);
        }
        let mut parts: Vec<String> = Vec::with_capacity(2);
        let mut chars = s.chars().peekable();
        loop {
            skip_whitespace(&mut chars);
            let quoted = chars.peek() == Some(&'"');
            let part = if quoted {
                chars.next();
                read_quoted(&mut chars)?
            } else {
                read_unquoted(&mut chars)
            };
            // PostgreSQL rejects zero-length quoted identifiers too, so `""` is an error here.
            if part.is_empty() {
                return Err(TableRefError::EmptyPart);
            }
            parts.push(part);
            skip_whitespace(&mut chars);
            match chars.next() {
                None => break,
                Some('.') if parts.len() >= 2 => return Err(TableRefError::TooManyParts),
                Some('.') => {}
                Some(c) if quoted => return Err(TableRefError::UnexpectedAfterQuote(c)),
                Some('"') => return Err(TableRefError::UnexpectedQuote),
                // An unquoted part only stops at '.', '"', whitespace or the end, so anything
                // else here followed whitespace inside the part.
                Some(_) => return Err(TableRefError::UnquotedWhitespace),
            }
        }
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next()) {
            (Some(name), None) => match namespace {
                Some(namespace) => Ok(TableRef::new(namespace, name)),
                None => Err(TableRefError::Unqualified),
            },
            (Some(schema), Some(name)) => Ok(TableRef::new(schema, name)),
            // Unreachable: the loop pushes at least one part before breaking.
            (None, _) => Err(TableRefError::Empty),
        }
    }

    /// Checks the parts a hand-built `TableRef` could get wrong, so that its `Display` form
    /// parses back to it.
    pub(crate) fn check(&self) -> Result<(), TableRefError> {
        if self.schema.is_empty() || self.name.is_empty() {
            return Err(TableRefError::EmptyPart);
        }
        Ok(())
    }
}

fn skip_whitespace(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

/// Reads after an opening quote up to its closing quote; `""` stands for one `"`.
fn read_quoted(chars: &mut Peekable<Chars<'_>>) -> Result<String, TableRefError> {
    let mut part = String::new();
    loop {
        match chars.next() {
            None => return Err(TableRefError::UnterminatedQuote),
            Some('"') => {
                if chars.next_if_eq(&'"').is_some() {
                    part.push('"');
                } else {
                    return Ok(part);
                }
            }
            Some(c) => part.push(c),
        }
    }
}

fn read_unquoted(chars: &mut Peekable<Chars<'_>>) -> String {
    let mut part = String::new();
    while let Some(c) = chars.next_if(|&c| !is_special(c)) {
        part.push(c);
    }
    part
}

/// Characters that end an unquoted part; `Display` quotes any part containing one.
fn is_special(c: char) -> bool {
    c == '.' || c == '"' || c.is_whitespace()
}

fn write_part(f: &mut fmt::Formatter<'_>, part: &str) -> fmt::Result {
    if !part.is_empty() && !part.chars().any(is_special) {
        return f.write_str(part);
    }
    f.write_char('"')?;
    for c in part.chars() {
        if c == '"' {
            f.write_str("\"\"")?;
        } else {
            f.write_char(c)?;
        }
    }
    f.write_char('"')
}

impl fmt::Display for TableRef {
    /// `schema.name`, quoting only the parts that need it, so that `parse` gives back `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_part(f, &self.schema)?;
        f.write_char('.')?;
        write_part(f, &self.name)
    }
}

impl FromStr for TableRef {
    type Err = TableRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> TableRef {
        TableRef::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn a_bare_name_is_in_the_given_namespace_or_refused_without_one() {
        assert_eq!(
            TableRef::parse_in("orders", Some("shop")),
            Ok(TableRef::new("shop", "orders"))
        );
        assert_eq!(
            TableRef::parse_in("orders", None),
            Err(TableRefError::Unqualified)
        );
        assert_eq!(
            TableRef::parse_in("shop.orders", None),
            Ok(TableRef::new("shop", "orders"))
        );
    }

    #[test]
    fn bare_name_defaults_to_public() {
        assert_eq!(ok("orders"), TableRef::new("public", "orders"));
    }

    #[test]
    fn schema_qualified() {
        assert_eq!(ok("schema1.table1"), TableRef::new("schema1", "table1"));
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(ok("Sales.OrderItems"), TableRef::new("Sales", "OrderItems"));
    }

    #[test]
    fn quoted_parts_follow_postgres_rules() {
        assert_eq!(
            ok(r#""My Schema"."Order""s""#),
            TableRef::new("My Schema", "Order\"s")
        );
        assert_eq!(ok(r#""a.b""#), TableRef::new("public", "a.b"));
        assert_eq!(ok(r#"s."t.u""#), TableRef::new("s", "t.u"));
        assert_eq!(ok(r#""""""#), TableRef::new("public", "\""));
        assert_eq!(ok("\" lead\".\"trail \""), TableRef::new(" lead", "trail "));
    }

    #[test]
    fn whitespace_around_parts_is_ignored() {
        assert_eq!(ok("  s . t  "), TableRef::new("s", "t"));
        assert_eq!(ok(" \"s\" . \"t\" "), TableRef::new("s", "t"));
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(
            ok("données.Überblick"),
            TableRef::new("données", "Überblick")
        );
    }

    #[test]
    fn errors() {
        let cases: &[(&str, TableRefError)] = &[
            ("", TableRefError::Empty),
            ("   ", TableRefError::Empty),
            (".t", TableRefError::EmptyPart),
            ("s.", TableRefError::EmptyPart),
            ("s..t", TableRefError::EmptyPart),
            ("s. .t", TableRefError::EmptyPart),
            (r#""""#, TableRefError::EmptyPart),
            (r#"s."""#, TableRefError::EmptyPart),
            ("a.b.c", TableRefError::TooManyParts),
            ("db.s.t", TableRefError::TooManyParts),
            ("a.b.", TableRefError::TooManyParts),
            (r#""abc"#, TableRefError::UnterminatedQuote),
            ("s.\"t\"\"", TableRefError::UnterminatedQuote),
            (r#"ab"c""#, TableRefError::UnexpectedQuote),
            (r#"ab "c""#, TableRefError::UnexpectedQuote),
            (r#""a"b"#, TableRefError::UnexpectedAfterQuote('b')),
            (r#""a" "b""#, TableRefError::UnexpectedAfterQuote('"')),
            ("my table", TableRefError::UnquotedWhitespace),
            ("s.my table", TableRefError::UnquotedWhitespace),
        ];
        for (input, want) in cases {
            assert_eq!(
                TableRef::parse(input).as_ref(),
                Err(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(
            TableRef::new("public", "orders").to_string(),
            "public.orders"
        );
        assert_eq!(
            TableRef::new("My Schema", "Order\"s").to_string(),
            r#""My Schema"."Order""s""#
        );
        assert_eq!(TableRef::new("a.b", "c").to_string(), r#""a.b".c"#);
        assert_eq!(TableRef::new("", "c").to_string(), r#""".c"#);
        assert_eq!(
            TableRef::new("s", "tab\there").to_string(),
            "s.\"tab\there\""
        );
    }

    #[test]
    fn display_round_trips() {
        for t in [
            TableRef::new("public", "orders"),
            TableRef::new("My Schema", "Order\"s"),
            TableRef::new("a.b", "\"\""),
            TableRef::new(" ", "x\u{3000}y"),
            TableRef::new("Ünï", "😀"),
        ] {
            assert_eq!(ok(&t.to_string()), t);
        }
    }

    #[test]
    fn from_str_matches_parse() {
        let t: TableRef = "s.t".parse().unwrap();
        assert_eq!(t, TableRef::new("s", "t"));
        assert_eq!(
            "a.b.c".parse::<TableRef>(),
            Err(TableRefError::TooManyParts)
        );
    }

    #[test]
    fn error_messages_are_one_line() {
        for e in [
            TableRefError::Empty,
            TableRefError::EmptyPart,
            TableRefError::TooManyParts,
            TableRefError::UnterminatedQuote,
            TableRefError::UnexpectedQuote,
            TableRefError::UnexpectedAfterQuote('\n'),
            TableRefError::UnquotedWhitespace,
        ] {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
