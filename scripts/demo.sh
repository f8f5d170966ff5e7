#!/usr/bin/env bash
# Install what is missing, start a local demo PostgreSQL with demo tables and a
# small writer, run `cdc run` printing events as JSON lines, and trigger an
# incremental snapshot of public.customers by inserting a signal row.
#
#   scripts/demo.sh               # runs until Ctrl-C
#   DEMO_SECONDS=20 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_postgres
BIN=$(pg_bindir)
DEMO_DIR=${DEMO_DIR:-/tmp/cdc-demo}
PORT=${DEMO_PORT:-55432}

cargo build --quiet --bin cdc
CDC=$PWD/target/debug/cdc

# initdb refuses to run as root: run the demo server as the postgres user.
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || as_root useradd --system --no-create-home postgres
  RUN_AS=(runuser -u postgres --)
fi

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DEMO_DIR"
"${RUN_AS[@]}" "$BIN/initdb" -D "$DEMO_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
cat >>"$DEMO_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DEMO_DIR'
wal_level = logical
CONF
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DEMO_DIR/data" -l "$DEMO_DIR/server.log" -w start >/dev/null
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)

cleanup() {
  [ -n "${WRITER:-}" ] && kill "$WRITER" 2>/dev/null || true
  [ -n "${ENGINE:-}" ] && kill -TERM "$ENGINE" 2>/dev/null && wait "$ENGINE" 2>/dev/null || true
  "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DEMO_DIR/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"${PSQL[@]}" <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2),
                     status text, items jsonb, created_at timestamptz DEFAULT now());
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 200) g;
SQL

cat >"$DEMO_DIR/cdc.toml" <<TOML
[source]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:$PORT/postgres"
tables = ["public.customers", "public.orders"]

[sink]
type = "stdout"
TOML

"$CDC" run --config "$DEMO_DIR/cdc.toml" &
ENGINE=$!

# A small writer: new orders and status changes, a few per second.
(
  while sleep 0.3; do
    "${PSQL[@]}" -c "INSERT INTO orders (customer_id, amount, status, items)
                     VALUES (1 + (random() * 199)::int, round((random() * 100)::numeric, 2), 'new', '{\"sku\": \"A-1\"}');
                     UPDATE orders SET status = 'paid' WHERE id = (SELECT max(id) - 1 FROM orders);" >/dev/null 2>&1 || exit 0
  done
) &
WRITER=$!

sleep 3
echo "demo: INSERT INTO cdc.signal ... execute-snapshot public.customers" >&2
"${PSQL[@]}" -c "INSERT INTO cdc.signal VALUES ('demo-1', 'execute-snapshot', '{\"data-collections\": [\"public.customers\"]}')"

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  wait "$ENGINE"
fi
