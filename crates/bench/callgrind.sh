#!/usr/bin/env bash
# Counts the instructions one kind of request costs kith, with valgrind's callgrind: stable on a
# noisy machine, so it is the A/B measure for per-request work (docs/benchmarks.md).
#
# usage: crates/bench/callgrind.sh DB_URL USERS_FILE SCENARIO [SECONDS]
#   DB_URL      a database seeded by `kith-bench seed --db` (e.g. sqlite:///tmp/cg/p.db)
#   USERS_FILE  the users file that seed wrote
#   SCENARIO    a `kith-bench run` scenario (profile, friends, sync, ...)
# Environment: BIN [$CARGO_TARGET_DIR/release or target/release] holds kith and kith-bench;
# OUT [/tmp/kith-callgrind] keeps the dumps; CONNECTIONS [4] of the counted run (1 makes every
# transition a batch of its own, so that batching does not move the count). Prints instructions, requests and their quotient;
# `callgrind_annotate --inclusive=yes` on the dump shows where they go.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DB=$1
USERS=$2
SCENARIO=$3
SECONDS_RUN=${4:-15}
CONNECTIONS=${CONNECTIONS:-4}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
OUT=${OUT:-/tmp/kith-callgrind}
mkdir -p "$OUT"
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"

# One worker, so the counts are of one thread's work plus the blocking pool's; warn-level logs.
KITH_WORKERS=1 KITH_LOG=warn KITH_DATABASE_URL="$DB" KITH_BIND="127.0.0.1:$PORT" \
  KITH_CAPTCHA_AFTER=off KITH_SHUTDOWN_TIMEOUT_SECS=5 \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/kith.%p.out" "$BIN/kith" serve \
  >"$OUT/server.log" 2>&1 &
VG=$!
trap 'kill -TERM $VG 2>/dev/null || true; wait $VG 2>/dev/null || true' EXIT
wait_healthy "$URL" "$VG" "$OUT/server.log" 60
# Warm up (statement caches, pool, page cache), then count only the measured run.
"$BIN/kith-bench" run --url "$URL" --scenario "$SCENARIO" --connections 1 --duration 3 \
  --warmup 0 --tokens "$USERS" >/dev/null
# kith compacts the sync change log at start-up, in the background: let that finish first.
sleep "${SETTLE:-10}"
callgrind_control -z "$VG" >/dev/null || { echo "callgrind_control -z failed" >&2; exit 1; }
RUN=$("$BIN/kith-bench" run --url "$URL" --scenario "$SCENARIO" --connections "$CONNECTIONS" \
  --duration "$SECONDS_RUN" --warmup 0 --tokens "$USERS")
callgrind_control -d "$VG" >/dev/null || { echo "callgrind_control -d failed" >&2; exit 1; }
DUMP=$(ls -t "$OUT"/kith."$VG".out.* | head -1)
INSTR=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
REQS=$(echo "$RUN" | grep '^{' | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r["ok"] + r["errors"])')
echo "$SCENARIO: $INSTR instructions, $REQS requests, $((INSTR / REQS)) per request (dump $DUMP)"
