# shellcheck shell=bash
# bench/lib.sh — the shell helpers the benchmark scripts share (sourced, not run). Each script
# defines its own `log` (with its name) before using `die`; `record` appends to the script's
# COMMANDS, `forget_pid` edits its PIDS.

# Stops on the first error with a line on stderr.
die() { log "error: $*"; exit 1; }

# Stops a process: TERM, then KILL after 10 s.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # Still there after 10 s: no more asking (only then, so a reused PID is never hit).
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Whether something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Remembers a command for the report's "Commands" section.
record() { COMMANDS+=("$*"); }

now_ns() { date +%s%N; }

# wait_http URL PID: until URL answers 200 (at most 120 s), or the process dies.
wait_http() {
    local url=$1 pid=$2 deadline=$(( $(date +%s) + 120 ))
    until curl -sf -o /dev/null --max-time 1 "$url"; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.01
    done
}

# User + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Formatting: microseconds as milliseconds, lists of them, means (whole, one decimal), medians,
# 12,345, yes/**no**, a/b.
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ms_list() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.2f", (i > 1 ? ", " : ""), $i / 1000 }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.0f", n ? s / n : 0 }'; }
mean1() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.1f", n ? s / n : 0 }'; }
# median of integers (the mean of the middle two for an even count)
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
thousands() { echo "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }
holds() { if awk "BEGIN { exit !($1) }"; then echo "yes"; else echo "**no**"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# bench_options ARGS…: the command line every script takes: --smoke sets SMOKE=1 (else 0);
# -h/--help prints the script's header comment (down to `set -euo`) and exits; anything else
# exits 2. Called after the script's `cd "$ROOT"`, as $0 is read for --help.
# shellcheck disable=SC2034  # SMOKE is for the calling script
bench_options() {
    local a
    SMOKE=0
    for a in "$@"; do
        case "$a" in
            --smoke) SMOKE=1 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) echo "bench/${0##*/}: unknown argument $a (try --help)" >&2; exit 2 ;;
        esac
    done
}

# apt_install PACKAGE: installs a Debian package (with sudo unless root; apt-get update first
# only if the plain install fails), or stops.
apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    log "installing $1"
    $sudo apt-get install -y "$1" >/dev/null 2>&1 || {
        $sudo apt-get update >/dev/null && $sudo apt-get install -y "$1" >/dev/null
    } || die "cannot install $1 (apt-get install -y $1)"
}

# pg_db_name PREFIX: a database name of this run's own (PREFIX_PID_RANDOM).
pg_db_name() { echo "${1}_$$_$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')"; }

# SVC_LOG[PID]: the log file of a service the script started, for the messages of its failures.
declare -A SVC_LOG

# Pieces of the scripts' EXIT traps: stop every process of PIDS; drop the database PG_DB of the
# server PG_URL when PG_DB_CREATED=1 (WITH (FORCE): PostgreSQL ≥ 13); remove TMP, unless
# BENCH_KEEP_TMP=1.
stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
drop_pg_db() {
    if [ "${PG_DB_CREATED:-0}" = 1 ]; then
        psql "$PG_URL/postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >&2 ||
            log "could not drop database $PG_DB"
    fi
}
remove_tmp() {
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}

# per_request TICKS0 TICKS1 N: CPU µs per request from two clock-tick readings (CLK_TCK a second).
per_request() {
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / hz * 1e6 / n : 0) }'
}

# wrk_measure NAME CONNS DURATION SCRIPT URL ONCE [ARGS…]: records and runs one wrk (-t1
# --latency, BENCH_THINK_MS=$THINK), its output in $TMP/wrk-NAME.txt, bounded by -d and by
# timeout; then sets, from the script's BENCH line, R_REQ R_RPS R_P50 R_P90 R_P99 R_MAX (µs)
# R_NON2XX R_SOCKERR, and R_CPU_US: the CPU of process CPU_PID per request ("–" without CPU_PID;
# stops if that process died, with the tail of its log when SVC_LOG[PID] names it). ONCE=1: the
# script sends each line of its file once and says on a FIFO (appended to ARGS) when the last one
# is sent; wrk's main thread then needs a SIGINT to stop sleeping for the rest of -d (see
# bench/validate.lua), sent at once and every 0.2 s until wrk has printed its summary and exited.
# shellcheck disable=SC2034  # the R_ variables are for the calling script
wrk_measure() {
    local name=$1 conns=$2 dur=$3 script=$4 url=$5 once=$6 out line cpu0=""
    shift 6
    out="$TMP/wrk-$name.txt"
    [ -n "${CPU_PID:-}" ] && cpu0=$(cpu_ticks "$CPU_PID")
    record "$([ "${THINK:-0}" != 0 ] && echo "BENCH_THINK_MS=$THINK ")wrk -t1 -c$conns -d${dur}s --latency -s $script $url -- $*$([ "$once" = 1 ] && echo " FIFO")"
    if [ "$once" = 1 ]; then
        local fifo="$TMP/wrk-$name.fifo" fd wpid said=0 pause=0.1 until=$((SECONDS + dur + 30)) ticks=0
        mkfifo "$fifo"
        exec {fd}<>"$fifo"
        BENCH_THINK_MS="${THINK:-0}" wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$script" "$url" -- "$@" "$fifo" >"$out" 2>&1 &
        wpid=$!
        PIDS+=("$wpid")
        while kill -0 "$wpid" 2>/dev/null; do
            if read -r -t "$pause" -u "$fd" _; then said=1 pause=0.01; fi
            if [ "$said" = 1 ] || [ "$SECONDS" -gt "$until" ]; then
                [ $((ticks % 20)) = 0 ] && { kill -INT "$wpid" 2>/dev/null || true; }
                ticks=$((ticks + 1))
            fi
            if [ "$SECONDS" -gt $((until + 10)) ]; then kill -KILL "$wpid" 2>/dev/null || true; fi
        done
        wait "$wpid" || true
        forget_pid "$wpid"
        exec {fd}<&-
    else
        BENCH_THINK_MS="${THINK:-0}" timeout --signal=INT --kill-after=5 $((dur + 30)) \
            wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$script" "$url" -- "$@" >"$out" 2>&1 || true
    fi
    line=$(grep '^BENCH ' "$out" | tail -1) || { cat "$out" >&2; die "wrk $name gave no result"; }
    if [ -n "${CPU_PID:-}" ] && ! kill -0 "$CPU_PID" 2>/dev/null; then
        tail -20 "${SVC_LOG[$CPU_PID]:-/dev/null}" >&2
        die "the service (PID $CPU_PID) exited during $name (its log: ${SVC_LOG[$CPU_PID]:-?}; BENCH_KEEP_TMP=1 keeps it)"
    fi
    local requests duration_us non2xx connect_errors read_errors write_errors timeouts p50_us p90_us p99_us max_us
    eval "$(echo "${line#BENCH }" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=[0-9]+$')"
    R_REQ=$requests
    R_RPS=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? r * 1e6 / d : 0) }')
    R_P50=$p50_us R_P90=$p90_us R_P99=$p99_us R_MAX=$max_us R_NON2XX=$non2xx
    R_SOCKERR=$((connect_errors + read_errors + write_errors + timeouts))
    R_CPU_US="–"
    [ -z "$cpu0" ] || R_CPU_US=$(per_request "$cpu0" "$(cpu_ticks "$CPU_PID")" "$requests")
}

# Table rows and log lines of wrk_measure's figures. wrk_cells: the cells requests/s, p50, p90,
# p99 and max ms, non-2xx, socket errors, CPU µs/request, under the headings WRK_HEAD (whose
# CPU column each script names) and WRK_SEP; wrk_summary NAME: the log line of a run.
wrk_cells() {
    echo "$(thousands "$R_RPS") | $(ms "$R_P50") | $(ms "$R_P90") | $(ms "$R_P99") | $(ms "$R_MAX") | $R_NON2XX | $R_SOCKERR | $R_CPU_US"
}
# shellcheck disable=SC2034  # for the calling script
WRK_HEAD="requests/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors"
# shellcheck disable=SC2034
WRK_SEP="|---:|---:|---:|---:|---:|---:|---:|---:|"
wrk_summary() {
    echo "$1: $R_RPS req/s, p50 $(ms "$R_P50") ms, p99 $(ms "$R_P99") ms, non-2xx $R_NON2XX, socket errors $R_SOCKERR, server CPU $R_CPU_US µs/request"
}

# splice_report OUT REPORT BEGIN_MARK END_MARK: puts the file REPORT in place of what stands
# between the two marker lines of OUT; fails, leaving OUT alone, when OUT lacks either marker
# (each script then writes its section its own way).
splice_report() {
    local out=$1 report=$2 b=$3 e=$4
    { [ -f "$out" ] && grep -qF "$b" "$out" && grep -qF "$e" "$out"; } || return 1
    awk -v b="$b" -v e="$e" -v r="$report" '
        $0 == b { print; while ((getline l < r) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$out" >"$out.new" || die "cannot write $out.new"
    mv "$out.new" "$out" || die "cannot replace $out"
}

# service_settings validation|signin PORT DATABASE_URL: the service's KILLBILL_AUTH_* settings,
# NAME=VALUE words for `env`, listening on 127.0.0.1:PORT. validation: cheap Argon2 (no timed run
# hashes); signin: the real defaults (Argon2id m=19456 t=2 p=1) and sign-ups per network
# throttled at SIGNUP_THROTTLE. Either way the per-key rate limit and the flood rule stay
# evaluated but far above the benchmark's rates.
service_settings() {
    local argon2="KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB=64 KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS=1" throttle=""
    if [ "$1" = signin ]; then
        argon2="KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB=19456 KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS=2 KILLBILL_AUTH_PASSWORD_ARGON2_PARALLELISM=1"
        throttle=" KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=$SIGNUP_THROTTLE"
    fi
    echo "KILLBILL_AUTH_SERVER_LISTEN=127.0.0.1:$2 KILLBILL_AUTH_DATABASE_URL=$3 $argon2" \
        "KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND=1000000 KILLBILL_AUTH_RATE_LIMIT_KEY_BURST=1000000" \
        "KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS=1000000000$throttle"
}

# launch_service BIN ENV LOG PORT [WHAT]: records and starts `BIN serve` with the settings ENV
# (NAME=VALUE words) and RUST_LOG=$SERVICE_RUST_LOG, its output in LOG; sets SVC_PID,
# SVC_LOG[SVC_PID] and STARTUP_MS (launch until GET / on 127.0.0.1:PORT answers). Stops with the
# tail of LOG and "WHAT did not start" (WHAT: the service) if it does not answer.
launch_service() {
    local bin=$1 envs=$2 logf=$3 port=$4 what=${5:-the service} t0
    record "env $envs RUST_LOG=$SERVICE_RUST_LOG $bin serve"
    t0=$(now_ns)
    # shellcheck disable=SC2086
    env $envs RUST_LOG="$SERVICE_RUST_LOG" "$bin" serve >"$logf" 2>&1 &
    SVC_PID=$!
    PIDS+=("$SVC_PID")
    SVC_LOG[$SVC_PID]=$logf
    wait_http "http://127.0.0.1:$port/" "$SVC_PID" || { tail -20 "$logf" >&2; die "$what did not start"; }
    STARTUP_MS=$(( ($(now_ns) - t0) / 1000000 ))
}
