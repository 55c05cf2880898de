#!/usr/bin/env bash
# Start the hub and the portal together; Ctrl-C (or SIGTERM) stops both.
set -uo pipefail
cd "$(dirname "$0")/.."

HTTP_PORT="${HUREN_HTTP_PORT:-8080}"
PORTAL_PORT="${HUREN_PORTAL_PORT:-3000}"
BIND="${HUREN_BIND:-127.0.0.1}"

.venv/bin/huren serve &
hub=$!
scripts/portal.sh &
portal=$!

stopping=0
stop() {
    [ "$stopping" = 1 ] && return
    stopping=1
    echo "stopping hub and portal..."
    kill -TERM "$hub" 2>/dev/null
    pkill -TERM -P "$portal" 2>/dev/null
    kill -TERM "$portal" 2>/dev/null
    wait "$hub" "$portal" 2>/dev/null
    echo "stopped."
}
trap stop INT TERM

cat <<BANNER

  Huren 互认 is starting
    portal   http://127.0.0.1:${PORTAL_PORT}/   (first start builds the UI: about a minute)
    hub      http://${BIND}:${HTTP_PORT}/healthz
    demo logins: admin radiologist auditor clinician leader qc technologist
                 password: ${HUREN_DEMO_PASSWORD:-huren-demo}
  Ctrl-C stops both.

BANNER

wait -n "$hub" "$portal"
status=$?
stop
exit "$status"
