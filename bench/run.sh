#!/usr/bin/env bash
# bench/run.sh — the speed of killbill-auth's two hot paths, side by side, in one command.
#
#   bench/run.sh            # full run (about 5 minutes on 2 cores); writes BENCHMARKS.md
#   bench/run.sh --smoke    # every step about 2 s on small data sets (for CI); writes
#                           # target/bench/BENCHMARKS.smoke.md and leaves BENCHMARKS.md alone
#
# What it does, on 127.0.0.1 only, every load bounded in time:
#   0. installs wrk (apt-get install -y wrk) if it is missing; builds the service and the
#      examples in release mode;
#   1. validation (GET /auth) against a bare axum handler (examples/bare.rs) answering the same
#      number of bytes, and against the same handler with the key hashed and looked up in
#      memory (bare --lookup): bare, lookup, service, round after round; then bare and service
#      at light load;
#  1b. the same validation load while examples/hostile holds 2,000 idle connections and a few
#      clients dribble request heads (the service must close them and serve everyone else);
#   2. sign-ins (POST /auth, default Argon2 m=19456 t=2 p=1) next to the Argon2 ceiling of the
#      machine (examples/argon2_ceiling.rs), alternately;
#   3. isolation: validation while a sign-in flood keeps the hashing queue full;
#   4. scale: validation with 10k and 1M live keys, cold (first use after a restart: every
#      request a cache miss; the first keys at light load, in three passes each after a
#      restart, the others at -c64) and warm; start-up time;
#   5. memory: resident memory (and the process's own, RssAnon) idle and after 100k distinct
#      keys were validated once.
# It prints a markdown report and writes it between the GENERATED markers of the output file.
#
# Settings (environment):
#   BENCH_SECONDS             seconds per timed wrk run (10; --smoke: 2)
#   BENCH_ROUNDS              alternations bare/service and ceiling/sign-in (3; --smoke: 1)
#   BENCH_CONNECTIONS         wrk connections for validation (64)
#   BENCH_LIGHT_CONNECTIONS   wrk connections for the light-load validation rows (8)
#   BENCH_LIGHT_THINK_MS      pause of each light-load connection between requests, ms (1)
#   BENCH_SIGNIN_CONNECTIONS  wrk connections for sign-ins (8: below the hashing queue's size)
#   BENCH_FLOOD_CONNECTIONS   wrk connections for the sign-in flood of step 3 (64)
#   BENCH_KEYS                distinct keys for steps 1 and 3 (10000; --smoke: 2000)
#   BENCH_USERS               users signed up over HTTP for sign-ins (32; --smoke: 8)
#   BENCH_SCALE               live-key counts of step 4 ("10000 1000000"; --smoke: "10000 50000")
#   BENCH_SCALE_FILE_KEYS     keys sent per scale step at most (100000)
#   BENCH_SCALE_COLD_LIGHT    of those, keys whose first use is measured at light load (10000;
#                             --smoke: 1000); the rest are first used at -c64
#   BENCH_SCALE_COLD_PASSES   light-load cold passes per size, each after a restart (3; --smoke: 1)
#   BENCH_MEMORY_KEYS         distinct keys validated in step 5 (100000; --smoke: 10000)
#   BENCH_HOSTILE_IDLE        idle connections held during step 1b (2000)
#   BENCH_HOSTILE_SLOW        slow-header clients during step 1b (8)
#   BENCH_PORT                service port; the bare servers use BENCH_PORT+1 and +2 (18080)
#   BENCH_OUT                 report file (BENCHMARKS.md; --smoke: target/bench/BENCHMARKS.smoke.md)
#   BENCH_RUST_LOG            the service's RUST_LOG (info, its default)
#   BENCH_KEEP_TMP=1          keep the temporary directory (databases, logs, wrk outputs)
#   BENCH_SKIP_BUILD=1        use the binaries already in target/release
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bench_options "$@"

if [ "$SMOKE" = 1 ]; then
    D_SECONDS=2 D_ROUNDS=1 D_KEYS=2000 D_USERS=8 D_SCALE="10000 50000" D_MEMORY=10000 D_COLD_LIGHT=1000 D_COLD_PASSES=1
    D_OUT="${CARGO_TARGET_DIR:-$ROOT/target}/bench/BENCHMARKS.smoke.md"
else
    D_SECONDS=10 D_ROUNDS=3 D_KEYS=10000 D_USERS=32 D_SCALE="10000 1000000" D_MEMORY=100000 D_COLD_LIGHT=10000 D_COLD_PASSES=3
    D_OUT="$ROOT/BENCHMARKS.md"
fi
SECS=${BENCH_SECONDS:-$D_SECONDS}
ROUNDS=${BENCH_ROUNDS:-$D_ROUNDS}
CONNS=${BENCH_CONNECTIONS:-64}
LIGHT_CONNS=${BENCH_LIGHT_CONNECTIONS:-8}
LIGHT_THINK=${BENCH_LIGHT_THINK_MS:-1}
HOSTILE_IDLE=${BENCH_HOSTILE_IDLE:-2000}
HOSTILE_SLOW=${BENCH_HOSTILE_SLOW:-8}
SIGNIN_CONNS=${BENCH_SIGNIN_CONNECTIONS:-8}
FLOOD_CONNS=${BENCH_FLOOD_CONNECTIONS:-64}
KEYS=${BENCH_KEYS:-$D_KEYS}
USERS=${BENCH_USERS:-$D_USERS}
SCALE=${BENCH_SCALE:-$D_SCALE}
SCALE_FILE_KEYS=${BENCH_SCALE_FILE_KEYS:-100000}
COLD_LIGHT=${BENCH_SCALE_COLD_LIGHT:-$D_COLD_LIGHT}
COLD_PASSES=${BENCH_SCALE_COLD_PASSES:-$D_COLD_PASSES}
MEMORY_KEYS=${BENCH_MEMORY_KEYS:-$D_MEMORY}
PORT=${BENCH_PORT:-18080}
BARE_PORT=$((PORT + 1))
LOOKUP_PORT=$((PORT + 2))
OUT=${BENCH_OUT:-$D_OUT}
SERVICE_RUST_LOG=${BENCH_RUST_LOG:-info}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/killbill-auth"
EXAMPLES="$TARGET_DIR/release/examples"
SIGNUP_THROTTLE=10000

# The service refuses unknown KILLBILL_AUTH_* variables, and the caller's must not change the
# figures: start from none.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- processes and clean-up
TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-bench.XXXXXX")
PIDS=()
cleanup() { stop_pids; remove_tmp; }
trap cleanup EXIT
trap 'exit 130' INT TERM



# ---------------------------------------------------------------- 0. tools and build
COMMANDS=()

command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || die "curl is needed"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release --examples --bin killbill-auth
fi
record "cargo build --release --examples --bin killbill-auth"
for f in "$BIN" "$EXAMPLES/bare" "$EXAMPLES/seed" "$EXAMPLES/argon2_ceiling"; do
    [ -x "$f" ] || die "$f is missing (build failed?)"
done
port_busy "$PORT" && die "port $PORT is taken (set BENCH_PORT)"
port_busy "$BARE_PORT" && die "port $BARE_PORT is taken (set BENCH_PORT)"
port_busy "$LOOKUP_PORT" && die "port $LOOKUP_PORT is taken (set BENCH_PORT)"

# ---------------------------------------------------------------- helpers
# Environment of the service (lib.sh's service_settings) on the SQLite file DB: cheap Argon2 for
# validation runs, the real defaults for sign-ins.
validation_env() { service_settings validation "$PORT" "sqlite://$1"; } # validation_env DB
signin_env() { service_settings signin "$PORT" "sqlite://$1"; }         # signin_env DB



# start_service ENV LOG: starts the service (lib.sh's launch_service: SVC_PID, STARTUP_MS).
start_service() { launch_service "$BIN" "$1" "$2" "$PORT"; }
stop_service() { stop_pid "$SVC_PID"; forget_pid "$SVC_PID"; }

CLK_TCK=$(getconf CLK_TCK)

# rss_kib PID [FIELD]: a memory figure of /proc/PID/status in KiB (VmRSS unless FIELD is given,
# e.g. RssAnon: the process's private memory, without the mapped database file).
rss_kib() { awk -v f="${2:-VmRSS}:" '$1 == f {print $2}' "/proc/$1/status"; }

# page_in DB: reads the database file (and its WAL) into the OS page cache and sets R_RESIDENT
# to the share of it that was there before (in %, "?" without util-linux's fincore). Machines of
# this kind page out file pages that nobody has mapped or read for about a minute (a DAMON
# "pageout" scheme of the VM: /sys/kernel/mm/damon), even with most memory free: seeding 1M keys
# takes about a minute, and the first rows written, which hold the first keys of the file, were
# gone by the cold passes, each first use of them a read from disk (p99 23 ms in one such pass
# against 0.5 ms with the file cached). The cold passes measure a key's first use after a
# restart of the service, with the OS page cache as a running machine has it.
page_in() {
    local f size=0 res=0
    for f in "$1" "$1-wal"; do
        [ -f "$f" ] || continue
        size=$((size + $(stat -c %s "$f")))
        if command -v fincore >/dev/null; then
            res=$((res + $(fincore -b -n -o RES "$f" 2>/dev/null || echo 0)))
        fi
        cat "$f" >/dev/null
    done
    if command -v fincore >/dev/null && [ "$size" -gt 0 ]; then
        R_RESIDENT=$(awk -v r="$res" -v s="$size" 'BEGIN { printf "%.0f", 100 * r / s }')
    else
        R_RESIDENT="?"
    fi
}

seed() { # seed DB N FILE FILE_LIMIT
    record "$EXAMPLES/seed --db $1 --keys $2 --keys-file $3 --file-limit $4"
    "$EXAMPLES/seed" --db "$1" --keys "$2" --keys-file "$3" --file-limit "$4" >&2
    # Write the new file out now: else the kernel writes it back, hundreds of MiB with 1M keys,
    # in the middle of the next measurement.
    sync
}

# wrk_run NAME CONNS DURATION SCRIPT URL [ARGS…]: one wrk (lib.sh's wrk_measure), a line in the
# log; ARGS ending in `once` (bench/validate.lua's KEYS_FILE once) send each key once.
wrk_run() {
    local name=$1 once=0
    [ "${7:-}" = once ] && once=1
    wrk_measure "$1" "$2" "$3" "$4" "$5" "$once" "${@:6}"
    log "$(wrk_summary "$name")"
}

# ms_list "U1 U2 …": µs figures as "0.41, 0.38, …" ms
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }'; }
maxof() { printf '%s\n' "$@" | sort -n | tail -1; }
wrow() { # wrow LABEL…: a table row with the last wrk figures
    echo "| $* | $(wrk_cells) |"
}
WHEAD="| $WRK_HEAD | server CPU µs/request |"
WSEP=$WRK_SEP

VALIDATE="bench/validate.lua"
SIGNIN="bench/signin.lua"
SVC_URL="http://127.0.0.1:$PORT/auth"
BARE_URL="http://127.0.0.1:$BARE_PORT/auth"
LOOKUP_URL="http://127.0.0.1:$LOOKUP_PORT/auth"
T0=$(date +%s)
LOAD0=$(loadavg)

# ---------------------------------------------------------------- 1. validation vs bare axum
log "step 1: validation, service vs bare axum ($KEYS keys, -c$CONNS, ${SECS}s × $ROUNDS)"
D1="$TMP/validate"; mkdir -p "$D1"
seed "$D1/kb.db" "$KEYS" "$D1/keys.txt" "$KEYS"
start_service "$(validation_env "$D1/kb.db")" "$D1/service.log"
FIRST_KEY=$(head -1 "$D1/keys.txt")
BODY_BYTES=$(curl -s -o /dev/null -w '%{size_download}' -H 'User-Agent:' \
    -H "Authorization: Bearer $FIRST_KEY" "$SVC_URL")
[ "$BODY_BYTES" -gt 100 ] || die "GET /auth answered $BODY_BYTES bytes"
record "$EXAMPLES/bare --port $BARE_PORT --body-bytes $BODY_BYTES"
"$EXAMPLES/bare" --port "$BARE_PORT" --body-bytes "$BODY_BYTES" >"$D1/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_http "http://127.0.0.1:$BARE_PORT/" "$BARE_PID" || die "the bare server did not start"
record "$EXAMPLES/bare --port $LOOKUP_PORT --body-bytes $BODY_BYTES --lookup KEYS_FILE"
"$EXAMPLES/bare" --port "$LOOKUP_PORT" --body-bytes "$BODY_BYTES" --lookup "$D1/keys.txt" >"$D1/lookup.log" 2>&1 &
LOOKUP_PID=$!
PIDS+=("$LOOKUP_PID")
wait_http "http://127.0.0.1:$LOOKUP_PORT/" "$LOOKUP_PID" || die "the bare lookup server did not start"

# Warm-up: every key once (fills the cache), then a short run on each server.
wrk_run warmup-once "$CONNS" 120 "$VALIDATE" "$SVC_URL" "$D1/keys.txt" once
wrk_run warmup-service "$CONNS" 2 "$VALIDATE" "$SVC_URL" "$D1/keys.txt"
wrk_run warmup-bare "$CONNS" 2 "$VALIDATE" "$BARE_URL" "$D1/keys.txt"
wrk_run warmup-lookup "$CONNS" 2 "$VALIDATE" "$LOOKUP_URL" "$D1/keys.txt"

S1=()
LOOKUP_RPS=() LOOKUP_CPU=() LOOKUP_NON2XX=0
BARE_RPS=() BARE_P50=() BARE_P99=() BARE_CPU=() SVC_RPS=() SVC_P50=() SVC_P99=() SVC_CPU=() SVC_NON2XX=0
LOAD1=$(loadavg)
for r in $(seq "$ROUNDS"); do
    CPU_PID=$BARE_PID
    wrk_run "bare-$r" "$CONNS" "$SECS" "$VALIDATE" "$BARE_URL" "$D1/keys.txt"
    S1+=("$(wrow "bare axum, round $r | $CONNS")")
    BARE_RPS+=("$R_RPS") BARE_P50+=("$R_P50") BARE_P99+=("$R_P99") BARE_CPU+=("$R_CPU_US")
    CPU_PID=$LOOKUP_PID
    wrk_run "lookup-$r" "$CONNS" "$SECS" "$VALIDATE" "$LOOKUP_URL" "$D1/keys.txt"
    S1+=("$(wrow "bare axum + SHA-256 + in-memory lookup, round $r | $CONNS")")
    LOOKUP_RPS+=("$R_RPS") LOOKUP_CPU+=("$R_CPU_US") LOOKUP_NON2XX=$((LOOKUP_NON2XX + R_NON2XX + R_SOCKERR))
    CPU_PID=$SVC_PID
    wrk_run "service-$r" "$CONNS" "$SECS" "$VALIDATE" "$SVC_URL" "$D1/keys.txt"
    S1+=("$(wrow "**service**, round $r | $CONNS")")
    SVC_RPS+=("$R_RPS") SVC_P50+=("$R_P50") SVC_P99+=("$R_P99") SVC_CPU+=("$R_CPU_US")
    SVC_NON2XX=$((SVC_NON2XX + R_NON2XX + R_SOCKERR))
done
CPU_PID=$BARE_PID
THINK=$LIGHT_THINK
wrk_run bare-light "$LIGHT_CONNS" "$SECS" "$VALIDATE" "$BARE_URL" "$D1/keys.txt"
S1+=("$(wrow "bare axum, light load ($LIGHT_THINK ms between requests) | $LIGHT_CONNS")")
LIGHT_BARE_P99=$R_P99
CPU_PID=$SVC_PID
wrk_run service-light "$LIGHT_CONNS" "$SECS" "$VALIDATE" "$SVC_URL" "$D1/keys.txt"
THINK=0
S1+=("$(wrow "**service**, light load ($LIGHT_THINK ms between requests) | $LIGHT_CONNS")")
LIGHT_SVC_P99=$R_P99 LIGHT_SVC_RPS=$R_RPS
SVC_NON2XX=$((SVC_NON2XX + R_NON2XX + R_SOCKERR))
B_RPS=$(mean "${BARE_RPS[@]}") B_P50=$(mean "${BARE_P50[@]}") B_P99=$(mean "${BARE_P99[@]}")
V_RPS=$(mean "${SVC_RPS[@]}") V_P50=$(mean "${SVC_P50[@]}") V_P99=$(mean "${SVC_P99[@]}")
V_RATIO=$(pct "$V_RPS" "$B_RPS")
B_CPU=$(printf '%s\n' "${BARE_CPU[@]}" | awk '{ s += $1; n++ } END { printf "%.1f", s / n }')
L_RPS=$(mean "${LOOKUP_RPS[@]}")
L_CPU=$(printf '%s\n' "${LOOKUP_CPU[@]}" | awk '{ s += $1; n++ } END { printf "%.1f", s / n }')
L_RATIO=$(pct "$L_RPS" "$B_RPS") V_L_RATIO=$(pct "$V_RPS" "$L_RPS")
V_CPU=$(printf '%s\n' "${SVC_CPU[@]}" | awk '{ s += $1; n++ } END { printf "%.1f", s / n }')
LOAD1="$LOAD1 → $(loadavg)"

# ---------------------------------------------------------------- 1b. hostile connections
# The same service, keys and wrk load as the rounds above, while examples/hostile holds
# HOSTILE_IDLE idle connections (spread over 8 local addresses, below the per-address cap) and
# HOSTILE_SLOW clients dribbling a request head a byte a second, reopening whatever the server
# closes; normal clients must not notice.
log "step 1b: validation while $HOSTILE_IDLE idle and $HOSTILE_SLOW slow-header connections are held"
HOSTILE_FROM=$(seq -s, -f '127.0.1.%g' 1 8)
record "$EXAMPLES/hostile --port $PORT --idle $HOSTILE_IDLE --slow $HOSTILE_SLOW --seconds $((SECS + 6)) --from $HOSTILE_FROM &"
"$EXAMPLES/hostile" --port "$PORT" --idle "$HOSTILE_IDLE" --slow "$HOSTILE_SLOW" --seconds $((SECS + 6)) \
    --from "$HOSTILE_FROM" >"$TMP/hostile.txt" 2>&1 &
HOSTILE_PID=$!
PIDS+=("$HOSTILE_PID")
sleep 3
HOSTILE_HELD=$(grep '^HOSTILE ' "$TMP/hostile.txt" | tail -1 | sed 's/.*open=\([0-9]*\).*/\1/')
CPU_PID=$SVC_PID
wrk_run service-hostile "$CONNS" "$SECS" "$VALIDATE" "$SVC_URL" "$D1/keys.txt"
S1+=("$(wrow "**service** while ${HOSTILE_HELD:-?} idle and $HOSTILE_SLOW slow-header connections are held | $CONNS")")
H_RPS=$R_RPS H_P99=$R_P99 H_ERR=$((R_NON2XX + R_SOCKERR))
wait "$HOSTILE_PID" || true
forget_pid "$HOSTILE_PID"
HOSTILE_LAST=$(grep '^HOSTILE ' "$TMP/hostile.txt" | tail -1 | sed 's/^HOSTILE //')
H_RATIO=$(pct "$H_RPS" "$V_RPS")
log "hostile: $HOSTILE_LAST"
CPU_PID=""
stop_pid "$BARE_PID"; forget_pid "$BARE_PID"
stop_pid "$LOOKUP_PID"; forget_pid "$LOOKUP_PID"
stop_service

# ---------------------------------------------------------------- 2. sign-in vs Argon2 ceiling
log "step 2: sign-ins vs the Argon2 ceiling ($USERS users, -c$SIGNIN_CONNS, ${SECS}s × $ROUNDS)"
D2="$TMP/signin"; mkdir -p "$D2"
seed "$D2/kb.db" "$KEYS" "$D2/keys.txt" "$KEYS"
start_service "$(signin_env "$D2/kb.db")" "$D2/service.log"
: >"$D2/credentials.txt"
record "curl -s http://127.0.0.1:$PORT/users -H 'content-type: application/json' -d '{\"username\": \"bench_uNNN\", \"password\": \"…\"}'  # × $USERS"
for i in $(seq -f '%03g' "$USERS"); do
    name="bench_u$i"
    password="kb-bench-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
    code=$(curl -sS -o "$D2/signup.json" -w '%{http_code}' "http://127.0.0.1:$PORT/users" \
        -H 'content-type: application/json' -d "{\"username\": \"$name\", \"password\": \"$password\"}") ||
        { tail -5 "$D2/service.log" >&2; die "sign-up of $name failed (curl exit $?)"; }
    [ "$code" = 200 ] || { cat "$D2/signup.json" >&2; die "sign-up of $name answered $code"; }
    echo "$name $password" >>"$D2/credentials.txt"
done
wrk_run signin-warmup-keys "$CONNS" 120 "$VALIDATE" "$SVC_URL" "$D2/keys.txt" once

S2=()
CEIL=() SIGN_RPS=() SIGN_P50=() SIGN_P99=() SIGN_NON2XX=0
for r in $(seq "$ROUNDS"); do
    record "$EXAMPLES/argon2_ceiling --seconds $SECS"
    line=$("$EXAMPLES/argon2_ceiling" --seconds "$SECS")
    hps=$(echo "$line" | sed -n 's/.*hashes_per_second=\([0-9.]*\).*/\1/p')
    threads=$(echo "$line" | sed -n 's/.*threads=\([0-9]*\).*/\1/p')
    log "argon2 ceiling $r: $hps hashes/s on $threads threads"
    CEIL+=("$hps")
    S2+=("| Argon2id ceiling (m=19456 t=2 p=1, $threads threads), round $r | – | $hps | | | | | | | |")
    CPU_PID=$SVC_PID
    wrk_run "signin-$r" "$SIGNIN_CONNS" "$SECS" "$SIGNIN" "$SVC_URL" "$D2/credentials.txt"
    S2+=("$(wrow "**service** POST /auth, round $r | $SIGNIN_CONNS")")
    SIGN_RPS+=("$R_RPS") SIGN_P50+=("$R_P50") SIGN_P99+=("$R_P99")
    SIGN_NON2XX=$((SIGN_NON2XX + R_NON2XX + R_SOCKERR))
    CPU_PID=""
done
C_HPS=$(printf '%s\n' "${CEIL[@]}" | awk '{ s += $1; n++ } END { printf "%.1f", s / n }')
# Sign-ins/s with one decimal (a few dozen a second).
SIGN_MEAN=$(for f in "$TMP"/wrk-signin-[0-9]*.txt; do grep '^BENCH ' "$f"; done |
    sed 's/.*requests=\([0-9]*\) duration_us=\([0-9]*\).*/\1 \2/' |
    awk '{ s += $1 * 1e6 / $2; n++ } END { printf "%.1f", s / n }')
SIGN_RATIO=$(pct "$SIGN_MEAN" "$C_HPS")

# ---------------------------------------------------------------- 3. isolation
log "step 3: validation while a sign-in flood (-c$FLOOD_CONNS) saturates hashing"
S3=()
ISO_P99=() ISO_ERR=0
for conns in "$LIGHT_CONNS" "$CONNS"; do
    record "# at the same time:"
    timeout --signal=INT --kill-after=5 $((SECS + 32)) \
        wrk -t1 -c"$FLOOD_CONNS" -d"$((SECS + 2))s" --latency -s "$SIGNIN" "$SVC_URL" -- "$D2/credentials.txt" \
        >"$TMP/wrk-flood-$conns.txt" 2>&1 &
    FLOOD_PID=$!
    PIDS+=("$FLOOD_PID")
    record "wrk -t1 -c$FLOOD_CONNS -d$((SECS + 2))s --latency -s $SIGNIN $SVC_URL -- $D2/credentials.txt &"
    sleep 1
    label="saturated"
    if [ "${#ISO_P99[@]}" = 0 ]; then THINK=$LIGHT_THINK label="light load, $LIGHT_THINK ms between requests"; fi
    wrk_run "isolation-validate-$conns" "$conns" "$SECS" "$VALIDATE" "$SVC_URL" "$D2/keys.txt"
    THINK=0
    S3+=("$(wrow "**validation** GET /auth during the flood ($label) | $conns")")
    ISO_P99+=("$R_P99")
    ISO_ERR=$((ISO_ERR + R_NON2XX + R_SOCKERR))
    wait "$FLOOD_PID" || true
    forget_pid "$FLOOD_PID"
    line=$(grep '^BENCH ' "$TMP/wrk-flood-$conns.txt" | tail -1) || die "the sign-in flood gave no result"
    eval "$(echo "${line#BENCH }" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=[0-9]+$' | sed 's/^/F_/')"
    # shellcheck disable=SC2154
    R_RPS=$(awk -v r="$F_requests" -v d="$F_duration_us" 'BEGIN { printf "%.1f", r * 1e6 / d }')
    R_P50=$F_p50_us R_P90=$F_p90_us R_P99=$F_p99_us R_MAX=$F_max_us R_NON2XX=$F_non2xx
    R_SOCKERR=$((F_connect_errors + F_read_errors + F_write_errors + F_timeouts)) R_CPU_US="–"
    log "flood: $R_RPS sign-ins/s, non-2xx (503) $R_NON2XX of $F_requests"
    S3+=("$(wrow "sign-in flood POST /auth ($F_requests answers, $R_NON2XX non-2xx) | $FLOOD_CONNS")")
done
ISO_P99_WORST=$(maxof "${ISO_P99[@]}")
stop_service

# ---------------------------------------------------------------- 4. scale
S4=() S4_NOTE=() SCALE_COLD_P99=() SCALE_COLD_PASSES=() SCALE_COLD_SAT_P99=() SCALE_WARM_P99=() SCALE_N=()
for n in $SCALE; do
    log "step 4: $n live keys"
    D4="$TMP/scale-$n"; mkdir -p "$D4"
    file_keys=$(( n < SCALE_FILE_KEYS ? n : SCALE_FILE_KEYS ))
    t0=$(now_ns)
    seed "$D4/kb.db" "$n" "$D4/keys.txt" "$file_keys"
    seed_s=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    db_mib=$(du -sm "$D4" | cut -f1)
    light=$(( COLD_LIGHT < file_keys ? COLD_LIGHT : file_keys ))
    head -n "$light" "$D4/keys.txt" >"$D4/keys-cold-light.txt"
    tail -n +"$((light + 1))" "$D4/keys.txt" >"$D4/keys-cold-rest.txt"
    # Cold: first uses after a start, COLD_PASSES times (a restart before each pass empties the
    # cache; the same keys each time). One pass's p99 is its 100th-worst of 10,000 samples and
    # moves by a third from run to run; the goal compares the median pass of each size.
    pass_p99=() resident=()
    for pass in $(seq "$COLD_PASSES"); do
        [ "$pass" -gt 1 ] && stop_service
        page_in "$D4/kb.db"
        resident+=("$R_RESIDENT %")
        start_service "$(validation_env "$D4/kb.db")" "$D4/service-$pass.log"
        CPU_PID=$SVC_PID
        [ "$pass" = 1 ] && idle=$(rss_kib "$SVC_PID")
        THINK=$LIGHT_THINK wrk_run "scale-$n-cold-light-$pass" "$LIGHT_CONNS" 300 "$VALIDATE" "$SVC_URL" "$D4/keys-cold-light.txt" once
        THINK=0
        S4+=("$(wrow "$(thousands "$n") | $(thousands "$light") | cold, pass $pass of $COLD_PASSES: each key's first use after a start, light load ($LIGHT_CONNS connections, $LIGHT_THINK ms between requests) | $STARTUP_MS ms")")
        pass_p99+=("$R_P99")
    done
    SCALE_COLD_P99+=("$(median "${pass_p99[@]}")")
    SCALE_COLD_PASSES+=("$(printf '%s ' "${pass_p99[@]}")")
    if [ "$file_keys" -gt "$light" ]; then
        wrk_run "scale-$n-cold" "$CONNS" 300 "$VALIDATE" "$SVC_URL" "$D4/keys-cold-rest.txt" once
        S4+=("$(wrow "$(thousands "$n") | $(thousands "$((file_keys - light))") | cold: the other keys' first use, -c$CONNS | ")")
        SCALE_COLD_SAT_P99+=("$R_P99")
    else
        SCALE_COLD_SAT_P99+=("")
    fi
    wrk_run "scale-$n-warm" "$CONNS" "$SECS" "$VALIDATE" "$SVC_URL" "$D4/keys.txt"
    S4+=("$(wrow "$(thousands "$n") | $(thousands "$file_keys") | warm, ${SECS}s, -c$CONNS | ")")
    SCALE_WARM_P99+=("$R_P99") SCALE_N+=("$n")
    CPU_PID=""
    S4_NOTE+=("$(thousands "$n") keys: seeded in ${seed_s}s, database ${db_mib} MiB (in the OS page cache before each cold pass: $(printf '%s, ' "${resident[@]}" | sed 's/, $//'); read in before the pass), service VmRSS $((idle / 1024)) MiB idle, $(( $(rss_kib "$SVC_PID") / 1024 )) MiB after (RssFile, the binary and the mapped database pages: $(( $(rss_kib "$SVC_PID" RssFile) / 1024 )) MiB)")
    stop_service
done

# ---------------------------------------------------------------- 5. memory
log "step 5: memory, $MEMORY_KEYS keys validated once"
D5="$TMP/memory"; mkdir -p "$D5"
seed "$D5/kb.db" "$MEMORY_KEYS" "$D5/keys.txt" "$MEMORY_KEYS"
start_service "$(validation_env "$D5/kb.db")" "$D5/service.log"
sleep 2
RSS_IDLE=$(rss_kib "$SVC_PID") ANON_IDLE=$(rss_kib "$SVC_PID" RssAnon) FILE_IDLE=$(rss_kib "$SVC_PID" RssFile)
wrk_run memory-once "$CONNS" 300 "$VALIDATE" "$SVC_URL" "$D5/keys.txt" once
MEM_REQ=$R_REQ
sleep 3 # the batched usage flush (every second) has run
RSS_AFTER=$(rss_kib "$SVC_PID") ANON_AFTER=$(rss_kib "$SVC_PID" RssAnon) FILE_AFTER=$(rss_kib "$SVC_PID" RssFile)
PER_KEY=$(awk -v a="$ANON_AFTER" -v i="$ANON_IDLE" -v n="$MEMORY_KEYS" 'BEGIN { printf "%.0f", (a - i) * 1024 / n }')
PER_KEY_RSS=$(awk -v a="$RSS_AFTER" -v i="$RSS_IDLE" -v n="$MEMORY_KEYS" 'BEGIN { printf "%.0f", (a - i) * 1024 / n }')
stop_service
ELAPSED=$(( $(date +%s) - T0 ))

# ---------------------------------------------------------------- report
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$(git status --porcelain -- src migrations Cargo.toml 2>/dev/null | grep -q . && echo " (with uncommitted changes under src/)" || true)
MODE=$([ "$SMOKE" = 1 ] && echo "smoke (--smoke)" || echo "full")

REPORT="$TMP/report.md"
{
    echo "## Results"
    echo
    echo "Generated by \`bench/run.sh\`$([ "$SMOKE" = 1 ] && echo " --smoke") on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED}s ($MODE run)."
    echo
    echo "- Machine: $(nproc) cores ($CPU), $MEM memory, Linux $(uname -r); wrk and the servers share these cores."
    echo "- Build: commit $COMMIT$DIRTY, $(rustc --version 2>/dev/null || echo rustc), release profile; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
    echo "- Load average (1, 5, 15 min) at the start: $LOAD0; around step 1: $LOAD1; at the end: $(loadavg). Anything above ~0.5 before a step means other work shared the cores."
    echo "- Settings: ${SECS}s per timed run, $ROUNDS round(s), wrk -t1, $KEYS distinct keys for validation, $USERS users for sign-ins."
    echo
    echo "### Goals"
    echo
    echo "| goal | target | measured | holds |"
    echo "|---|---|---|---|"
    echo "| validation throughput vs bare axum (-c$CONNS) | ≥ 90 % | $V_RATIO % ($(thousands "$V_RPS") vs $(thousands "$B_RPS") req/s) | $(holds "$V_RATIO >= 90") |"
    echo "| … and vs bare axum + SHA-256 + in-memory lookup (the least a validation does) | – | $V_L_RATIO % (that rung: $L_RATIO % of bare) | – |"
    echo "| validation p99 at -c$CONNS (saturated) | < 2 ms | $(ms "$V_P99") ms (bare $(ms "$B_P99") ms) | $(holds "$V_P99 < 2000") |"
    echo "| validation under hostile connections ($HOSTILE_IDLE idle + $HOSTILE_SLOW slow-header held) vs without | ≥ 90 % | $H_RATIO % ($(thousands "$H_RPS") vs $(thousands "$V_RPS") req/s), p99 $(ms "$H_P99") ms, errors $H_ERR | $(holds "$H_RATIO >= 90 && $H_ERR == 0") |"
    echo "| validation p99 at light load (-c$LIGHT_CONNS, $LIGHT_THINK ms between requests) | < 2 ms | $(ms "$LIGHT_SVC_P99") ms (bare $(ms "$LIGHT_BARE_P99") ms) | $(holds "$LIGHT_SVC_P99 < 2000") |"
    echo "| sign-ins vs Argon2 ceiling | ≥ 85 % | $SIGN_RATIO % ($SIGN_MEAN vs $C_HPS /s) | $(holds "$SIGN_RATIO >= 85") |"
    echo "| validation p99 during a sign-in flood | < 5 ms | $(ms "${ISO_P99[0]}") ms at light load, $(ms "${ISO_P99[1]}") ms saturated (-c$CONNS) | $(holds "${ISO_P99[0]} < 5000") at light load, $(holds "${ISO_P99[1]} < 5000") saturated |"
    echo "| validation errors during the flood | 0 | $ISO_ERR | $(holds "$ISO_ERR == 0") |"
    if [ "${#SCALE_N[@]}" -ge 2 ]; then
        last=$((${#SCALE_N[@]} - 1))
        cold_x=$(awk -v a="${SCALE_COLD_P99[0]}" -v b="${SCALE_COLD_P99[$last]}" 'BEGIN { printf "%.2f", b / a }')
        warm_x=$(awk -v a="${SCALE_WARM_P99[0]}" -v b="${SCALE_WARM_P99[$last]}" 'BEGIN { printf "%.2f", b / a }')
        echo "| p99 growth from $(thousands "${SCALE_N[0]}") to $(thousands "${SCALE_N[$last]}") live keys | ≤ 1.5× | warm (-c$CONNS) $(ms "${SCALE_WARM_P99[0]}") → $(ms "${SCALE_WARM_P99[$last]}") ms ($warm_x×), cold (first uses at light load, median of $COLD_PASSES passes) $(ms "${SCALE_COLD_P99[0]}") → $(ms "${SCALE_COLD_P99[$last]}") ms ($cold_x×; passes: $(ms_list "${SCALE_COLD_PASSES[0]}") → $(ms_list "${SCALE_COLD_PASSES[$last]}") ms) | $(holds "$warm_x <= 1.5") warm, $(holds "$cold_x <= 1.5") cold |"
        if [ -n "${SCALE_COLD_SAT_P99[0]}" ] && [ -n "${SCALE_COLD_SAT_P99[$last]}" ]; then
            sat_x=$(awk -v a="${SCALE_COLD_SAT_P99[0]}" -v b="${SCALE_COLD_SAT_P99[$last]}" 'BEGIN { printf "%.2f", b / a }')
            echo "| … first uses at -c$CONNS (queueing; see step 4) | – | $(ms "${SCALE_COLD_SAT_P99[0]}") → $(ms "${SCALE_COLD_SAT_P99[$last]}") ms ($sat_x×) | – |"
        fi
    fi
    echo "| memory per active key (the process's own: RssAnon) | < 1 KiB | $PER_KEY bytes ($PER_KEY_RSS with the mapped database pages) | $(holds "$PER_KEY < 1024") |"
    echo
    echo "### 1. Key validation (\`GET /auth\`) against a bare axum handler"
    echo
    echo "$(thousands "$KEYS") distinct keys, all cached (warmed by one pass first). The bare handler answers $BODY_BYTES bytes of JSON (the size of the service's answer) with the same header names. A second bare server also parses the key, hashes it and finds it in an in-memory set (\`--lookup\`). Runs alternate bare, bare + lookup, service, round after round."
    echo
    echo "| server | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S1[@]}"
    echo
    echo "Mean of the -c$CONNS rounds: service $(thousands "$V_RPS") req/s (p50 $(ms "$V_P50") ms, p99 $(ms "$V_P99") ms), bare $(thousands "$B_RPS") req/s (p50 $(ms "$B_P50") ms, p99 $(ms "$B_P99") ms): **service/bare = $V_RATIO %**. CPU time of the server process per request: service $V_CPU µs, bare $B_CPU µs. Non-2xx or socket errors of the service: $SVC_NON2XX."
    echo
    echo "Under hostile connections (\`examples/hostile\`: idle sockets that send nothing and clients dribbling a head a byte a second, reopened as soon as the service closes them; at the end: $HOSTILE_LAST): $(thousands "$H_RPS") req/s, p99 $(ms "$H_P99") ms, **$H_RATIO % of the same service without them** in the same run."
    echo
    echo "The middle rung, bare axum with the key parsed, hashed and looked up in memory: $(thousands "$L_RPS") req/s, $L_CPU µs of CPU per request, **$L_RATIO % of bare**; the service is **$V_L_RATIO % of it** (non-2xx or socket errors: $LOOKUP_NON2XX)."
    echo
    echo "### 2. Sign-in (\`POST /auth\`, Argon2id m=19456 KiB t=2 p=1) against the Argon2 ceiling"
    echo
    echo "$USERS users signed up over HTTP, every password correct. -c$SIGNIN_CONNS keeps at most $SIGNIN_CONNS sign-ins in the service, below its hashing queue (16 jobs per core), so none is refused with 503. The ceiling is \`examples/argon2_ceiling\`: one thread per core hashing in a tight loop, nothing else running; rounds alternate."
    echo
    echo "| what | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S2[@]}"
    echo
    echo "Mean: **$SIGN_MEAN sign-ins/s against a ceiling of $C_HPS hashes/s = $SIGN_RATIO %**. Non-2xx or socket errors: $SIGN_NON2XX."
    echo
    echo "### 3. Isolation: validation while sign-ins saturate hashing"
    echo
    echo "A second wrk sends sign-ins with -c$FLOOD_CONNS (more than the hashing queue holds: the others wait for room, at most 1 s, then are answered 503; beyond the waiting room they would be answered 503 at once), starting 1 s before and ending 1 s after the validation run."
    echo
    echo "| what | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S3[@]}"
    echo
    echo "### 4. Scale: live keys in the database"
    echo
    echo "Keys written straight into SQLite by \`examples/seed\`, then the service started (start-up = launch until \`GET /\` answers). Cold: every key of the file sent once, right after the start, so every request misses the service's cache and reads SQLite (the database file was synced after seeding, so that no write-back runs during the measurements, and is read into the OS page cache before each cold pass: machines of this kind page out file pages idle for about a minute, and the note under the table gives how much of the file was still cached): the first $(thousands "$COLD_LIGHT") at light load ($LIGHT_CONNS connections, each waiting $LIGHT_THINK ms between an answer and its next request: the latency of a first use, which the goal compares), $COLD_PASSES times, each time after a restart (one pass's p99 is the 100th-worst of 10,000 samples and moves by a third from run to run; the goal compares the median pass of each size), the others at -c$CONNS (the throughput of first uses; their latency is mostly queueing behind 64 connections, and in runs this short the p99 moves between 2 and 10 ms from run to run for either size). Warm: all the file's keys again for ${SECS}s at -c$CONNS, all cached."
    echo
    echo "| live keys | keys sent | phase | start-up $WHEAD"
    echo "|---:|---:|---|---:$WSEP"
    printf '%s\n' "${S4[@]}"
    echo
    printf -- '- %s\n' "${S4_NOTE[@]}"
    echo
    echo "### 5. Memory"
    echo
    echo "*RssAnon* is the process's own memory; *RssFile* the pages of files it maps that are in memory: the binary and the database, which the validation path reads through a memory map (\`src/store/sqlite/key_reader.rs\`). Those database pages are the OS page cache, shared and reclaimable, which reading with \`read\` fills just as well (and then does not count in VmRSS); the goal is the process's own memory."
    echo
    echo "| service | VmRSS | RssAnon | RssFile |"
    echo "|---|---:|---:|---:|"
    echo "| idle, $(thousands "$MEMORY_KEYS") live keys in the database | $((RSS_IDLE / 1024)) MiB | $((ANON_IDLE / 1024)) MiB | $((FILE_IDLE / 1024)) MiB |"
    echo "| after $(thousands "$MEM_REQ") requests, each of $(thousands "$MEMORY_KEYS") distinct keys validated once | $((RSS_AFTER / 1024)) MiB | $((ANON_AFTER / 1024)) MiB | $((FILE_AFTER / 1024)) MiB |"
    echo "| **per active key** | $PER_KEY_RSS bytes | **$PER_KEY bytes** | |"
    echo
    echo "### Commands"
    echo
    echo "TMP is a fresh temporary directory; every database is new."
    echo
    echo '```sh'
    printf '%s\n' "${COMMANDS[@]}" | sed "s#$TMP#\$TMP#g; s#$ROOT/##g" | awk '!seen[$0]++'
    echo '```'
} >"$REPORT"

cat "$REPORT"

mkdir -p "$(dirname "$OUT")"
BEGIN_MARK="<!-- BEGIN GENERATED by bench/run.sh: do not edit below -->"
END_MARK="<!-- END GENERATED -->"
if ! splice_report "$OUT" "$REPORT" "$BEGIN_MARK" "$END_MARK"; then
    {
        echo "# Benchmarks"
        echo
        echo "Reproduce with \`bench/run.sh\` (see the top of that script)."
        echo
        echo "$BEGIN_MARK"
        cat "$REPORT"
        echo "$END_MARK"
    } >"$OUT"
fi
log "report written to $OUT"
