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

# Formatting: microseconds as milliseconds, lists of them, means, 12,345, yes/**no**, a/b.
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ms_list() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.2f", (i > 1 ? ", " : ""), $i / 1000 }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.0f", n ? s / n : 0 }'; }
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
