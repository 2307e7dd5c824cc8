#!/usr/bin/env bash
# Trains the shipped steering for one region: the policy prefix first, then the tone soft prompt on
# top of it (held fixed), so the two pieces are trained to work together. Then evaluates.
# Usage: make artifacts REGION=us|uk|eu, or prompts/train-region.sh us|uk|eu from the repository root
# after `make models build` (the dev build runs its model code optimized).
set -euo pipefail
region="${1:?usage: prompts/train-region.sh us|uk|eu}"
rudder="${RUDDER_BIN:-target/debug/rudder}"
steps="${STEPS:-24}"
out="prompts/artifacts/$region"
common=(--data "prompts/data/$region/train.jsonl" --steps "$steps" --batch-size 4 --warmup-steps 3
        --eval-every 6 --checkpoint-every 6 --patience 2)
# The artifact directories must not exist yet (a finished artifact is never overwritten silently).
"$rudder" prompts train prefix "${common[@]}" --out "$out/policy-prefix"
"$rudder" prompts train soft "${common[@]}" --out "$out/tone-soft-prompt" --with "$out/policy-prefix"
"$rudder" prompts eval --region "$region" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} --max-new-tokens 64 \
    --chart "$out/eval.svg" --json "$out/eval.json" | tee "$out/eval.md"
