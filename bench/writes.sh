#!/usr/bin/env bash
# bench/writes.sh — what validation costs the database (issue 25, "writes follow trouble"): two
# instances on one PostgreSQL, the current build next to the build of 71d726f (main before issue
# 25), in one run.
#
#   bench/writes.sh            # full run, about 18 minutes on 2 cores (plus the builds the first
#                              # time, about 20 minutes each); writes target/bench/BENCHMARKS.writes.md
#   bench/writes.sh --smoke    # about 6 minutes: 2,000 keys, 20 s of ordinary load, 5 s at full
#                              # speed; writes target/bench/BENCHMARKS.writes.smoke.md
#   BENCH_NEW_COMMIT=HEAD bench/writes.sh   # the committed tree rather than the working one
#
# It needs PostgreSQL's server binaries (initdb, pg_ctl, postgres: Debian's postgresql package),
# psql, wrk (installed with apt-get if missing) and curl. Everything runs on 127.0.0.1:
#   0. builds the current tree (`cargo build --release`: the example seed, then the service alone,
#      so that dev-dependencies' features do not reach it) and the old build from a worktree of
#      BENCH_OLD_COMMIT with its own CARGO_TARGET_DIR (built once, reused when both binaries are
#      there); starts a private PostgreSQL cluster in a temporary directory (initdb, pg_ctl; run as
#      the postgres user when we are root), so that every PostgreSQL process is ours: its CPU is
#      the utime + stime of the postmaster, of its live children and of its reaped ones (the
#      postmaster's cutime + cstime), read from /proc. The cluster is stopped and removed at the
#      end, whatever happens (trap), as is every process this script started.
#   1. ordinary rate, for each build (a database of its own, seeded by the build's own
#      examples/seed with BENCH_KEYS users and keys, issued from 127.0.0.1): two instances on it,
#      every key used twice on each (the caches warm, the networks shared), VACUUM ANALYZE and
#      CHECKPOINT (the warm-up's own writes cleaned up), then both instances loaded for
#      BENCH_WRITES_SECONDS by one wrk each (bench/writes.lua: the keys round-robin from one
#      network, BENCH_RATE validations a second per instance). Rows written (n_tup_ins + n_tup_upd
#      + n_tup_del of pg_stat_user_tables, per table), WAL bytes and transactions, before and after;
#      PostgreSQL's CPU and the instances' CPU over the load.
#   2. sign-ups and sign-ins, for each build: two fresh instances with the default Argon2
#      settings, BENCH_SIGNINS accounts signed up over HTTP, then each signed in once (POST /auth),
#      BENCH_SIGNIN_PARALLEL at a time, alternating instances; rows, WAL and CPU per request.
#   3. full speed, for each number of keys in BENCH_FULL_KEYS and each build (the first build
#      alternating): two fresh instances, those keys used twice on each, then one closed-loop wrk
#      per instance (bench/validate.lua, -cBENCH_FULL_CONNECTIONS) for BENCH_FULL_SECONDS.
# The rate limit and the flood rule keep their defaults (50/s per key, 100,000 an hour), so the
# ordinary load is quiet: what the new build writes for it is the key's network once per
# anomaly.window / 24 and last_used once per five minutes per instance.
#
# Settings (environment):
#   BENCH_WRITES_SECONDS   ordinary load, seconds (330: more than one five-minute last_used
#                          interval; --smoke: 20)
#   BENCH_KEYS             users and keys seeded, all walked by the ordinary load (20000; --smoke: 2000)
#   BENCH_RATE             validations a second per instance at the ordinary rate (3000)
#   BENCH_PACED_CONNECTIONS  wrk connections per instance at the ordinary rate (32)
#   BENCH_FULL_KEYS        keys of the full-speed phases ("2000 20000"; --smoke: "500 2000")
#   BENCH_FULL_SECONDS     seconds per full-speed phase (20; --smoke: 5)
#   BENCH_FULL_CONNECTIONS wrk connections per instance at full speed (64)
#   BENCH_SIGNINS          accounts signed up, then signed in (200; --smoke: 20)
#   BENCH_SIGNIN_PARALLEL  sign-ups / sign-ins under way at once (2)
#   BENCH_BUILDS           builds, in the order of the first phase ("new old")
#   BENCH_OLD_COMMIT       the old build's commit (71d726f)
#   BENCH_OLD_DIR          its worktree (../old-COMMIT beside this tree; made with `git worktree
#                          add --detach` when missing)
#   BENCH_OLD_TARGET       its CARGO_TARGET_DIR (BENCH_OLD_DIR/target)
#   BENCH_NEW_COMMIT       build this commit (in a worktree ../new-COMMIT) instead of the current
#                          tree, e.g. HEAD while the tree holds someone's unfinished edit
#   BENCH_PG_BIN           directory of initdb and pg_ctl (found on PATH or in /usr/lib/postgresql)
#   BENCH_PORT             first instance's port; the second is +1, PostgreSQL +2 (18380)
#   BENCH_OUT              report file (target/bench/BENCHMARKS.writes.md; --smoke: …writes.smoke.md)
#   BENCH_RUST_LOG         the instances' RUST_LOG (info, their default)
#   BENCH_KEEP_TMP=1       keep the temporary directory (logs, wrk outputs, PostgreSQL's log)
#   BENCH_SKIP_BUILD=1     use the binaries already built
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bench_options "$@"

if [ "$SMOKE" = 1 ]; then
    D_SECONDS=20 D_KEYS=2000 D_FULL_KEYS="500 2000" D_FULL_SECONDS=5 D_SIGNINS=20
    D_OUT="${CARGO_TARGET_DIR:-$ROOT/target}/bench/BENCHMARKS.writes.smoke.md"
else
    D_SECONDS=330 D_KEYS=20000 D_FULL_KEYS="2000 20000" D_FULL_SECONDS=20 D_SIGNINS=200
    D_OUT="${CARGO_TARGET_DIR:-$ROOT/target}/bench/BENCHMARKS.writes.md"
fi
SECS=${BENCH_WRITES_SECONDS:-$D_SECONDS}
KEYS=${BENCH_KEYS:-$D_KEYS}
RATE=${BENCH_RATE:-3000}
PACED_CONNS=${BENCH_PACED_CONNECTIONS:-32}
FULL_KEYS=${BENCH_FULL_KEYS:-$D_FULL_KEYS}
FULL_SECS=${BENCH_FULL_SECONDS:-$D_FULL_SECONDS}
FULL_CONNS=${BENCH_FULL_CONNECTIONS:-64}
SIGNINS=${BENCH_SIGNINS:-$D_SIGNINS}
SIGNIN_PARALLEL=${BENCH_SIGNIN_PARALLEL:-2}
read -r -a BUILDS <<<"${BENCH_BUILDS:-new old}"
OLD_COMMIT=${BENCH_OLD_COMMIT:-71d726f}
OLD_DIR=${BENCH_OLD_DIR:-$(dirname "$ROOT")/old-$OLD_COMMIT}
OLD_TARGET=${BENCH_OLD_TARGET:-$OLD_DIR/target}
NEW_COMMIT=${BENCH_NEW_COMMIT:-}
PORT=${BENCH_PORT:-18380}
PORT_B=$((PORT + 1))
PG_PORT=$((PORT + 2))
OUT=${BENCH_OUT:-$D_OUT}
SERVICE_RUST_LOG=${BENCH_RUST_LOG:-info}
for k in $FULL_KEYS; do
    [ "$k" -le "$KEYS" ] || { echo "bench/writes.sh: BENCH_FULL_KEYS ($k) > BENCH_KEYS ($KEYS)" >&2; exit 2; }
done
[ "${#BUILDS[@]}" -ge 1 ] || { echo "bench/writes.sh: BENCH_BUILDS is empty" >&2; exit 2; }

# The service refuses unknown KILLBILL_AUTH_* variables, and the caller's must not change the
# figures: start from none.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KILLBILL_AUTH_' || true)

log() { printf '%s bench-writes: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- processes and clean-up
TMP=$(mktemp -d "${TMPDIR:-/tmp}/killbill-bench-writes.XXXXXX")
PIDS=()
PG_DIR="" PG_PID="" PG_BIN=""
as_pg() { # runs a PostgreSQL server command (in its directory) as the postgres user when we are root
    if [ "$(id -u)" = 0 ]; then (cd "$PG_DIR" && runuser -u postgres -- "$@"); else (cd "$PG_DIR" && "$@"); fi
}
stop_postgres() {
    [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ] || return 0
    if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 || true
        # pg_ctl did not stop it: the postmaster (ours: started below) and its children.
        if kill -0 "$PG_PID" 2>/dev/null; then
            kill -QUIT "$PG_PID" 2>/dev/null || true
            sleep 2
            kill -KILL "$PG_PID" 2>/dev/null || true
        fi
    fi
    PG_PID=""
}
cleanup() {
    stop_pids
    stop_postgres
    [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
    remove_tmp
}
trap cleanup EXIT
trap 'log "stopped by a signal"; exit 130' INT TERM HUP


# ---------------------------------------------------------------- 0. tools and builds
COMMANDS=()

command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || die "curl is needed"
command -v psql >/dev/null || die "psql is needed (apt-get install -y postgresql-client)"
if [ -n "${BENCH_PG_BIN:-}" ]; then
    PG_BIN=$BENCH_PG_BIN
elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    PG_BIN=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
    PG_BIN=$(find /usr/lib/postgresql -maxdepth 3 -name pg_ctl -path '*/bin/*' 2>/dev/null | sort -V | tail -1 | xargs -r dirname)
fi
{ [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; } || die "no initdb/pg_ctl (apt-get install -y postgresql; or set BENCH_PG_BIN)"

# worktree DIR COMMIT: a worktree of COMMIT at DIR (left in place for the next run).
worktree() {
    local dir=$1 commit=$2
    if [ -f "$dir/Cargo.toml" ]; then
        local at
        at=$(git -C "$dir" rev-parse HEAD 2>/dev/null || echo "?")
        [ "$at" = "$(git rev-parse "$commit^{commit}")" ] || die "$dir holds $at, not $commit (remove it, or set its BENCH_*_DIR)"
        return 0
    fi
    log "git worktree add --detach $dir $commit"
    git -C "$ROOT" worktree add --detach "$dir" "$commit" >&2
}
# build NAME SOURCE TARGET: the example seed, then the service alone (one cargo command for both
# would give the service the dev-dependencies' features, see BENCHMARKS.md "Game servers").
build() {
    local name=$1 src=$2 target=$3
    record "(cd ${src/#$ROOT/.} && CARGO_TARGET_DIR=${target/#$ROOT/.} cargo build --release --example seed && CARGO_TARGET_DIR=${target/#$ROOT/.} cargo build --release --bin killbill-auth)"
    if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then return 0; fi
    log "building $name in $src (CARGO_TARGET_DIR=$target)"
    (cd "$src" && CARGO_TARGET_DIR=$target cargo build --release --example seed &&
        CARGO_TARGET_DIR=$target cargo build --release --bin killbill-auth) >&2 || die "the $name build failed"
}
declare -A BIN SEED LABEL
wanted() { [[ " ${BUILDS[*]} " == *" $1 "* ]]; }
for b in "${BUILDS[@]}"; do
    case "$b" in new|old) ;; *) die "BENCH_BUILDS: $b is neither new nor old" ;; esac
done
if ! wanted new; then
    :
elif [ -n "$NEW_COMMIT" ]; then
    NEW_DIR=$(dirname "$ROOT")/new-$(git rev-parse --short "$NEW_COMMIT^{commit}")
    worktree "$NEW_DIR" "$NEW_COMMIT"
    NEW_TARGET=$NEW_DIR/target
    LABEL[new]="new ($(git -C "$NEW_DIR" rev-parse --short HEAD))"
else
    NEW_DIR=$ROOT
    NEW_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
fi
if wanted new; then
    build new "$NEW_DIR" "$NEW_TARGET"
    if [ -z "$NEW_COMMIT" ]; then
        # Read after the build, which took the tree as it was then (others may commit meanwhile).
        dirty=""
        if git status --porcelain -- src migrations examples Cargo.toml Cargo.lock 2>/dev/null | grep -q .; then
            dirty=", with uncommitted changes"
        fi
        LABEL[new]="new ($(git rev-parse --short HEAD)$dirty)"
    fi
    BIN[new]=$NEW_TARGET/release/killbill-auth SEED[new]=$NEW_TARGET/release/examples/seed
fi
if wanted old; then
    worktree "$OLD_DIR" "$OLD_COMMIT"
    if [ -x "$OLD_TARGET/release/killbill-auth" ] && [ -x "$OLD_TARGET/release/examples/seed" ]; then
        log "old build: reusing $OLD_TARGET/release (built before)"
        record "# the old build: ${OLD_TARGET/#$ROOT\//}/release, built before and reused (the commands as above, in ${OLD_DIR/#$ROOT\//})"
    else
        build old "$OLD_DIR" "$OLD_TARGET"
    fi
    BIN[old]=$OLD_TARGET/release/killbill-auth SEED[old]=$OLD_TARGET/release/examples/seed
    LABEL[old]="old ($(git -C "$OLD_DIR" rev-parse --short HEAD))"
fi
for b in "${BUILDS[@]}"; do
    { [ -x "${BIN[$b]}" ] && [ -x "${SEED[$b]}" ]; } || die "the $b build is missing (${BIN[$b]}, ${SEED[$b]})"
done
for p in "$PORT" "$PORT_B" "$PG_PORT"; do port_busy "$p" && die "port $p is taken (set BENCH_PORT)"; done

# ---------------------------------------------------------------- the private PostgreSQL
PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/killbill-bench-writes-pg.XXXXXX")
chmod 755 "$PG_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
log "a private PostgreSQL in $PG_DIR, port $PG_PORT"
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
# The server's defaults, but for the port, the socket directory and room for the connections.
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ||
    { cat "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT"
PG_VERSION=$(psql "$PG_URL/postgres" -qXtA -c 'SHOW server_version')
record "initdb -D \$PGDATA -U postgres --auth=trust && pg_ctl -D \$PGDATA -o '-p $PG_PORT -c listen_addresses=127.0.0.1 -c max_connections=200' start   # PostgreSQL $PG_VERSION, as user postgres"
psql_db() { psql "$PG_URL/$1" -qXtA -v ON_ERROR_STOP=1 -c "$2"; }

CLK_TCK=$(getconf CLK_TCK)
# pg_cpu: clock ticks every process of the cluster has used so far: the postmaster's own, its
# reaped children's (cutime + cstime) and its live children's.
pg_cpu() {
    local own kids
    own=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$PG_PID/stat")
    kids=$(for p in $(pgrep -P "$PG_PID" || true); do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{ s += $1 } END { print s + 0 }')
    echo $((own + kids))
}
# Counters of a database: "table ins upd del" per table, then "~wal BYTES" and "~xacts N".
# A backend reports its statistics at the end of a transaction at most once a second, and one
# that then stays idle only 10 s later (PostgreSQL 15's PGSTAT_IDLE_INTERVAL): they are read
# STATS_WAIT seconds after the writes to count.
STATS_WAIT=11
pg_counters() {
    psql_db "$1" "SELECT relname || ' ' || n_tup_ins || ' ' || n_tup_upd || ' ' || n_tup_del FROM pg_stat_user_tables
        UNION ALL SELECT '~wal ' || pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
        UNION ALL SELECT '~xacts ' || (xact_commit + xact_rollback) FROM pg_stat_database WHERE datname = current_database()"
}
# counters_delta BEFORE AFTER: "table ins upd del" per table that changed, and the ~ lines.
counters_delta() {
    awk 'NR == FNR { i[$1] = $2; u[$1] = $3; d[$1] = $4; next }
        $1 ~ /^~/ { print $1, $2 - i[$1]; next }
        { di = $2 - i[$1]; du = $3 - u[$1]; dd = $4 - d[$1]; if (di + du + dd > 0) print $1, di, du, dd }' \
        <(echo "$1") <(echo "$2") | sort
}

# ---------------------------------------------------------------- instances
INSTANCE_PIDS=()
LOGN=0
# start_instances BUILD DB: two instances of BUILD on database DB (ports PORT and PORT_B).
start_instances() {
    local build=$1 db=$2 port n=0 envs logf
    INSTANCE_PIDS=()
    for port in "$PORT" "$PORT_B"; do
        n=$((n + 1)) LOGN=$((LOGN + 1))
        logf="$TMP/instance-$LOGN-$db-$port.log"
        envs="KILLBILL_AUTH_SERVER_LISTEN=127.0.0.1:$port KILLBILL_AUTH_DATABASE_URL=$PG_URL/$db ${SIGNUP_ENV[$build]}"
        record "env $envs RUST_LOG=$SERVICE_RUST_LOG ${BIN[$build]} serve   # instance $n of the $build build"
        # shellcheck disable=SC2086
        env $envs RUST_LOG="$SERVICE_RUST_LOG" "${BIN[$build]}" serve >"$logf" 2>&1 &
        PIDS+=("$!")
        INSTANCE_PIDS+=("$!")
        SVC_LOG[$!]=$logf
    done
    local deadline=$(( $(date +%s) + 120 )) pid
    for n in 0 1; do
        port=$([ "$n" = 0 ] && echo "$PORT" || echo "$PORT_B")
        pid=${INSTANCE_PIDS[$n]}
        until curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do
            { kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; } ||
                { tail -20 "${SVC_LOG[$pid]}" >&2; die "instance $((n + 1)) of the $build build did not start"; }
            sleep 0.05
        done
    done
}
stop_instances() {
    local pid
    for pid in "${INSTANCE_PIDS[@]}"; do stop_pid "$pid"; forget_pid "$pid"; done
    INSTANCE_PIDS=()
}
check_instances() { # check_instances WHAT: both instances still running
    local pid
    for pid in "${INSTANCE_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || { tail -20 "${SVC_LOG[$pid]}" >&2; die "an instance (PID $pid) exited during $1 (BENCH_KEEP_TMP=1 keeps its log)"; }
    done
}
instances_cpu() { local s=0 pid; for pid in "${INSTANCE_PIDS[@]}"; do s=$((s + $(cpu_ticks "$pid"))); done; echo "$s"; }
# The sign-up throttles far above the phase's sign-ups, with the variables each build knows (the
# wide-network one is newer than the old build, which refuses unknown variables).
declare -A SIGNUP_ENV
for b in "${BUILDS[@]}"; do
    SIGNUP_ENV[$b]="KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=10000"
    if env KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_WIDE_NETWORK=10000 KILLBILL_AUTH_DATABASE_URL="$PG_URL/postgres" \
        "${BIN[$b]}" serve --check-config >/dev/null 2>&1; then
        SIGNUP_ENV[$b]+=" KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_WIDE_NETWORK=10000"
    fi
done

# ---------------------------------------------------------------- load
# wrk_pair NAME SECONDS ENV SCRIPT CONNS KEYS_FILE: one wrk per instance at once, each bounded by
# -d and by timeout; sets W_REQ W_DUR_US (the longer) W_NON2XX W_SOCKERR W_P50 W_P99 (the worse of
# the two, µs) and W_REQ_A W_REQ_B.
wrk_pair() {
    local name=$1 secs=$2 envv=$3 script=$4 conns=$5 keys=$6 n=0 port pids=() out line
    record "${envv:+$envv }wrk -t1 -c$conns -d${secs}s --latency -s $script http://127.0.0.1:PORT/auth -- $(basename "$keys")   # one per instance, at once"
    for port in "$PORT" "$PORT_B"; do
        # shellcheck disable=SC2086
        env $envv timeout --signal=INT --kill-after=5 $((secs + 30)) \
            wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$script" "http://127.0.0.1:$port/auth" -- "$keys" \
            >"$TMP/wrk-$name-$port.txt" 2>&1 &
        pids+=("$!")
        PIDS+=("$!")
    done
    for n in "${pids[@]}"; do wait "$n" || true; forget_pid "$n"; done
    W_REQ=0 W_DUR_US=0 W_NON2XX=0 W_SOCKERR=0 W_P50=0 W_P99=0
    for port in "$PORT" "$PORT_B"; do
        out="$TMP/wrk-$name-$port.txt"
        line=$(grep '^BENCH ' "$out" | tail -1) || { cat "$out" >&2; die "wrk $name ($port) gave no result"; }
        local requests duration_us non2xx connect_errors read_errors write_errors timeouts p50_us p99_us
        eval "$(echo "${line#BENCH }" | tr ' ' '\n' | grep -E '^(requests|duration_us|non2xx|connect_errors|read_errors|write_errors|timeouts|p50_us|p99_us)=[0-9]+$')"
        [ "$port" = "$PORT" ] && W_REQ_A=$requests || W_REQ_B=$requests
        W_REQ=$((W_REQ + requests))
        [ "$duration_us" -gt "$W_DUR_US" ] && W_DUR_US=$duration_us
        W_NON2XX=$((W_NON2XX + non2xx))
        W_SOCKERR=$((W_SOCKERR + connect_errors + read_errors + write_errors + timeouts))
        [ "$p50_us" -gt "$W_P50" ] && W_P50=$p50_us
        [ "$p99_us" -gt "$W_P99" ] && W_P99=$p99_us
    done
    check_instances "$name"
}
# warm KEYS_FILE: every key of the file twice on each instance (once would do, but the last
# requests of a pass that stops itself may be cut off), then the warm-up's writes cleaned up.
# bench/validate.lua's `once` writes to a file when the last key is sent and sends wrk a SIGINT;
# wrk's main thread, asleep for -d, may miss it (a worker thread took it): SIGINT again until wrk
# is gone, at most 300 s in all.
warm() {
    local keys=$1 port pids=() p deadline=$((SECONDS + 300)) ticks=0
    cat "$keys" "$keys" >"$TMP/warm.txt"
    for port in "$PORT" "$PORT_B"; do
        : >"$TMP/warm-done-$port"
        wrk -t1 -c16 -d290s -s bench/validate.lua "http://127.0.0.1:$port/auth" -- "$TMP/warm.txt" once \
            "$TMP/warm-done-$port" >"$TMP/wrk-warm-$port.txt" 2>&1 &
        pids+=("$!")
        PIDS+=("$!")
    done
    local ports=("$PORT" "$PORT_B") alive=1 i
    while [ "$alive" = 1 ]; do
        sleep 0.1
        ticks=$((ticks + 1)) alive=0
        for i in 0 1; do
            p=${pids[$i]}
            kill -0 "$p" 2>/dev/null || continue
            alive=1
            if [ "$SECONDS" -gt "$deadline" ]; then
                kill -KILL "$p" 2>/dev/null || true
            elif [ $((ticks % 5)) = 0 ] && { [ -s "$TMP/warm-done-${ports[$i]}" ] || [ "$SECONDS" -gt $((deadline - 10)) ]; }; then
                kill -INT "$p" 2>/dev/null || true
            fi
        done
    done
    for p in "${pids[@]}"; do wait "$p" || true; forget_pid "$p"; done
    { grep -q '^BENCH ' "$TMP/wrk-warm-$PORT.txt" && grep -q '^BENCH ' "$TMP/wrk-warm-$PORT_B.txt"; } ||
        { cat "$TMP/wrk-warm-$PORT.txt" "$TMP/wrk-warm-$PORT_B.txt" >&2; die "the warm-up gave no result"; }
    check_instances "the warm-up"
    # The first uses' news written before anything is measured: networks shared (every second),
    # and the periodic usage flush (every 10 s; the old build writes a key's networks there).
    sleep 11
}
# settle: the writes so far vacuumed, analysed and checkpointed, so that no autovacuum or
# write-back of them falls into the measurement; then their statistics reported.
settle() {
    local d
    for d in $(psql_db postgres "SELECT datname FROM pg_database WHERE datname LIKE 'kb_%'"); do
        psql_db "$d" "VACUUM ANALYZE" >/dev/null
    done
    psql_db postgres "CHECKPOINT" >/dev/null
    sleep "$STATS_WAIT"
}

# ---------------------------------------------------------------- report helpers
per() { awk -v a="$1" -v n="$2" -v m="${3:-1}" 'BEGIN { printf "%.4f", (n > 0 ? a * m / n : 0) }'; }
ticks_ms() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / hz }'; }
fmt() { awk -v v="$1" -v d="${2:-2}" 'BEGIN { printf ("%." d "f"), v }'; }
# old_new OLD NEW: OLD / NEW as "12.3×"
old_new() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else if (a > 0) printf "∞"; else printf "–" }'; }
# field DELTA TABLE: ins+upd+del of TABLE in a counters_delta output (0 when absent); TABLE ~wal etc.
field() { echo "$1" | awk -v t="$2" '$1 == t { s += $2 + ($3 ? $3 : 0) + ($4 ? $4 : 0) } END { print s + 0 }'; }
rows_total() { echo "$1" | awk '$1 !~ /^~/ { s += $2 + $3 + $4 } END { print s + 0 }'; }
# per_table DELTA: "table ins/upd/del, …"
per_table() {
    echo "$1" | awk '$1 !~ /^~/ { printf "%s%s %d/%d/%d", (k++ ? ", " : ""), $1, $2, $3, $4 } END { if (!k) printf "none" }'
}

# measure DB COMMAND…: runs COMMAND, then waits STATS_WAIT seconds (what the load left to write
# written: a busy key's last second, shared in the next; and the statistics reported); sets M_PG
# (PostgreSQL's clock ticks), M_CPU (the instances') and M_DELTA (counters_delta) over the whole,
# from the snapshot C0 (the counters before, taken by the caller after the previous wait) when
# given, else from now.
C0=""
measure() {
    local db=$1 c0=$C0 pg0 svc0 c1
    shift
    [ -n "$c0" ] || c0=$(pg_counters "$db")
    pg0=$(pg_cpu) svc0=$(instances_cpu)
    "$@"
    sleep "$STATS_WAIT"
    M_PG=$(( $(pg_cpu) - pg0 )) M_CPU=$(( $(instances_cpu) - svc0 ))
    c1=$(pg_counters "$db")
    M_DELTA=$(counters_delta "$c0" "$c1")
    C1=$c1 C0=""
}

T0=$(date +%s)
LOAD0=$(loadavg)
declare -A R # results, by "build:what"

# ---------------------------------------------------------------- 1. ordinary rate
ordinary_load() {
    THINK_ENV="BENCH_RATE=$RATE"
    wrk_pair "ordinary-$1" "$SECS" "$THINK_ENV" bench/writes.lua "$PACED_CONNS" "$TMP/keys-$1.txt"
}
for b in "${BUILDS[@]}"; do
    db="kb_$b"
    log "[$b] seeding $KEYS users and keys into $db"
    psql_db postgres "CREATE DATABASE $db" >/dev/null
    record "${SEED[$b]/#$ROOT\//} --postgres $PG_URL/$db --keys $KEYS --keys-file \$TMP/keys-$b.txt   # the $b build's own seed"
    "${SEED[$b]}" --postgres "$PG_URL/$db" --keys "$KEYS" --keys-file "$TMP/keys-$b.txt" >"$TMP/seed-$b.log" 2>&1 ||
        { cat "$TMP/seed-$b.log" >&2; die "seeding $db failed"; }
    start_instances "$b" "$db"
    log "[$b] warm-up: each key twice on each instance"
    warm "$TMP/keys-$b.txt"
    settle
    R[$b:load0]=$(loadavg)
    log "[$b] ordinary load: $RATE validations/s per instance, ${SECS}s (load average $(loadavg))"
    measure "$db" ordinary_load "$b"
    R[$b:load1]=$(loadavg)
    R[$b:o_req]=$W_REQ R[$b:o_dur]=$W_DUR_US R[$b:o_non2xx]=$W_NON2XX R[$b:o_sockerr]=$W_SOCKERR
    R[$b:o_p50]=$W_P50 R[$b:o_p99]=$W_P99 R[$b:o_req_a]=$W_REQ_A R[$b:o_req_b]=$W_REQ_B
    R[$b:o_delta]=$M_DELTA R[$b:o_pg]=$M_PG R[$b:o_cpu]=$M_CPU
    log "[$b] $W_REQ validations ($(per "$W_REQ" "$W_DUR_US" 1000000) /s), rows $(rows_total "$M_DELTA") ($(per_table "$M_DELTA")), PostgreSQL $(ticks_ms "$M_PG") ms CPU"
    stop_instances
done

# ---------------------------------------------------------------- 2. sign-ups and sign-ins
# post_all PATH FILE: POSTs {"username", "password"} of each "port name password" line of FILE,
# SIGNIN_PARALLEL at a time; prints how many answered 200.
post_all() {
    # shellcheck disable=SC2016 # expanded by sh, one line of FILE at a time
    BENCH_PATH=$1 xargs -P "$SIGNIN_PARALLEL" -L 1 sh -c 'exec curl -s -o /dev/null -w "%{http_code}\n" --max-time 60 \
        -H "content-type: application/json" -d "{\"username\":\"$1\",\"password\":\"$2\"}" "http://127.0.0.1:$0$BENCH_PATH"' <"$2" |
        grep -c '^200$' || true
}
for b in "${BUILDS[@]}"; do
    db="kb_$b"
    log "[$b] $SIGNINS sign-ups, then $SIGNINS sign-ins (default Argon2id)"
    start_instances "$b" "$db"
    settle
    : >"$TMP/accounts-$b.txt"
    for i in $(seq -f '%04g' "$SIGNINS"); do
        echo "$([ $((10#$i % 2)) = 0 ] && echo "$PORT" || echo "$PORT_B") bench_s$i kb-bench-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" >>"$TMP/accounts-$b.txt"
    done
    t0=$(now_ns)
    measure "$db" post_all /users "$TMP/accounts-$b.txt" >"$TMP/signups-ok"
    R[$b:su_ok]=$(cat "$TMP/signups-ok") R[$b:su_ms]=$(( ($(now_ns) - t0) / 1000000 ))
    R[$b:su_delta]=$M_DELTA R[$b:su_pg]=$M_PG R[$b:su_cpu]=$M_CPU
    [ "${R[$b:su_ok]}" = "$SIGNINS" ] || die "[$b] only ${R[$b:su_ok]} of $SIGNINS sign-ups answered 200"
    t0=$(now_ns) C0=$C1
    measure "$db" post_all /auth "$TMP/accounts-$b.txt" >"$TMP/signins-ok"
    R[$b:si_ok]=$(cat "$TMP/signins-ok") R[$b:si_ms]=$(( ($(now_ns) - t0) / 1000000 ))
    R[$b:si_delta]=$M_DELTA R[$b:si_pg]=$M_PG R[$b:si_cpu]=$M_CPU
    [ "${R[$b:si_ok]}" = "$SIGNINS" ] || die "[$b] only ${R[$b:si_ok]} of $SIGNINS sign-ins answered 200"
    check_instances "the sign-ins"
    log "[$b] sign-in: rows $(rows_total "$M_DELTA") ($(per_table "$M_DELTA")), PostgreSQL $(ticks_ms "$M_PG") ms CPU"
    stop_instances
done
record "curl -s http://127.0.0.1:PORT/users -H 'content-type: application/json' -d '{\"username\": \"bench_sNNNN\", \"password\": \"…\"}'   # × $SIGNINS, $SIGNIN_PARALLEL at a time, then the same to /auth"

# ---------------------------------------------------------------- 3. full speed
full_load() {
    wrk_pair "full-$1-$2" "$FULL_SECS" "" bench/validate.lua "$FULL_CONNS" "$TMP/keys-$1-$2.txt"
}
round=0
FULL_ORDER=()
for k in $FULL_KEYS; do
    order=("${BUILDS[@]}")
    # The first build alternates from one size to the next.
    if [ $((round % 2)) = 1 ] && [ "${#order[@]}" = 2 ]; then order=("${order[1]}" "${order[0]}"); fi
    round=$((round + 1))
    FULL_ORDER+=("$k: ${order[*]}")
    for b in "${order[@]}"; do
        db="kb_$b"
        head -n "$k" "$TMP/keys-$b.txt" >"$TMP/keys-$b-$k.txt"
        start_instances "$b" "$db"
        warm "$TMP/keys-$b-$k.txt"
        settle
        log "[$b] full speed, $k keys, -c$FULL_CONNS per instance, ${FULL_SECS}s"
        measure "$db" full_load "$b" "$k"
        R[$b:f$k:req]=$W_REQ R[$b:f$k:dur]=$W_DUR_US R[$b:f$k:non2xx]=$W_NON2XX R[$b:f$k:sockerr]=$W_SOCKERR
        R[$b:f$k:delta]=$M_DELTA R[$b:f$k:pg]=$M_PG R[$b:f$k:cpu]=$M_CPU R[$b:f$k:p99]=$W_P99
        log "[$b] $k keys: $(per "$W_REQ" "$W_DUR_US" 1000000) validations/s, rows $(rows_total "$M_DELTA") ($(per_table "$M_DELTA"))"
        stop_instances
    done
done
ELAPSED=$(( $(date +%s) - T0 ))

# ---------------------------------------------------------------- report
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
MODE=$([ "$SMOKE" = 1 ] && echo "smoke (--smoke)" || echo "full")
# cols FN…: one cell per build, then old/new when both ran
have_both=0
[ -n "${R[new:o_req]:-}" ] && [ -n "${R[old:o_req]:-}" ] && have_both=1
HEAD_COLS="" SEP_COLS=""
for b in "${BUILDS[@]}"; do HEAD_COLS+=" ${LABEL[$b]} |"; SEP_COLS+="---:|"; done
[ "$have_both" = 1 ] && HEAD_COLS+=" old / new |" SEP_COLS+="---:|"
# row LABEL KIND KEY…: a table row; KIND says how to compute each build's value from R
row() {
    local label=$1 fn=$2 b vals=() v
    shift 2
    for b in "${BUILDS[@]}"; do v=$("$fn" "$b" "$@"); vals+=("$v"); done
    local line="| $label |"
    for v in "${vals[@]}"; do line+=" $v |"; done
    if [ "$have_both" = 1 ]; then
        local on oo
        on=$("$fn" new "$@" raw) oo=$("$fn" old "$@" raw)
        line+=" $(old_new "$oo" "$on") |"
    fi
    echo "$line"
}
# value functions: BUILD [ARGS] [raw]
v_rate() { local r; r=$(per "${R[$1:o_req]}" "${R[$1:o_dur]}" 1000000); show "${2:-}" "$r" "$(thousands "$(fmt "$r" 0)") ($(thousands "$(fmt "$(per "${R[$1:o_req_a]}" "${R[$1:o_dur]}" 1000000)" 0)") + $(thousands "$(fmt "$(per "${R[$1:o_req_b]}" "${R[$1:o_dur]}" 1000000)" 0)"))"; }
# show RAW VALUE DISPLAY: VALUE when RAW is "raw" (for the ratio column), else DISPLAY
show() { if [ "$1" = raw ]; then echo "$2"; else echo "$3"; fi; }
v_req() { show "${2:-}" "${R[$1:o_req]}" "$(thousands "${R[$1:o_req]}")"; }
v_rows() { local r; r=$(per "$(rows_total "${R[$1:$2delta]}")" "${R[$1:$3]}"); show "${4:-}" "$r" "**$(fmt "$r" 4)** ($(thousands "$(rows_total "${R[$1:$2delta]}")"))"; }
v_table() { local n r; n=$(field "${R[$1:$2delta]}" "$4"); r=$(per "$n" "${R[$1:$3]}"); show "${5:-}" "$r" "$(fmt "$r" 4) ($(echo "${R[$1:$2delta]}" | awk -v t="$4" '$1 == t { printf "%d/%d/%d", $2, $3, $4; f = 1 } END { if (!f) printf "0" }'))"; }
v_pgms() { local r; r=$(awk -v t="${R[$1:$2pg]}" -v hz="$CLK_TCK" -v n="${R[$1:$3]}" -v m="$4" 'BEGIN { printf "%.3f", (n > 0 ? t * 1000 / hz * m / n : 0) }'); show "${5:-}" "$r" "**$(fmt "$r" 2)** ($(ticks_ms "${R[$1:$2pg]}") ms)"; }
v_svc() { local r; r=$(awk -v t="${R[$1:$2cpu]}" -v hz="$CLK_TCK" -v n="${R[$1:$3]}" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }'); echo "$r"; }
v_svcms() { awk -v t="${R[$1:$2cpu]}" -v hz="$CLK_TCK" -v n="${R[$1:$3]}" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e3 / hz / n : 0) }'; }
v_wal() { local r; r=$(per "$(field "${R[$1:$2delta]}" "~wal")" "${R[$1:$3]}"); show "${4:-}" "$r" "$(thousands "$(fmt "$r" 0)")"; }
v_xacts() { local r; r=$(per "$(field "${R[$1:$2delta]}" "~xacts")" "${R[$1:$3]}" "$4"); show "${5:-}" "$r" "$(fmt "$r" 2)"; }
v_lat() { show "${2:-}" "${R[$1:o_p99]}" "$(fmt "$(per "${R[$1:o_p50]}" 1000)" 2) / $(fmt "$(per "${R[$1:o_p99]}" 1000)" 2)"; }
v_errs() { show "${3:-}" "${R[$1:$2non2xx]}" "$(thousands "${R[$1:$2non2xx]}"); ${R[$1:$2sockerr]}"; }
v_frate() { local r; r=$(per "${R[$1:f$2:req]}" "${R[$1:f$2:dur]}" 1000000); show "${3:-}" "$r" "**$(thousands "$(fmt "$r" 0)")**"; }
v_fkey() { # rows per key per instance per second at full speed: over the load and the second after
    local r
    r=$(awk -v rows="$(rows_total "${R[$1:f$2:delta]}")" -v k="$2" -v d="${R[$1:f$2:dur]}" 'BEGIN { printf "%.4f", rows / (k * 2 * (d / 1e6 + 1)) }')
    show "${3:-}" "$r" "$(fmt "$r" 3)"
}
v_fper() { # each key's validations per instance per second
    local r
    r=$(awk -v n="${R[$1:f$2:req]}" -v k="$2" -v d="${R[$1:f$2:dur]}" 'BEGIN { printf "%.2f", n / 2 / k / (d / 1e6) }')
    show "${3:-}" "$r" "$(fmt "$r" 1)"
}
v_ftables() { per_table "${R[$1:f$2:delta]}"; }
v_otables() { per_table "${R[$1:$2delta]}"; }
# holds_within NEW OLD: yes when NEW ≥ OLD; within 3 % below, one 20 s run of each on a shared
# machine cannot tell them apart: said so rather than "no".
holds_within() {
    if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; then echo "yes"
    elif awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= 0.97 * b) }'; then echo "within noise (one run each)"
    else echo "**no**"; fi
}
# ok_cols: plain per-build text cells, no ratio
row_text() {
    local label=$1 fn=$2 b line
    shift 2
    line="| $label |"
    for b in "${BUILDS[@]}"; do line+=" $("$fn" "$b" "$@") |"; done
    [ "$have_both" = 1 ] && line+=" |"
    echo "$line"
}

TABLES=$(for b in "${BUILDS[@]}"; do echo "${R[$b:o_delta]}"; done | awk '$1 !~ /^~/ { print $1 }' | sort -u)
SECS_ACTUAL=$(awk -v d="${R[${BUILDS[0]}:o_dur]}" 'BEGIN { printf "%.0f", d / 1e6 }')
REPORT="$TMP/report.md"
{
    echo "### Results: database writes per validation"
    echo
    echo "Generated by \`bench/writes.sh\`$([ "$SMOKE" = 1 ] && echo " --smoke") on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED}s ($MODE run, builds not counted)."
    echo
    echo "- Machine: $(nproc) cores ($CPU), $MEM memory, Linux $(uname -r); the two instances, wrk and PostgreSQL $PG_VERSION (a private cluster, server defaults, over TCP on 127.0.0.1) share these cores."
    echo "- Builds: $(for b in "${BUILDS[@]}"; do printf '%s, ' "${LABEL[$b]}"; done) $(rustc --version 2>/dev/null || echo rustc), release profile; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
    echo "- Load average (1, 5, 15 min) at the start: $LOAD0; ordinary phase: $(for b in "${BUILDS[@]}"; do printf '%s %s → %s; ' "$b" "${R[$b:load0]}" "${R[$b:load1]}"; done)at the end: $(loadavg)."
    echo "- Data: $(thousands "$KEYS") users and keys in each build's database, seeded by its own \`examples/seed\` (issued from 127.0.0.1); all validations from 127.0.0.1, one network. Rate limit and flood rule at their defaults."
    echo
    echo "#### Goals"
    echo
    if [ "$have_both" = 1 ]; then
        nr=$(v_rows new o_ o_req raw) np=$(v_pgms new o_ o_req 1000 raw)
        echo "| goal | target | measured (new; old) | holds |"
        echo "|---|---|---|---|"
        echo "| rows written per validation, ordinary rate | ≤ 0.02 | $(fmt "$nr" 4); $(fmt "$(v_rows old o_ o_req raw)" 4) | $(holds "$nr <= 0.02") |"
        echo "| PostgreSQL CPU per 1,000 validations, ordinary rate | ≤ 2 ms | $(fmt "$np" 2) ms; $(fmt "$(v_pgms old o_ o_req 1000 raw)" 2) ms | $(holds "$np <= 2") |"
        for k in $FULL_KEYS; do
            # Busy: above a tenth of the default rate limit (50/s) on one instance.
            per_key=$(v_fper new "$k" raw) busy=$(awk -v r="$(v_fper new "$k" raw)" 'BEGIN { print (r > 5 ? 1 : 0) }')
            fk=$(v_fkey new "$k" raw)
            if [ "$busy" = 1 ]; then
                echo "| full speed, $(thousands "$k") keys ($per_key validations per key per instance per second: busy, above a tenth of the rate limit): rows per key per instance per second | ≤ 1 | $(fmt "$fk" 3); $(fmt "$(v_fkey old "$k" raw)" 3) | $(holds "$fk <= 1") |"
            else
                echo "| full speed, $(thousands "$k") keys ($per_key validations per key per instance per second: quiet): rows written | 0 | $(thousands "$(rows_total "${R[new:f$k:delta]}")"); $(thousands "$(rows_total "${R[old:f$k:delta]}")") | $(holds "$(rows_total "${R[new:f$k:delta]}") == 0") |"
            fi
            fr=$(v_frate new "$k" raw) fo=$(v_frate old "$k" raw)
            limited=""
            if [ "${R[new:f$k:non2xx]}" -gt 0 ] || [ "${R[old:f$k:non2xx]}" -gt 0 ]; then
                limited="; non-2xx (429 past the rate limit, cheaper than a 200): new $(thousands "${R[new:f$k:non2xx]}"), old $(thousands "${R[old:f$k:non2xx]}")"
            fi
            echo "| warm validations/s at full speed, $(thousands "$k") keys, new / old | ≥ 1 | $(awk -v a="$fr" -v b="$fo" 'BEGIN { printf "%.2f", a / b }') ($(thousands "$(fmt "$fr" 0)") vs $(thousands "$(fmt "$fo" 0)") /s$limited) | $(holds_within "$fr" "$fo") |"
        done
        echo
    fi
    echo "#### 1. Ordinary rate: two instances, each $(thousands "$RATE") validations/s over $(thousands "$KEYS") keys round-robin, ${SECS_ACTUAL}s"
    echo
    echo "Each instance loaded by one \`wrk -t1 -c$PACED_CONNS\` with \`bench/writes.lua\` (each connection waits for the next slot of a schedule of $(thousands "$RATE") requests a second): every key about $(fmt "$(per "$RATE" "$KEYS")" 3) times a second on each instance. *Rows* are PostgreSQL's \`n_tup_ins + n_tup_upd + n_tup_del\` (inserted/updated/deleted per table in brackets); *PostgreSQL CPU* the utime + stime of every process of the private cluster (backends, autovacuum, WAL writer, checkpointer…)."
    echo
    echo "| ordinary rate |$HEAD_COLS"
    echo "|---|$SEP_COLS"
    row "validations" v_req
    row "validations/s achieved (instance 1 + 2)" v_rate
    row "**rows written per validation** (rows)" v_rows o_ o_req
    for t in $TABLES; do row "… \`$t\` (ins/upd/del)" v_table o_ o_req "$t"; done
    row "**PostgreSQL CPU per 1,000 validations, ms** (total)" v_pgms o_ o_req 1000
    row "WAL bytes per validation" v_wal o_ o_req
    row "PostgreSQL transactions per 1,000 validations" v_xacts o_ o_req 1000
    row "instances' CPU per validation, µs" v_svc o_ o_req
    row "latency p50 / p99, ms (the worse instance)" v_lat
    row "non-2xx answers (429: over the rate limit); socket errors" v_errs o_
    echo
    echo "#### 2. Sign-ups and sign-ins ($SIGNINS each, $SIGNIN_PARALLEL at a time, default Argon2id on the instances)"
    echo
    echo "| per request |$HEAD_COLS"
    echo "|---|$SEP_COLS"
    row "sign-up (\`POST /users\`, which also issues a key): rows written" v_rows su_ su_ok
    row_text "… by table (ins/upd/del, all $SIGNINS)" v_otables su_
    row "… PostgreSQL CPU per sign-up, ms" v_pgms su_ su_ok 1
    row "… WAL bytes" v_wal su_ su_ok
    row "… PostgreSQL transactions" v_xacts su_ su_ok 1
    row "… instances' CPU, ms (Argon2 is here)" v_svcms su_ su_ok
    row "sign-in (\`POST /auth\`): rows written" v_rows si_ si_ok
    row_text "… by table (ins/upd/del, all $SIGNINS)" v_otables si_
    row "… PostgreSQL CPU per sign-in, ms" v_pgms si_ si_ok 1
    row "… WAL bytes" v_wal si_ si_ok
    row "… PostgreSQL transactions" v_xacts si_ si_ok 1
    row "… instances' CPU, ms (Argon2 is here)" v_svcms si_ si_ok
    echo
    echo "#### 3. Full speed: two instances, one closed-loop \`wrk -t1 -c$FULL_CONNS\` each (\`bench/validate.lua\`), ${FULL_SECS}s"
    echo
    echo "Fresh instances for each row, the keys used twice on each first. Order (the first build alternates): $(printf '%s; ' "${FULL_ORDER[@]}" | sed 's/; $//')."
    echo
    echo "| full speed |$HEAD_COLS"
    echo "|---|$SEP_COLS"
    for k in $FULL_KEYS; do
        row "$(thousands "$k") keys: **validations/s** (both instances)" v_frate "$k"
        row "… validations per key per instance per second" v_fper "$k"
        row "… non-2xx answers (429: over the rate limit); socket errors" v_errs "f$k:"
        R_TMP_K=$k
        for b in "${BUILDS[@]}"; do R[$b:fk_req]=${R[$b:f$k:req]}; R[$b:fk_delta]=${R[$b:f$k:delta]}; R[$b:fk_pg]=${R[$b:f$k:pg]}; R[$b:fk_cpu]=${R[$b:f$k:cpu]}; done
        row "… rows written per validation (rows)" v_rows fk_ fk_req
        row "… rows per key per instance per second (over the load and the second after it)" v_fkey "$R_TMP_K"
        row_text "… by table (ins/upd/del)" v_ftables "$k"
        row "… PostgreSQL CPU per 1,000 validations, ms" v_pgms fk_ fk_req 1000
        row "… instances' CPU per validation, µs" v_svc fk_ fk_req
    done
    echo
    echo "#### Commands"
    echo
    echo "TMP is a fresh temporary directory, PGDATA a fresh cluster in another, both removed at the end."
    echo
    echo '```sh'
    printf '%s\n' "${COMMANDS[@]}" | sed "s#$TMP#\$TMP#g; s#$ROOT/##g" | awk '!seen[$0]++'
    echo '```'
} >"$REPORT"

cat "$REPORT"
mkdir -p "$(dirname "$OUT")"
cp "$REPORT" "$OUT"
log "report written to $OUT (${ELAPSED}s)"
