#!/usr/bin/env bash
# bench/game.sh — what issue 14 added for game servers, each figure a ratio of runs made side by
# side in one command: join tickets against key validation, the revocation stream's fan-out
# against the same sign-outs with nobody listening, and validation against the binary from before
# issue 14.
#
#   bench/game.sh            # full run (about 10 minutes on 2 cores, plus the base build the first
#                            # time, several minutes); writes the game section of BENCHMARKS.md
#   bench/game.sh --smoke    # every step about 2 s on small data (for CI); writes
#                            # target/bench/BENCHMARKS.game.smoke.md and leaves BENCHMARKS.md alone
#
# What it does, on 127.0.0.1 only, every load bounded in time:
#   0. installs wrk and valgrind (apt-get install -y) if missing; builds the service and the
#      examples in release mode; for step 3, extracts the base commit (`git archive`, default
#      15e8902: main before issue 14) and builds its binary and its examples seed and bare in a
#      target directory of their own (kept, so only the first run pays for it);
#   1. join tickets: player keys seeded (examples/seed), a service key (`admin create-service`),
#      tickets living BENCH_TICKET_LIFETIME; each round: validation (`GET /auth`, wrk
#      -cCONNECTIONS, bench/validate.lua), asks (`POST /auth/tickets`, the same keys and
#      connections, bench/tickets.lua keeping every ticket), redemptions of half of those tickets
#      at -cCONNECTIONS and of the other half at -cFEW, each ticket once (`POST
#      /auth/tickets/redeem` with the service key), validation at -cFEW; one ticket is then
#      redeemed a second time (must be 403);
#   2. revocation stream fan-out (examples/stream_fanout): storms of BENCH_REVOCATIONS sign-outs
#      (`DELETE /auth`, BENCH_SENDERS at once), alternately with nobody listening and with
#      BENCH_LISTENERS game servers following `GET /revocations`; each delivery timed from the
#      sender's 200 to the listener's parse of the event, every listener checked to get every
#      revocation once, in increasing seq;
#   4. the same on PostgreSQL with two instances on one database (a fresh one, dropped at the
#      end): sign-outs on one, the listeners on the other; skipped when no PostgreSQL answers at
#      BENCH_PG_URL (or psql is missing);
#   3. validation before and after issue 14: the base binary and the current one side by side,
#      the same seeded database (made by the base's seed, copied; the current binary migrates its
#      copy at start), the same keys; wrk rounds alternate base/current at -cCONNECTIONS, then
#      one light-load pair; then bench/callgrind.sh's instructions per validation for each build.
# It prints a markdown report and writes it between the game markers of the output file.
#
# Settings (environment):
#   BENCH_STEPS               which steps to run ("1 2 3 4")
#   BENCH_SECONDS             seconds per timed wrk run (10; --smoke: 2)
#   BENCH_ROUNDS              rounds of step 1 (3; --smoke: 1)
#   BENCH_STORM_ROUNDS        rounds of steps 2 and 4, each a storm unheard and one heard (5; --smoke: 1)
#   BENCH_AB_ROUNDS           rounds of step 3, each a run of either build (6; --smoke: 1)
#   BENCH_CONNECTIONS         wrk connections (64)
#   BENCH_FEW_CONNECTIONS     the second concurrency of step 1 (8)
#   BENCH_LIGHT_CONNECTIONS   connections of step 3's light-load pair (8)
#   BENCH_LIGHT_THINK_MS      pause of each light-load connection between requests, ms (1)
#   BENCH_KEYS                player keys seeded for steps 1 and 3 (10000; --smoke: 2000)
#   BENCH_TICKET_LIFETIME     tickets.lifetime of step 1 (10m, the most allowed)
#   BENCH_REVOCATIONS         sign-outs per storm in step 2 (2000; --smoke: 200)
#   BENCH_SENDERS             concurrent senders of a storm (16)
#   BENCH_LISTENERS           listening game servers (100)
#   BENCH_PG_URL              PostgreSQL server for step 4, without a database name, a role allowed
#                             to create databases (postgres://postgres@127.0.0.1:5432)
#   BENCH_BASE_COMMIT         the build step 3 compares with (15e8902)
#   BENCH_BASE_SRC            a checkout of it (default: extracted into TARGET/bench-base/src)
#   BENCH_BASE_TARGET         its cargo target directory (TARGET/bench-base/target)
#   BENCH_BASE_BUILD          1: build the base if needed (full run: 1; --smoke: 0, and without a
#                             base already built the smoke run compares the current binary with
#                             itself, which exercises the step but measures nothing)
#   BENCH_CALLGRIND_REQUESTS  requests per build under callgrind (2000; --smoke: 200; 0: skip)
#   BENCH_PORT                service port; the base uses BENCH_PORT+1, callgrind +2 and +3 (19080)
#   BENCH_OUT                 report file (BENCHMARKS.md; --smoke: target/bench/BENCHMARKS.game.smoke.md;
#                             with BENCH_STEPS other than all: target/bench/BENCHMARKS.game.steps.md)
#   BENCH_RUST_LOG            the services' RUST_LOG (info, their default)
#   BENCH_KEEP_TMP=1          keep the temporary directory (databases, logs, wrk outputs)
#   BENCH_SKIP_BUILD=1        use the binaries already built (current and base)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bench_options "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$SMOKE" = 1 ]; then
    D_SECONDS=2 D_ROUNDS=1 D_STORM_ROUNDS=1 D_AB_ROUNDS=1 D_KEYS=2000 D_REVOCATIONS=200 D_BASE_BUILD=0 D_CG=200
    D_OUT="$TARGET_DIR/bench/BENCHMARKS.game.smoke.md"
else
    D_SECONDS=10 D_ROUNDS=3 D_STORM_ROUNDS=5 D_AB_ROUNDS=6 D_KEYS=10000 D_REVOCATIONS=2000 D_BASE_BUILD=1 D_CG=2000
    D_OUT="$ROOT/BENCHMARKS.md"
fi
STEPS=${BENCH_STEPS:-1 2 3 4}
# A run of some steps only must not replace the whole report of a full run.
[ "$SMOKE" = 1 ] || [ "$STEPS" = "1 2 3 4" ] || D_OUT="$TARGET_DIR/bench/BENCHMARKS.game.steps.md"
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_URL=${PG_URL%/}
SECS=${BENCH_SECONDS:-$D_SECONDS}
ROUNDS=${BENCH_ROUNDS:-$D_ROUNDS}
STORM_ROUNDS=${BENCH_STORM_ROUNDS:-$D_STORM_ROUNDS}
AB_ROUNDS=${BENCH_AB_ROUNDS:-$D_AB_ROUNDS}
CONNS=${BENCH_CONNECTIONS:-64}
FEW=${BENCH_FEW_CONNECTIONS:-8}
LIGHT_CONNS=${BENCH_LIGHT_CONNECTIONS:-8}
LIGHT_THINK=${BENCH_LIGHT_THINK_MS:-1}
KEYS=${BENCH_KEYS:-$D_KEYS}
TICKET_LIFETIME=${BENCH_TICKET_LIFETIME:-10m}
REVOCATIONS=${BENCH_REVOCATIONS:-$D_REVOCATIONS}
SENDERS=${BENCH_SENDERS:-16}
LISTENERS=${BENCH_LISTENERS:-100}
BASE_COMMIT_ARG=${BENCH_BASE_COMMIT:-15e8902}
BASE_TARGET=${BENCH_BASE_TARGET:-$TARGET_DIR/bench-base/target}
BASE_BUILD=${BENCH_BASE_BUILD:-$D_BASE_BUILD}
CG_N=${BENCH_CALLGRIND_REQUESTS:-$D_CG}
PORT=${BENCH_PORT:-19080}
BASE_PORT=$((PORT + 1))
CG_PORT=$((PORT + 2))
OUT=${BENCH_OUT:-$D_OUT}
SERVICE_RUST_LOG=${BENCH_RUST_LOG:-info}
BIN="$TARGET_DIR/release/killbill-auth"
EXAMPLES="$TARGET_DIR/release/examples"

# The service refuses unknown KILLBILL_AUTH_* variables, and the caller's must not change the
# figures: start from none.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)

log() { printf '%s bench-game: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want_step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- processes and clean-up
TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-bench-game.XXXXXX")
PIDS=()
# A database of our own on the server, dropped at the end.
PG_DB=$(pg_db_name kb_game)
PG_DB_CREATED=0
cleanup() { stop_pids; drop_pg_db; remove_tmp; }
trap cleanup EXIT
trap 'exit 130' INT TERM



# ---------------------------------------------------------------- 0. tools and builds
COMMANDS=()

command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || die "curl is needed"
if want_step 3 && [ "$CG_N" -gt 0 ]; then
    command -v valgrind >/dev/null || apt_install valgrind
    command -v python3 >/dev/null || die "python3 is needed (bench/callgrind.sh's client)"
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release --examples
    # The binary on its own, as it is built for production: built in one command with the
    # examples, it would get the dev-dependencies' features too (tokio's `process` and
    # `io-std`), which cost about 230 instructions per request under callgrind (step 3).
    cargo build --release --bin killbill-auth
fi
record "cargo build --release --examples"
record "cargo build --release --bin killbill-auth  # alone: without the dev-dependencies' features"
for f in "$BIN" "$EXAMPLES/seed" "$EXAMPLES/stream_fanout" "$EXAMPLES/bare"; do
    [ -x "$f" ] || die "$f is missing (build failed?)"
done
for p in "$PORT" "$BASE_PORT" "$CG_PORT" $((CG_PORT + 1)); do
    port_busy "$p" && die "port $p is taken (set BENCH_PORT)"
done

# The base build of step 3: its own source tree and target directory.
BASE_BIN="" BASE_EXAMPLES="" BASE_TARGET_USED="" BASE_LABEL="" BASE_SELF=0
if want_step 3; then
    BASE_COMMIT=$(git rev-parse --short "$BASE_COMMIT_ARG^{commit}" 2>/dev/null) ||
        die "unknown base commit $BASE_COMMIT_ARG (BENCH_BASE_COMMIT)"
    if [ -n "${BENCH_BASE_SRC:-}" ]; then
        BASE_SRC=$BENCH_BASE_SRC
    else
        BASE_SRC="$TARGET_DIR/bench-base/src"
    fi
    if [ -x "$BASE_TARGET/release/killbill-auth" ] && [ -x "$BASE_TARGET/release/examples/seed" ] &&
        [ -x "$BASE_TARGET/release/examples/bare" ] &&
        [ "$(cat "$BASE_TARGET/.bench-base-commit" 2>/dev/null)" = "$BASE_COMMIT" ]; then
        have_base=1
    else
        have_base=0
    fi
    if [ "$BASE_BUILD" = 1 ] && [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        if [ -z "${BENCH_BASE_SRC:-}" ] && [ "$(cat "$BASE_SRC/.bench-base-commit" 2>/dev/null)" != "$BASE_COMMIT" ]; then
            log "extracting $BASE_COMMIT into $BASE_SRC"
            rm -rf "$BASE_SRC"
            mkdir -p "$BASE_SRC"
            git archive "$BASE_COMMIT" | tar -x -C "$BASE_SRC"
            echo "$BASE_COMMIT" >"$BASE_SRC/.bench-base-commit"
        fi
        log "building the base $BASE_COMMIT (release; several minutes the first time)"
        (cd "$BASE_SRC" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --release --example seed --example bare &&
            CARGO_TARGET_DIR="$BASE_TARGET" cargo build --release --bin killbill-auth)
        echo "$BASE_COMMIT" >"$BASE_TARGET/.bench-base-commit"
        have_base=1
    fi
    record "git archive $BASE_COMMIT | tar -x -C BASE_SRC; cd BASE_SRC && export CARGO_TARGET_DIR=BASE_TARGET"
    record "cargo build --release --example seed --example bare && cargo build --release --bin killbill-auth  # in BASE_SRC"
    if [ "$have_base" = 1 ]; then
        BASE_BIN="$BASE_TARGET/release/killbill-auth" BASE_EXAMPLES="$BASE_TARGET/release/examples"
        BASE_TARGET_USED=$BASE_TARGET BASE_LABEL="base $BASE_COMMIT"
    elif [ "$SMOKE" = 1 ]; then
        log "no base build in $BASE_TARGET: step 3 compares the current binary with itself (BENCH_BASE_BUILD=1 builds the base)"
        BASE_BIN=$BIN BASE_EXAMPLES=$EXAMPLES BASE_TARGET_USED=$TARGET_DIR BASE_SELF=1
        BASE_LABEL="current binary again (smoke run without a base build)"
    else
        die "no base build in $BASE_TARGET (BENCH_BASE_BUILD=1 builds it)"
    fi
fi

# ---------------------------------------------------------------- helpers
# Environment of the service: lib.sh's service_settings validation (nothing here hashes).
validation_env() { service_settings validation "$2" "sqlite://$1"; } # validation_env DB PORT: on SQLite
service_env() { service_settings validation "$2" "$1"; }            # service_env DATABASE_URL PORT



# start_service BIN ENV LOG PORT: starts a service (lib.sh's launch_service: SVC_PID).
start_service() { launch_service "$1" "$2" "$3" "$4" "the service on port $4"; }

# service_key DATABASE_URL FILE: a SERVICE account's key (`admin create-service`).
service_key() {
    record "env KILLBILL_AUTH_DATABASE_URL=$1 $BIN admin create-service --name bench_server > SERVICE_KEY_FILE"
    env KILLBILL_AUTH_DATABASE_URL="$1" "$BIN" admin create-service --name bench_server >"$2" 2>"$2.log" ||
        { cat "$2.log" >&2; die "admin create-service failed"; }
    [ "$(wc -c <"$2")" -gt 40 ] || die "admin create-service printed no key"
}

CLK_TCK=$(getconf CLK_TCK)

seed() { # seed SEED_BIN DB N FILE
    record "$1 --db $2 --keys $3 --keys-file $4 --file-limit $3"
    "$1" --db "$2" --keys "$3" --keys-file "$4" --file-limit "$3" >&2
    # Write the new file out now: else the kernel writes it back in the next measurement.
    sync
}

# wrk_run NAME CONNS DURATION SCRIPT URL [ARGS…]: one wrk (lib.sh's wrk_measure: R_RPS…
# R_CPU_US), a line in the log. ONCE=1: the script sends each line of its file once and says on a
# FIFO (appended to the arguments) when the last one is sent.
wrk_run() {
    local name=$1
    wrk_measure "$1" "$2" "$3" "$4" "$5" "${ONCE:-0}" "${@:6}"
    log "$(wrk_summary "$name")"
}

# ms_list "U1 U2 …": µs figures as "0.41, 0.38, …" ms
# median of numbers (the mean of the middle two for an even count), three decimals
median3() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
list() { local out="" x; for x in "$@"; do out="$out${out:+, }$x"; done; echo "$out"; }
wrow() { # wrow LABEL…: a table row with the last wrk figures
    echo "| $* | $(wrk_cells) |"
}
WHEAD="| $WRK_HEAD | service CPU µs/request |"
WSEP=$WRK_SEP

VALIDATE="bench/validate.lua"
TICKETS="bench/tickets.lua"
BASE_URL_ROOT="http://127.0.0.1:$PORT"
T0=$(date +%s)
LOAD0=$(loadavg)
LOADS=()

# ---------------------------------------------------------------- 1. join tickets
S1=() SUM1=()
if want_step 1; then
    log "step 1: join tickets vs validation ($KEYS keys, -c$CONNS and -c$FEW, ${SECS}s × $ROUNDS)"
    l0=$(loadavg)
    D1="$TMP/tickets"; mkdir -p "$D1"
    seed "$EXAMPLES/seed" "$D1/kb.db" "$KEYS" "$D1/keys.txt"
    service_key "sqlite://$D1/kb.db" "$D1/service.key"
    start_service "$BIN" "$(validation_env "$D1/kb.db" "$PORT") KILLBILL_AUTH_TICKETS_LIFETIME=$TICKET_LIFETIME" "$D1/service.log" "$PORT"
    SVC1=$SVC_PID
    # Warm-up: every key once (fills the cache), then a short run of each kind.
    ONCE=1 wrk_run t-warmup-once "$CONNS" 120 "$VALIDATE" "$BASE_URL_ROOT/auth" "$D1/keys.txt" once
    wrk_run t-warmup-validate "$CONNS" 2 "$VALIDATE" "$BASE_URL_ROOT/auth" "$D1/keys.txt"
    wrk_run t-warmup-ask "$CONNS" 2 "$TICKETS" "$BASE_URL_ROOT" ask "$D1/keys.txt" "$D1/tickets-warmup.txt"
    ONCE=1 wrk_run t-warmup-redeem "$CONNS" 120 "$TICKETS" "$BASE_URL_ROOT" redeem "$D1/tickets-warmup.txt" "$D1/service.key"
    # What one commit at a time can reach on this file system: 4 KiB written and fdatasync'ed in
    # a loop (a commit in WAL mode with synchronous=FULL syncs the WAL once).
    FSYNCS="?"
    if command -v python3 >/dev/null; then
        record "python3 -c '…4 KiB pwrite + fdatasync in a loop for 2 s, in \$TMP'"
        FSYNCS=$(python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
n, t0, block = 0, time.monotonic(), b"x" * 4096
while time.monotonic() - t0 < 2:
    os.pwrite(fd, block, (n % 256) * 4096)
    os.fdatasync(fd)
    n += 1
print("%.0f" % (n / (time.monotonic() - t0)))' "$D1/fsync.test")
        rm -f "$D1/fsync.test"
        log "fdatasync ceiling: $FSYNCS/s"
    fi
    V64=() V8=() A64=() R64=() R8=() V64C=() V8C=() A64C=() R64C=() R8C=() RA=() RB=() RC=()
    ERR1=0 TICKETS_MADE=0 SECOND=""
    for r in $(seq "$ROUNDS"); do
        CPU_PID=$SVC1
        wrk_run "t-validate-$CONNS-$r" "$CONNS" "$SECS" "$VALIDATE" "$BASE_URL_ROOT/auth" "$D1/keys.txt"
        S1+=("$(wrow "validation \`GET /auth\`, round $r | $CONNS")")
        V64+=("$R_RPS") V64C+=("$R_CPU_US"); ERR1=$((ERR1 + R_NON2XX + R_SOCKERR)); v64=$R_RPS

        : >"$D1/tickets-$r.txt"
        wrk_run "t-ask-$CONNS-$r" "$CONNS" "$SECS" "$TICKETS" "$BASE_URL_ROOT" ask "$D1/keys.txt" "$D1/tickets-$r.txt"
        made=$(wc -l <"$D1/tickets-$r.txt")
        S1+=("$(wrow "**asks** \`POST /auth/tickets\` ($(thousands "$made") tickets kept), round $r | $CONNS")")
        A64+=("$R_RPS") A64C+=("$R_CPU_US"); ERR1=$((ERR1 + R_NON2XX + R_SOCKERR)); a64=$R_RPS
        TICKETS_MADE=$((TICKETS_MADE + made))
        [ "$made" -ge 4 ] || die "round $r kept only $made tickets"
        half=$((made / 2))
        head -n "$half" "$D1/tickets-$r.txt" >"$D1/tickets-$r-a.txt"
        tail -n +"$((half + 1))" "$D1/tickets-$r.txt" >"$D1/tickets-$r-b.txt"

        ONCE=1 wrk_run "t-redeem-$CONNS-$r" "$CONNS" 300 "$TICKETS" "$BASE_URL_ROOT" redeem "$D1/tickets-$r-a.txt" "$D1/service.key"
        S1+=("$(wrow "**redemptions** \`POST /auth/tickets/redeem\` ($(thousands "$half") tickets, each once), round $r | $CONNS")")
        R64+=("$R_RPS") R64C+=("$R_CPU_US"); ERR1=$((ERR1 + R_NON2XX + R_SOCKERR)); r64=$R_RPS

        wrk_run "t-validate-$FEW-$r" "$FEW" "$SECS" "$VALIDATE" "$BASE_URL_ROOT/auth" "$D1/keys.txt"
        S1+=("$(wrow "validation \`GET /auth\`, round $r | $FEW")")
        V8+=("$R_RPS") V8C+=("$R_CPU_US"); ERR1=$((ERR1 + R_NON2XX + R_SOCKERR)); v8=$R_RPS

        ONCE=1 wrk_run "t-redeem-$FEW-$r" "$FEW" 300 "$TICKETS" "$BASE_URL_ROOT" redeem "$D1/tickets-$r-b.txt" "$D1/service.key"
        S1+=("$(wrow "**redemptions** \`POST /auth/tickets/redeem\` ($(thousands "$((made - half))") tickets, each once), round $r | $FEW")")
        R8+=("$R_RPS") R8C+=("$R_CPU_US"); ERR1=$((ERR1 + R_NON2XX + R_SOCKERR)); r8=$R_RPS
        CPU_PID=""
        RA+=("$(ratio3 "$a64" "$v64")") RB+=("$(ratio3 "$r64" "$v64")") RC+=("$(ratio3 "$r8" "$v8")")

        # A ticket works once: one from the middle of this round's -c$CONNS half again (not the
        # first: wrk calls request() once before it starts, to check the script, and drops it).
        again=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE_URL_ROOT/auth/tickets/redeem" \
            -H "Authorization: Bearer $(head -1 "$D1/service.key")" -H 'content-type: application/json' \
            -d "{\"ticket\": \"$(sed -n "$(( (half + 1) / 2 ))p" "$D1/tickets-$r-a.txt")\"}")
        SECOND="$SECOND${SECOND:+, }$again"
        [ "$again" = 403 ] || ERR1=$((ERR1 + 1))
    done
    stop_pid "$SVC1"; forget_pid "$SVC1"
    LOADS+=("step 1: $l0 → $(loadavg)")
    SUM1=(
        "| ticket redemptions / validations, requests/s at -c$CONNS (median of the rounds' ratios) | **$(median3 "${RB[@]}")** (rounds: $(list "${RB[@]}"); means $(thousands "$(mean "${R64[@]}")") vs $(thousands "$(mean "${V64[@]}")") /s) |"
        "| … at -c$FEW | **$(median3 "${RC[@]}")** (rounds: $(list "${RC[@]}"); means $(thousands "$(mean "${R8[@]}")") vs $(thousands "$(mean "${V8[@]}")") /s) |"
        "| … service CPU per request, redemption / validation (-c$CONNS) | $(ratio "$(mean1 "${R64C[@]}")" "$(mean1 "${V64C[@]}")") ($(mean1 "${R64C[@]}") vs $(mean1 "${V64C[@]}") µs) |"
        "| ticket asks / validations, requests/s at -c$CONNS | **$(median3 "${RA[@]}")** (rounds: $(list "${RA[@]}"); means $(thousands "$(mean "${A64[@]}")") vs $(thousands "$(mean "${V64[@]}")") /s) |"
        "| … service CPU per request, ask / validation (-c$CONNS) | $(ratio "$(mean1 "${A64C[@]}")" "$(mean1 "${V64C[@]}")") ($(mean1 "${A64C[@]}") vs $(mean1 "${V64C[@]}") µs) |"
        "| … for scale: 4 KiB writes each followed by \`fdatasync\` on the databases' file system, one at a time | $(thousands "$FSYNCS") /s |"
        "| a ticket redeemed a second time (one per round; must be 403) | $SECOND |"
        "| errors of step 1 (non-2xx or socket: every ask and first redemption must be 200; a second redemption not 403) | $ERR1 |"
    )
fi

# ---------------------------------------------------------------- 2. revocation stream fan-out
# fanout TAG WHERE SIGN_URL LISTEN_URL KEYS_FILE SERVICE_KEY_FILE PID: ROUNDS × (a storm with
# nobody listening, a storm with LISTENERS listeners; the order alternates), rows appended to
# S2, the summary's rows to SUM2 (each starting with WHERE).
S2=() SUM2=()
fanout() {
    local tag=$1 where=$2 sign_url=$3 listen_url=$4 keys=$5 skey=$6 pid=$7
    local none=() with=() ratios=() cpu_none=() cpu_with=() bad="" p50s=() p99s=() maxs=() dps=()
    local offset=0 r l order line out errs n w
    for r in $(seq "$STORM_ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="0 $LISTENERS"; else order="$LISTENERS 0"; fi
        for l in $order; do
            out="$TMP/fanout-$tag-$l-$r.txt"
            record "$EXAMPLES/stream_fanout --url $sign_url$([ "$listen_url" != "$sign_url" ] && echo " --listen-url $listen_url") --service-key-file SERVICE_KEY_FILE --keys-file $keys --offset $offset --revocations $REVOCATIONS --senders $SENDERS --listeners $l --pid SERVICE_PID"
            timeout --kill-after=5 300 "$EXAMPLES/stream_fanout" --url "$sign_url" --listen-url "$listen_url" \
                --service-key-file "$skey" --keys-file "$keys" --offset "$offset" --revocations "$REVOCATIONS" \
                --senders "$SENDERS" --listeners "$l" --pid "$pid" --clk-tck "$CLK_TCK" >"$out" 2>"$out.err" ||
                { cat "$out.err" >&2; die "stream_fanout failed"; }
            offset=$((offset + REVOCATIONS))
            line=$(grep '^FANOUT ' "$out") || die "stream_fanout gave no result"
            eval "$(echo "${line#FANOUT }" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=[-0-9.]+$' | sed 's/^/F_/')"
            # shellcheck disable=SC2154
            log "$where, storm with $l listeners: $F_signouts_per_s sign-outs/s (p50 $(ms "$F_signout_p50_us") ms), deliveries $F_deliveries of $F_expected, delay p50 $(ms "$F_delay_p50_us") ms, p99 $(ms "$F_delay_p99_us") ms, max $(ms "$F_delay_max_us") ms"
            errs=$((F_signouts_failed + F_missing + F_duplicates + F_out_of_order + F_foreign + F_resets + F_malformed + F_broken))
            if [ "$l" = 0 ]; then
                S2+=("| $where, nobody listening, round $r | 0 | $(thousands "$F_signouts_ok") | $F_signouts_per_s | $(ms "$F_signout_p50_us") | $(ms "$F_signout_p99_us") | – | – | – | – | – | – | – | $F_signouts_failed | $F_service_cpu_us_per_signout |")
                none+=("$F_signouts_per_s") cpu_none+=("$F_service_cpu_us_per_signout") n=$F_signouts_per_s
            else
                S2+=("| $where, **$l listeners**, round $r | $l | $(thousands "$F_signouts_ok") | $F_signouts_per_s | $(ms "$F_signout_p50_us") | $(ms "$F_signout_p99_us") | $(thousands "$F_deliveries") of $(thousands "$F_expected") | $(thousands "$F_deliveries_per_s") | $(ms "$F_delay_p50_us") | $(ms "$F_delay_p99_us") | $(ms "$F_delay_max_us") | $(ms "$F_delay_min_us") ($(thousands "$F_early") before the 200) | $F_missing / $F_duplicates / $F_out_of_order / $F_resets / $F_foreign | $F_signouts_failed | $F_service_cpu_us_per_signout ($F_service_cpu_us_per_signout_with_drain) |")
                with+=("$F_signouts_per_s") cpu_with+=("$F_service_cpu_us_per_signout") w=$F_signouts_per_s
                p50s+=("$F_delay_p50_us") p99s+=("$F_delay_p99_us") maxs+=("$F_delay_max_us") dps+=("$(thousands "$F_deliveries_per_s")")
                [ "$F_deliveries" = "$F_expected" ] || bad="$bad round $r: $F_deliveries of $F_expected deliveries;"
            fi
            [ "$errs" = 0 ] || bad="$bad round $r, $l listeners: $errs faults;"
        done
        ratios+=("$(ratio3 "$w" "$n")")
    done
    local worst
    worst=$(printf '%s\n' "${maxs[@]}" | sort -n | tail -1)
    SUM2+=(
        "| $where: sign-outs/s during a storm, $LISTENERS listeners / nobody listening (median of the rounds' ratios) | **$(median3 "${ratios[@]}")** (rounds: $(list "${ratios[@]}"); means $(mean1 "${with[@]}") vs $(mean1 "${none[@]}") /s) |"
        "| … service CPU per sign-out, with / without listeners (over the storm, in the instance signing out) | $(ratio "$(mean1 "${cpu_with[@]}")" "$(mean1 "${cpu_none[@]}")") ($(mean1 "${cpu_with[@]}") vs $(mean1 "${cpu_none[@]}") µs$([ "$listen_url" = "$sign_url" ] && awk -v a="$(mean1 "${cpu_with[@]}")" -v b="$(mean1 "${cpu_none[@]}")" -v l="$LISTENERS" 'BEGIN { printf ": %.1f µs per delivery", (l > 0 ? (a - b) / l : 0) }')) |"
        "| … delivery delay, sign-out's 200 → event parsed by a listener: p50 / p99 / max, per round | **$(ms_list "${p50s[*]}") / $(ms_list "${p99s[*]}") / $(ms_list "${maxs[*]}") ms** (API.md: within 1 s; worst $(ms "$worst") ms) |"
        "| … deliveries/s (event × listener), per round | $(list "${dps[@]}") |"
        "| … every listener got every revocation exactly once, in increasing seq, no reset; every sign-out 200 | $([ -z "$bad" ] && echo yes || echo "**no**:$bad") |"
    )
}

if want_step 2; then
    log "step 2: revocation stream, $REVOCATIONS sign-outs per storm from $SENDERS senders, 0 and $LISTENERS listeners, × $STORM_ROUNDS"
    l0=$(loadavg)
    D2="$TMP/stream"; mkdir -p "$D2"
    seed "$EXAMPLES/seed" "$D2/kb.db" $((STORM_ROUNDS * 2 * REVOCATIONS)) "$D2/keys.txt"
    service_key "sqlite://$D2/kb.db" "$D2/service.key"
    start_service "$BIN" "$(validation_env "$D2/kb.db" "$PORT")" "$D2/service.log" "$PORT"
    SVC2=$SVC_PID
    fanout sqlite "SQLite, one instance" "$BASE_URL_ROOT" "$BASE_URL_ROOT" "$D2/keys.txt" "$D2/service.key" "$SVC2"
    stop_pid "$SVC2"; forget_pid "$SVC2"
    LOADS+=("step 2: $l0 → $(loadavg)")
fi

# ---------------------------------------------------------------- 3. validation before and after
S3=() SUM3=() CG_ROWS=()
if want_step 3; then
    log "step 3: validation, $BASE_LABEL vs current ($KEYS keys, -c$CONNS, ${SECS}s × $AB_ROUNDS each)"
    l0=$(loadavg)
    D3="$TMP/before-after"; mkdir -p "$D3"
    seed "$BASE_EXAMPLES/seed" "$D3/base.db" "$KEYS" "$D3/keys.txt"
    cp "$D3/base.db" "$D3/new.db"
    [ ! -f "$D3/base.db-wal" ] || cp "$D3/base.db-wal" "$D3/new.db-wal"
    record "cp $D3/base.db $D3/new.db  # the current binary migrates its copy at start"
    start_service "$BASE_BIN" "$(validation_env "$D3/base.db" "$BASE_PORT")" "$D3/base.log" "$BASE_PORT"
    OLD_PID=$SVC_PID
    start_service "$BIN" "$(validation_env "$D3/new.db" "$PORT")" "$D3/new.log" "$PORT"
    NEW_PID=$SVC_PID
    OLD_URL="http://127.0.0.1:$BASE_PORT/auth" NEW_URL="http://127.0.0.1:$PORT/auth"
    for who in old new; do
        if [ "$who" = old ]; then url=$OLD_URL; else url=$NEW_URL; fi
        ONCE=1 wrk_run "v-warmup-once-$who" "$CONNS" 120 "$VALIDATE" "$url" "$D3/keys.txt" once
        wrk_run "v-warmup-$who" "$CONNS" 2 "$VALIDATE" "$url" "$D3/keys.txt"
    done
    OLD_RPS=() NEW_RPS=() OLD_CPU=() NEW_CPU=() V_RATIO=() V_CPU_RATIO=() ERR3=0
    run_one() { # run_one old|new ROUND [THINK]
        local who=$1 r=$2 url pid label
        if [ "$who" = old ]; then url=$OLD_URL pid=$OLD_PID label="$BASE_LABEL"; else url=$NEW_URL pid=$NEW_PID label="**current** $(git rev-parse --short HEAD)"; fi
        CPU_PID=$pid
        wrk_run "v-$who-$r" "$CONNS" "$SECS" "$VALIDATE" "$url" "$D3/keys.txt"
        CPU_PID=""
        S3+=("$(wrow "$label, round $r | $CONNS")")
        ERR3=$((ERR3 + R_NON2XX + R_SOCKERR))
    }
    for r in $(seq "$AB_ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
        for who in $order; do
            run_one "$who" "$r"
            if [ "$who" = old ]; then o=$R_RPS oc=$R_CPU_US OLD_RPS+=("$R_RPS") OLD_CPU+=("$R_CPU_US")
            else n=$R_RPS nc=$R_CPU_US NEW_RPS+=("$R_RPS") NEW_CPU+=("$R_CPU_US"); fi
        done
        V_RATIO+=("$(ratio3 "$n" "$o")") V_CPU_RATIO+=("$(ratio3 "$nc" "$oc")")
    done
    THINK=$LIGHT_THINK
    CPU_PID=$OLD_PID
    wrk_run v-old-light "$LIGHT_CONNS" "$SECS" "$VALIDATE" "$OLD_URL" "$D3/keys.txt"
    S3+=("$(wrow "$BASE_LABEL, light load ($LIGHT_THINK ms between requests) | $LIGHT_CONNS")")
    LIGHT_OLD_P50=$R_P50 LIGHT_OLD_P99=$R_P99 LIGHT_OLD_CPU=$R_CPU_US; ERR3=$((ERR3 + R_NON2XX + R_SOCKERR))
    CPU_PID=$NEW_PID
    wrk_run v-new-light "$LIGHT_CONNS" "$SECS" "$VALIDATE" "$NEW_URL" "$D3/keys.txt"
    S3+=("$(wrow "**current**, light load ($LIGHT_THINK ms between requests) | $LIGHT_CONNS")")
    LIGHT_NEW_P50=$R_P50 LIGHT_NEW_P99=$R_P99 LIGHT_NEW_CPU=$R_CPU_US; ERR3=$((ERR3 + R_NON2XX + R_SOCKERR))
    THINK=0 CPU_PID=""
    stop_pid "$OLD_PID"; forget_pid "$OLD_PID"
    stop_pid "$NEW_PID"; forget_pid "$NEW_PID"
    LOADS+=("step 3 (wrk): $l0 → $(loadavg)")
    SUM3=(
        "| validation requests/s, current / $BASE_LABEL (-c$CONNS, median of the rounds' ratios) | **$(median3 "${V_RATIO[@]}")** (rounds: $(list "${V_RATIO[@]}"); means $(thousands "$(mean "${NEW_RPS[@]}")") vs $(thousands "$(mean "${OLD_RPS[@]}")") /s) |"
        "| … service CPU per validation, current / base | $(median3 "${V_CPU_RATIO[@]}") (rounds: $(list "${V_CPU_RATIO[@]}"); means $(mean1 "${NEW_CPU[@]}") vs $(mean1 "${OLD_CPU[@]}") µs) |"
        "| … light load ($LIGHT_CONNS connections, $LIGHT_THINK ms between requests): p50 / p99, current vs base | $(ms "$LIGHT_NEW_P50") / $(ms "$LIGHT_NEW_P99") vs $(ms "$LIGHT_OLD_P50") / $(ms "$LIGHT_OLD_P99") ms |"
        "| errors of step 3 (non-2xx or socket) | $ERR3 |"
    )

    if [ "$CG_N" -gt 0 ]; then
        # bench/callgrind.sh on each build's own binary and examples (seed, bare): its
        # CARGO_TARGET_DIR decides which. Alternated, base first.
        CG_OLD=() CG_NEW=() CG_RUNS=1
        [ "$SMOKE" = 1 ] || CG_RUNS=2
        l0=$(loadavg)
        for i in $(seq "$CG_RUNS"); do
            for who in old new; do
                if [ "$who" = old ]; then dir=$BASE_TARGET_USED; else dir=$TARGET_DIR; fi
                record "BENCH_SKIP_BUILD=1 BENCH_PORT=$CG_PORT CARGO_TARGET_DIR=$([ "$who" = old ] && echo BASE_TARGET || echo target) bench/callgrind.sh $CG_N"
                log "callgrind: $who, $CG_N requests"
                line=$(BENCH_SKIP_BUILD=1 BENCH_PORT=$CG_PORT CARGO_TARGET_DIR=$dir bench/callgrind.sh "$CG_N" 2>"$TMP/callgrind-$who-$i.err" | tail -1) ||
                    { cat "$TMP/callgrind-$who-$i.err" >&2; die "bench/callgrind.sh failed ($who)"; }
                log "callgrind $who: $line"
                svc=$(echo "$line" | sed -n 's/.*service \([0-9]*\),.*/\1/p')
                bare=$(echo "$line" | sed -n 's/.*bare axum \([0-9]*\),.*/\1/p')
                [ -n "$svc" ] || die "bench/callgrind.sh gave no count: $line"
                if [ "$who" = old ]; then CG_OLD+=("$svc"); else CG_NEW+=("$svc"); fi
                CG_ROWS+=("| $([ "$who" = old ] && echo "$BASE_LABEL" || echo "**current**"), run $i | $(thousands "$svc") | $(thousands "$bare") | $(thousands "$((svc - bare))") | $(ratio "$svc" "$bare") |")
            done
        done
        CG_O=$(mean "${CG_OLD[@]}") CG_C=$(mean "${CG_NEW[@]}")
        SUM3+=("| instructions per validation under callgrind, current / base ($CG_N requests, 1,000 cached keys) | **$(ratio3 "$CG_C" "$CG_O")** ($(thousands "$CG_C") vs $(thousands "$CG_O"); runs: current $(list "${CG_NEW[@]}"), base $(list "${CG_OLD[@]}")) |")
        LOADS+=("callgrind: $l0 → $(loadavg)")
    fi
fi
# ---------------------------------------------------------------- 4. fan-out across instances
if want_step 4; then
    if ! command -v psql >/dev/null || ! psql "$PG_URL/postgres" -qXtA -c 'SELECT 1' >/dev/null 2>&1; then
        log "step 4 skipped: no PostgreSQL at $PG_URL (BENCH_PG_URL) or no psql"
        SUM2+=("| PostgreSQL, two instances (step 4) | skipped: no PostgreSQL answered at $PG_URL |")
    else
        log "step 4: revocation stream on PostgreSQL, sign-outs on A, $LISTENERS listeners on B"
        l0=$(loadavg)
        PG_VERSION=$(psql "$PG_URL/postgres" -qXtA -c 'SHOW server_version')
        D4="$TMP/stream-pg"; mkdir -p "$D4"
        record "psql $PG_URL/postgres -c 'CREATE DATABASE kb_game'  # dropped at the end"
        psql "$PG_URL/postgres" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >&2
        PG_DB_CREATED=1
        PG_DB_URL="$PG_URL/$PG_DB"
        n4=$((STORM_ROUNDS * 2 * REVOCATIONS))
        record "$EXAMPLES/seed --postgres $PG_URL/kb_game --keys $n4 --keys-file $D4/keys.txt --file-limit $n4"
        "$EXAMPLES/seed" --postgres "$PG_DB_URL" --keys "$n4" --keys-file "$D4/keys.txt" --file-limit "$n4" >&2
        service_key "$PG_DB_URL" "$D4/service.key"
        start_service "$BIN" "$(service_env "$PG_DB_URL" "$PORT")" "$D4/a.log" "$PORT"
        PG_A=$SVC_PID
        start_service "$BIN" "$(service_env "$PG_DB_URL" "$BASE_PORT")" "$D4/b.log" "$BASE_PORT"
        PG_B=$SVC_PID
        fanout postgres "PostgreSQL $PG_VERSION, sign-outs on A, listeners on B" "$BASE_URL_ROOT" "http://127.0.0.1:$BASE_PORT" \
            "$D4/keys.txt" "$D4/service.key" "$PG_A"
        stop_pid "$PG_A"; forget_pid "$PG_A"
        stop_pid "$PG_B"; forget_pid "$PG_B"
        LOADS+=("step 4: $l0 → $(loadavg)")
    fi
fi
ELAPSED=$(( $(date +%s) - T0 ))

# ---------------------------------------------------------------- report
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$(git status --porcelain -- src migrations Cargo.toml examples bench 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
MODE=$([ "$SMOKE" = 1 ] && echo "smoke (--smoke)" || echo "full")

REPORT="$TMP/report.md"
{
    echo "### Results: game servers"
    echo
    echo "Generated by \`bench/game.sh\`$([ "$SMOKE" = 1 ] && echo " --smoke") on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED}s ($MODE run; steps $STEPS)."
    echo
    echo "- Machine: $(nproc) cores ($CPU), $MEM memory, Linux $(uname -r); wrk (or the example load generators) and the services share these cores."
    echo "- Build: commit $COMMIT$DIRTY, $(rustc --version 2>/dev/null || echo rustc), release profile; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)$([ -n "$BASE_LABEL" ] && echo "; step 3's base: $BASE_LABEL")."
    echo "- Load average (1, 5, 15 min) at the start: $LOAD0; $(list "${LOADS[@]}"). Anything above ~0.5 before a step means other work shared the cores."
    echo "- Settings: ${SECS}s per timed run; rounds: $ROUNDS (step 1), $STORM_ROUNDS (steps 2 and 4), $AB_ROUNDS (step 3); wrk -t1, $(thousands "$KEYS") player keys, tickets.lifetime $TICKET_LIFETIME; storms of $(thousands "$REVOCATIONS") sign-outs from $SENDERS senders, $LISTENERS listeners."
    echo
    echo "| ratio (or check) | measured |"
    echo "|---|---|"
    printf '%s\n' "${SUM1[@]}" "${SUM2[@]}" "${SUM3[@]}"
    if want_step 1; then
        echo
        echo "#### 1. Join tickets against validation"
        echo
        echo "Player keys seeded (\`examples/seed\`), all cached first; a service key from \`admin create-service\`. Each round: validation at -c$CONNS, asks at -c$CONNS (\`bench/tickets.lua ask\` keeps every ticket), redemptions of half of those at -c$CONNS and of the other half at -c$FEW (\`bench/tickets.lua redeem\`, each ticket once, the run ends with the last one), validation at -c$FEW. An ask is a write (the ticket's digest inserted, the key's use counted), a redemption too (\`UPDATE … RETURNING\`, once); both commit to SQLite with \`synchronous=FULL\`."
        echo
        echo "| what | connections $WHEAD"
        echo "|---|---:$WSEP"
        printf '%s\n' "${S1[@]}"
    fi
    if want_step 2 || [ -n "${PG_A:-}" ]; then
        echo
        echo "#### 2. Revocation stream fan-out$([ -n "${PG_A:-}" ] && echo " (and 4: across two instances on PostgreSQL)")"
        echo
        echo "\`examples/stream_fanout\`: the storm's keys are validated once first (their ids, and the cache); then $SENDERS senders sign out $(thousands "$REVOCATIONS") keys (\`DELETE /auth\`) as fast as they are answered, with nobody listening or with the listeners all connected to \`GET /revocations\` (one process, one connection each, the service key). *Delay* runs from the moment the sender got its 200 to the moment a listener parsed the event naming that key, both on the load generator's monotonic clock; negative when the event came first. Checks: missing / duplicated / out-of-order (seq not increasing) / resets / events of other keys. *Service CPU* is the service's user + system time over the storm per sign-out (in brackets: until the last delivery).$([ -n "${PG_A:-}" ] && echo " On PostgreSQL (step 4), two instances share a fresh database: the senders sign out on A, the listeners follow B, which learns of each revocation through PostgreSQL's notifications and reads the feed; the CPU is A's.")"
        echo
        echo "| storm | listeners | sign-outs | sign-outs/s | sign-out p50 ms | p99 ms | deliveries | deliveries/s | delay p50 ms | p99 ms | max ms | min ms | missing / dup / order / reset / other | failed | service CPU µs/sign-out |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
        printf '%s\n' "${S2[@]}"
    fi
    if want_step 3; then
        echo
        echo "#### 3. Validation before and after issue 14"
        echo
        echo "The base binary ($BASE_LABEL) and the current one run side by side on copies of one database seeded by the base's \`examples/seed\` (the current binary migrated its copy at start), with the same $(thousands "$KEYS") keys, all cached first; wrk rounds alternate (base first in odd rounds)."
        echo
        echo "| build | connections $WHEAD"
        echo "|---|---:$WSEP"
        printf '%s\n' "${S3[@]}"
        if [ "${#CG_ROWS[@]}" -gt 0 ]; then
            echo
            echo "\`bench/callgrind.sh $CG_N\` with each build's own binary and examples (\`CARGO_TARGET_DIR\`): user-space instructions per \`GET /auth\` over 1,000 cached keys, after a warm-up, next to bare axum built from the same tree (sha2 hashes in software under valgrind, so both counts are higher than on the metal). Both services were built alone (\`cargo build --release --bin killbill-auth\`), as for production; bare axum is an example, built with its tree's dev-dependencies, and the current tree's add tokio's \`process\` and \`io-std\` features: its count moves between the trees by itself, so *service − bare* does not compare the trees."
            echo
            echo "| build | instructions per GET /auth | bare axum | service − bare | service / bare |"
            echo "|---|---:|---:|---:|---:|"
            printf '%s\n' "${CG_ROWS[@]}"
        fi
    fi
    echo
    echo "#### Commands"
    echo
    echo "TMP is a fresh temporary directory; every database is new."
    echo
    echo '```sh'
    printf '%s\n' "${COMMANDS[@]}" | sed "s#$TMP#\$TMP#g; s#$ROOT/##g; s#$BASE_TARGET#BASE_TARGET#g; s#$PG_DB#kb_game#g" | awk '!seen[$0]++'
    echo '```'
} >"$REPORT"

cat "$REPORT"

mkdir -p "$(dirname "$OUT")"
BEGIN_MARK="<!-- BEGIN GENERATED by bench/game.sh: do not edit below -->"
END_MARK="<!-- END GENERATED by bench/game.sh -->"
if ! splice_report "$OUT" "$REPORT" "$BEGIN_MARK" "$END_MARK"; then
    {
        if [ -f "$OUT" ]; then
            cat "$OUT"
            echo
        else
            echo "# Benchmarks"
            echo
        fi
        echo "## Game servers (issue 14)"
        echo
        echo "Reproduce with \`bench/game.sh\` (see the top of that script)."
        echo
        echo "$BEGIN_MARK"
        cat "$REPORT"
        echo "$END_MARK"
    } >"$OUT.new"
    mv "$OUT.new" "$OUT"
fi
log "report written to $OUT"
