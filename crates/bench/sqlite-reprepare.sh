#!/usr/bin/env bash
# Shows why cached SQLite statements were re-prepared on every run, and that
# SQLITE_ENABLE_QPSG stops it (docs/benchmarks.md, "Where the targets stand now"): builds the
# bundled sqlite3.c of the libsqlite3-sys in Cargo.lock twice, with libsqlite3-sys's own
# compile flags, without and with -DSQLITE_ENABLE_QPSG, then counts re-prepares per statement
# with sqlite-reprepare.py against both and against the system's libsqlite3 if there is one.
# Needs gcc and python3; about a minute.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(awk '/^name = "libsqlite3-sys"/ {getline; gsub(/"/, "", $3); print $3}' "$ROOT/Cargo.lock")
SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-"$VERSION"/sqlite3 | head -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-reprepare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The flags libsqlite3-sys's build.rs passes for the `bundled` feature (0.38).
FLAGS=(-DSQLITE_CORE -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_ENABLE_API_ARMOR
  -DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_FTS3
  -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1
  -DSQLITE_ENABLE_LOAD_EXTENSION=1 -DSQLITE_ENABLE_MEMORY_MANAGEMENT -DSQLITE_ENABLE_RTREE
  -DSQLITE_ENABLE_STAT4 -DSQLITE_SOUNDEX -DSQLITE_THREADSAFE=1 -DSQLITE_USE_URI -DHAVE_USLEEP=1
  -DHAVE_ISNAN)
gcc -O1 -shared -fPIC "${FLAGS[@]}" "$SRC/sqlite3.c" -o "$WORK/bundled.so" -lpthread -lm -ldl &
gcc -O1 -shared -fPIC "${FLAGS[@]}" -DSQLITE_ENABLE_QPSG "$SRC/sqlite3.c" -o "$WORK/qpsg.so" \
  -lpthread -lm -ldl &
wait
for lib in "$WORK/bundled.so" "$WORK/qpsg.so" /usr/lib/x86_64-linux-gnu/libsqlite3.so.0; do
  [[ -f "$lib" ]] && python3 "$ROOT/crates/bench/sqlite-reprepare.py" "$lib" "$ROOT/migrations/sqlite"
done
