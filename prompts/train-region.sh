#!/usr/bin/env bash
# Trains one region's steering for a new bundle version: the policy prefix first, then the tone soft
# prompt on top of it (held fixed), so the two pieces are trained to work together. Then evaluates
# them on the whole held-out set.
# Usage: make artifacts REGION=us|uk|eu VERSION=N, or prompts/train-region.sh us|uk|eu N from the
# repository root after `make models build` (the dev build runs its model code optimized). Writes
# prompts/artifacts/<region>/v<N>/, which must not exist yet (a finished artifact is never overwritten:
# a published bundle version pins its artifacts' bytes).
set -euo pipefail
region="${1:?usage: prompts/train-region.sh us|uk|eu VERSION}"
version="${2:?usage: prompts/train-region.sh us|uk|eu VERSION}"
rudder="${RUDDER_BIN:-target/debug/rudder}"
steps="${STEPS:-60}"
out="prompts/artifacts/$region/v$version"
# Amounts with their currency weigh EMPHASIS_WEIGHT in the loss (from v4; v3 trained without it):
# they are the few tokens that tell the regions apart, and tuned models copied foreign amounts.
emphasis_weight="${EMPHASIS_WEIGHT:-3}"
common=(--data "prompts/data/$region/train.jsonl" --steps "$steps" --batch-size 4 --warmup-steps 3
        --eval-every 6 --checkpoint-every 6 --patience 2)
if [ "$emphasis_weight" != 1 ]; then
    common+=(--emphasize '[$£€] ?[0-9]+([.,][0-9]+)*' --emphasis-weight "$emphasis_weight")
fi
# The data's rejected answers (forbidden promises after a restated passage) are pushed down with
# UNLIKELIHOOD_WEIGHT from v8 (us) and v7 (uk); unset, they are left out, as in earlier versions.
if [ -n "${UNLIKELIHOOD_WEIGHT:-}" ]; then
    common+=(--unlikelihood-weight "$UNLIKELIHOOD_WEIGHT")
fi
mkdir -p "$out"
"$rudder" prompts train prefix "${common[@]}" --out "$out/policy-prefix"
"$rudder" prompts train soft "${common[@]}" --out "$out/tone-soft-prompt" --with "$out/policy-prefix"
"$rudder" prompts eval --region "$region" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} --max-new-tokens 64 \
    --prefix "$out/policy-prefix" --soft-prompt "$out/tone-soft-prompt" \
    --chart "$out/eval.svg" --json "$out/eval.json" --answers "$out/answers.jsonl" | tee "$out/eval.md"
