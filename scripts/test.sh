#!/usr/bin/env bash
# Runs Wharf's whole test suite: lints, then every test on SQLite, then the integration tests
# on PostgreSQL, then once more with crate files in S3. On a fresh Debian
# machine (as root) it installs what the tests need; it starts a throwaway PostgreSQL and an S3
# API server (moto's) on 127.0.0.1 and stops them afterwards. A missing prerequisite is an
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
# The scale-out tests put nginx in front of two instances as the load balancer.
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null || need_pkgs+=(nginx)
# The backup test dumps SQLite with its shell (PostgreSQL's pg_dump comes with postgresql).
command -v sqlite3 >/dev/null || need_pkgs+=(sqlite3)
# The object-storage tests run against moto's S3 server, a Python package from PyPI.
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# The mail tests run a real SMTP server on loopback: aiosmtpd, a Python package from PyPI.
python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)
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

# --- aiosmtpd for the mail tests (tests/smtp_sink.py) -------------------------------------
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing aiosmtpd"
  # Debian marks its Python as externally managed; pip then needs --break-system-packages.
  python3 -m pip install -q --disable-pip-version-check aiosmtpd 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages aiosmtpd
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

# --- an S3 API server on 127.0.0.1 (moto's server mode) ----------------------------------
moto_version=5.2.1
moto_ok() {
  "$1" -c "import sys, moto, flask, flask_cors; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null
}
moto_python=python3
if ! moto_ok python3; then
  # Pinned, in a virtual environment of its own that later runs reuse.
  moto_venv=${XDG_CACHE_HOME:-$HOME/.cache}/wharf-test/moto-$moto_version
  if ! moto_ok "$moto_venv/bin/python"; then
    log "installing moto[server]==$moto_version into $moto_venv"
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/python" -m pip install -q --disable-pip-version-check "moto[server]==$moto_version"
  fi
  moto_python=$moto_venv/bin/python
fi
s3_port=${WHARF_TEST_S3_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
s3_log=$(mktemp /tmp/wharf-test-s3.XXXXXX.log)
log "starting moto's S3 server ($moto_version) on 127.0.0.1:$s3_port"
"$moto_python" -m moto.server -H 127.0.0.1 -p "$s3_port" >"$s3_log" 2>&1 &
s3_pid=$!
stop_s3() {
  kill "$s3_pid" 2>/dev/null || true
  wait "$s3_pid" 2>/dev/null || true
  rm -f "$s3_log"
}
trap 'stop_s3; stop_pg' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3_port/', timeout=1)" 2>/dev/null && break
  if ! kill -0 "$s3_pid" 2>/dev/null; then
    echo "error: moto's S3 server did not start:" >&2
    cat "$s3_log" >&2
    exit 1
  fi
  sleep 0.2
done
export WHARF_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"

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

log "integration tests with crate files in S3 (PostgreSQL)"
# Every test server that does not choose its storage keeps its crate files in a fresh bucket
# (the tests in s3.rs, which always do, ran above too).
WHARF_TEST_STORAGE=s3 WHARF_TEST_DATABASE_URL="$pg_url" cargo test --test api
