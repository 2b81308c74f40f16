#!/usr/bin/env bash
# bench/import.sh — issue 16: how fast `admin import` moves players in, with how much memory, on
# SQLite and PostgreSQL; and how long a wrong password takes for each kind of imported hash.
#
#   bench/import.sh            # 100,000 then 1,000,000 players on each database, and the sign-in
#                              # timings (about 10 minutes on 2 cores); writes the import section of
#                              # BENCHMARKS.md
#   bench/import.sh --smoke    # 2,000 and 20,000 players (about a minute); writes
#                              # target/bench/BENCHMARKS.import.smoke.md
#
# Steps:
#   1. generates a JSON lines file of N players (unique names, a few real hashes repeated: Spring
#      Security's Argon2id, Argon2i, bcrypt $2b$ and $2y$ at cost 10, made by tests/fixtures/kb2's
#      independent implementations), for each N;
#   2. for each database and each N: a fresh database, `admin import --from FILE --json` under
#      /usr/bin/time -v (imported rows per second from the command's own report; peak resident
#      memory; the same again, where every row is already present: the idempotent re-run);
#      memory at the small and the large N side by side shows whether it stays flat;
#   3. timing: the service (release, production Argon2id m=19456 t=2 p=1) on the SQLite database
#      of step 2, one account signed up natively; a client signs in with a wrong password, one
#      request at a time, rotating over a name that matches no account, the native account and
#      one imported account per kind of hash; median and 90th percentile per kind; next to what
#      one verification of each kind costs (the service's own measurement, logged at debug
#      level), which is what the answers would differ by without the hold.
#
# Settings (environment):
#   BENCH_SIZES          players per run ("100000 1000000"; --smoke: "2000 20000")
#   BENCH_PG_URL         PostgreSQL server, without a database name (postgres://postgres@127.0.0.1:5432)
#   BENCH_TIMING_ROUNDS  wrong-password sign-ins per kind in step 3 (41; --smoke: 11)
#   BENCH_PORT           the service's port in step 3 (18280)
#   BENCH_OUT            report file (BENCHMARKS.md; --smoke: target/bench/BENCHMARKS.import.smoke.md)
#   BENCH_SKIP_BUILD=1   use target/release/killbill-auth as it is
#   BENCH_KEEP_TMP=1     keep the temporary directory
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bench_options "$@"
if [ "$SMOKE" = 1 ]; then
    SIZES=${BENCH_SIZES:-"2000 20000"}
    ROUNDS=${BENCH_TIMING_ROUNDS:-11}
    OUT=${BENCH_OUT:-target/bench/BENCHMARKS.import.smoke.md}
else
    SIZES=${BENCH_SIZES:-"100000 1000000"}
    ROUNDS=${BENCH_TIMING_ROUNDS:-41}
    OUT=${BENCH_OUT:-BENCHMARKS.md}
fi
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${BENCH_PORT:-18280}
BIN="$ROOT/target/release/killbill-auth"

log() { echo "[bench/import] $*" >&2; }
die() { echo "bench/import.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"
command -v psql >/dev/null || die "psql is needed"
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary"
    cargo build --release --bin killbill-auth >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-import.XXXXXX")
PG_DBS=()
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    for db in "${PG_DBS[@]}"; do psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
    remove_tmp
}
trap cleanup EXIT

# 1. The files: names player0000001…, hashes from the fixtures (their passwords in accounts.json).
python3 - "$TMP" $SIZES <<'PY'
import json, sys
tmp, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
fixture = [json.loads(l) for l in open("tests/fixtures/kb2/players.jsonl") if l.strip().startswith("{")]
by_name = {row.get("username"): row["password_hash"] for row in fixture if "username" in row}
# Spring Argon2id, Argon2i, bcrypt $2b$ and $2y$ (cost 10).
hashes = [by_name["Kim"], by_name["Lou"], by_name["Joe"], by_name["Ola"]]
for n in sizes:
    with open(f"{tmp}/players-{n}.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"username": f"player{i:07d}", "password_hash": hashes[i % len(hashes)],
                                "created": 1700000000000 + i}) + "\n")
PY

declare -A RATE RERATE RSS SECS
run_import() { # db-label url file n
    local label=$1 url=$2 file=$3 n=$4 pass=$5
    local report="$TMP/report-$label-$n-$pass.json" timing="$TMP/time-$label-$n-$pass.txt"
    KILLBILL_AUTH_DATABASE_URL=$url /usr/bin/time -v "$BIN" admin import --from "$file" --json \
        >"$report" 2>"$timing" || { cat "$timing" >&2; die "import into $label failed"; }
    python3 - "$report" "$timing" "$n" <<'PY'
import json, re, sys
report, timing, n = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), int(sys.argv[3])
a = report["accounts"]
assert a["read"] == n and a["refused"] == 0, a
done = a["imported"] + a["already_present"]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1))
print(f"{done / report['seconds']:.0f} {rss} {report['seconds']:.1f}")
PY
}

for n in $SIZES; do
    file="$TMP/players-$n.jsonl"
    for label in sqlite postgres; do
        if [ "$label" = sqlite ]; then
            url="sqlite://$TMP/kb-$n.db"
        else
            db="kb_bench_import_$$_$n"
            psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS \"$db\"" -c "CREATE DATABASE \"$db\"" >/dev/null
            PG_DBS+=("$db")
            url="$PG_URL/$db"
        fi
        log "$label: importing $n players"
        read -r rate rss secs < <(run_import "$label" "$url" "$file" "$n" first)
        RATE[$label-$n]=$rate; RSS[$label-$n]=$rss; SECS[$label-$n]=$secs
        log "$label: $n players again (all already present)"
        read -r rerate _ _ < <(run_import "$label" "$url" "$file" "$n" again)
        RERATE[$label-$n]=$rerate
        log "$label $n: $rate rows/s, peak RSS $rss KiB, $secs s; re-run $rerate rows/s"
    done
done

# 3. Timing, on the SQLite database of the first size.
FIRST=${SIZES%% *}
log "timing: the service on the SQLite database of $FIRST players"
KILLBILL_AUTH_DATABASE_URL="sqlite://$TMP/kb-$FIRST.db" KILLBILL_AUTH_SERVER_LISTEN="127.0.0.1:$PORT" \
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_ACCOUNT_NETWORK=10000 \
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_ACCOUNT=10000 \
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_NETWORK=10000 \
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_WIDE_NETWORK=10000 \
    RUST_LOG=killbill_auth::service::hasher=debug "$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; do sleep 0.2; done
TIMING=$(python3 - "$PORT" "$ROUNDS" <<'PY'
import http.client, json, statistics, sys, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
def post(path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    r = conn.getresponse(); r.read(); return r.status
assert post("/users", {"username": "native_one", "password": "correct horse battery staple"}) == 200
# player0000000: Spring Argon2id; 1: Argon2i; 2: bcrypt $2b$ 10; 3: bcrypt $2y$ 10.
kinds = [("no account", "no_such_player"), ("made here (Argon2id m=19456 t=2)", "native_one"),
         ("Spring Argon2id (m=16384 t=2)", "player0000000"), ("Argon2i (m=16384 t=2)", "player0000001"),
         ("bcrypt $2b$ cost 10", "player0000002"), ("bcrypt $2y$ cost 10", "player0000003")]
times = {k: [] for k, _ in kinds}
for name in [n for _, n in kinds]:
    post("/auth", {"username": name, "password": "wrong password"})
for r in range(rounds):
    for i in range(len(kinds)):
        kind, name = kinds[(i + r) % len(kinds)]
        t = time.perf_counter()
        assert post("/auth", {"username": name, "password": "wrong password"}) == 401
        times[kind].append((time.perf_counter() - t) * 1000)
for kind, _ in kinds:
    ts = sorted(times[kind])
    print(f"| {kind} | {statistics.median(ts):.1f} | {ts[int(len(ts) * 0.9) - 1]:.1f} |")
PY
)
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
COSTS=$(python3 - "$TMP/server.log" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("message") == "password hash class measured":
        last[entry["class"]] = entry["cost_us"]
for cls, us in sorted(last.items()):
    print(f"| {cls} | {us / 1000:.1f} |")
PY
)

MEM_NOTE=""
read -r SMALL LARGE <<<"$SIZES"
if [ -n "${LARGE:-}" ]; then
    MEM_NOTE="Peak memory at $LARGE players against $SMALL: SQLite ${RSS[sqlite-$SMALL]} → ${RSS[sqlite-$LARGE]} KiB, PostgreSQL ${RSS[postgres-$SMALL]} → ${RSS[postgres-$LARGE]} KiB."
fi

REPORT="$TMP/report.md"
{
    echo "<!-- BEGIN GENERATED by bench/import.sh: do not edit below -->"
    echo "### Results: imports"
    echo
    echo "Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with changes)'), $(nproc) cores, $(uname -sr)."
    echo
    echo "#### 1. \`admin import --from FILE\` (JSON lines), rows per second and peak memory"
    echo
    echo "| database | players | imported rows/s | time | peak RSS | re-run (all already present) rows/s |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for n in $SIZES; do
        for label in sqlite postgres; do
            echo "| $label | $n | ${RATE[$label-$n]} | ${SECS[$label-$n]} s | $((RSS[$label-$n] / 1024)) MiB | ${RERATE[$label-$n]} |"
        done
    done
    echo
    echo "$MEM_NOTE"
    echo
    echo "#### 2. A wrong password (\`POST /auth\` → 401), by the kind of the account's hash"
    echo
    echo "$ROUNDS sign-ins per kind, one at a time, rotating over the kinds; production Argon2id parameters."
    echo
    echo "| account | median ms | p90 ms |"
    echo "| --- | ---: | ---: |"
    echo "$TIMING"
    echo
    echo "What one verification of each class costs on this machine (the service's own measurement, the least of its recent times), so what the answers above would differ by without the hold:"
    echo
    echo "| class of hash | cost ms |"
    echo "| --- | ---: |"
    echo "$COSTS"
    echo
    echo "#### Commands"
    echo
    echo '```sh'
    echo "bench/import.sh$([ "$SMOKE" = 1 ] && echo ' --smoke')    # BENCH_SIZES=\"$SIZES\" BENCH_TIMING_ROUNDS=$ROUNDS"
    echo '```'
    echo "<!-- END GENERATED by bench/import.sh -->"
} >"$REPORT"
cat "$REPORT"

mkdir -p "$(dirname "$OUT")"
if [ "$OUT" = BENCHMARKS.md ]; then
    python3 - "$OUT" "$REPORT" <<'PY'
import sys
path, report = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(path).read()
begin, end = "<!-- BEGIN GENERATED by bench/import.sh", "<!-- END GENERATED by bench/import.sh -->"
if begin in text:
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    text = head + report + tail
else:
    text = text.rstrip("\n") + "\n\n" + report + "\n"
open(path, "w").write(text)
PY
    log "wrote the import section of $OUT"
else
    cp "$REPORT" "$OUT"
    log "wrote $OUT"
fi
