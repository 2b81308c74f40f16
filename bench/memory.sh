#!/usr/bin/env bash
# Resident memory of the release binary over time (issue 25, "Memory that goes back"), the
# current build and an older one side by side in one run: right after start-up, 5 s later (idle
# hashing workers have given their Argon2 buffers back), right after a burst of 40 concurrent
# sign-ups (the default Argon2 settings, 19 MiB per hashing worker), 5 s and 15 s after it; then
# under validation load with 10,000 and with 1,000,000 cached keys (seeded into SQLite, each
# validated once, then wrk for BENCH_MEMORY_SECONDS over all of them), and 15 s after that load.
# Each build runs on its own fresh SQLite databases, seeded by its own `examples/seed`.
#
#   bench/memory.sh                        # builds both; about 6 minutes once built
#   bench/memory.sh --smoke                # no 1M-key phase, 3 s loads
#   OLD_BIN=path OLD_SEED=path bench/memory.sh   # compare with a build you have (NEW_BIN and
#                                          # NEW_SEED likewise for the current one)
#   OLD_COMMIT=71d726f bench/memory.sh     # the older build (default: the issue's base commit),
#                                          # built in a worktree under target/bench/
#
# Prints a markdown table of VmRSS in MB and writes it to target/bench/BENCHMARKS.memory.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
OLD_COMMIT=${OLD_COMMIT:-71d726f}
SECONDS_LOAD=${BENCH_MEMORY_SECONDS:-$([ "$SMOKE" = 1 ] && echo 3 || echo 10)}
BIG_KEYS=${BENCH_MEMORY_BIG_KEYS:-1000000}
OUT_DIR=target/bench
mkdir -p "$OUT_DIR"

log() { echo "memory.sh: $*" >&2; }
command -v wrk >/dev/null || {
    log "installing wrk"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
}

# ---------------------------------------------------------------- the two builds
if [ -z "${NEW_BIN:-}" ]; then
    log "building the current tree (release)"
    cargo build --release --locked --quiet --bin killbill-auth --example seed
    NEW_BIN=$ROOT/target/release/killbill-auth
    NEW_SEED=$ROOT/target/release/examples/seed
fi
NEW_SEED=${NEW_SEED:?NEW_SEED: the build's examples/seed}
if [ -z "${OLD_BIN:-}" ]; then
    OLD_TREE=$ROOT/$OUT_DIR/old-$OLD_COMMIT
    if [ ! -d "$OLD_TREE" ]; then
        log "checking out $OLD_COMMIT into $OLD_TREE"
        git worktree add --detach "$OLD_TREE" "$OLD_COMMIT" >/dev/null
    fi
    log "building $OLD_COMMIT (release; once, then reused)"
    # Its own .cargo/config.toml, if it had one, applies there; none existed at 71d726f.
    (cd "$OLD_TREE" && CARGO_TARGET_DIR=$ROOT/$OUT_DIR/old-target cargo build --release --locked --quiet --bin killbill-auth --example seed)
    OLD_BIN=$ROOT/$OUT_DIR/old-target/release/killbill-auth
    OLD_SEED=$ROOT/$OUT_DIR/old-target/release/examples/seed
fi
OLD_SEED=${OLD_SEED:?OLD_SEED: the older build's examples/seed}

WORK=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
start() { # start BIN DB [ENV...]
    local bin=$1 db=$2
    shift 2
    PORT=$((20000 + RANDOM % 30000))
    env "$@" KILLBILL_AUTH_SERVER_LISTEN="127.0.0.1:$PORT" KILLBILL_AUTH_DATABASE_URL="sqlite://$db" \
        KILLBILL_AUTH_SERVER_MAX_CONNECTIONS_PER_ADDRESS=1000 \
        "$bin" serve >>"$WORK/log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do curl -s -o /dev/null "127.0.0.1:$PORT/" && return; sleep 0.1; done
    log "the server did not start: $(tail -5 "$WORK/log")"
    exit 1
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""; }

declare -A R # R[build,moment] = MB
MOMENTS=()
note() { # note BUILD MOMENT
    R["$1,$2"]=$(rss)
    [ "$1" = new ] && MOMENTS+=("$2")
    return 0
}

measure() { # measure BUILD BIN SEED
    local b=$1 bin=$2 seed=$3 d
    d=$WORK/$b; mkdir -p "$d"
    log "$b: start-up and a burst of 40 sign-ups"
    start "$bin" "$d/signups.db" KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=1000
    sleep 1; note "$b" "1 s after start-up"
    sleep 4; note "$b" "5 s after start-up (idle)"
    for i in $(seq 40); do
        curl -s -o /dev/null "127.0.0.1:$PORT/users" -H 'content-type: application/json' \
            -d "{\"username\": \"player$i\", \"password\": \"correct horse battery staple $i\"}" &
    done
    for job in $(jobs -p); do [ "$job" = "$PID" ] || wait "$job"; done
    note "$b" "right after 40 concurrent sign-ups"
    sleep 5; note "$b" "5 s after the sign-ups"
    sleep 10; note "$b" "15 s after the sign-ups"
    stop
    local sizes=(10000)
    [ "$SMOKE" = 1 ] || sizes+=("$BIG_KEYS")
    for n in "${sizes[@]}"; do
        log "$b: validation with $n cached keys"
        "$seed" --db "$d/keys$n.db" --keys "$n" --keys-file "$d/keys$n.txt" --file-limit "$n" >/dev/null
        start "$bin" "$d/keys$n.db" KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB=64 KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS=1 \
            KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND=1000000 KILLBILL_AUTH_RATE_LIMIT_KEY_BURST=1000000 \
            KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS=1000000000
        # Every key once (in file order, each a cache miss), then the load over all of them.
        local fifo=$WORK/fifo
        rm -f "$fifo"; mkfifo "$fifo"
        exec {fd}<>"$fifo"
        wrk -t1 -c64 -d600s -s bench/validate.lua "http://127.0.0.1:$PORT/auth" -- "$d/keys$n.txt" once "$fifo" >/dev/null 2>&1 &
        local w=$!
        read -r -u "$fd" _ || true
        while kill -0 "$w" 2>/dev/null; do kill -INT "$w" 2>/dev/null || true; sleep 0.2; done
        exec {fd}<&-
        wrk -t1 -c64 -d"${SECONDS_LOAD}s" -s bench/validate.lua "http://127.0.0.1:$PORT/auth" -- "$d/keys$n.txt" >/dev/null 2>&1 &
        w=$!
        sleep $((SECONDS_LOAD - 1))
        note "$b" "under validation load, $n cached keys"
        wait "$w" || true
        sleep 15; note "$b" "15 s after that load ($n keys)"
        stop
        rm -f "$d/keys$n.db"*
    done
}

measure new "$NEW_BIN" "$NEW_SEED"
measure old "$OLD_BIN" "$OLD_SEED"

TABLE=$OUT_DIR/BENCHMARKS.memory.md
{
    echo "| moment | $OLD_COMMIT (MB) | this build, $(git rev-parse --short HEAD) (MB) | new / old |"
    echo "| --- | ---: | ---: | ---: |"
    for m in "${MOMENTS[@]}"; do
        o=${R["old,$m"]:-?} n=${R["new,$m"]:-?}
        ratio=$(awk -v a="$n" -v b="$o" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
        echo "| $m | $o | $n | $ratio |"
    done
    echo
    echo "Generated by \`bench/memory.sh$([ "$SMOKE" = 1 ] && echo " --smoke")\` on $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$TABLE"
