#!/usr/bin/env bash
# Runs Wharf's benchmarks, which print figures and assert nothing: the registry bench (index
# reads, publish latency, growth to 10,000 versions), the Trusted Publishing bench (token
# exchange vs verification alone) and the HTTP bench (the wharf binary against nginx serving
# the same bytes, with wrk -t2 -c50; resident memory; the hot index file of a private registry,
# authentication on vs off, with the ratio). They run on SQLite; when PostgreSQL is
# installed (as scripts/test.sh installs it), a throwaway PostgreSQL is started on 127.0.0.1
# and each bench runs on it too. nginx and wrk are installed with apt-get when missing.
# docs/performance.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

missing=()
for tool in nginx wrk; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package starts a system nginx; the bench runs its own on a free loopback port.
  $sudo_cmd systemctl disable --now nginx >/dev/null 2>&1 || true
fi

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
cargo bench --bench registry --bench trustpub --bench http
