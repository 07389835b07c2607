#!/usr/bin/env bash
# Start or stop the moto server used by tests, demos and benchmarks.
#   scripts/moto.sh start   -> prints the endpoint; reuses a moto already answering on the port
#   scripts/moto.sh stop    -> stops only a server this script started
# MOTO_HOST (default 127.0.0.1) is the address it listens on: sam local invoke on Linux reaches the
# host through the Docker bridge, so it needs MOTO_HOST=0.0.0.0 (README, "Running locally").
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${MOTO_PORT:-5055}"
HOST="${MOTO_HOST:-127.0.0.1}"
STATE=.work
PIDFILE="$STATE/moto-$PORT.pid"
mkdir -p "$STATE"
url="http://127.0.0.1:$PORT"

alive() {
  python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
# Any HTTP answer means a server is up (a cheap path: the data dump grows with the state).
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/state-manager/get-transition?model_name=ecs::task", timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

case "${1:-}" in
  start)
    if alive; then echo "$url"; exit 0; fi
    [ -x .venv/bin/moto_server ] || { echo "moto is not installed: run 'make venv'" >&2; exit 1; }
    nohup .venv/bin/moto_server -H "$HOST" -p "$PORT" >"$STATE/moto-$PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
      if alive; then echo "$url"; exit 0; fi
      sleep 0.1
    done
    echo "moto did not start on $url; see $STATE/moto-$PORT.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
