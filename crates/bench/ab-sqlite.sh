#!/usr/bin/env bash
# A/B of kith binaries on SQLite, interleaved so that the machine's drift falls on both: each
# round runs every binary in turn (reversed on even rounds: `round_order` in lib.sh), each on a
# fresh copy of one bulk-seeded file, with the same scenarios. Compare the binaries round by
# round (see ab-postgres.sh).
#
# usage: DIRS="/tmp/a /tmp/b" SEED=/tmp/s/seed.db USERS_FILE=/tmp/s/users.jsonl crates/bench/ab-sqlite.sh
#   DIRS        directories, each holding a `kith` and a `kith-bench` (copy each build aside),
#               and optionally a file `env` of NAME=value lines for that kith (as ab-postgres.sh)
#               and a `seed.db` with its `users.jsonl`, used instead of SEED and USERS_FILE for
#               that binary (for settings fixed when a file is made, such as its page size)
#   SEED        a file seeded by `kith-bench seed --db sqlite://…` (never written: runs use copies)
#   USERS_FILE  the users file that seed wrote
# Environment: ROUNDS [3], SCENARIOS ["invite-accept"], DURATION [10], OUT [/tmp/kith-ab-sqlite]
# (the copies and server logs). Prints one line per round, binary and scenario.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${DIRS:?set DIRS to the directories of the binaries to compare}"
sqlite_run_settings /tmp/kith-ab-sqlite

stop_kith_on_exit

for round in $(seq 1 "$ROUNDS"); do
  for dir in $(round_order "$round" $DIRS); do
    seed=$SEED users=$USERS_FILE
    if [ -f "$dir/seed.db" ]; then seed=$dir/seed.db users=$dir/users.jsonl; fi
    rm -f "$OUT"/run.db*
    cp "$seed" "$OUT/run.db"
    serve "$dir" "sqlite://$OUT/run.db" "$OUT/server.log" "$dir/env"
    scenarios_then_stop "$dir" "$round" "$users" "$DURATION" "$SCENARIOS"
  done
done
