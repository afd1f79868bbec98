#!/usr/bin/env bash
# CI smoke for the fuzz targets: builds them on stable (`-s none`, no sanitizer) and runs each
# for SECONDS (default 20) from the committed seeds, into a throw-away corpus. Fails on the first
# crash, leak of a panic, or 5xx. Usage: fuzz/smoke.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
# Its own target dir: a fuzz build never locks the workspace's shared one.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
cargo fuzz build -s none
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "== $t (${secs}s)"
    set +e
    cargo fuzz run "$t" -s none "$scratch/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$scratch/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|panicked|SUMMARY' "$scratch/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        # The failing input is in fuzz/artifacts/<target>/; replay it with
        # `cargo fuzz run <target> -s none fuzz/artifacts/<target>/<file>`.
        grep -A3 panicked "$scratch/$t.log" >&2 || tail -20 "$scratch/$t.log" >&2
        echo "fuzz target $t failed" >&2
        exit 1
    fi
done
echo "fuzz smoke: ${#targets[@]} targets passed"
