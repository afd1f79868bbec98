#!/usr/bin/env bash
# Issue 6 at scale: for each size in SIZES, bulk-seeds a fresh database (`kith-bench seed --db`),
# starts the release kith on it, runs SCENARIOS at 64 connections and the login burst, stops the
# server and drops the database. Prints each phase's timings and one JSON line per run (also
# appended to $WORK/results.jsonl).
#
# Knobs (defaults in brackets): BACKEND [postgres] or sqlite, SIZES ["10000 1000000"], FRIENDS
# [20], FOLLOWERS [200000, capped by the bench at the users without a session], CONTACTS [1000],
# SCENARIOS ["profile friends sync followers follow-unfollow mixed"], BURST [1] (profile alone,
# then profile during a 16-connection login burst), DURATION [10], WARMUP [2], BIN
# [$CARGO_TARGET_DIR/release or target/release: kith and kith-bench, built beforehand with
# `cargo build --release -p kith-server -p kith-bench`], KEEP=1 keeps the databases and $WORK,
# SEEDED_DIR [unset]: SQLite only, use $SEEDED_DIR/sqlite-SIZE.db and sqlite-SIZE-users.jsonl
# when both exist (a seed kept from an earlier run; the runs write to it) instead of seeding.
# Server settings such as KITH_HASH_CONCURRENCY pass through from the environment.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BACKEND=${BACKEND:-postgres}
SIZES=${SIZES:-"10000 1000000"}
FRIENDS=${FRIENDS:-20}
FOLLOWERS=${FOLLOWERS:-200000}
CONTACTS=${CONTACTS:-1000}
SCENARIOS=${SCENARIOS:-"profile friends sync followers follow-unfollow mixed"}
BURST=${BURST:-1}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
KITH="$BIN/kith"
BENCH="$BIN/kith-bench"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-million.XXXXXX")
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
SERVER_PID=""
DBS=()

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
  if [[ "${KEEP:-0}" != 1 ]]; then
    for db in "${DBS[@]}"; do
      psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    done
    rm -rf "$WORK"
  else
    echo "kept $WORK and databases: ${DBS[*]}" >&2
  fi
}
trap cleanup EXIT

# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"

start_server() {
  local label=$1 db_url=$2 port
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  KITH_BIND="127.0.0.1:$port" KITH_DATABASE_URL="$db_url" \
    KITH_SMS_OUTBOX="$WORK/$label-outbox.jsonl" KITH_CAPTCHA_AFTER=off \
    KITH_BCRYPT_COST=12 KITH_LOG=warn KITH_SHUTDOWN_TIMEOUT_SECS=5 \
    "$KITH" serve >"$WORK/$label-server.log" 2>&1 &
  SERVER_PID=$!
  wait_healthy "$URL" "$SERVER_PID" "$WORK/$label-server.log" 120
}

record() {
  echo "$1" | grep -v '^{' || true
  echo "$1" | grep '^{' >>"$RESULTS" || true
  echo "$1" | grep '^{' || true
}

for size in $SIZES; do
  label="$BACKEND-$size"
  case "$BACKEND" in
    postgres)
      db="kith_million_$$_$size"
      psql_admin "CREATE DATABASE $db"
      DBS+=("$db")
      db_url="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
      ;;
    sqlite)
      db_url="sqlite://$WORK/$label.db"
      if [[ -n "${SEEDED_DIR:-}" && -f "$SEEDED_DIR/$label.db" && -f "$SEEDED_DIR/$label-users.jsonl" ]]; then
        db_url="sqlite://$SEEDED_DIR/$label.db"
        cp "$SEEDED_DIR/$label-users.jsonl" "$WORK/$label-users.jsonl"
      fi
      ;;
    *)
      echo "BACKEND must be postgres or sqlite" >&2
      exit 2
      ;;
  esac
  echo "== $label ($(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [[ -f "$WORK/$label-users.jsonl" ]]; then
    echo "using the seeded ${db_url#sqlite://}"
  else
    "$BENCH" seed --db "$db_url" --users "$size" --friends "$FRIENDS" --followers "$FOLLOWERS" \
      --contacts "$CONTACTS" --out "$WORK/$label-users.jsonl"
  fi
  if [[ "$BACKEND" == postgres ]]; then
    psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$db" -qAt \
      -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size(current_database()))"
  else
    du -h "${db_url#sqlite://}"
  fi
  start_server "$label" "$db_url"
  for scenario in $SCENARIOS; do
    echo "-- $scenario (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    record "$("$BENCH" run --url "$URL" --scenario "$scenario" --connections 64 \
      --duration "$DURATION" --warmup "$WARMUP" --pid "$SERVER_PID" \
      --tokens "$WORK/$label-users.jsonl" --label "$label")"
  done
  if [[ "$BURST" == 1 ]]; then
    echo "-- login burst (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    record "$("$BENCH" burst --url "$URL" --tokens "$WORK/$label-users.jsonl" --connections 64 \
      --login-connections 16 --duration "$DURATION" --warmup "$WARMUP" --pid "$SERVER_PID" \
      --label "$label")"
  fi
  stop_server
done
echo "results: $RESULTS"
