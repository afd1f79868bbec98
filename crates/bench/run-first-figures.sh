#!/usr/bin/env bash
# Builds kith and kith-bench in release, then measures health, profile, login, friends and
# invite-accept against a fresh SQLite file and a fresh PostgreSQL database, printing each run's
# figures and a markdown table.
#
# Environment knobs (defaults in brackets): USERS [200], DURATION [10] measured seconds per run,
# WARMUP [2], BACKENDS ["sqlite postgres"], SCENARIOS ["health profile login friends
# invite-accept"; addressbook-search is also known, with BOOK [100000] contacts], PGHOST
# [127.0.0.1], PGPORT [5432], PGUSER [postgres], BASELINES [1]: also measure the references
# (pgbench, SQLite loops, the raw actix ceiling) in the same run, BUILD [all]: "bench"
# rebuilds only kith-bench and runs the kith already in $CARGO_TARGET_DIR/release (or target/release) (e.g. while the work tree
# holds someone else's half-done changes), "none" builds nothing (e.g. while another cargo holds
# the target dir's lock), KEEP=1 to keep the temp dir (server logs, outboxes, users files,
# results.jsonl).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
USERS=${USERS:-200}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BACKENDS=${BACKENDS:-"sqlite postgres"}
SCENARIOS=${SCENARIOS:-"health profile login friends invite-accept"}
BUILD=${BUILD:-all}
BOOK=${BOOK:-100000}
BASELINES=${BASELINES:-1}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
# The documented default, stated explicitly so the login figure always means cost 12.
BCRYPT_COST=12

case "$BUILD" in
  all) cargo build --release -p kith-server -p kith-bench ;;
  bench) cargo build --release -p kith-bench ;;
  none) ;;
  *)
    echo "BUILD must be all, bench or none (got $BUILD)" >&2
    exit 2
    ;;
esac
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
KITH="$BIN/kith"
BENCH="$BIN/kith-bench"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-bench.XXXXXX")
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
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
    PG_DB=""
  fi
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"

# start_server LABEL DATABASE_URL: sets SERVER_PID and URL, waits for /health.
start_server() {
  local label=$1 db_url=$2 port
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  OUTBOX="$WORK/$label-outbox.jsonl"
  KITH_BIND="127.0.0.1:$port" \
    KITH_DATABASE_URL="$db_url" \
    KITH_SMS_OUTBOX="$OUTBOX" \
    KITH_SMS_PER_IP_HOURLY=1000000 \
    KITH_SMS_GLOBAL_HOURLY=1000000 \
    KITH_CAPTCHA_AFTER=off \
    KITH_BCRYPT_COST=$BCRYPT_COST \
    KITH_LOG=warn \
    KITH_SHUTDOWN_TIMEOUT_SECS=5 \
    "$KITH" serve >"$WORK/$label-server.log" 2>&1 &
  SERVER_PID=$!
  wait_healthy "$URL" "$SERVER_PID" "$WORK/$label-server.log" 60
}

# bench LABEL SCENARIO CONNECTIONS: one measured run, its JSON line appended to $RESULTS.
bench() {
  local label=$1 scenario=$2 connections=$3 out
  out=$("$BENCH" run --url "$URL" --scenario "$scenario" --connections "$connections" \
    --duration "$DURATION" --warmup "$WARMUP" --pid "$SERVER_PID" \
    --tokens "$WORK/$label-users.jsonl" --label "$label")
  echo "$out" | grep -v '^{'
  echo "$out" | grep '^{' >>"$RESULTS"
}

measure() {
  local label=$1 db_url=$2
  echo "== $label: $db_url"
  start_server "$label" "$db_url"
  "$BENCH" seed --url "$URL" --users "$USERS" --outbox "$OUTBOX" \
    --out "$WORK/$label-users.jsonl" --concurrency 8
  for scenario in $SCENARIOS; do
    case "$scenario" in
      health | profile) bench "$label" "$scenario" 64 ;;
      login) bench "$label" login 16 ;;
      friends)
        # The 4 hubs' 50 friendships each, made through /friendship/invite and /agree.
        "$BENCH" prepare --url "$URL" --tokens "$WORK/$label-users.jsonl"
        bench "$label" friends 64
        ;;
      # Each pair is used once: a second invite-accept on the same users would find no fresh pair.
      invite-accept) bench "$label" invite-accept 64 ;;
      addressbook-search)
        # The first user's book: BOOK contacts, added through /api/v2/contacts/batch.
        "$BENCH" prepare-book --url "$URL" --tokens "$WORK/$label-users.jsonl" --contacts "$BOOK"
        bench "$label" addressbook-search 64
        ;;
      *)
        echo "unknown scenario $scenario" >&2
        exit 2
        ;;
    esac
  done
  stop_server
  if [[ "$BASELINES" == 1 ]]; then
    case "$db_url" in
      postgres*) "$BENCH" baseline --db "$db_url" --clients 64 --duration "$DURATION" --label "$label" | tee -a "$WORK/baseline.out" ;;
      *) "$BENCH" baseline --db "sqlite://$WORK/baseline-$label.db" --duration "$DURATION" --label "$label" | tee -a "$WORK/baseline.out" ;;
    esac
    grep '^{' "$WORK/baseline.out" >>"$RESULTS" || true
    : >"$WORK/baseline.out"
  fi
}

# The HTTP ceiling: a bare actix-web JSON endpoint, driven like Kith.
ceiling() {
  local port
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  "$BENCH" ceiling --bind "127.0.0.1:$port" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "$URL/raw" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local out
  out=$("$BENCH" run --url "$URL" --scenario raw --connections 64 --duration "$DURATION" \
    --warmup "$WARMUP" --pid "$SERVER_PID" --label http)
  echo "$out" | grep -v '^{'
  echo "$out" | grep '^{' >>"$RESULTS"
  stop_server
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "users: $USERS, duration: ${DURATION}s after ${WARMUP}s warm-up, KITH_BCRYPT_COST=$BCRYPT_COST"
echo "server binary: $KITH, built $(date -u -r "$KITH" +%Y-%m-%dT%H:%MZ)"

for backend in $BACKENDS; do
  case "$backend" in
    sqlite)
      measure sqlite "sqlite://$WORK/kith.db"
      ;;
    postgres)
      PG_DB="kith_bench_$$"
      psql_admin "CREATE DATABASE $PG_DB"
      measure postgres "postgres://$PGUSER@$PGHOST:$PGPORT/$PG_DB"
      psql_admin "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"
      PG_DB=""
      ;;
    *)
      echo "unknown backend $backend" >&2
      exit 2
      ;;
  esac
done

if [[ "$BASELINES" == 1 ]]; then
  ceiling
fi

echo
"$BENCH" report --results "$RESULTS"
echo
echo "| database | scenario | conns | req/s | pairs/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB | cores: server / bench / machine |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# The references (pgbench, the SQLite loops) carry no latencies: they are in the table above.
jq -r 'select(.requests_per_s != null) | "| \(.label) | \(.scenario)\(if .ran_out_of_pairs then " (ran out of pairs)" else "" end) | \(.connections) | \(.requests_per_s) | \(.pairs_per_s // "-") | \(.p50_ms) | \(.p99_ms) | \(.p999_ms) | \(.errors) | \(.peak_rss_mb // "-") | \(.cpu.server_cores // "-") / \(.cpu.harness_cores // "-") / \(.cpu.machine_cores // "-") of \(.cpu.machine_cpus) |"' "$RESULTS"
