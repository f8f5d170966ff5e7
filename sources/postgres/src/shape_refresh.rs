//! A table's shape read from the catalog when the log announces a new one.
//!
//! pgoutput's Relation message gives column names, type OIDs and modifiers
//! only. A domain or enum type created after start, a column's `NOT NULL`
//! or default: these are the catalog's. So before the decoder takes a
//! Relation of a captured table whose shape changed, the stream reads the
//! table on a side SQL connection and hands it in; the decoder uses it for
//! the columns whose name, type and modifier match the message (the catalog
//! is read now, the message may be older: a column changed again since is
//! typed from the message alone, as before). Relation messages are rare
//! (one per table per session and per DDL), so this costs nothing per row.

use cdc_engine::TableRef;
use tokio_postgres::Client;

use crate::catalog::{table_info, TableInfo};
use crate::connect::ConnectConfig;

pub(crate) struct ShapeRefresh {
    connect: ConnectConfig,
    client: Option<Client>,
}

impl ShapeRefresh {
    pub(crate) fn new(connect: ConnectConfig) -> ShapeRefresh {
        ShapeRefresh {
            connect,
            client: None,
        }
    }

    /// `table` as the catalog has it now; `None` (one warning) when it
    /// cannot be read: the decoder then types new columns from the message.
    pub(crate) async fn read(&mut self, table: &TableRef) -> Option<TableInfo> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            match self.connect.connect_sql().await {
                Ok(client) => self.client = Some(client),
                Err(err) => {
                    tracing::warn!(
                        "schema change of {table}: the catalog cannot be read ({err}); its new columns are typed from the log alone"
                    );
                    return None;
                }
            }
        }
        let client = self.client.as_ref()?;
        match table_info(client, table).await {
            Ok(info) => Some(info),
            Err(err) => {
                tracing::warn!(
                    "schema change of {table}: the catalog cannot be read ({err}); its new columns are typed from the log alone"
                );
                None
            }
        }
    }
}
