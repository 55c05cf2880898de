#!/usr/bin/env bash
# Run the Huren portal: Reflex in production mode, UI and backend on ONE port,
# 127.0.0.1:${HUREN_PORTAL_PORT:-3000}. Works from a clean checkout: installs bun
# from the npm registry into .tools/ when it is missing, and `reflex run` then
# creates .web/ and builds the frontend itself (no `reflex init` needed).
#
#   scripts/portal.sh                 # run (exec's reflex; stop it with Ctrl-C / SIGTERM)
#   scripts/portal.sh --install-only  # just make sure bun is there
#
# Environment: HUREN_PORTAL_PORT (default 3000), every HUREN_* setting of the hub
# (HUREN_DATA_DIR, HUREN_DATABASE_URL, ...), REFLEX_LOGLEVEL (default info).
set -euo pipefail

BUN_VERSION="1.4.5"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.tools"

export PATH="$tools/bin:$PATH"
export REFLEX_CHECK_LATEST_VERSION=0
export REFLEX_DIR="$tools/reflex"
export BUN_INSTALL_CACHE_DIR="$tools/bun-cache"
export HUREN_PORTAL_PORT="${HUREN_PORTAL_PORT:-3000}"
unset HUREN_PORTAL_BACKEND_PORT  # prod serves the backend on the frontend port
export REFLEX_LOGLEVEL="${REFLEX_LOGLEVEL:-info}"
# Reflex otherwise probes two registries for the faster one; use npm's own setting.
if [[ -z "${NPM_CONFIG_REGISTRY:-}" ]]; then
    NPM_CONFIG_REGISTRY="$(npm config get registry 2>/dev/null || true)"
    if [[ -n "$NPM_CONFIG_REGISTRY" ]]; then export NPM_CONFIG_REGISTRY; else unset NPM_CONFIG_REGISTRY; fi
fi

bun_ok() {
    [[ -x "$tools/bin/bun" ]] && [[ "$("$tools/bin/bun" --version 2>/dev/null)" == "$BUN_VERSION" ]]
}

install_bun() {
    echo "portal: installing bun $BUN_VERSION from the npm registry into .tools/" >&2
    mkdir -p "$tools"
    # The package's postinstall script puts the real binary in place; allow only that one.
    if npm install -g --prefix "$tools" --no-audit --no-fund --allow-scripts=bun \
        "bun@$BUN_VERSION" >&2 && bun_ok; then
        return 0
    fi
    # An npm without --allow-scripts (or with scripts blocked): link the platform
    # package's binary by hand.
    npm install -g --prefix "$tools" --no-audit --no-fund --ignore-scripts \
        "bun@$BUN_VERSION" >&2
    local binary
    binary="$(find "$tools/lib/node_modules/bun/node_modules/@oven" -path '*/bin/bun' -type f \
        -perm -u+x 2>/dev/null | head -n 1)"
    if [[ -z "$binary" ]]; then
        echo "portal: no bun binary found after npm install" >&2
        return 1
    fi
    mkdir -p "$tools/bin"
    ln -sf "$binary" "$tools/bin/bun"
    bun_ok
}

if ! bun_ok; then
    install_bun
fi

if [[ "${1:-}" == "--install-only" ]]; then
    exit 0
fi

if [[ -x "$root/.venv/bin/reflex" ]]; then
    reflex_cmd="$root/.venv/bin/reflex"
else
    reflex_cmd="$(command -v reflex)"
fi

# backend_host and the port come from rxconfig.py (127.0.0.1, HUREN_PORTAL_PORT).
exec "$reflex_cmd" run --env prod --frontend-port "$HUREN_PORTAL_PORT" \
    --backend-host 127.0.0.1
