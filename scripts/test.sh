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

cargo nextest run --workspace --profile ci "$@"
