#!/usr/bin/env bash
# A/B of kith binaries on PostgreSQL, interleaved so that the machine's drift falls on both:
# each round runs every binary in turn (reversed on even rounds: `round_order` in lib.sh), each
# on a fresh database seeded in bulk, with the same scenarios. Wall-clock figures on a shared
# 2-CPU machine vary by ±20 %: compare the binaries round by round, and trust a difference only
# when it holds in every round.
#
# usage: DIRS="/tmp/a /tmp/b" crates/bench/ab-postgres.sh
#   DIRS       directories, each holding a `kith` and a `kith-bench` (copy each build aside),
#              and optionally a file `env` of NAME=value lines for that kith's environment (so
#              that one binary can be compared with itself under another setting)
# Environment: ROUNDS [3], SCENARIOS ["profile invite-accept"], USERS [10000], SESSIONS [4000],
# DURATION [10], PGURL [postgres://postgres@127.0.0.1:5432], OUT [/tmp/kith-ab] (users files and
# server logs). Prints one line per round, binary and scenario.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${DIRS:?set DIRS to the directories of the binaries to compare}"
pg_run_settings /tmp/kith-ab

kp=""
db=""
cleanup() {
  if [ -n "$kp" ]; then kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

for round in $(seq 1 "$ROUNDS"); do
  n=0
  for dir in $(round_order "$round" $DIRS); do
    n=$((n + 1))
    db="kith_ab_$$_${round}_$n"
    psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    seed_and_serve "$dir" "$PGURL/$db" "$USERS" "$SESSIONS" "$OUT/users-$n.jsonl" \
      "$OUT/server-$n.log" "$dir/env"
    scenarios_then_stop "$dir" "$round" "$OUT/users-$n.jsonl" "$DURATION" "$SCENARIOS"
    psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
    db=""
  done
done
