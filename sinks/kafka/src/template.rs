//! Topic name templates (`{prefix}.{schema}.{table}`) and the sanitising
//! that keeps every rendered name a legal Kafka topic.

use std::fmt::Write as _;

/// A placeholder a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The source's logical name (`event.source.meta.name`).
    Prefix,
    Db,
    Schema,
    Table,
    /// The outbox row's aggregate type.
    AggregateType,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Prefix => "prefix",
            Var::Db => "db",
            Var::Schema => "schema",
            Var::Table => "table",
            Var::AggregateType => "aggregatetype",
        }
    }

    const ALL: [Var; 5] = [
        Var::Prefix,
        Var::Db,
        Var::Schema,
        Var::Table,
        Var::AggregateType,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template '{template}' uses unknown placeholder {{{name}}} (allowed here: {allowed})")]
    Unknown {
        template: String,
        name: String,
        allowed: String,
    },
    #[error("template '{0}' has an unclosed '{{'")]
    Unclosed(String),
    #[error("template is empty")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values for a template's placeholders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars<'a> {
    pub prefix: &'a str,
    pub db: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    pub aggregate_type: &'a str,
}

impl Vars<'_> {
    fn get(&self, var: Var) -> &str {
        match var {
            Var::Prefix => self.prefix,
            Var::Db => self.db,
            Var::Schema => self.schema,
            Var::Table => self.table,
            Var::AggregateType => self.aggregate_type,
        }
    }
}

/// Kafka's limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;

impl Template {
    pub fn parse(text: &str, allowed: &[Var]) -> Result<Template, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            let name = &after[..close];
            let var = Var::ALL
                .into_iter()
                .find(|v| v.name() == name && allowed.contains(v))
                .ok_or_else(|| TemplateError::Unknown {
                    template: text.to_string(),
                    name: name.to_string(),
                    allowed: allowed
                        .iter()
                        .map(|v| format!("{{{}}}", v.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The topic name for `vars`, made legal (see [`sanitize`]).
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v) => {
                    let _ = write!(out, "{}", vars.get(*v));
                }
            }
        }
        sanitize(&out)
    }
}

/// Kafka topic names allow `[A-Za-z0-9._-]` only: anything else becomes `_`
/// (as Debezium does), and the name is cut to Kafka's 249 characters.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOPIC_LEN)
        .collect();
    // "." and ".." are reserved.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_sanitises() {
        let t = Template::parse(
            "{prefix}.{schema}.{table}",
            &[Var::Prefix, Var::Schema, Var::Table],
        )
        .unwrap();
        let vars = Vars {
            prefix: "cdc",
            schema: "public",
            table: "Order Lines",
            ..Vars::default()
        };
        assert_eq!(t.render(&vars), "cdc.public.Order_Lines");
        let vars = Vars {
            prefix: "cdc",
            schema: "sch",
            table: "ünïcode",
            ..Vars::default()
        };
        assert_eq!(t.render(&vars), "cdc.sch._n_code");
    }

    #[test]
    fn literals_and_errors() {
        let t = Template::parse("fixed-topic", &[Var::Prefix]).unwrap();
        assert_eq!(t.render(&Vars::default()), "fixed-topic");
        assert!(matches!(
            Template::parse("{prefix", &[Var::Prefix]),
            Err(TemplateError::Unclosed(_))
        ));
        let err = Template::parse("{aggregatetype}", &[Var::Prefix]).unwrap_err();
        assert!(err.to_string().contains("{prefix}"), "{err}");
        assert_eq!(sanitize(".."), "__");
        assert_eq!(sanitize(&"x".repeat(300)).len(), 249);
    }
}
