//! The decoder's side of pgoutput's binary mode (docs/architecture.md,
//! "Binary log values"): which columns keep a session in text.

use cdc_engine::TableRef;

use super::{Decoder, DecoderError};
use crate::binary::has_log_binary_decoder;
use crate::catalog::TableInfo;
use crate::pgoutput::Relation;

impl Decoder {
    /// The first captured column (`table.column (type)`) whose values
    /// have no binary decoder: while there is one, the log comes as text.
    pub fn binary_blocker(&self) -> Option<String> {
        let mut tables: Vec<&TableInfo> = self.captured.values().collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        tables.into_iter().find_map(|t| {
            t.columns
                .iter()
                .find(|c| !has_log_binary_decoder(c.value_oid))
                .map(|c| format!("{}.{} ({})", t.table, c.name, c.type_sql))
        })
    }

    /// A column added since the start, or a table matched later, may have a
    /// type without a binary decoder: its values, binary now, could not be
    /// read. A domain not known at start stays unresolved and so counts as
    /// one too. Relations that are skipped need no decoder.
    pub(super) fn check_binary(
        &self,
        table: &TableRef,
        relation: &Relation,
    ) -> Result<(), DecoderError> {
        let late = self.late.get(table);
        let read =
            *table == self.signal_table || self.captured.contains_key(table) || late.is_some();
        if !read {
            return Ok(());
        }
        let resolve = |declared: u32| {
            late.iter()
                .flat_map(|t| &t.columns)
                .find(|c| c.type_oid == declared)
                .map(|c| c.value_oid)
                .or_else(|| self.value_oids.get(&declared).copied())
                .unwrap_or(declared)
        };
        match relation
            .columns
            .iter()
            .find(|c| !has_log_binary_decoder(resolve(c.type_oid)))
        {
            Some(c) => Err(DecoderError::NeedsText(format!(
                "{table}.{} (type oid {}) has no binary decoder",
                c.name, c.type_oid
            ))),
            None => Ok(()),
        }
    }
}
