#!/usr/bin/env bash
# Forward auth in a real nginx, on one machine: deploy/nginx-forward-auth.conf, as it is, in front
# of a running killbill-auth and a tiny back end that greets whoever nginx lets through.
#
#   deploy/forward-auth-demo.sh [--listen HOST:PORT] [--auth HOST:PORT]
#
# --listen: where nginx listens (default localhost:8081); --auth: the killbill-auth to ask
# (default localhost:8080, where `cargo run --release -- serve` listens). The back end is a second
# server of the same nginx on a port the system chooses; it answers
#     hello NAME (USER_ID)
# from the X-Auth-Username and X-Auth-User-Id headers nginx sets after killbill-auth said yes.
#
# nginx runs in the foreground (Ctrl-C or SIGTERM stops it) from a temporary directory that holds
# its configuration, pid, logs and temporary files, removed at exit; /etc/nginx and port 80 are
# never touched. Needs Debian's nginx package (apt-get install -y nginx).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LISTEN=localhost:8081
AUTH=localhost:8080

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'forward-auth-demo: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --listen) [ $# -ge 2 ] || die "--listen needs HOST:PORT"; LISTEN="$2"; shift 2 ;;
        --auth) [ $# -ge 2 ] || die "--auth needs HOST:PORT"; AUTH="$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
for address in "$LISTEN" "$AUTH"; do
    case "$address" in
        *:*[!0-9]* | *: | :* | *[!A-Za-z0-9.:_-]*) die "'$address' is not HOST:PORT" ;;
        *:*) ;;
        *) die "'$address' is not HOST:PORT" ;;
    esac
done

NGINX="$(command -v nginx 2>/dev/null || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } ||
    die "nginx is missing: apt-get install -y nginx"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/killbill-forward-auth.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT
# Run as root, nginx's workers are `nobody`: they must get through to their temporary directories.
chmod 711 "$DIR"

# The back end's port: one the system says is free right now.
BACKEND_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000)))"

cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log notice;
events { worker_connections 256; }
http {
    access_log $DIR/access.log;
    client_body_temp_path $DIR/client_body;
    proxy_temp_path $DIR/proxy;
    fastcgi_temp_path $DIR/fastcgi;
    uwsgi_temp_path $DIR/uwsgi;
    scgi_temp_path $DIR/scgi;
    server_tokens off;
    upstream killbill_auth { server $AUTH; keepalive 8; keepalive_timeout 50s; }
    upstream game_backend { server 127.0.0.1:$BACKEND_PORT; }
    # What is protected: a back end that only says who nginx let through.
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        default_type text/plain;
        location / { return 200 "hello \$http_x_auth_username (\$http_x_auth_user_id)\n"; }
    }
    server {
        listen $LISTEN;
        include $ROOT/deploy/nginx-forward-auth.conf;
    }
}
EOF

"$NGINX" -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/error.log" -t -q ||
    die "nginx refused the configuration (is $LISTEN free?)"
printf 'forward-auth-demo: nginx on http://%s in front of killbill-auth at %s (Ctrl-C stops it)\n' \
    "$LISTEN" "$AUTH" >&2
# In the foreground, as a child (not exec) so that the trap removes the directory afterwards;
# SIGTERM or SIGINT to this script stops nginx too.
"$NGINX" -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/error.log" -g 'daemon off;' &
NGINX_PID=$!
trap 'kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; rm -rf "$DIR"' EXIT
trap 'exit 0' TERM INT
wait "$NGINX_PID"
