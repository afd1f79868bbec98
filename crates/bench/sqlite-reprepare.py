"""Counts how often SQLite re-prepares a cached statement that is rebound and run again.

usage: python3 sqlite-reprepare.py LIBSQLITE3.so MIGRATIONS_DIR

Applies Kith's SQLite migrations to a scratch file, then runs each statement 5 times with new
binds on one prepared handle (SQLITE_PREPARE_PERSISTENT, as Diesel does) and prints
sqlite3_stmt_status(SQLITE_STMTSTATUS_REPREPARE). Called by sqlite-reprepare.sh.
"""
import ctypes
import glob
import os
import sys
import tempfile

SQLITE_ROW = 100
SQLITE_PREPARE_PERSISTENT = 1
SQLITE_STMTSTATUS_REPREPARE = 5
SQLITE_TRANSIENT = ctypes.c_void_p(-1)

lib = ctypes.CDLL(sys.argv[1])
lib.sqlite3_libversion.restype = ctypes.c_char_p
lib.sqlite3_errmsg.restype = ctypes.c_char_p
db = ctypes.c_void_p()
scratch = tempfile.mkdtemp(prefix="kith-reprepare-")
path = os.path.join(scratch, "t.db")
if lib.sqlite3_open(path.encode(), ctypes.byref(db)) != 0:
    sys.exit("cannot open " + path)


def ex(sql):
    err = ctypes.c_char_p()
    if lib.sqlite3_exec(db, sql.encode(), None, None, ctypes.byref(err)):
        sys.exit(f"{sql[:60]}: {err.value}")


def reprepares(sql, binds, runs=5):
    st = ctypes.c_void_p()
    flags = SQLITE_PREPARE_PERSISTENT
    if lib.sqlite3_prepare_v3(db, sql.encode(), -1, flags, ctypes.byref(st), None):
        sys.exit(f"prepare failed: {lib.sqlite3_errmsg(db)}")
    for i in range(runs):
        lib.sqlite3_reset(st)
        for j, b in enumerate(binds(i), 1):
            if isinstance(b, int):
                lib.sqlite3_bind_int64(st, j, ctypes.c_int64(b))
            else:
                lib.sqlite3_bind_text(st, j, b.encode(), -1, SQLITE_TRANSIENT)
        while lib.sqlite3_step(st) == SQLITE_ROW:
            pass
    n = lib.sqlite3_stmt_status(st, SQLITE_STMTSTATUS_REPREPARE, 0)
    lib.sqlite3_finalize(st)
    return n


for m in sorted(glob.glob(os.path.join(sys.argv[2], "*", "up.sql"))):
    ex(open(m).read())
ex("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL")
ex("BEGIN")
for u in range(1, 2001):
    ex(
        "INSERT INTO users(id, phone, region, registered, nickname, password_hash, created_at,"
        f" updated_at) VALUES ({u}, '+86138{u:08d}', '86', 1, 'n{u}', 'x', 0, 0)"
    )
for u in range(1, 201):
    for o in range(1, 51):
        if o != u:
            ex(
                "INSERT INTO relationships(owner, other, friendship, following, starred, blocking,"
                " conv_type, phone_visible, active, created_at, updated_at)"
                f" VALUES ({u}, {o}, 'friends', 0, 0, 0, 'normal', 1, 1, 0, 0)"
            )
ex("COMMIT")

print(f"SQLite {lib.sqlite3_libversion().decode()} ({sys.argv[1]})")
cases = [
    ("SELECT token_hash, user_id FROM sessions WHERE token_hash = ? LIMIT ?", lambda i: [f"h{i}", 1]),
    ("SELECT token_hash, user_id FROM sessions WHERE token_hash = ?", lambda i: [f"h{i}"]),
    ("SELECT * FROM users WHERE id = ? LIMIT ?", lambda i: [i + 1, 1]),
]
for sql, binds in cases:
    print(f"  {reprepares(sql, binds)} re-prepares in 5 runs: {sql}")
ex("ANALYZE")
print("  after ANALYZE:")
cases = [
    ("SELECT other FROM relationships WHERE owner = ? AND friendship = ?", lambda i: [i + 1, "friends"]),
    ("SELECT * FROM relationships WHERE owner = ? AND other = ?", lambda i: [i + 1, i + 2]),
    ("SELECT * FROM relationships WHERE owner = ? AND request_id = ?", lambda i: [i + 1, 5]),
    ("SELECT * FROM relationships WHERE owner = ? ORDER BY other LIMIT ? OFFSET ?", lambda i: [i + 1, 20, 0]),
]
for sql, binds in cases:
    print(f"  {reprepares(sql, binds)} re-prepares in 5 runs: {sql}")
