#!/usr/bin/env bash
# Starts `rudder serve` on a free loopback port and checks it with the stock Python gRPC client
# (check_server.py): reflection v1alpha, health, generated stubs. Run by `make test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rudder="${RUDDER_BIN:-$repo/target/debug/rudder}"
python="$(bash "$here/generate.sh" | tail -n 1)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$rudder" serve --listen 127.0.0.1:0 --data-dir "$work/data" --addr-file "$work/addr" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  [ -f "$work/addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "smoke.sh: rudder serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/addr" ] || { cat "$work/server.log" >&2; echo "smoke.sh: rudder serve did not start" >&2; exit 1; }
"$python" "$here/check_server.py" "$(cat "$work/addr")"
echo "python client check passed"
