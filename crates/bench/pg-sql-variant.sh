#!/usr/bin/env bash
# One PostgreSQL run with SQL applied to the seeded database first: seeds as the sandwich runs
# do, runs the file $SQL (if set) on the seeded database, serves it with $BIN/kith and runs
# $SCENARIOS; with STATS=1 prints pg_stat_user_tables and the relationship, users and changes
# relation sizes afterwards. For trying a schema change (an index dropped, a fillfactor) before
# writing a migration.
#
# usage: SQL=/tmp/variant.sql SCENARIOS=invite-accept BIN=dir crates/bench/pg-sql-variant.sh
# Environment as sandwich-postgres.sh (USERS, SESSIONS, DURATION, PGURL, OUT); BIN [/tmp/base].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
BIN=${BIN:-/tmp/base}
pg_run_settings /tmp/kith-variant

db="kith_variant_$$"
kp=""
cleanup() {
  if [ -n "$kp" ]; then kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true; fi
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$PGURL/postgres" -qc "CREATE DATABASE $db" >/dev/null
seed "$BIN" "$PGURL/$db" "$USERS" "$SESSIONS" "$OUT/users.jsonl"
if [ -n "${SQL:-}" ]; then psql "$PGURL/$db" -q -f "$SQL"; fi
# Counted from here, so the statistics are the run's, not the seed's.
psql "$PGURL/$db" -qc "SELECT pg_stat_reset()" >/dev/null
serve "$BIN" "$PGURL/$db" "$OUT/server.log" "$BIN/env"
scenarios_then_stop "$BIN" 1 "$OUT/users.jsonl" "$DURATION" "$SCENARIOS"
if [ -n "${STATS:-}" ]; then
  psql "$PGURL/$db" -c "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_live_tup, \
    n_dead_tup FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd > 0 ORDER BY 1"
  psql "$PGURL/$db" -c "SELECT relname, pg_size_pretty(pg_relation_size(oid)) FROM pg_class \
    WHERE relname LIKE 'relationships%' OR relname LIKE 'users%' OR relname LIKE 'changes%'"
fi
