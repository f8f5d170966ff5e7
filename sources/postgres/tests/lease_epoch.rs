//! The lease epoch guards saved snapshot progress on a real server: once a
//! new holder has bumped the group's epoch, an old holder that does not
//! know yet (its lease still looks fresh) cannot overwrite the progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdc_engine::scheduler::SnapshotState;
use cdc_engine::snapshot::{ChunkSource, SnapshotError};
use cdc_engine::{Lease, TableRef};
use cdc_postgres::snapshot::PgChunkSource;
use cdc_postgres::{ConnectConfig, PostgresConfig, PostgresSource};
use cdc_testcontainers::Postgres;

fn saved_state(pg: &Postgres) -> String {
    pg.psql("SELECT state::text FROM cdc.snapshot_state WHERE name = 'cdc'")
        .unwrap()
}

#[test]
fn progress_saved_under_an_epoch_that_is_over_is_refused_and_the_row_is_unchanged() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY);").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connect = ConnectConfig::parse(&pg.url()).unwrap();
        let config = PostgresConfig::new(connect.clone(), vec![TableRef::new("public", "t")]);
        // The real setup makes the state table; the real acquire takes the
        // lock and bumps the epoch (to 1) in cdc.leases.
        let source = PostgresSource::prepare(config.clone()).await.unwrap();
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let held = cdc_postgres::lease::acquire(&config, shutdown, false)
            .await
            .unwrap()
            .expect("the lease, with nobody else in the group");
        let epoch = held.lease.epoch();
        assert!(epoch >= 1, "epoch {epoch}");
        let chunks = |lease: Lease| {
            PgChunkSource::new(
                connect.clone(),
                source.tables(),
                config.signal_table.clone(),
                config.slot.clone(),
            )
            .with_lease(lease)
        };
        let mine = chunks(held.lease.clone());

        // Saved while the epoch is ours.
        let first = SnapshotState::default();
        mine.save_state(&first).await.unwrap();
        let before = saved_state(&pg);
        assert_eq!(
            serde_json::from_str::<SnapshotState>(&before).unwrap(),
            first
        );

        // A new holder takes over (as acquire does) while this one still
        // believes it holds the lease: its confirmation is fresh.
        pg.psql(
            "UPDATE cdc.leases SET epoch = epoch + 1, holder = 'cdc:elsewhere:1', acquired_at = now() \
             WHERE slot = 'cdc'",
        )
        .unwrap();
        assert!(held.lease.is_fresh());
        let later = SnapshotState {
            paused: true,
            ..SnapshotState::default()
        };
        let err = mine.save_state(&later).await.unwrap_err();
        let SnapshotError::Definite(message) = &err else {
            panic!("not a definite error: {err:?}");
        };
        assert!(
            message.contains(&format!("epoch {epoch} is over"))
                && message.contains("progress not saved"),
            "{message}"
        );
        assert_eq!(saved_state(&pg), before, "the old holder overwrote it");

        // The new epoch's holder saves.
        let successor = chunks(Lease::held(epoch + 1));
        successor.save_state(&later).await.unwrap();
        assert_eq!(
            serde_json::from_str::<SnapshotState>(&saved_state(&pg)).unwrap(),
            later
        );
        // And the old one still cannot, over its successor's progress.
        mine.save_state(&first).await.unwrap_err();
        assert_eq!(
            serde_json::from_str::<SnapshotState>(&saved_state(&pg)).unwrap(),
            later
        );
    });
}
