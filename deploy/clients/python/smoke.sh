#!/usr/bin/env bash
# Starts `rudder serve` on a free loopback port and checks it with the stock Python gRPC client
# (check_server.py): reflection v1alpha, health, generated stubs. Run by `make test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rudder="${RUDDER_BIN:-$repo/target/debug/rudder}"
python="$(bash "$here/generate.sh" | tail -n 1)"
# The deployment files (Docker, compose, Kubernetes) against the binary's flags and configuration keys:
# no container engine or cluster runs here, so this is what keeps them from drifting.
"$python" "$repo/deploy/check_deploy.py" --rudder "$rudder"

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

# The example client (rudder_client.py): one ingest of a tiny folder, a Markdown file with front
# matter and a text file whose metadata comes from its sidecar NAME.meta.toml.
mkdir -p "$work/docs"
printf '+++\ndoc_id = "smoke-returns"\ntitle = "Returns (smoke)"\nregions = ["uk"]\nversion = "1"\n+++\n\n# Returns\n\n## Window\n\nReturn items within 30 days.\n' \
  >"$work/docs/returns.md"
printf 'Gift cards never expire.\n' >"$work/docs/gift-cards.txt"
printf 'doc_id = "smoke-gift-cards"\nregions = ["us"]\n' >"$work/docs/gift-cards.meta.toml"
ingest_out="$("$python" "$here/rudder_client.py" --addr "$(cat "$work/addr")" ingest "$work/docs" 2>&1)" \
  || { echo "$ingest_out" >&2; echo "smoke.sh: rudder_client.py ingest failed" >&2; exit 1; }
echo "$ingest_out"
grep -q '^ok *gift-cards.txt: smoke-gift-cards@' <<<"$ingest_out" \
  || { echo "smoke.sh: rudder_client.py ingest did not use the sidecar metadata" >&2; exit 1; }
echo "python client check passed"
