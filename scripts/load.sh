#!/usr/bin/env bash
# Load and soak against the release `wharf` binary on loopback (cargo bench --bench load):
# index reads (hot and cold files), token exchanges (a fresh ID token each) and publishes, all
# at once for a fixed time, against one instance on SQLite, one on PostgreSQL and two on one
# PostgreSQL behind nginx; per kind it prints requests, throughput, p50/p99 and every answer
# other than 2xx (one other than 2xx or 429 fails the run).
#
#   scripts/load.sh                     the three load runs, 30 s each
#   scripts/load.sh --duration 60       the same, 60 s each
#   scripts/load.sh --only two          one of them: sqlite, postgres or two
#   scripts/load.sh --soak 600          10 minutes at a moderate rate on one instance,
#                                       resident memory sampled every 10 s; fails if it grows
#
# PostgreSQL: WHARF_BENCH_DATABASE_URL=postgres://… uses an existing server (a fresh database
# is created and dropped); else, when PostgreSQL is installed, a throwaway one is started on
# 127.0.0.1 (port WHARF_BENCH_PG_PORT, default 54338); else SQLite only. nginx is installed
# with apt-get when missing. docs/performance.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  log "installing nginx (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  # The package starts a system nginx; the load runs its own on a free loopback port.
  $sudo_cmd systemctl disable --now nginx >/dev/null 2>&1 || true
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "${WHARF_BENCH_DATABASE_URL:-}" ] && [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  pg_port=${WHARF_BENCH_PG_PORT:-54338}
  pg_dir=$(mktemp -d /tmp/wharf-load-pg.XXXXXX)
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
  # Default durability (fsync on): publishes and exchanges include their commits.
  as_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -l '$pg_dir/log' -w -o \"-p $pg_port -k '$pg_dir' -h 127.0.0.1 -c max_connections=200\" start" >/dev/null
  export WHARF_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
elif [ -z "${WHARF_BENCH_DATABASE_URL:-}" ]; then
  log "PostgreSQL is not installed and WHARF_BENCH_DATABASE_URL is not set: SQLite only"
fi

log "cargo bench --bench load ($(nproc) CPUs)"
cargo bench --bench load -- "$@"
