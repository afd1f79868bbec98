#!/usr/bin/env bash
# The database's floor for the PostgreSQL write and list targets: the SQL Kith sends for an
# invite and its accept (crates/bench/transition.pgbench) and for a `friends` page
# (crates/bench/friends.pgbench), replayed by pgbench on a database seeded like the ratio runs',
# between two runs of the references (`kith-bench baseline`). No HTTP server takes part, so the
# requests/s printed bound what any server sending this SQL could reach on this machine; read
# them against the references of the same run, as the targets are.
#
# usage: BIN=dir crates/bench/sql-floor.sh
#   BIN        a directory holding `kith-bench` (a release build)
# Environment: USERS [10000], DURATION [10], PGURL [postgres://postgres@127.0.0.1:5432].
# The replays use the scenarios' connections: 64 (until 2026-12-05, 32 for invite-accept).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${BIN:?set BIN to the directory of kith-bench}"
out=$(mktemp -d)
pg_run_settings "$out"

db="kith_floor_$$"
refdb="kith_floor_ref_$$"
cleanup() {
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "DROP DATABASE IF EXISTS $refdb" \
    >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT

# replay SCRIPT CLIENTS VAR=VALUE: prints pgbench's transactions per second.
replay() {
  pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" -D "$3" -f "$ROOT/crates/bench/$1" \
    "$PGURL/$db" | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

psql "$PGURL/postgres" -qc "CREATE DATABASE $refdb" -c "CREATE DATABASE $db" >/dev/null
"$BIN/kith-bench" seed --db "$PGURL/$db" --users "$USERS" --friends 20 --followers 2000 \
  --contacts 0 --sessions 0 --out "$out/users.jsonl" >/dev/null
psql "$PGURL/$db" -q \
  -c "CREATE TABLE kith_bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM users" \
  -c "ALTER TABLE kith_bench_ids ADD PRIMARY KEY (n)" \
  -c "CREATE TABLE kith_bench_hubs AS SELECT row_number() OVER (ORDER BY owner) AS n, owner
      FROM relationships WHERE friendship = 'friends' GROUP BY owner HAVING count(*) >= 50" \
  -c "ALTER TABLE kith_bench_hubs ADD PRIMARY KEY (n)" -c "ANALYZE" >/dev/null
users=$(psql "$PGURL/$db" -Atc "SELECT count(*) FROM kith_bench_ids")
hubs=$(psql "$PGURL/$db" -Atc "SELECT count(*) FROM kith_bench_hubs")

reference "$refdb"
tps=$(replay transition.pgbench 64 "users=$users")
echo "$(date -u +%H:%M:%S) invite-accept SQL replay: 64 clients, $tps invite+accept transactions/s = $(echo "$tps * 2" | bc) requests/s"
tps=$(replay friends.pgbench 64 "hubs=$hubs")
echo "$(date -u +%H:%M:%S) friends SQL replay: 64 clients, $hubs hubs, $tps requests/s"
reference "$refdb"
