//! The chunk query's plan on tables the planner knows nothing about: a
//! structural check, not a timing. Each chunk must walk the key index in
//! order and stop at its limit; a Sort over the rest of the range makes the
//! snapshot quadratic (docs/architecture.md, "Chunk queries").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdc_engine::scheduler::ChunkRequest;
use cdc_engine::TableRef;
use cdc_postgres::catalog::table_info;
use cdc_postgres::snapshot::PgChunkSource;
use cdc_postgres::ConnectConfig;
use cdc_testcontainers::Postgres;
use serde_json::Value;

fn nodes<'a>(plan: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(plan);
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            nodes(child, out);
        }
    }
}

/// The plan's root node, from `EXPLAIN (FORMAT JSON)` text.
fn root(explain: &str) -> Value {
    let parsed: Value = serde_json::from_str(explain).unwrap();
    parsed[0]["Plan"].clone()
}

/// Limit over an ordered scan of the primary-key index, and no Sort.
fn assert_ordered_index_walk(explain: &str, index: &str, what: &str) {
    let plan = root(explain);
    let mut all = Vec::new();
    nodes(&plan, &mut all);
    assert!(
        all.iter()
            .all(|n| !n["Node Type"].as_str().unwrap_or_default().contains("Sort")),
        "{what}: a Sort in the chunk plan: {plan:#}"
    );
    assert_eq!(plan["Node Type"], "Limit", "{what}: {plan:#}");
    let scan = &plan["Plans"][0];
    let kind = scan["Node Type"].as_str().unwrap_or_default();
    assert!(
        kind == "Index Scan" || kind == "Index Only Scan",
        "{what}: the limit is over {kind}, not an index scan: {plan:#}"
    );
    assert_eq!(scan["Index Name"], index, "{what}: {plan:#}");
    assert_eq!(scan["Scan Direction"], "Forward", "{what}: {plan:#}");
}

fn request(
    table: &TableRef,
    after: Option<&[&str]>,
    upper: &[&str],
    filter: Option<&str>,
) -> ChunkRequest {
    let texts = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    ChunkRequest {
        token: 1,
        table: table.clone(),
        filter: filter.map(str::to_string),
        surrogate_key: None,
        after_key: after.map(texts),
        max_key: Some(texts(upper)),
        max_key_read: true,
        limit: 16_384,
        attempt: 0,
    }
}

#[test]
fn chunk_plans_walk_the_key_index_on_an_unanalyzed_table() {
    let pg = Postgres::builder()
        .setting("autovacuum", "off")
        .start()
        .unwrap();
    // Freshly loaded, never analyzed: the ordinary state after a bulk load.
    pg.psql(
        "CREATE TABLE big (id bigint PRIMARY KEY, status text, payload text);
         INSERT INTO big SELECT g, CASE WHEN g % 10 = 0 THEN 'open' ELSE 'done' END, repeat('x', 200)
           FROM generate_series(1, 1000000) g;
         CREATE TABLE pair (a int, b text, v int, PRIMARY KEY (a, b));
         INSERT INTO pair SELECT g / 10, (g % 10)::text, g FROM generate_series(1, 300000) g;
         CREATE TABLE heap (v int, payload text);
         INSERT INTO heap SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;",
    )
    .unwrap();
    assert_eq!(
        pg.psql("SELECT reltuples FROM pg_class WHERE relname = 'big'")
            .unwrap(),
        "-1",
        "the table must never have been analyzed for this test to mean anything"
    );
    // The hazard is real here: the same shape, planned plainly, sorts the
    // whole rest of the range.
    let plain = pg
        .psql(
            "EXPLAIN (FORMAT JSON) SELECT * FROM big WHERE id > 1 AND id <= 1000000 \
             ORDER BY id LIMIT 16384",
        )
        .unwrap();
    let mut all = Vec::new();
    let plain_root = root(&plain);
    nodes(&plain_root, &mut all);
    assert!(
        all.iter().any(|n| n["Node Type"] == "Sort"),
        "expected the unhinted plan to sort on an unanalyzed table: {plain_root:#}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connect = ConnectConfig::parse(&pg.url()).unwrap();
        let client = connect.connect_sql().await.unwrap();
        let big = TableRef::new("public", "big");
        let pair = TableRef::new("public", "pair");
        let heap = TableRef::new("public", "heap");
        let infos = vec![
            table_info(&client, &big).await.unwrap(),
            table_info(&client, &pair).await.unwrap(),
            table_info(&client, &heap).await.unwrap(),
        ];
        let chunks = PgChunkSource::new(
            connect,
            &infos,
            TableRef::new("cdc", "signal"),
            "plan".into(),
        );
        let cases = [
            (
                "first chunk",
                request(&big, None, &["1000000"], None),
                "big_pkey",
            ),
            (
                "middle chunk",
                request(&big, Some(&["500000"]), &["1000000"], None),
                "big_pkey",
            ),
            (
                "filtered chunk",
                request(&big, Some(&["10"]), &["1000000"], Some("status = 'open'")),
                "big_pkey",
            ),
            (
                "composite key",
                request(&pair, Some(&["100", "3"]), &["30000", "0"], None),
                "pair_pkey",
            ),
        ];
        for (what, request, index) in &cases {
            for generic in [false, true] {
                let plan = chunks.explain_chunk(request, generic).await.unwrap();
                let what = format!("{what} ({})", if generic { "generic" } else { "custom" });
                assert_ordered_index_walk(&plan, index, &what);
            }
        }
        // Without a key: pages by a TID range scan, never the whole heap.
        let pages: i64 = client
            .query_one("SELECT pg_relation_size('heap') / 8192", &[])
            .await
            .unwrap()
            .get(0);
        for (what, after) in [
            ("first page chunk", None),
            ("middle page chunk", Some(&["900"][..])),
        ] {
            let request = request(&heap, after, &[&pages.to_string()], None);
            for generic in [false, true] {
                let plan = root(&chunks.explain_chunk(&request, generic).await.unwrap());
                assert_eq!(
                    plan["Node Type"], "Tid Range Scan",
                    "{what} ({generic}): {plan:#}"
                );
            }
        }
    });
}
