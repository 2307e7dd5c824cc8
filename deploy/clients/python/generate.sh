#!/usr/bin/env bash
# Generates Python stubs for rudder.v1 from proto/ with grpcio-tools into deploy/clients/python/rudder_pb
# (a virtual environment under target/python-venv holds grpcio; created on first use).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${RUDDER_PYTHON_VENV:-$repo/target/python-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import grpc_tools, grpc_reflection, grpc_health, yaml" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || { echo "generate.sh: could not install grpcio from the package registry (see pip's output above)" >&2; exit 1; }
fi
out="$here/rudder_pb"
rm -rf "$out" && mkdir -p "$out"
"$venv/bin/python" -m grpc_tools.protoc -I "$repo/proto" --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" "$repo"/proto/rudder/v1/*.proto
echo "$venv/bin/python"
