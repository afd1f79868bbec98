#!/usr/bin/env bash
# Where a SQLite kith's CPU goes, thread by thread: invite-accept for 12 s at 64 connections,
# and the user and system CPU each thread name used between seconds 4 and 12 (from
# /proc/PID/task/*/stat), summed over the threads of that name. Also the time those threads
# were runnable but waiting for a CPU (the run-queue wait of /proc/PID/task/*/schedstat), and
# how often they gave the CPU up to wait (voluntary switches) or had it taken (preempted): a
# thread with work queued that is busy less than the whole window is either waiting for a
# CPU or for something else, and these tell which.
#
# usage: BIN=dir SEED=/tmp/s/seed.db USERS_FILE=/tmp/s/users.jsonl crates/bench/thread-cpu.sh
#   BIN, SEED, USERS_FILE as write-latency.sh. Environment: OUT [/tmp/kith-thread-cpu].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=crates/bench/lib.sh
source "$ROOT/crates/bench/lib.sh"
: "${BIN:?set BIN to the directory of kith and kith-bench}"
require_seed
OUT=${OUT:-/tmp/kith-thread-cpu}
mkdir -p "$OUT"

stop_kith_on_exit

# One line per thread: tid, name (spaces made _), user ticks, system ticks, run-queue wait
# (ns), voluntary and preempted context switches.
snapshot() {
  local task
  for task in /proc/"$kp"/task/*; do
    echo "${task##*/} $(tr ' ' _ <"$task/comm") $(cut -d' ' -f14,15 "$task/stat")" \
      "$(cut -d' ' -f2 "$task/schedstat")" \
      "$(awk '/^(non)?voluntary_ctxt_switches/ { printf "%s ", $2 }' "$task/status")"
  done
}

serve_copy "$BIN" "$SEED" "$OUT"
( sleep 4; snapshot >"$OUT/at4"; sleep 8; snapshot >"$OUT/at12" ) &
snapshots=$!
run_scenario "$BIN" "$port" "$kp" invite-accept "$USERS_FILE" 12
wait "$snapshots"
kill "$kp"
wait "$kp" 2>/dev/null || true
kp=""
tck=$(getconf CLK_TCK)
# Joined on the tid, a line holds: tid, then name, user, sys, wait, voluntary, preempted at 4 s
# ($2-$7) and the same at 12 s ($8-$13).
join "$OUT/at4" "$OUT/at12" | awk -v tck="$tck" '{
    user[$2] += ($9 - $3) / tck; sys[$2] += ($10 - $4) / tck; wait_[$2] += ($11 - $5) / 1e9
    vol[$2] += $12 - $6; pre[$2] += $13 - $7; n[$2]++ }
  END { for (t in n) if (user[t] + sys[t] > 0)
    printf "%-20s threads %3d  user %5.2f s  sys %5.2f s  run-queue wait %5.2f s  switches: waiting %6d, preempted %6d\n",
      t, n[t], user[t], sys[t], wait_[t], vol[t], pre[t] }' | sort
