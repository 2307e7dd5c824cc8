#!/usr/bin/env bash
# The main job on the embedded default: start the all-in-one server (embedded Qdrant engine, data in
# ./rudder-data), show what it serves, ingest the sample corpus, ask the same customer question in us,
# uk and eu (answers stream with their citations), print a short table, and stop the server.
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

question="${RUDDER_DEMO_QUESTION:-I bought a jacket three weeks ago and want to return it. Can I still get a refund, and how long does it take?}"
echo "== starting the all-in-one rudder server (embedded Qdrant engine, SmolLM2-135M on candle) =="
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
echo "== ingesting the sample corpus (ingest/corpus: a retailer's policies for us, uk, eu) =="
"$rudder" ingest --server "http://${addr}" "$repo/ingest/corpus"
echo
echo "== the same question in three regions =="
echo "Q: ${question}"
echo
table=""
for region in us uk eu; do
  # Through a file, not `tee /dev/stderr`: that reopens a redirected log and truncates it.
  "$rudder" ask --server "http://${addr}" --region "$region" --max-tokens 120 "$question" > "$work/answer-$region.txt"
  cat "$work/answer-$region.txt"
  line="$(tail -n 2 "$work/answer-$region.txt" | head -n 1)"
  table+="${line}"$'\n'
done
echo "== summary =="
printf '  %s\n' "bundle   grounding, time to first token, decode speed, prompt tokens (from the head cache), answer tokens"
printf '%s' "$table"
echo
echo "== stopping the server (SIGTERM: in-flight requests finish first) =="
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
grep -E "listening|stopped" "$work/server.log" | sed 's/^/  log: /'
