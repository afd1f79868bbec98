#!/usr/bin/env bash
# Crash consistency (docs/reliability.md): kill -9 the real kith under a write load, 20 rounds per
# backend, run `kith check` after each kill and verify every acknowledged write after each restart.
# Usage: tests/reliability/crash.sh [--backend sqlite|postgres|both] [--rounds N] [--seed N] [--sabotage]
# PostgreSQL: KITH_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); each run
# creates a fresh database and drops it afterwards. Bounded: the whole run is cut at 60 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p kith-server -p kith-e2e --bins
exec timeout 3600 "$target/debug/kith-crash" "$@"
