#!/usr/bin/env bash
# The main job on the embedded default: start the all-in-one server (data in
# ./rudder-data), show what it serves, and stop it. Later issues grow this into ingest -> ask per region.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rudder="${RUDDER_BIN:-$repo/target/debug/rudder}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" && wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting the all-in-one rudder server =="
"$rudder" serve --listen 127.0.0.1:0 --addr-file "$work/addr" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/addr" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log" >&2
    echo "demo: the server exited before it was ready" >&2
    exit 1
  fi
  sleep 0.1
done
[ -f "$work/addr" ] || { cat "$work/server.log" >&2; echo "demo: the server did not start within 60 s" >&2; exit 1; }
addr="$(cat "$work/addr")"
echo "listening on ${addr}"
echo
"$rudder" status --server "http://${addr}"
echo
echo "== stopping the server (SIGTERM: in-flight requests finish first) =="
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
grep -E "listening|stopped" "$work/server.log" | sed 's/^/  log: /'
