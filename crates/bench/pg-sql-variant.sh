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
db="kith_exp_$$"
kp=""
cleanup() { if [ -n "$kp" ]; then kill "$kp" 2>/dev/null||true; wait "$kp" 2>/dev/null||true; fi; psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1||true; }
trap cleanup EXIT
psql "$PGURL/postgres" -qc "CREATE DATABASE $db" >/dev/null
"$BIN/kith-bench" seed --db "$PGURL/$db" --users "$USERS" --friends 20 --followers 2000 --contacts 0 --sessions "$SESSIONS" --out "$OUT/users.jsonl" >/dev/null
if [ -n "${SQL:-}" ]; then psql "$PGURL/$db" -q -f "$SQL"; fi
psql "$PGURL/$db" -qc "select pg_stat_reset()" >/dev/null
serve "$BIN" "$PGURL/$db" "$OUT/server.log" "$BIN/env"
for s in $SCENARIOS; do echo "$(date -u +%T) $(run_scenario "$BIN" "$port" "$kp" "$s" "$OUT/users.jsonl" "$DURATION")"; done
if [ -n "${STATS:-}" ]; then
psql "$PGURL/$db" -c "select relname,n_tup_ins,n_tup_upd,n_tup_hot_upd,n_live_tup,n_dead_tup from pg_stat_user_tables where n_tup_ins+n_tup_upd>0 order by 1"
psql "$PGURL/$db" -c "select relname, pg_size_pretty(pg_relation_size(oid)) from pg_class where relname like 'relationships%' or relname like 'users%' or relname like 'changes%'"
fi
