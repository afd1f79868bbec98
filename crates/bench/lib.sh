# Shell helpers the bench scripts share (sourced, not run): a free port, and waiting for a
# freshly started kith to answer /health.

# free_port: prints a port nobody answers on; the server is the one to bind it, so a race is
# possible but harmless (start-up would fail loudly). Below Linux's ephemeral range (from 32768):
# a port there can be the local end of some client's connection, which nobody answers on but the
# server cannot bind.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# wait_healthy URL PID LOG SECONDS: returns once URL/health answers; fails, showing LOG, when PID
# exits first or SECONDS pass.
wait_healthy() {
  local url=$1 pid=$2 log=$3 secs=$4
  for _ in $(seq 1 $((secs * 5))); do
    if curl -fsS "$url/health" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kith exited during start-up:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "kith did not become healthy in $secs s" >&2
  return 1
}

# seed_and_serve BIN DB_URL USERS SESSIONS USERS_FILE LOG [ENV_FILE]: bulk-seeds the (empty)
# PostgreSQL database DB_URL and starts BIN/kith on it on a free port, with the NAME=value lines
# of ENV_FILE added to its environment; waits until it is healthy. Sets `kp` (its pid) and
# `port`.
seed_and_serve() {
  local bin=$1 db_url=$2 users=$3 sessions=$4 users_file=$5 log=$6 env_file=${7:-}
  seed "$bin" "$db_url" "$users" "$sessions" "$users_file"
  serve "$bin" "$db_url" "$log" "$env_file"
}

# seed BIN DB_URL USERS SESSIONS USERS_FILE: bulk-seeds the (empty) PostgreSQL database DB_URL
# as every PostgreSQL run script does (20 friends each, celebrities with 2,000 followers, no
# address books), writing the sessions to USERS_FILE.
seed() {
  "$1/kith-bench" seed --db "$2" --users "$3" --friends 20 --followers 2000 \
    --contacts 0 --sessions "$4" --out "$5" >/dev/null
}

# serve BIN DB_URL LOG [ENV_FILE]: starts BIN/kith on the seeded database DB_URL on a free port,
# as seed_and_serve does, and waits until it is healthy. Sets `kp` and `port`.
serve() {
  local bin=$1 db_url=$2 log=$3 env_file=${4:-}
  local extra=()
  port=$(free_port)
  if [ -n "$env_file" ] && [ -f "$env_file" ]; then mapfile -t extra <"$env_file"; fi
  env KITH_LOG=warn KITH_DATABASE_URL="$db_url" KITH_BIND="127.0.0.1:$port" \
    KITH_CAPTCHA_AFTER=off "${extra[@]}" "$bin/kith" serve >"$log" 2>&1 &
  kp=$!
  wait_healthy "http://127.0.0.1:$port" "$kp" "$log" 60
}

# scenarios_then_stop BIN ROUND USERS_FILE DURATION SCENARIOS: runs each of the scenarios (one
# word list) against the kith that serve started, printing "round ROUND BIN <summary>" for
# each, then stops that kith and clears `kp`.
scenarios_then_stop() {
  local bin=$1 round=$2 users_file=$3 duration=$4 scenarios=$5 scenario line
  for scenario in $scenarios; do
    line=$(run_scenario "$bin" "$port" "$kp" "$scenario" "$users_file" "$duration")
    echo "round $round $bin $line"
  done
  kill "$kp"
  wait "$kp" 2>/dev/null || true
  kp=""
}

# run_scenario BIN PORT PID SCENARIO USERS_FILE DURATION: prints the summary line of one
# `kith-bench run` at CONNS [64] connections, issue 6's count for every scenario. (invite-accept
# ran at 32 until 2026-12-05, a choice of the first run that nothing required.)
run_scenario() {
  local bin=$1 port=$2 pid=$3 scenario=$4 users_file=$5 duration=$6 conns=${CONNS:-64}
  "$bin/kith-bench" run --url "http://127.0.0.1:$port" --scenario "$scenario" \
    --connections "$conns" --duration "$duration" --warmup 2 --tokens "$users_file" \
    --pid "$pid" | grep -v '^{' | tail -1
}

# pg_run_settings OUT_DEFAULT: the knobs the PostgreSQL run scripts share, from the environment
# or their defaults: ROUNDS [3], SCENARIOS ["profile invite-accept"], USERS [10000], SESSIONS
# [4000], DURATION [10], PGURL [postgres://postgres@127.0.0.1:5432], OUT [OUT_DEFAULT] (made
# here); and psql's notices off.
pg_run_settings() {
  ROUNDS=${ROUNDS:-3}
  SCENARIOS=${SCENARIOS:-profile invite-accept}
  USERS=${USERS:-10000}
  SESSIONS=${SESSIONS:-4000}
  DURATION=${DURATION:-10}
  PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
  OUT=${OUT:-$1}
  mkdir -p "$OUT"
  export PGOPTIONS="-c client_min_messages=warning"
}

# reference REFDB: runs the PostgreSQL references (`kith-bench baseline` from $BIN: pgbench -S
# and the single-row upsert, 64 clients, $DURATION s) on the database REFDB under $PGURL,
# printing each figure's line after the time it started.
reference() {
  "$BIN/kith-bench" baseline --db "$PGURL/$1" --clients 64 --duration "$DURATION" \
    | grep -E '^pgbench' | sed "s/^/$(date -u +%H:%M:%S) /"
}

# stop_kith_on_exit: clears `kp` and stops the kith it names, if any, when the script exits.
stop_kith_on_exit() {
  kp=""
  trap 'if [ -n "$kp" ]; then kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true; fi' EXIT
}

# serve_copy BIN SEED DIR: starts BIN/kith (with BIN/env) on DIR/run.db, a fresh copy of the
# seeded SQLite file SEED, logging to DIR/server.log, as serve does. Sets `kp` and `port`.
serve_copy() {
  rm -f "$3"/run.db*
  cp "$2" "$3/run.db"
  serve "$1" "sqlite://$3/run.db" "$3/server.log" "$1/env"
}

# require_seed: fails unless SEED (a file seeded by `kith-bench seed --db sqlite://…`) and
# USERS_FILE (the users file that seed wrote) are set, as the SQLite run scripts need.
require_seed() {
  : "${SEED:?set SEED to a bulk-seeded SQLite file}"
  : "${USERS_FILE:?set USERS_FILE to the users file of SEED}"
}

# sqlite_run_settings OUT_DEFAULT: the seed (require_seed) and the knobs the SQLite run scripts
# share, from the environment or their defaults: ROUNDS [3], SCENARIOS ["invite-accept"],
# DURATION [10], OUT [OUT_DEFAULT] (made here). SQLite's counterpart of pg_run_settings.
sqlite_run_settings() {
  require_seed
  ROUNDS=${ROUNDS:-3}
  SCENARIOS=${SCENARIOS:-invite-accept}
  DURATION=${DURATION:-10}
  OUT=${OUT:-$1}
  mkdir -p "$OUT"
}

# round_order ROUND DIR...: the DIRs in their order on odd rounds and reversed on even ones.
# Why: on this machine the build that runs first in a round won all six rounds of one A/B, by
# 1-15 % (docs/benchmarks.md, "SQLite's reads cannot write"), so a fixed order biases the result.
round_order() {
  local round=$1; shift
  if [ $((round % 2)) -eq 1 ]; then echo "$@"; else
    local out=""
    for dir in "$@"; do out="$dir $out"; done
    echo "$out"
  fi
}
