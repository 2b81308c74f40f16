#!/usr/bin/env bash
# bench/postgres.sh — killbill-auth on PostgreSQL next to the same service on SQLite, and next to
# a bare SELECT through the same driver, side by side, in one command.
#
#   bench/postgres.sh            # full run (about 5 minutes on 2 cores); writes the PostgreSQL
#                                # section of BENCHMARKS.md
#   bench/postgres.sh --smoke    # every step about 2 s on small data (about a minute); writes
#                                # target/bench/BENCHMARKS.postgres.smoke.md
#
# It needs a PostgreSQL server (BENCH_PG_URL, a role allowed to create databases), psql, wrk
# (installed with apt-get if missing) and curl. Everything runs on 127.0.0.1, every load bounded
# in time; the conventions (seeding, wrk scripts, report) are those of bench/run.sh.
#   0. builds the service and the examples in release mode; creates a fresh database on the
#      server (dropped at the end, whatever happens) and a fresh SQLite file; seeds both with
#      the same number of users and live keys (examples/seed, --postgres for PostgreSQL);
#   1. warm validation (GET /auth, every key cached): one service on SQLite and one on
#      PostgreSQL, the same settings, keys count and wrk load (-c64, then light load), the two
#      alternating round after round (the first of each round changes from round to round);
#   2. cold validation (every request a cache miss): each round restarts the PostgreSQL service
#      and sends each key once at light load (as bench/run.sh's cold passes), then the same keys
#      again (all cached: what HTTP alone costs at that pace); then examples/pg_select reads the
#      same keys with the store's own find_key statement through sqlx's PgPool, at the same
#      concurrency and pace; then the SQLite service's first uses, for reference;
#   3. sign-ins (POST /auth, default Argon2id m=19456 t=2 p=1, -c8) on SQLite and PostgreSQL,
#      alternating.
#   4. revocation across instances: two services on the PostgreSQL database, a key cached by one
#      and signed out on the other, polled until refused (examples/revocation_latency).
# It prints a markdown report and writes it between the PostgreSQL markers of the output file.
#
# Settings (environment):
#   BENCH_PG_URL              PostgreSQL server, without a database name
#                             (postgres://postgres@127.0.0.1:5432)
#   BENCH_SECONDS             seconds per timed wrk run (10; --smoke: 2)
#   BENCH_ROUNDS              alternation rounds of every step (3; --smoke: 1)
#   BENCH_CONNECTIONS         wrk connections for warm validation (64)
#   BENCH_LIGHT_CONNECTIONS   connections at light load, and pg_select's concurrency (8)
#   BENCH_LIGHT_THINK_MS      pause of each light-load connection between requests, ms (1)
#   BENCH_SIGNIN_CONNECTIONS  wrk connections for sign-ins (8: below the hashing queue's size)
#   BENCH_LIVE_KEYS           users and live keys seeded into each database (100000; --smoke: 10000)
#   BENCH_KEYS                distinct keys sent by the warm runs (10000; --smoke: 2000)
#   BENCH_COLD_KEYS           of those, keys sent once per cold pass (10000; --smoke: 1000)
#   BENCH_USERS               users signed up over HTTP for sign-ins (32; --smoke: 8)
#   BENCH_REVOCATIONS         revocations measured across two instances in step 4 (200; --smoke: 50)
#   BENCH_PORT                SQLite service port; the PostgreSQL one is BENCH_PORT+1 (18180)
#   BENCH_OUT                 report file (BENCHMARKS.md; --smoke: target/bench/BENCHMARKS.postgres.smoke.md)
#   BENCH_RUST_LOG            the services' RUST_LOG (info, their default)
#   BENCH_KEEP_TMP=1          keep the temporary directory (database file, logs, wrk outputs)
#   BENCH_SKIP_BUILD=1        use the binaries already in target/release
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bench_options "$@"

if [ "$SMOKE" = 1 ]; then
    D_SECONDS=2 D_ROUNDS=1 D_LIVE=10000 D_KEYS=2000 D_COLD=1000 D_USERS=8 D_REVOCATIONS=50
    D_OUT="${CARGO_TARGET_DIR:-$ROOT/target}/bench/BENCHMARKS.postgres.smoke.md"
else
    D_SECONDS=10 D_ROUNDS=3 D_LIVE=100000 D_KEYS=10000 D_COLD=10000 D_USERS=32 D_REVOCATIONS=200
    D_OUT="$ROOT/BENCHMARKS.md"
fi
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_URL=${PG_URL%/}
SECS=${BENCH_SECONDS:-$D_SECONDS}
ROUNDS=${BENCH_ROUNDS:-$D_ROUNDS}
CONNS=${BENCH_CONNECTIONS:-64}
LIGHT_CONNS=${BENCH_LIGHT_CONNECTIONS:-8}
LIGHT_THINK=${BENCH_LIGHT_THINK_MS:-1}
SIGNIN_CONNS=${BENCH_SIGNIN_CONNECTIONS:-8}
LIVE=${BENCH_LIVE_KEYS:-$D_LIVE}
KEYS=${BENCH_KEYS:-$D_KEYS}
COLD=${BENCH_COLD_KEYS:-$D_COLD}
USERS=${BENCH_USERS:-$D_USERS}
REVOCATIONS=${BENCH_REVOCATIONS:-$D_REVOCATIONS}
PORT=${BENCH_PORT:-18180}
PG_PORT=$((PORT + 1))
OUT=${BENCH_OUT:-$D_OUT}
SERVICE_RUST_LOG=${BENCH_RUST_LOG:-info}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/killbill-auth"
EXAMPLES="$TARGET_DIR/release/examples"
SIGNUP_THROTTLE=10000
[ "$KEYS" -le "$LIVE" ] || { echo "bench/postgres.sh: BENCH_KEYS > BENCH_LIVE_KEYS" >&2; exit 2; }
[ "$COLD" -le "$KEYS" ] || { echo "bench/postgres.sh: BENCH_COLD_KEYS > BENCH_KEYS" >&2; exit 2; }

# The service refuses unknown KILLBILL_AUTH_* variables, and the caller's must not change the
# figures: start from none.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)

log() { printf '%s bench-pg: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- processes and clean-up
TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-bench-pg.XXXXXX")
PIDS=()
# A database of our own on the server, dropped at the end.
PG_DB=$(pg_db_name kb_bench)
PG_DB_CREATED=0
cleanup() { stop_pids; drop_pg_db; remove_tmp; }
trap cleanup EXIT
trap 'exit 130' INT TERM



# ---------------------------------------------------------------- 0. tools, build, databases
COMMANDS=()

command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || die "curl is needed"
command -v psql >/dev/null || die "psql is needed (apt-get install -y postgresql-client)"
psql "$PG_URL/postgres" -qXtA -c 'SELECT 1' >/dev/null || die "no PostgreSQL at $PG_URL (set BENCH_PG_URL)"
PG_VERSION=$(psql "$PG_URL/postgres" -qXtA -c 'SHOW server_version')

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release --examples --bin killbill-auth
fi
record "cargo build --release --examples --bin killbill-auth"
for f in "$BIN" "$EXAMPLES/seed" "$EXAMPLES/pg_select"; do
    [ -x "$f" ] || die "$f is missing (build failed?)"
done
port_busy "$PORT" && die "port $PORT is taken (set BENCH_PORT)"
port_busy "$PG_PORT" && die "port $PG_PORT is taken (set BENCH_PORT)"

record "psql $PG_URL/postgres -c 'CREATE DATABASE kb_bench'  # dropped at the end"
psql "$PG_URL/postgres" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >&2
PG_DB_CREATED=1
PG_DB_URL="$PG_URL/$PG_DB"
SQ_DB="$TMP/kb.db"

# ---------------------------------------------------------------- helpers
# database_url sqlite|postgres: the database of the run on either.
database_url() {
    if [ "$1" = postgres ]; then echo "$PG_DB_URL"; else echo "sqlite://$SQ_DB"; fi
}
# Environment of the service (lib.sh's service_settings): cheap Argon2 for validation runs, the
# real defaults for sign-ins.
validation_env() { service_settings validation "$2" "$(database_url "$1")"; } # validation_env sqlite|postgres PORT
signin_env() { service_settings signin "$2" "$(database_url "$1")"; }         # signin_env sqlite|postgres PORT



# start_service ENV LOG PORT: starts the service (lib.sh's launch_service: SVC_PID, STARTUP_MS).
start_service() { launch_service "$BIN" "$1" "$2" "$3"; }
stop_service() { stop_pid "$1"; forget_pid "$1"; }

CLK_TCK=$(getconf CLK_TCK)
# pg_ticks: "PID TICKS" of every PostgreSQL server process that works for this run's database:
# its backends and autovacuum workers. Not the server's shared background processes (WAL
# writer, checkpointer…), which also work for other databases (other users' tests): their part
# of our writes goes uncounted.
pg_ticks() {
    local p cmd
    for p in $(pgrep -x postgres || true); do
        cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
        case "$cmd" in
            *" $PG_DB "*) awk -v p="$p" '{ print p, $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true ;;
        esac
    done
}
# pg_xacts: transactions committed or rolled back in the run's database so far (PostgreSQL's
# statistics, which backends report at most once a second: a figure for runs of seconds).
pg_xacts() {
    psql "$PG_DB_URL" -qXtA -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}
# pg_delta BEFORE: clock ticks PostgreSQL spent since the snapshot BEFORE (pg_ticks's output);
# a process born since counts from zero, one gone since is lost (a backend of a closed pool).
pg_delta() {
    awk 'NR == FNR { a[$1] = $2; next } { d += $2 - ($1 in a ? a[$1] : 0) } END { print d + 0 }' \
        <(echo "$1") <(pg_ticks)
}

# page_in DB: reads the SQLite file (and its WAL) into the OS page cache (see bench/run.sh:
# machines of this kind page out file pages idle for about a minute).
page_in() {
    local f
    for f in "$1" "$1-wal"; do [ -f "$f" ] && cat "$f" >/dev/null; done
    return 0
}

# wrk_run NAME CONNS DURATION SCRIPT URL [ARGS…]: one wrk (lib.sh's wrk_measure: R_RPS…
# R_CPU_US, the CPU of process CPU_PID per request), R_PG_US (CPU of PostgreSQL per request), a
# line in the log; ARGS ending in `once` (bench/validate.lua's KEYS_FILE once) send each key once.
wrk_run() {
    local name=$1 once=0 pg0
    [ "${7:-}" = once ] && once=1
    pg0=$(pg_ticks)
    wrk_measure "$1" "$2" "$3" "$4" "$5" "$once" "${@:6}"
    R_PG_US=$(per_request 0 "$(pg_delta "$pg0")" "$R_REQ")
    log "$(wrk_summary "$name"), PostgreSQL CPU $R_PG_US µs/request"
}

wrow() { # wrow LABEL…: a table row with the last wrk figures
    echo "| $* | $(wrk_cells) | $R_PG_US |"
}
WHEAD="| $WRK_HEAD | service CPU µs/request | PostgreSQL CPU µs/request |"
WSEP="$WRK_SEP---:|"

VALIDATE="bench/validate.lua"
SIGNIN="bench/signin.lua"
SQ_URL="http://127.0.0.1:$PORT/auth"
PG_SVC_URL="http://127.0.0.1:$PG_PORT/auth"
T0=$(date +%s)
LOAD0=$(loadavg)

# ---------------------------------------------------------------- seeding
log "seeding $LIVE users and live keys into SQLite and into PostgreSQL database $PG_DB"
t0=$(now_ns)
record "$EXAMPLES/seed --db \$TMP/kb.db --keys $LIVE --keys-file \$TMP/keys-sqlite.txt --file-limit $KEYS"
"$EXAMPLES/seed" --db "$SQ_DB" --keys "$LIVE" --keys-file "$TMP/keys-sqlite.txt" --file-limit "$KEYS" >&2
sync
SEED_SQ_S=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
t0=$(now_ns)
record "$EXAMPLES/seed --postgres $PG_URL/kb_bench --keys $LIVE --keys-file \$TMP/keys-postgres.txt --file-limit $KEYS"
"$EXAMPLES/seed" --postgres "$PG_DB_URL" --keys "$LIVE" --keys-file "$TMP/keys-postgres.txt" --file-limit "$KEYS" >&2
SEED_PG_S=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
PG_DB_MIB=$(psql "$PG_DB_URL" -qXtA -c "SELECT pg_database_size(current_database()) / 1048576")
SQ_DB_MIB=$(du -sm "$SQ_DB" | cut -f1)
head -n "$COLD" "$TMP/keys-sqlite.txt" >"$TMP/cold-sqlite.txt"
head -n "$COLD" "$TMP/keys-postgres.txt" >"$TMP/cold-postgres.txt"

# ---------------------------------------------------------------- 1. warm validation
log "step 1: warm validation, SQLite vs PostgreSQL ($KEYS keys, -c$CONNS, ${SECS}s × $ROUNDS)"
page_in "$SQ_DB"
start_service "$(validation_env sqlite "$PORT")" "$TMP/warm-sqlite.log" "$PORT"
SQ_PID=$SVC_PID
start_service "$(validation_env postgres "$PG_PORT")" "$TMP/warm-postgres.log" "$PG_PORT"
PG_PID=$SVC_PID
# Every key once (fills the caches), then a short run on each.
wrk_run warmup-once-sqlite "$CONNS" 120 "$VALIDATE" "$SQ_URL" "$TMP/keys-sqlite.txt" once
wrk_run warmup-once-postgres "$CONNS" 120 "$VALIDATE" "$PG_SVC_URL" "$TMP/keys-postgres.txt" once
wrk_run warmup-sqlite "$CONNS" 2 "$VALIDATE" "$SQ_URL" "$TMP/keys-sqlite.txt"
wrk_run warmup-postgres "$CONNS" 2 "$VALIDATE" "$PG_SVC_URL" "$TMP/keys-postgres.txt"

S1=()
declare -A W_RPS W_P50 W_P99 W_CPU W_LP50 W_LP99 W_ERR
for db in sqlite postgres; do W_RPS[$db]="" W_P50[$db]="" W_P99[$db]="" W_CPU[$db]="" W_LP50[$db]="" W_LP99[$db]="" W_ERR[$db]=0; done
LOAD1=$(loadavg)
warm_one() { # warm_one sqlite|postgres ROUND
    local db=$1 r=$2 url=$SQ_URL pid=$SQ_PID
    [ "$db" = postgres ] && url=$PG_SVC_URL pid=$PG_PID
    CPU_PID=$pid
    wrk_run "warm-$db-$r" "$CONNS" "$SECS" "$VALIDATE" "$url" "$TMP/keys-$db.txt"
    S1+=("$(wrow "service on **$db**, round $r | $CONNS")")
    W_RPS[$db]+="$R_RPS " W_P50[$db]+="$R_P50 " W_P99[$db]+="$R_P99 " W_CPU[$db]+="$R_CPU_US "
    W_ERR[$db]=$((W_ERR[$db] + R_NON2XX + R_SOCKERR))
    THINK=$LIGHT_THINK
    wrk_run "warm-light-$db-$r" "$LIGHT_CONNS" "$SECS" "$VALIDATE" "$url" "$TMP/keys-$db.txt"
    THINK=0
    S1+=("$(wrow "service on **$db**, light load ($LIGHT_THINK ms between requests), round $r | $LIGHT_CONNS")")
    W_LP50[$db]+="$R_P50 " W_LP99[$db]+="$R_P99 "
    W_ERR[$db]=$((W_ERR[$db] + R_NON2XX + R_SOCKERR))
    CPU_PID=""
}
for r in $(seq "$ROUNDS"); do
    # The first of a round alternates, so that a drift of the machine favours neither.
    if [ $((r % 2)) = 1 ]; then warm_one sqlite "$r"; warm_one postgres "$r"; else warm_one postgres "$r"; warm_one sqlite "$r"; fi
done
# shellcheck disable=SC2086
{
    WS_RPS=$(mean ${W_RPS[sqlite]}) WP_RPS=$(mean ${W_RPS[postgres]})
    WS_P99=$(mean ${W_P99[sqlite]}) WP_P99=$(mean ${W_P99[postgres]})
    WS_P50=$(mean ${W_P50[sqlite]}) WP_P50=$(mean ${W_P50[postgres]})
    WS_CPU=$(mean1 ${W_CPU[sqlite]}) WP_CPU=$(mean1 ${W_CPU[postgres]})
    WS_LP50=$(median ${W_LP50[sqlite]}) WP_LP50=$(median ${W_LP50[postgres]})
    WS_LP99=$(median ${W_LP99[sqlite]}) WP_LP99=$(median ${W_LP99[postgres]})
}
# Each round's pair ran back to back: the ratio of each round, and their median (a round in
# which other work took the cores from one of the two moves the mean, not the median).
W_ROUND_LIST=$(paste -d' ' <(echo "${W_RPS[postgres]}" | tr ' ' '\n' | sed '/^$/d') <(echo "${W_RPS[sqlite]}" | tr ' ' '\n' | sed '/^$/d') |
    awk '{ printf "%.4f\n", $1 / $2 }')
W_ROUND_RATIOS=$(echo "$W_ROUND_LIST" | awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }')
W_RATIO=$(echo "$W_ROUND_LIST" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
W_MEAN_RATIO=$(ratio "$WP_RPS" "$WS_RPS")
W_CPU_RATIO=$(ratio "$WP_CPU" "$WS_CPU")
LOAD1="$LOAD1 → $(loadavg)"
stop_service "$SQ_PID"
stop_service "$PG_PID"

# bare_select ROUND [--no-ping]: examples/pg_select over the cold keys at light load; sets
# p50_us p90_us p99_us max_us qps, qcpu (its CPU µs/query) and qpg (its backends' µs/query).
bare_select() {
    local r=$1 line pg0
    shift
    record "$EXAMPLES/pg_select --url $PG_URL/kb_bench --keys-file \$TMP/cold-postgres.txt --concurrency $LIGHT_CONNS --think-ms $LIGHT_THINK $*"
    pg0=$(pg_ticks)
    line=$("$EXAMPLES/pg_select" --url "$PG_DB_URL" --keys-file "$TMP/cold-postgres.txt" \
        --concurrency "$LIGHT_CONNS" --think-ms "$LIGHT_THINK" "$@" | grep '^PGSELECT ') || die "pg_select gave no result"
    queries="" found="" qps="" p50_us="" p90_us="" p99_us="" max_us="" cpu_ticks="" backend_ticks=""
    eval "$(echo "${line#PGSELECT }" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=-?[0-9.]+$' | grep -v '^seconds=')"
    [ "$found" = "$queries" ] || die "pg_select found $found of $queries keys"
    # Its backends, read by pg_select itself before it closed them (they are gone by now).
    if [ "${backend_ticks:--1}" -ge 0 ]; then
        qpg=$(per_request 0 "$backend_ticks" "$queries")
    else
        qpg=$(per_request 0 "$(pg_delta "$pg0")" "$queries")
    fi
    qcpu=$(per_request 0 "$cpu_ticks" "$queries")
    log "pg_select $r $*: $qps queries/s, p50 $(ms "$p50_us") ms, p99 $(ms "$p99_us") ms, its CPU $qcpu µs/query, PostgreSQL CPU $qpg µs/query"
}

# ---------------------------------------------------------------- 2. cold validation
log "step 2: cold validation on PostgreSQL vs a bare SELECT ($COLD keys once, -c$LIGHT_CONNS, $LIGHT_THINK ms between requests, × $ROUNDS)"
S2=()
C_P50=() C_P99=() C_CPU=() C_PG=() H_P50=() H_P99=() Q_P50=() Q_P99=() Q_QPS=() Q_PG=() SC_P50=() SC_P99=() C_RPS=() C_ERR=0 Q_CPU=() N_P50=() N_P99=() N_PG=() N_CPU=() H_CPU=() SC_CPU=()
LOAD2=$(loadavg)
for r in $(seq "$ROUNDS"); do
    # The service on PostgreSQL, its cache empty: each key's first use.
    start_service "$(validation_env postgres "$PG_PORT")" "$TMP/cold-postgres-$r.log" "$PG_PORT"
    PG_PID=$SVC_PID CPU_PID=$SVC_PID
    THINK=$LIGHT_THINK
    wrk_run "cold-postgres-$r" "$LIGHT_CONNS" 300 "$VALIDATE" "$PG_SVC_URL" "$TMP/cold-postgres.txt" once
    S2+=("$(wrow "service on **PostgreSQL**, first uses after a start (all misses), round $r | $LIGHT_CONNS")")
    C_P50+=("$R_P50") C_P99+=("$R_P99") C_CPU+=("$R_CPU_US") C_PG+=("$R_PG_US") C_RPS+=("$R_RPS")
    C_ERR=$((C_ERR + R_NON2XX + R_SOCKERR))
    # The same keys again, all cached now: HTTP and the service's rules at that pace.
    wrk_run "hit-postgres-$r" "$LIGHT_CONNS" 300 "$VALIDATE" "$PG_SVC_URL" "$TMP/cold-postgres.txt" once
    THINK=0
    S2+=("$(wrow "service on PostgreSQL, the same keys again (all hits), round $r | $LIGHT_CONNS")")
    H_P50+=("$R_P50") H_P99+=("$R_P99") H_CPU+=("$R_CPU_US")
    CPU_PID=""
    stop_service "$PG_PID"

    # The bare SELECT: find_key's statement through a PgPool, the same keys, concurrency and
    # pace; then the same without the pool's ping before each query.
    bare_select "$r"
    Q_P50+=("$p50_us") Q_P99+=("$p99_us") Q_PG+=("$qpg") Q_CPU+=("$qcpu")
    S2+=("| bare \`SELECT\` (find_key's statement, sqlx PgPool as the service's: a ping before each query), the same keys once, round $r | $LIGHT_CONNS | $(thousands "$qps") | $(ms "$p50_us") | $(ms "$p90_us") | $(ms "$p99_us") | $(ms "$max_us") | – | – | $qcpu | $qpg |")
    bare_select "$r" --no-ping
    N_P50+=("$p50_us") N_P99+=("$p99_us") N_PG+=("$qpg") N_CPU+=("$qcpu")
    S2+=("| bare \`SELECT\`, the same without the pool's ping (\`--no-ping\`), round $r | $LIGHT_CONNS | $(thousands "$qps") | $(ms "$p50_us") | $(ms "$p90_us") | $(ms "$p99_us") | $(ms "$max_us") | – | – | $qcpu | $qpg |")

    # For reference: the service on SQLite, first uses after a start.
    page_in "$SQ_DB"
    start_service "$(validation_env sqlite "$PORT")" "$TMP/cold-sqlite-$r.log" "$PORT"
    SQ_PID=$SVC_PID CPU_PID=$SVC_PID
    THINK=$LIGHT_THINK
    wrk_run "cold-sqlite-$r" "$LIGHT_CONNS" 300 "$VALIDATE" "$SQ_URL" "$TMP/cold-sqlite.txt" once
    THINK=0
    S2+=("$(wrow "service on SQLite, first uses after a start (all misses), round $r | $LIGHT_CONNS")")
    SC_P50+=("$R_P50") SC_P99+=("$R_P99") SC_CPU+=("$R_CPU_US")
    CPU_PID=""
    stop_service "$SQ_PID"
done
CP50=$(median "${C_P50[@]}") CP99=$(median "${C_P99[@]}")
HP50=$(median "${H_P50[@]}") HP99=$(median "${H_P99[@]}")
QP50=$(median "${Q_P50[@]}") QP99=$(median "${Q_P99[@]}")
NP50=$(median "${N_P50[@]}") NP99=$(median "${N_P99[@]}")
CCPU=$(mean1 "${C_CPU[@]}") CPG=$(mean1 "${C_PG[@]}") HCPU=$(mean1 "${H_CPU[@]}")
QCPU=$(mean1 "${Q_CPU[@]}") QPG=$(mean1 "${Q_PG[@]}") NCPU=$(mean1 "${N_CPU[@]}") NPG=$(mean1 "${N_PG[@]}")
SCCPU=$(mean1 "${SC_CPU[@]}")
SCP50=$(median "${SC_P50[@]}") SCP99=$(median "${SC_P99[@]}")
C_R50=$(ratio "$CP50" "$QP50") C_R99=$(ratio "$CP99" "$QP99")
C_ROUND_R50=$(for i in "${!C_P50[@]}"; do ratio "${C_P50[$i]}" "${Q_P50[$i]}"; echo; done | paste -sd, | sed 's/,/, /g')
C_ROUND_R99=$(for i in "${!C_P99[@]}"; do ratio "${C_P99[$i]}" "${Q_P99[$i]}"; echo; done | paste -sd, | sed 's/,/, /g')
# What a miss adds over a hit at the same pace, next to the bare SELECT.
MISS_ADDS=$((CP50 - HP50))
LOAD2="$LOAD2 → $(loadavg)"

# ---------------------------------------------------------------- 3. sign-ins
log "step 3: sign-ins, SQLite vs PostgreSQL ($USERS users each, -c$SIGNIN_CONNS, ${SECS}s × $ROUNDS)"
start_service "$(signin_env sqlite "$PORT")" "$TMP/signin-sqlite.log" "$PORT"
SQ_PID=$SVC_PID
start_service "$(signin_env postgres "$PG_PORT")" "$TMP/signin-postgres.log" "$PG_PORT"
PG_PID=$SVC_PID
record "curl -s http://127.0.0.1:PORT/users -H 'content-type: application/json' -d '{\"username\": \"bench_uNNN\", \"password\": \"…\"}'  # × $USERS on each"
for db in sqlite postgres; do
    port=$PORT
    [ "$db" = postgres ] && port=$PG_PORT
    : >"$TMP/credentials-$db.txt"
    for i in $(seq -f '%03g' "$USERS"); do
        name="bench_u$i"
        password="kb-bench-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
        code=$(curl -sS -o "$TMP/signup.json" -w '%{http_code}' "http://127.0.0.1:$port/users" \
            -H 'content-type: application/json' -d "{\"username\": \"$name\", \"password\": \"$password\"}") ||
            { tail -5 "$TMP/signin-$db.log" >&2; die "sign-up of $name on $db failed (curl exit $?)"; }
        [ "$code" = 200 ] || { cat "$TMP/signup.json" >&2; die "sign-up of $name on $db answered $code"; }
        echo "$name $password" >>"$TMP/credentials-$db.txt"
    done
done
S3=()
declare -A SG_RPS SG_P99 SG_ERR SG_CPU SG_PG
SG_XACTS=()
for db in sqlite postgres; do SG_RPS[$db]="" SG_P99[$db]="" SG_ERR[$db]=0 SG_CPU[$db]="" SG_PG[$db]=""; done
signin_one() { # signin_one sqlite|postgres ROUND
    local db=$1 r=$2 url=$SQ_URL pid=$SQ_PID
    [ "$db" = postgres ] && url=$PG_SVC_URL pid=$PG_PID
    CPU_PID=$pid
    local x0
    x0=$(pg_xacts)
    wrk_run "signin-$db-$r" "$SIGNIN_CONNS" "$SECS" "$SIGNIN" "$url" "$TMP/credentials-$db.txt"
    CPU_PID=""
    if [ "$db" = postgres ]; then
        sleep 1.5 # backends report their statistics at most once a second
        SG_XACTS+=("$(awk -v a="$x0" -v b="$(pg_xacts)" -v n="$R_REQ" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / n : 0) }')")
    fi
    # Sign-ins/s with one decimal (a few dozen a second).
    R_RPS=$(awk -v r="$R_REQ" -v d="$(grep '^BENCH ' "$TMP/wrk-signin-$db-$r.txt" | sed 's/.*duration_us=\([0-9]*\).*/\1/')" 'BEGIN { printf "%.1f", r * 1e6 / d }')
    S3+=("$(wrow "service on **$db** POST /auth, round $r | $SIGNIN_CONNS")")
    SG_RPS[$db]+="$R_RPS " SG_P99[$db]+="$R_P99 " SG_CPU[$db]+="$R_CPU_US " SG_PG[$db]+="$R_PG_US "
    SG_ERR[$db]=$((SG_ERR[$db] + R_NON2XX + R_SOCKERR))
}
LOAD3=$(loadavg)
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then signin_one sqlite "$r"; signin_one postgres "$r"; else signin_one postgres "$r"; signin_one sqlite "$r"; fi
done
# shellcheck disable=SC2086
{
    GS_RPS=$(mean1 ${SG_RPS[sqlite]}) GP_RPS=$(mean1 ${SG_RPS[postgres]})
    GS_P99=$(mean ${SG_P99[sqlite]}) GP_P99=$(mean ${SG_P99[postgres]})
    GS_CPU=$(mean ${SG_CPU[sqlite]}) GP_CPU=$(mean ${SG_CPU[postgres]}) GP_PG=$(mean ${SG_PG[postgres]})
}
G_RATIO=$(ratio "$GP_RPS" "$GS_RPS")
G_XACTS=$(mean1 "${SG_XACTS[@]}")
LOAD3="$LOAD3 → $(loadavg)"
stop_service "$SQ_PID"
stop_service "$PG_PID"

# ---------------------------------------------------------------- 4. revocation across instances
# Two instances on the same PostgreSQL database: a key cached by B, signed out on A, polled on B
# until refused (examples/revocation_latency), REVOCATIONS times.
log "step 4: revocation across two instances on PostgreSQL ($REVOCATIONS revocations)"
start_service "$(validation_env postgres "$PG_PORT") KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=$SIGNUP_THROTTLE" "$TMP/revoke-a.log" "$PG_PORT"
RA_PID=$SVC_PID
start_service "$(validation_env postgres "$PORT") KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=$SIGNUP_THROTTLE" "$TMP/revoke-b.log" "$PORT"
RB_PID=$SVC_PID
record "$EXAMPLES/revocation_latency --a http://127.0.0.1:$PG_PORT --b http://127.0.0.1:$PORT --revocations $REVOCATIONS"
REV_LINE=$("$EXAMPLES/revocation_latency" --a "http://127.0.0.1:$PG_PORT" --b "http://127.0.0.1:$PORT" \
    --revocations "$REVOCATIONS") || die "revocation_latency failed"
log "$REV_LINE"
rev_field() { echo "$REV_LINE" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
REV_P50=$(rev_field p50_us) REV_P90=$(rev_field p90_us) REV_MAX=$(rev_field max_us) REV_N=$(rev_field n)
stop_service "$RA_PID"
stop_service "$RB_PID"
ELAPSED=$(( $(date +%s) - T0 ))

# ---------------------------------------------------------------- report
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$(git status --porcelain -- src migrations examples Cargo.toml 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
MODE=$([ "$SMOKE" = 1 ] && echo "smoke (--smoke)" || echo "full")

REPORT="$TMP/report.md"
{
    echo "### Results on PostgreSQL"
    echo
    echo "Generated by \`bench/postgres.sh\`$([ "$SMOKE" = 1 ] && echo " --smoke") on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED}s ($MODE run)."
    echo
    echo "- Machine: $(nproc) cores ($CPU), $MEM memory, Linux $(uname -r); wrk, the services and PostgreSQL $PG_VERSION (on 127.0.0.1, over TCP) share these cores."
    echo "- Build: commit $COMMIT$DIRTY, $(rustc --version 2>/dev/null || echo rustc), release profile; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
    echo "- Load average (1, 5, 15 min) at the start: $LOAD0; step 1: $LOAD1; step 2: $LOAD2; step 3: $LOAD3. Anything above ~0.5 before a step means other work shared the cores."
    echo "- Data: $(thousands "$LIVE") users and live keys in each database (SQLite ${SQ_DB_MIB} MiB, seeded in ${SEED_SQ_S}s; PostgreSQL ${PG_DB_MIB} MiB, seeded in ${SEED_PG_S}s); ${SECS}s per timed run, $ROUNDS round(s); the service's PostgreSQL pool at its default size."
    echo
    echo "| ratio | target | measured | holds |"
    echo "|---|---|---|---|"
    echo "| warm validation, PostgreSQL / SQLite requests/s (-c$CONNS, $(thousands "$KEYS") keys, all cached; median of the rounds' ratios) | ≥ 0.9 | **$W_RATIO** (rounds: $W_ROUND_RATIOS; means $(thousands "$WP_RPS") vs $(thousands "$WS_RPS") req/s = $W_MEAN_RATIO) | $(holds "$W_RATIO >= 0.9") |"
    echo "| … service CPU per request, PostgreSQL / SQLite | – | $W_CPU_RATIO ($WP_CPU vs $WS_CPU µs) | – |"
    echo "| … p99 at -c$CONNS; p50 / p99 at light load | – | $(ms "$WP_P99") vs $(ms "$WS_P99") ms; $(ms "$WP_LP50") / $(ms "$WP_LP99") vs $(ms "$WS_LP50") / $(ms "$WS_LP99") ms | – |"
    echo "| cold validation on PostgreSQL / bare \`SELECT\`, p50 (-c$LIGHT_CONNS, $LIGHT_THINK ms between requests; medians of $ROUNDS) | – | **$C_R50** ($(ms "$CP50") vs $(ms "$QP50") ms; rounds: $C_ROUND_R50) | – |"
    echo "| … p99 | – | **$C_R99** ($(ms "$CP99") vs $(ms "$QP99") ms; rounds: $C_ROUND_R99) | – |"
    echo "| … what a miss adds to a hit at the same pace (p50), next to the bare SELECT's p50 | – | $(ms "$MISS_ADDS") ms ($(ms "$CP50") − $(ms "$HP50")) vs $(ms "$QP50") ms | – |"
    echo "| … bare \`SELECT\` without the pool's ping / with it, p50; p99 | – | $(ratio "$NP50" "$QP50"); $(ratio "$NP99" "$QP99") ($(ms "$NP50") vs $(ms "$QP50") ms; $(ms "$NP99") vs $(ms "$QP99") ms) | – |"
    echo "| … CPU µs per first use: service (a hit: $HCPU) and PostgreSQL; bare \`SELECT\` and PostgreSQL, with ping / without | – | $CCPU + $CPG; $QCPU + $QPG / $NCPU + $NPG (SQLite service's first use: $SCCPU) | – |"
    echo "| … first uses on SQLite, for reference (p50 / p99) | – | $(ms "$SCP50") / $(ms "$SCP99") ms | – |"
    echo "| sign-ins, PostgreSQL / SQLite (Argon2id m=19456 t=2 p=1, -c$SIGNIN_CONNS) | ≈ 1 | **$G_RATIO** ($GP_RPS vs $GS_RPS /s; p99 $(ms "$GP_P99") vs $(ms "$GS_P99") ms) | $(holds "$G_RATIO >= 0.9 && $G_RATIO <= 1.1") |"
    echo "| … CPU µs per sign-in: service; PostgreSQL (its transactions per sign-in) | – | PostgreSQL $(thousands "$GP_CPU") + $(thousands "$GP_PG") ($G_XACTS), SQLite $(thousands "$GS_CPU") | – |"
    echo "| a key signed out on one instance, refused by another (two instances, one database; $REV_N revocations) | ≤ 1 s | p50 $(ms "$REV_P50") ms, p90 $(ms "$REV_P90") ms, worst $(ms "$REV_MAX") ms | $(holds "$REV_MAX <= 1000000") |"
    echo "| errors (non-2xx or socket) | 0 | warm: SQLite ${W_ERR[sqlite]}, PostgreSQL ${W_ERR[postgres]}; cold: $C_ERR; sign-ins: SQLite ${SG_ERR[sqlite]}, PostgreSQL ${SG_ERR[postgres]} | $(holds "${W_ERR[sqlite]} + ${W_ERR[postgres]} + $C_ERR + ${SG_ERR[sqlite]} + ${SG_ERR[postgres]} == 0") |"
    echo
    echo "*Service CPU* is the user + system time of the service process per request (for \`pg_select\`, its own); *PostgreSQL CPU* that of the PostgreSQL backends (and autovacuum workers) of the run's database per request or query; the server's shared WAL writer and checkpointer are not counted."
    echo
    echo "#### 1. Warm validation (\`GET /auth\`), SQLite and PostgreSQL alternating"
    echo
    echo "| server | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S1[@]}"
    echo
    echo "#### 2. Cold validation: first uses after a start, against a bare \`SELECT\`"
    echo
    echo "Each round: the service on PostgreSQL restarted (its cache empty) and the first $(thousands "$COLD") keys sent once at light load ($LIGHT_CONNS connections, each waiting $LIGHT_THINK ms between an answer and its next request), then the same keys again (all hits); \`examples/pg_select\` reading the same keys with \`find_key\`'s statement through a PgPool of $LIGHT_CONNS connections, $LIGHT_CONNS tasks each waiting $LIGHT_THINK ms between queries (its latency is the query's, from the call to the decoded row: no HTTP); the service on SQLite, first uses of its own keys after a restart."
    echo
    echo "| what | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S2[@]}"
    echo
    echo "#### 3. Sign-ins (\`POST /auth\`), SQLite and PostgreSQL alternating"
    echo
    echo "$USERS users signed up over HTTP on each, every password correct; -c$SIGNIN_CONNS stays below the hashing queue (16 jobs per core)."
    echo
    echo "| what | connections $WHEAD"
    echo "|---|---:$WSEP"
    printf '%s\n' "${S3[@]}"
    echo
    echo "#### Commands"
    echo
    echo "TMP is a fresh temporary directory, kb_bench a fresh database (the run's own name), dropped at the end."
    echo
    echo '```sh'
    printf '%s\n' "${COMMANDS[@]}" | sed "s#$TMP#\$TMP#g; s#$ROOT/##g; s#$PG_DB#kb_bench#g" | awk '!seen[$0]++'
    echo '```'
} >"$REPORT"

cat "$REPORT"

mkdir -p "$(dirname "$OUT")"
BEGIN_MARK="<!-- BEGIN GENERATED by bench/postgres.sh: do not edit below -->"
END_MARK="<!-- END GENERATED by bench/postgres.sh -->"
if ! splice_report "$OUT" "$REPORT" "$BEGIN_MARK" "$END_MARK"; then
    {
        [ -f "$OUT" ] && { cat "$OUT"; echo; }
        echo "## PostgreSQL"
        echo
        echo "Reproduce with \`bench/postgres.sh\` (see the top of that script)."
        echo
        echo "$BEGIN_MARK"
        cat "$REPORT"
        echo "$END_MARK"
    } >"$OUT.new"
    mv "$OUT.new" "$OUT"
fi
log "report written to $OUT"
