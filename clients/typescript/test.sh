#!/usr/bin/env bash
# The TypeScript client's tests: installs the pinned dev dependencies (npm ci) when node_modules
# is missing, then `npm test` (tsc, then node --test against the real release binary, which
# `cargo build --release` makes; KILLBILL_AUTH_BIN overrides its path). Exits with npm test's status.
set -uo pipefail
script=${BASH_SOURCE[0]}
case $script in */*) cd "${script%/*}" || exit 1 ;; esac

missing=()
command -v node >/dev/null 2>&1 || missing+=(node)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    what=${missing[*]}
    echo "clients/typescript/test.sh: ${what// / and } not found: install Node.js 20 or later with npm (e.g. apt-get install -y nodejs npm)" >&2
    exit 127
fi

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "${major:-0}" -lt 20 ]; then
    echo "clients/typescript/test.sh: Node.js 20 or later is needed, found $(node --version 2>/dev/null || echo none)" >&2
    exit 127
fi

if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund || exit $?
fi

npm test
exit $?
