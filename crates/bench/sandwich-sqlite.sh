#!/usr/bin/env bash
# The SQLite ratio targets on a machine whose speed drifts within minutes: each Kith run is
# measured between two runs of the SQLite references (`kith-bench baseline --db sqlite://…`: the
# single-row read and upsert loops on one connection, each on a fresh file), so every ratio can
# be read against the loop just before and just after it. SQLite's counterpart of
# sandwich-postgres.sh.
#
# usage: DIRS="/tmp/a /tmp/b" SEED=/tmp/s/seed.db USERS_FILE=/tmp/s/users.jsonl crates/bench/sandwich-sqlite.sh
#   DIRS        directories, each holding `kith` and `kith-bench` (release builds), and
#               optionally a file `env` of NAME=value lines for that kith (as ab-sqlite.sh); the
#               first one's kith-bench runs the references
#   SEED        a file seeded by `kith-bench seed --db sqlite://…` (never written: runs use copies)
#   USERS_FILE  the users file that seed wrote
# Environment: ROUNDS [3], SCENARIOS ["invite-accept"], DURATION [10], OUT [/tmp/kith-sandwich-sqlite].
# Prints the references and each run's summary line, in the order they ran: per round, the
# references, then each binary in DIRS (reversed on even rounds: `round_order` in lib.sh); the
# references once more at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${DIRS:?set DIRS to the directories of the binaries to measure}"
sqlite_run_settings /tmp/kith-sandwich-sqlite
read -r first _ <<<"$DIRS"

kp=""
cleanup() {
  if [ -n "$kp" ]; then kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true; fi
  rm -f "$OUT"/ref.db*
}
trap cleanup EXIT

sqlite_reference() {
  rm -f "$OUT"/ref.db*
  "$first/kith-bench" baseline --db "sqlite://$OUT/ref.db" --rows 100000 --duration "$DURATION" \
    | grep -E '^sqlite-' | sed "s/^/$(date -u +%H:%M:%S) /"
}

for round in $(seq 1 "$ROUNDS"); do
  sqlite_reference
  for dir in $(round_order "$round" $DIRS); do
    serve_copy "$dir" "$SEED" "$OUT"
    scenarios_then_stop "$dir" "$round" "$USERS_FILE" "$DURATION" "$SCENARIOS" \
      | sed "s/^/$(date -u +%H:%M:%S) /"
  done
done
sqlite_reference
