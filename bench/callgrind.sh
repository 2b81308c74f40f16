#!/usr/bin/env bash
# bench/callgrind.sh — user-space instructions per `GET /auth`, service against the bare axum
# handler, counted by valgrind's callgrind. Instructions, unlike seconds, do not depend on what
# else the machine is doing, so this is the figure to compare two builds by.
#
#   bench/callgrind.sh [REQUESTS]      # default 2000 requests to each server, after a warm-up
#
# Both servers run under callgrind on 127.0.0.1 (ports BENCH_PORT and BENCH_PORT+1, default
# 18080); a small Python client sends the requests one after the other on one keep-alive
# connection, over 1,000 distinct keys that are all in the service's cache. The counts are
# zeroed after the warm-up and dumped after the measured requests, so start-up is not counted.
# Under valgrind, sha2 sees no SHA extensions and hashes in software (about 3,400 instructions
# per key instead of a few hundred): the service's figure is that much higher than on the metal.
# Needs valgrind and python3; builds in release mode unless BENCH_SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-2000}
PORT=${BENCH_PORT:-18080}
BARE_PORT=$((PORT + 1))
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/killbill-auth"
EXAMPLES="$TARGET_DIR/release/examples"
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --examples >&2
    # The binary on its own, as for production: built in one command with the examples, it gets
    # the dev-dependencies' features too (tokio's `process`…: about 350 instructions per request).
    cargo build --release --bin killbill-auth >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-callgrind.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/client.py" <<'PY'
import http.client, sys
port, keys_file, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
keys = [line.strip() for line in open(keys_file) if line.strip()]
conn = http.client.HTTPConnection("127.0.0.1", port)
bad = 0
for i in range(n):
    conn.request("GET", "/auth", headers={"Authorization": "Bearer " + keys[i % len(keys)]})
    response = conn.getresponse()
    response.read()
    bad += response.status != 200
if bad:
    sys.exit(f"{bad} of {n} answers were not 200")
PY

wait_up() { until curl -sf -o /dev/null "http://127.0.0.1:$1/"; do sleep 0.2; done; }

"$EXAMPLES/seed" --db "$TMP/kb.db" --keys 1000 --keys-file "$TMP/keys.txt" --file-limit 1000 >/dev/null
env KILLBILL_AUTH_SERVER_LISTEN="127.0.0.1:$PORT" KILLBILL_AUTH_DATABASE_URL="sqlite://$TMP/kb.db" \
    KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB=64 KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS=1 \
    KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND=1000000 KILLBILL_AUTH_RATE_LIMIT_KEY_BURST=1000000 \
    KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS=1000000000 \
    valgrind --tool=callgrind --callgrind-out-file="$TMP/service.%p.cg" "$BIN" serve >"$TMP/service.log" 2>&1 &
SVC=$!
PIDS+=("$SVC")
wait_up "$PORT"
python3 "$TMP/client.py" "$PORT" "$TMP/keys.txt" 1000 # every key once: all cached
BYTES=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $(head -1 "$TMP/keys.txt")" \
    "http://127.0.0.1:$PORT/auth")
valgrind --tool=callgrind --callgrind-out-file="$TMP/bare.%p.cg" \
    "$EXAMPLES/bare" --port "$BARE_PORT" --body-bytes "$BYTES" >"$TMP/bare.log" 2>&1 &
BARE=$!
PIDS+=("$BARE")
wait_up "$BARE_PORT"
python3 "$TMP/client.py" "$BARE_PORT" "$TMP/keys.txt" 1000

callgrind_control -z "$SVC" >/dev/null 2>&1
callgrind_control -z "$BARE" >/dev/null 2>&1
python3 "$TMP/client.py" "$PORT" "$TMP/keys.txt" "$N"
python3 "$TMP/client.py" "$BARE_PORT" "$TMP/keys.txt" "$N"
callgrind_control -d "$SVC" >/dev/null 2>&1
callgrind_control -d "$BARE" >/dev/null 2>&1
sleep 1

total() { # the dumps taken after zeroing (FILE.1, …), all threads
    local sum=0 f v
    for f in "$TMP/$1".*.cg.*; do
        v=$(grep -m1 '^summary:' "$f" | awk '{ print $2 }')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
S=$(total service)
B=$(total bare)
echo "instructions per GET /auth ($N requests each): service $((S / N)), bare axum $((B / N)), ratio $(awk -v a="$S" -v b="$B" 'BEGIN { printf "%.2f", a / b }')"
if [ -n "${BENCH_KEEP_PROFILE:-}" ]; then
    cp "$TMP"/service.*.cg.* "$TMP"/bare.*.cg.* "$BENCH_KEEP_PROFILE"/ && echo "profile kept in $BENCH_KEEP_PROFILE (callgrind_annotate)" >&2
fi
