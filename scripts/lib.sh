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
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
  fi
}
