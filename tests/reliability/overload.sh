#!/usr/bin/env bash
# Overload check (issue 7): finds the load Kith serves with the `profile` scenario, then drives it
# at 4x the connections with load shedding on (the defaults) and off (KITH_MAX_INFLIGHT=0), and
# finally at the normal load again to show it recovers. Prints each kith-bench line; the figures
# go in docs/reliability.md ("Overload").
#
# Needs release builds of kith and kith-bench (KITH, BENCH: their paths; it builds nothing: run
# `cargo build --release -p kith-server -p kith-bench` first), curl, and psql for PostgreSQL.
# Knobs [defaults]: DB [postgres | sqlite], USERS [100], BASE [64] connections for the normal
# load, DURATION [10] measured seconds, WARMUP [2], MODES ["shed noshed"], KEEP=1 keeps the
# temp dir (server logs, users file).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
KITH=${KITH:-$TARGET/release/kith}
BENCH=${BENCH:-$TARGET/release/kith-bench}
DB=${DB:-postgres}
USERS=${USERS:-100}
BASE=${BASE:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
MODES=${MODES:-"shed noshed"}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-overload.XXXXXX")
SERVER_PID=""
PG_DB=""

psql_admin() {
  psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -v ON_ERROR_STOP=1 -qAt -c "$1"
}

stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

cleanup() {
  stop_server
  if [[ -n "$PG_DB" ]]; then
    psql_admin "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true
  fi
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

case "$DB" in
  postgres)
    PG_DB="kith_overload_$$"
    psql_admin "CREATE DATABASE $PG_DB"
    DB_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$PG_DB"
    ;;
  sqlite) DB_URL="sqlite://$WORK/kith.db" ;;
  *) echo "DB must be postgres or sqlite" >&2; exit 2 ;;
esac

PORT=$((20000 + RANDOM % 40000))
URL="http://127.0.0.1:$PORT"

# start_server LABEL [VAR=VALUE...]: the extra settings go to kith's environment.
start_server() {
  local label=$1
  shift
  env KITH_BIND="127.0.0.1:$PORT" KITH_DATABASE_URL="$DB_URL" \
    KITH_SMS_OUTBOX="$WORK/outbox.jsonl" KITH_SMS_PER_IP_HOURLY=1000000 \
    KITH_SMS_GLOBAL_HOURLY=1000000 KITH_CAPTCHA_AFTER=off KITH_BCRYPT_COST=10 \
    KITH_LOG=warn KITH_SHUTDOWN_TIMEOUT_SECS=5 "$@" \
    "$KITH" serve >>"$WORK/$label-server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    curl -fsS "$URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$label-server.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "kith did not become healthy" >&2
  exit 1
}

run() {
  local label=$1 connections=$2
  "$BENCH" run --url "$URL" --scenario profile --connections "$connections" \
    --duration "$DURATION" --warmup "$WARMUP" --pid "$SERVER_PID" \
    --tokens "$WORK/users.jsonl" --label "$label"
}

echo "machine: $(nproc) CPUs; date: $(date -u +%Y-%m-%dT%H:%MZ); db: $DB; users: $USERS"
start_server seed
"$BENCH" seed --url "$URL" --users "$USERS" --outbox "$WORK/outbox.jsonl" \
  --out "$WORK/users.jsonl" --concurrency 8
stop_server

if [[ " $MODES " == *" shed "* ]]; then
  echo "== shedding on (defaults: KITH_MAX_INFLIGHT = 4 x pool = 64, KITH_SHED_QUEUE = 256, KITH_SHED_WAIT_MS = 100)"
  start_server shed
  for c in $((BASE / 4)) $((BASE / 2)) "$BASE"; do run "$DB shed" "$c"; done
  run "$DB shed 4x" $((BASE * 4))
  run "$DB shed 8x" $((BASE * 8))
  echo "-- load dropped back to $BASE connections, same server"
  run "$DB shed after" "$BASE"
  stop_server
fi

if [[ " $MODES " == *" noshed "* ]]; then
  echo "== shedding off (KITH_MAX_INFLIGHT=0)"
  start_server noshed KITH_MAX_INFLIGHT=0
  run "$DB noshed" "$BASE"
  run "$DB noshed 4x" $((BASE * 4))
  run "$DB noshed 8x" $((BASE * 8))
  echo "-- load dropped back to $BASE connections, same server"
  run "$DB noshed after" "$BASE"
  stop_server
fi
