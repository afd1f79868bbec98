#!/usr/bin/env bash
# Schemathesis against a live Kith: every operation of /openapi.json, --checks all, the
# examples, coverage, fuzzing and stateful phases, with a logged-in Bearer token.
#
#   tests/schemathesis/run.sh quick   # CI: small bounds, well under 3 minutes
#   tests/schemathesis/run.sh long    # the recorded run: >= 5,000 generated requests
#
# Kith runs on a free 127.0.0.1 port against a fresh SQLite file, with SMS codes written to an
# outbox file (that is how the script signs up), the image captcha off and dummy upload storage
# keys (the upload token is signed locally). Reports land in $ST_REPORT_DIR (default: a temp dir).
#
# Exit status: non-zero when the run finds any ST1xx failure (a server error ST101/ST102, or a
# response that breaks the document: undocumented status ST103, content type ST104-ST106,
# missing header ST107, body schema ST108-ST110), a crash, or a panic or internal error in
# Kith's log. The other --checks all findings (ST201 schema-violating input
# accepted, ST202 schema-valid input refused, ST204 wrong answer to an undeclared method) are
# counted and printed: most ST202 are values JSON Schema cannot describe (a valid phone number,
# a common password), see docs/reliability.md. ST_STRICT=1 fails on those too.
# Env: KITH_BIN (default: the debug build, built when missing), ST_SEED, ST_MAX_EXAMPLES,
# ST_MAX_TIME, ST_EXTRA (extra schemathesis arguments).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode="${1:-quick}"
case "$mode" in
  quick) examples="${ST_MAX_EXAMPLES:-5}"; budget="${ST_MAX_TIME:-100}" ;;
  long) examples="${ST_MAX_EXAMPLES:-150}"; budget="${ST_MAX_TIME:-480}" ;;
  *) echo "usage: $0 [quick|long]" >&2; exit 2 ;;
esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith-target}"
bin="${KITH_BIN:-$CARGO_TARGET_DIR/debug/kith}"
if [ -z "${KITH_BIN:-}" ]; then
  cargo build -q -p kith-server --bin kith
fi
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install -q 'schemathesis>=4.32,<5'
fi

tmp="$(mktemp -d)"
reports="${ST_REPORT_DIR:-$tmp/reports}"
mkdir -p "$reports"
kith_pid=""
cleanup() {
  if [ -n "$kith_pid" ]; then kill "$kith_pid" 2>/dev/null || true; wait "$kith_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
KITH_BIND="127.0.0.1:$port" \
KITH_DATABASE_URL="sqlite://$tmp/kith.db" \
KITH_SMS_OUTBOX="$tmp/outbox.jsonl" \
KITH_CAPTCHA_AFTER=off \
KITH_QINIU_ACCESS_KEY=schemathesis-ak \
KITH_QINIU_SECRET_KEY=schemathesis-sk \
KITH_QINIU_BUCKET=kith \
KITH_QINIU_DOMAIN=img.example.com \
KITH_BCRYPT_COST=10 \
KITH_LOG="${KITH_LOG:-warn}" \
  "$bin" serve 2>"$tmp/kith.log" &
kith_pid=$!

for _ in $(seq 1 200); do
  if curl -fs "$base/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$kith_pid" 2>/dev/null; then cat "$tmp/kith.log" >&2; echo "kith exited" >&2; exit 1; fi
  sleep 0.1
done
curl -fs "$base/health" >/dev/null

# Sign up through the API (send_code -> code from the outbox -> verify_code -> register ->
# login) a user whose session the run uses, and a friend, so that ids in the examples exist.
token="$(python3 - "$base" "$tmp/outbox.jsonl" <<'PY'
import json, sys, urllib.request

base, outbox = sys.argv[1], sys.argv[2]

def post(path, body, token=None):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=180) as res:
        answer = json.load(res)
    if answer.get("code") != 200:
        sys.exit(f"{path}: {answer}")
    return answer.get("result")

def sign_up(national, nickname):
    post("/user/send_code", {"region": 86, "phone": national})
    code = None
    with open(outbox) as f:
        for line in f:
            msg = json.loads(line)
            if msg.get("phone") == "+86" + national:
                code = msg["code"]
    vt = post("/user/verify_code", {"region": 86, "phone": national, "code": code})
    post("/user/register", {"nickname": nickname, "password": "Sch3mathesis-run",
                            "verification_token": vt["verification_token"]})
    got = post("/user/login", {"region": 86, "phone": national, "password": "Sch3mathesis-run"})
    return got["id"], got["token"]

me, token = sign_up("13912345678", "Tom")
friend, friend_token = sign_up("13912345679", "Jerry")
post("/friendship/invite", {"friendId": friend, "message": "hi"}, token)
post("/friendship/agree", {"friendId": me}, friend_token)
print(token)
PY
)"

# /user/logout would end the run's own session; everything else runs.
# One worker: this machine's CPython 3.11.7 keeps ast.parse's recursion counter in shared module
# state, so Hypothesis describing lambdas (ast.parse) in two worker threads at once raised
# "SystemError: AST constructor recursion depth mismatch" inside schemathesis, an error that is
# not Kith's but failed a CI run (reproduced with two threads and nothing of Kith's).
set +e
timeout --kill-after=10 "$((budget + 60))" schemathesis run "$base/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$examples" \
  --max-time "$budget" \
  --header "Authorization: Bearer $token" \
  --generation-with-security-parameters false \
  --exclude-path /user/logout \
  --seed "${ST_SEED:-1}" \
  --generation-database none \
  --workers 1 \
  --no-color \
  --report junit,ndjson --report-dir "$reports" \
  ${ST_EXTRA:-}
status=$?
set -e

# Schemathesis exits 1 on any finding; judge the findings from its JUnit report instead.
if [ "$status" -le 1 ] && ls "$reports"/junit-*.xml >/dev/null 2>&1; then
  python3 - "$reports" "${ST_STRICT:-0}" <<'PY'
import collections, glob, os, re, sys
import xml.etree.ElementTree as ET

reports, strict = sys.argv[1], sys.argv[2] == "1"
junit = max(glob.glob(os.path.join(reports, "junit-*.xml")), key=os.path.getmtime)
counts = collections.Counter()
where = collections.defaultdict(set)
for case in ET.parse(junit).iter("testcase"):
    for failure in case:
        if failure.tag not in ("failure", "error"):
            continue
        text = (failure.get("message") or "") + (failure.text or "")
        codes = set(re.findall(r"ST\d{3} [A-Za-z][A-Za-z \-]+[a-z]", text)) or {failure.tag}
        for code in codes:
            counts[code] += 1
            where[code].add(case.get("name"))
hard = ("ST1", "error")  # ST1xx: server errors and responses that break the schema
bad = 0
for code, n in sorted(counts.items()):
    fatal = strict or code.startswith(hard)
    bad += n if fatal else 0
    print(f"{'FAIL' if fatal else 'note'} {n:4} {code}: {', '.join(sorted(where[code])[:8])}")
print(f"findings that fail the run: {bad}")
sys.exit(1 if bad else 0)
PY
  status=$?
fi
if grep -n -E 'panicked|internal error' "$tmp/kith.log" >&2; then
  echo "kith logged an internal error or a panic (log above)" >&2
  status=1
fi
if ! kill -0 "$kith_pid" 2>/dev/null; then
  echo "kith died during the run" >&2
  status=1
fi
echo "schemathesis ($mode) exit status $status; reports in $reports"
exit "$status"
