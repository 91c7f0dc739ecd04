#!/usr/bin/env bash
# Runs Wharf's benchmarks, which print figures and assert nothing: the registry bench (index
# reads, publish latency, growth to 1,000 versions) and the Trusted Publishing bench (token
# exchange vs verification alone). They run on SQLite; when PostgreSQL is installed (as
# scripts/test.sh installs it), a throwaway PostgreSQL is started on 127.0.0.1 and each bench
# runs on it too.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  pg_port=${WHARF_BENCH_PG_PORT:-54339}
  pg_dir=$(mktemp -d /tmp/wharf-bench-pg.XXXXXX)
  as_pg() {
    # PostgreSQL refuses to run as root: use the postgres account then.
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
  }
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  stop_pg() {
    as_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  }
  trap stop_pg EXIT
  log "starting PostgreSQL ($("$pg_bin/postgres" --version)) on 127.0.0.1:$pg_port"
  as_pg "'$pg_bin/initdb' -D '$pg_dir/data' -A trust -U postgres --no-sync" >/dev/null
  # Default durability (fsync on), unlike the tests' database: publish latency includes commits.
  as_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -l '$pg_dir/log' -w -o \"-p $pg_port -k '$pg_dir' -h 127.0.0.1 -c max_connections=200\" start" >/dev/null
  export WHARF_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
else
  log "PostgreSQL is not installed: SQLite only"
fi

log "cargo bench ($(nproc) CPUs)"
cargo bench --bench registry --bench trustpub
