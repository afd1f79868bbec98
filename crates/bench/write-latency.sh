#!/usr/bin/env bash
# How long a write other than a transition (a nickname change) takes on SQLite while
# invite-accept loads the writer: DURATION s of invite-accept at 64 connections, and meanwhile
# COUNT nickname changes, one at a time every 50 ms, each by another seeded user, timed by curl
# (connect included). Prints the invite-accept summary, the status codes, and the changes'
# latency percentiles.
#
# usage: BIN=dir SEED=/tmp/s/seed.db USERS_FILE=/tmp/s/users.jsonl crates/bench/write-latency.sh
#   BIN         a directory holding `kith` and `kith-bench`, and optionally `env` (as ab-sqlite.sh)
#   SEED        a file seeded by `kith-bench seed --db sqlite://…` (never written: runs use a copy)
#   USERS_FILE  the users file that seed wrote (needs COUNT + 300 users)
# Environment: COUNT [100], DURATION [14], OUT [/tmp/kith-write-latency]. Needs curl and jq.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${BIN:?set BIN to the directory of kith and kith-bench}"
require_seed
COUNT=${COUNT:-100}
DURATION=${DURATION:-14}
OUT=${OUT:-/tmp/kith-write-latency}
mkdir -p "$OUT"

stop_kith_on_exit

serve_copy "$BIN" "$SEED" "$OUT"
# Users from the 300th on: the first ones are invite-accept's hubs and celebrities.
(
  sleep 3
  i=0
  sed -n "300,$((299 + COUNT))p" "$USERS_FILE" | jq -r .token | while read -r token; do
    i=$((i + 1))
    curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -H "Authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"nickname\":\"n$i\"}" \
      "http://127.0.0.1:$port/user/set_nickname"
    sleep 0.05
  done >"$OUT/latencies"
) &
writes=$!
run_scenario "$BIN" "$port" "$kp" invite-accept "$USERS_FILE" "$DURATION"
wait "$writes"
kill "$kp"
wait "$kp" 2>/dev/null || true
kp=""
echo "status codes: $(awk '{print $1}' "$OUT/latencies" | sort | uniq -c | tr -s ' \n' ' ')"
sort -k2 -n "$OUT/latencies" | awk '{ms[NR] = $2 * 1000} END {
  printf "nickname changes: %d, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    NR, ms[int(NR * 0.5)], ms[int(NR * 0.9)], ms[int(NR * 0.99)], ms[NR] }'
