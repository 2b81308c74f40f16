#!/usr/bin/env bash
# A local demo of a deployment (book/src/operating/deployment.md): two killbill-auth instances on one fresh
# PostgreSQL database behind Debian's nginx, everything on 127.0.0.1.
#
#   deploy/demo.sh [--port N] [--check]
#
# Builds the release binary (or uses KB_DEMO_BIN), creates a database kb_demo_<pid>_<n> on the
# PostgreSQL server KB_DEMO_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, a role
# allowed to create databases), starts two instances on it (ports chosen by the system) with a
# shared pepper, writes an nginx configuration into a temporary directory and runs nginx from it in
# the foreground on 127.0.0.1:N (default 8080); its pid, logs and temporary files stay in that
# directory, /etc/nginx and port 80 are never touched. Then it prints the URL and waits; Ctrl-C (or
# any exit) stops nginx and both instances and drops the database.
#
# --check: instead of waiting, runs a short scripted check through nginx (sign-up, sign-in,
# validations answered by both instances, X-Forwarded-For believed, a sign-out on one instance
# refused by the other within a second, one instance killed and the other answering everything)
# and exits 0 when all of it holds. Bounded in time
# (KB_DEMO_TIMEOUT seconds, default 120).
#
# Other KILLBILL_AUTH_* variables in the environment reach both instances (e.g. cheap Argon2
# parameters for a test); the ones this script sets itself are cleared first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=8080
CHECK=0
PG_ADMIN="${KB_DEMO_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TIMEOUT="${KB_DEMO_TIMEOUT:-120}"
# The client address of the check: not nginx's (127.0.0.1), so that the instances can only
# know it from X-Forwarded-For.
CLIENT_IP=127.0.0.2
PASSWORD="correct horse battery staple"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ $# -ge 2 ] || die "--port needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#--port=}"; shift ;;
        --check) CHECK=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case "$PORT" in '' | *[!0-9]*) die "--port wants a number, not '$PORT'" ;; esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port $PORT is out of range"

for tool in curl psql; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (Debian: apt-get install -y curl postgresql-client)"
done

# --- nginx: Debian's package, installed when missing -----------------------------------------
NGINX="$(command -v nginx 2>/dev/null || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
if [ -z "$NGINX" ]; then
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 ||
        die "nginx is missing: install Debian's package (apt-get install -y nginx) as root"
    say "installing Debian's nginx package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2
    NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
    [ -x "$NGINX" ] || die "nginx is still missing after apt-get install"
fi

# --- the binary -------------------------------------------------------------------------------
BIN="${KB_DEMO_BIN:-}"
if [ -z "$BIN" ]; then
    say "building the release binary (cargo build --release)"
    (cd "$ROOT" && cargo build --release --locked --quiet --bin killbill-auth)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/killbill-auth"
fi
[ -x "$BIN" ] || die "no executable at $BIN (KB_DEMO_BIN)"

# --- clean-up, whatever happens from here on --------------------------------------------------
DIR=""
DB=""
PIDS=()
NAMES=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [ "$status" -ne 0 ] && [ -z "${INTERRUPTED:-}" ] && [ -n "$DIR" ]; then
        for log in instance-a.log instance-b.log nginx/error.log nginx/stderr.log; do
            [ -s "$DIR/$log" ] && { say "last lines of $log:"; tail -n 15 "$DIR/$log" >&2; }
        done
    fi
    # Last started, first stopped: nginx before the instances, so that no request reaches an
    # instance that is stopping. SIGTERM is a graceful stop for all three.
    local i waited
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null
        waited=0
        while kill -0 "${PIDS[$i]}" 2>/dev/null && [ "$waited" -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            say "${NAMES[$i]} did not stop within 10 s: killing it"
            kill -KILL "${PIDS[$i]}" 2>/dev/null
        fi
        wait "${PIDS[$i]}" 2>/dev/null
    done
    if [ -n "$DB" ]; then
        psql "$PG_ADMIN" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null &&
            say "dropped database $DB"
    fi
    [ -n "$DIR" ] && rm -rf "$DIR"
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null
    exit "$status"
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT
trap 'exit 143' TERM

if [ "$CHECK" -eq 1 ]; then
    # Bounded in time: past KB_DEMO_TIMEOUT the script stops itself (and cleans up).
    # (Its sleep holds no output open, and goes when the watchdog is stopped: whoever reads this
    # script's output is not kept waiting for it.)
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        sleep "$TIMEOUT" </dev/null >/dev/null 2>&1 &
        nap=$!
        wait "$nap" && say "timed out after ${TIMEOUT} s" && kill -TERM $$
    ) &
    WATCHDOG=$!
fi

DIR="$(mktemp -d "${TMPDIR:-/tmp}/kb-demo.XXXXXX")"
# nginx's workers (user nobody when started as root) only need to get through to their temp dirs.
chmod 0711 "$DIR"
mkdir -m 0700 "$DIR/secrets"
mkdir -p "$DIR/nginx/logs" "$DIR/nginx/tmp"

# --- the database -------------------------------------------------------------------------------
# Databases left by demos that were killed before they could clean up (their pid is gone).
for old in $(psql "$PG_ADMIN" -qAt -v ON_ERROR_STOP=1 \
    -c "SELECT datname FROM pg_database WHERE datname LIKE 'kb\_demo\_%'"); do
    pid="$(echo "$old" | cut -d_ -f3)"
    if [ -n "$pid" ] && [ ! -e "/proc/$pid" ]; then
        psql "$PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS \"$old\" WITH (FORCE)" >/dev/null || true
    fi
done
DB="kb_demo_$$_${RANDOM}"
psql "$PG_ADMIN" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB\"" >/dev/null ||
    die "cannot create a database on $PG_ADMIN (KB_DEMO_POSTGRES_URL)"
say "created database $DB"
case "$PG_ADMIN" in
    *\?*) BASE="${PG_ADMIN%%\?*}" QUERY="?${PG_ADMIN#*\?}" ;;
    *) BASE="$PG_ADMIN" QUERY="" ;;
esac
DB_URL="${BASE%/*}/$DB$QUERY"

# --- the secrets: the database URL and a pepper shared by both instances ---------------------
umask 077
printf '%s\n' "$DB_URL" >"$DIR/secrets/database-url"
head -c 32 /dev/urandom | base64 >"$DIR/secrets/pepper"
umask 022

# --- the instances --------------------------------------------------------------------------
# One configuration for both: each listens on a port the system picks (read back from its log),
# and believes X-Forwarded-For from nginx only.
cat >"$DIR/killbill-auth.toml" <<EOF
[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]    # nginx's address, as the instances see it

[database]
max_connections = 8                # per instance: 2 x 8 (+ 2 listeners) stays far below PostgreSQL's max_connections
EOF
unset KILLBILL_AUTH_SERVER_LISTEN KILLBILL_AUTH_SERVER_TRUSTED_PROXIES \
    KILLBILL_AUTH_DATABASE_URL KILLBILL_AUTH_DATABASE_URL_FILE \
    KILLBILL_AUTH_PASSWORD_PEPPER KILLBILL_AUTH_PASSWORD_PEPPER_FILE
export KILLBILL_AUTH_DATABASE_URL_FILE="$DIR/secrets/database-url"
export KILLBILL_AUTH_PASSWORD_PEPPER_FILE="$DIR/secrets/pepper"

declare -A ADDR
start_instance() {
    local name="$1" log="$DIR/instance-$1.log"
    RUST_LOG="${RUST_LOG:-info}" "$BIN" serve --config "$DIR/killbill-auth.toml" </dev/null >"$log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("instance $name")
}
wait_instance() {
    local name="$1" log="$DIR/instance-$1.log" pid="$2" addr="" i
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "instance $name exited at start-up"
        addr="$(sed -n 's/.*"message":"killbill-auth listening".*"address":"\([^"]*\)".*/\1/p' "$log" | head -n 1)"
        if [ -n "$addr" ] && grep -q '"listening for revocations from every instance"' "$log"; then
            ADDR[$name]="$addr"
            return 0
        fi
        sleep 0.1
    done
    die "instance $name did not start within 30 s"
}
start_instance a
start_instance b
wait_instance a "${PIDS[0]}"
wait_instance b "${PIDS[1]}"
say "instance a on ${ADDR[a]}, instance b on ${ADDR[b]} (pids ${PIDS[0]}, ${PIDS[1]})"

# --- nginx ----------------------------------------------------------------------------------
N="$DIR/nginx"
cat >"$N/nginx.conf" <<EOF
# Written by deploy/demo.sh; see book/src/operating/deployment.md.
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log notice;

events {
    worker_connections 1024;
}

http {
    log_format upstream '\$remote_addr "\$request" \$status upstream=\$upstream_addr '
                        'upstream_status=\$upstream_status \${request_time}s';
    access_log $N/logs/access.log upstream;
    client_body_temp_path $N/tmp/client_body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    server_tokens off;

    upstream killbill_auth {
        server ${ADDR[a]} max_fails=1 fail_timeout=5s;
        server ${ADDR[b]} max_fails=1 fail_timeout=5s;
        keepalive 32;
        keepalive_timeout 50s;     # below the instances' server.keep_alive_timeout (60s)
    }

    server {
        listen 127.0.0.1:$PORT;

        location / {
            proxy_pass http://killbill_auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            # Demo only: which instance answered (do not expose this in production).
            add_header X-Upstream \$upstream_addr always;
        }
    }
}
EOF
"$NGINX" -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" -t -q || die "nginx rejects $N/nginx.conf"
"$NGINX" -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" -g 'daemon off;' </dev/null >"$N/stderr.log" 2>&1 &
PIDS+=("$!")
NAMES+=("nginx")
URL="http://127.0.0.1:$PORT"
for i in $(seq 100); do
    kill -0 "${PIDS[2]}" 2>/dev/null || die "nginx exited at start-up (port $PORT taken? see --port)"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)" = 200 ] && break
    [ "$i" -eq 100 ] && die "nginx does not answer on $URL within 10 s"
    sleep 0.1
done

if [ "$CHECK" -eq 0 ]; then
    cat >&2 <<EOF
demo: nginx on $URL in front of instances a (${ADDR[a]}) and b (${ADDR[b]}),
demo: one PostgreSQL database ($DB). Try:
demo:   curl -si $URL/users -H 'content-type: application/json' \\
demo:        -d '{"username": "bill", "password": "$PASSWORD"}'
demo: (the X-Upstream header says which instance answered). Logs: $DIR
demo: Ctrl-C stops everything and drops the database.
EOF
    echo "$URL"
    # Until Ctrl-C, or until one of the three stops by itself.
    wait -n "${PIDS[@]}" || true
    die "a process stopped by itself"
fi

# --- the check ----------------------------------------------------------------------------------
# curl through nginx from CLIENT_IP; sets STATUS, UPSTREAM and BODY.
call() {
    local method="$1" path="$2" out
    shift 2
    out="$(curl -sS --max-time 5 --interface "$CLIENT_IP" -X "$method" -D - "$URL$path" "$@")" ||
        die "curl $method $path failed"
    STATUS="$(printf '%s' "$out" | sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p')"
    UPSTREAM="$(printf '%s' "$out" | tr -d '\r' | sed -n 's/^[Xx]-[Uu]pstream: //p' | head -n 1)"
    BODY="$(printf '%s' "$out" | tr -d '\r' | sed '1,/^$/d')"
}
json_body() { printf '{"username": "%s", "password": "%s"}' "$1" "$PASSWORD"; }
instance_of() {
    case "$1" in
        "${ADDR[a]}") echo a ;;
        "${ADDR[b]}") echo b ;;
        *) echo "?($1)" ;;
    esac
}

USER_NAME="demo$RANDOM"
call POST /users -H 'content-type: application/json' -d "$(json_body "$USER_NAME")"
[ "$STATUS" = 200 ] || die "sign-up through nginx: $STATUS $BODY"
say "signed up $USER_NAME through nginx (instance $(instance_of "$UPSTREAM"))"

call POST /auth -H 'content-type: application/json' -d "$(json_body "$USER_NAME")"
[ "$STATUS" = 200 ] || die "sign-in through nginx: $STATUS $BODY"
KEY="$(printf '%s' "$BODY" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')"
[ -n "$KEY" ] || die "no key in the sign-in answer: $BODY"
say "signed in through nginx (instance $(instance_of "$UPSTREAM"))"

declare -A SERVED=([a]=0 [b]=0)
for _ in 1 2 3 4 5 6; do
    call GET /auth -H "Authorization: Bearer $KEY"
    [ "$STATUS" = 200 ] || die "validation through nginx: $STATUS $BODY"
    who="$(instance_of "$UPSTREAM")"
    [ "$who" = a ] || [ "$who" = b ] || die "validation answered by an unknown upstream: $UPSTREAM"
    SERVED[$who]=$((SERVED[$who] + 1))
done
[ "${SERVED[a]}" -gt 0 ] && [ "${SERVED[b]}" -gt 0 ] ||
    die "both instances should have validated the key: a ${SERVED[a]}, b ${SERVED[b]}"
say "6 validations through nginx, all 200: instance a answered ${SERVED[a]}, instance b ${SERVED[b]}"

# X-Forwarded-For is believed: the key was last used from the client's address, not nginx's.
call GET /auth/keys -H "Authorization: Bearer $KEY"
[ "$STATUS" = 200 ] || die "key listing through nginx: $STATUS $BODY"
printf '%s' "$BODY" | grep -q "\"last_ip\":\"$CLIENT_IP\"" ||
    die "the key's last_ip should be the client's $CLIENT_IP (X-Forwarded-For from nginx), got: $BODY"
say "the instances see the client's address $CLIENT_IP through X-Forwarded-For"

# Sign out through nginx on one instance; the other must refuse the key within a second.
call DELETE /auth -H "Authorization: Bearer $KEY"
[ "$STATUS" = 200 ] || die "sign-out through nginx: $STATUS $BODY"
REVOKER="$(instance_of "$UPSTREAM")"
OTHER=$([ "$REVOKER" = a ] && echo b || echo a)
START=$(date +%s%N)
REFUSED_BY_OTHER=""
while :; do
    call GET /auth -H "Authorization: Bearer $KEY"
    ELAPSED_MS=$((($(date +%s%N) - START) / 1000000))
    who="$(instance_of "$UPSTREAM")"
    if [ "$STATUS" = 200 ] && [ "$who" = "$REVOKER" ]; then
        die "instance $REVOKER accepted a key it revoked itself"
    fi
    if [ "$STATUS" = 403 ] && [ "$who" = "$OTHER" ]; then
        REFUSED_BY_OTHER=$ELAPSED_MS
        break
    fi
    [ "$STATUS" = 200 ] || [ "$STATUS" = 403 ] || die "validation after sign-out: $STATUS $BODY"
    [ "$ELAPSED_MS" -lt 1000 ] || die "instance $OTHER still accepts the key ${ELAPSED_MS} ms after the sign-out on $REVOKER"
    sleep 0.01
done
for _ in 1 2 3 4; do
    call GET /auth -H "Authorization: Bearer $KEY"
    [ "$STATUS" = 403 ] || die "the signed-out key answered $STATUS on instance $(instance_of "$UPSTREAM")"
done
say "signed out on instance $REVOKER; instance $OTHER refused the key ${REFUSED_BY_OTHER} ms later (through nginx, curl included); every later validation 403"
# An instance killed: nginx sends everything to the other one (a connection refused is retried on
# the next server, even for a sign-in, since nothing was sent).
VICTIM_PID="${PIDS[1]}"
kill -KILL "$VICTIM_PID"
wait "$VICTIM_PID" 2>/dev/null || true
call POST /auth -H 'content-type: application/json' -d "$(json_body "$USER_NAME")"
[ "$STATUS" = 200 ] || die "sign-in through nginx with instance b killed: $STATUS $BODY"
RETRIED=0
case "$UPSTREAM" in *,*) RETRIED=$((RETRIED + 1)) ;; esac
KEY="$(printf '%s' "$BODY" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')"
for _ in 1 2 3 4; do
    call GET /auth -H "Authorization: Bearer $KEY"
    [ "$STATUS" = 200 ] || die "validation through nginx with instance b killed: $STATUS $BODY"
    [ "$(instance_of "${UPSTREAM##*, }")" = a ] || die "answered by $UPSTREAM with instance b killed"
    case "$UPSTREAM" in *,*) RETRIED=$((RETRIED + 1)) ;; esac
done
say "instance b killed (SIGKILL): a sign-in and 4 validations through nginx, all answered 200 by instance a ($RETRIED of the 5 tried on b first, then retried on a by nginx)"
say "check passed"
