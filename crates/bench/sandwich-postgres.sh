#!/usr/bin/env bash
# The PostgreSQL ratio targets on a machine whose speed drifts within minutes: each Kith run is
# measured between two runs of the references (`kith-bench baseline`: pgbench -S and the upsert),
# so every ratio can be read against the reference just before and just after it.
#
# usage: BIN=dir crates/bench/sandwich-postgres.sh
#   BIN        a directory holding `kith` and `kith-bench` (release builds), and optionally a
#              file `env` of NAME=value lines for kith's environment (as ab-postgres.sh)
# Environment: ROUNDS [3], SCENARIOS ["profile invite-accept"], USERS [10000], SESSIONS [4000],
# DURATION [10], PGURL [postgres://postgres@127.0.0.1:5432], OUT [/tmp/kith-sandwich]. Prints the
# references and each run's summary line, in the order they ran.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${BIN:?set BIN to the directory of kith and kith-bench}"
pg_run_settings /tmp/kith-sandwich

db="kith_sandwich_$$"
refdb="kith_sandwich_ref_$$"
kp=""
cleanup() {
  if [ -n "$kp" ]; then kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true; fi
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "DROP DATABASE IF EXISTS $refdb" \
    >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$PGURL/postgres" -qc "CREATE DATABASE $refdb" >/dev/null

reference "$refdb"
for round in $(seq 1 "$ROUNDS"); do
  # A fresh database and server each round: invite-accept uses up its pairs.
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  seed_and_serve "$BIN" "$PGURL/$db" "$USERS" "$SESSIONS" "$OUT/users.jsonl" "$OUT/server.log" \
    "$BIN/env"
  for scenario in $SCENARIOS; do
    line=$(run_scenario "$BIN" "$port" "$kp" "$scenario" "$OUT/users.jsonl" "$DURATION")
    echo "$(date -u +%H:%M:%S) round $round $line"
  done
  kill "$kp" && wait "$kp" 2>/dev/null || true
  kp=""
  reference "$refdb"
done
