#!/usr/bin/env bash
# Resident memory of the release binary over time (issue "Growing with the game", item 3): right
# after start-up, during and right after a burst of 40 concurrent sign-ups (the default Argon2
# settings, 19 MiB per hashing worker), and 15 s after it, when idle workers have given their
# Argon2 buffers back (service::hasher::RELEASE_AFTER). One fresh SQLite database.
#
#   bench/memory.sh            # builds the release binary, prints a table of VmRSS in MB
#   BIN=path bench/memory.sh   # measure another build (e.g. an older commit's) the same way
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/killbill-auth}
if [ "$BIN" = target/release/killbill-auth ]; then
    cargo build --release --locked --quiet
fi
work=$(mktemp -d)
port=$((20000 + RANDOM % 30000))
KILLBILL_AUTH_SERVER_LISTEN=127.0.0.1:$port \
KILLBILL_AUTH_DATABASE_URL="sqlite://$work/kb.db" \
KILLBILL_AUTH_SERVER_MAX_CONNECTIONS_PER_ADDRESS=1000 \
KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK=1000 \
    "$BIN" serve >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/" && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
sleep 1
echo "| moment | RSS (MB) |"
echo "| --- | --- |"
echo "| 1 s after start-up (the hash classes just measured) | $(rss) |"
sleep 4
echo "| 5 s after start-up (idle workers gave their buffers back) | $(rss) |"
for i in $(seq 40); do
    curl -s -o /dev/null "127.0.0.1:$port/users" -H 'content-type: application/json' \
        -d "{\"username\": \"player$i\", \"password\": \"correct horse battery staple $i\"}" &
done
wait_burst() { for job in $(jobs -p); do [ "$job" = "$pid" ] || wait "$job"; done; }
wait_burst
echo "| right after 40 concurrent sign-ups | $(rss) |"
sleep 5
echo "| 5 s after | $(rss) |"
sleep 10
echo "| 15 s after | $(rss) |"
