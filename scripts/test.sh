#!/usr/bin/env bash
# Runs Wharf's whole test suite: lints, then every test on SQLite, then the integration tests
# on PostgreSQL. On a fresh Debian machine (as root) it installs what the tests need; it starts
# a throwaway PostgreSQL on 127.0.0.1 and stops it afterwards. A missing prerequisite is an
# error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- prerequisites ----------------------------------------------------------------------
need_pkgs=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_pkgs+=(postgresql)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
[ -f /usr/include/postgresql/libpq-fe.h ] || need_pkgs+=(libpq-dev)
# The browser tests drive Debian's headless Chromium through chromedriver.
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
# The .crate tests list archives with GNU tar, the independent second reader.
tar --version 2>/dev/null | grep -q 'GNU tar' || need_pkgs+=(tar)
# The full-disk test mounts a small tmpfs, which needs root.
[ "$(id -u)" = 0 ] || echo "warning: not root: the full-disk test (it mounts a tmpfs) will fail" >&2
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing ${need_pkgs[*]}; install them (apt-get install ${need_pkgs[*]}) or run as root" >&2
    exit 1
  fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# --- a throwaway PostgreSQL on 127.0.0.1 ------------------------------------------------
pg_port=${WHARF_TEST_PG_PORT:-54329}
pg_dir=$(mktemp -d /tmp/wharf-test-pg.XXXXXX)
as_pg() {
  # PostgreSQL refuses to run as root: use the postgres account then.
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
stop_pg() {
  as_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
log "starting PostgreSQL ($("$pg_bin/postgres" --version)) on 127.0.0.1:$pg_port"
as_pg "'$pg_bin/initdb' -D '$pg_dir/data' -A trust -U postgres --no-sync" >/dev/null
as_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -l '$pg_dir/log' -w -o \"-p $pg_port -k '$pg_dir' -h 127.0.0.1 -c fsync=off -c max_connections=400\" start" >/dev/null
pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"

# --- checks and tests -------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "build (the credential-provider end-to-end tests run the built provider binary)"
cargo build --workspace --quiet

log "tests on SQLite"
cargo test --workspace

log "tests on PostgreSQL"
# The whole workspace again (not just --test api): the same feature set as above, so nothing is
# rebuilt; the integration tests take the database from WHARF_TEST_DATABASE_URL.
WHARF_TEST_DATABASE_URL="$pg_url" cargo test --workspace
