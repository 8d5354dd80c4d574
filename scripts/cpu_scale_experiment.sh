#!/usr/bin/env bash
# The SmolLM2 experiment of docs/results.md: SPARTA (likelihood judge), SPARTA (the paper's prompted judge) and
# Self-Rewarding, each evaluated at round 0 (Best Init = the best member there) and after the last round.
# Run from the repository root; about an hour on 2 CPU cores. Runs resume if interrupted.
set -euo pipefail
OUT=${OUT:-runs/experiment}
SPARTA=${SPARTA:-.venv/bin/sparta}
for cfg in configs/smollm2.yaml configs/baselines/prompted-judge.yaml configs/baselines/self-rewarding.yaml; do
  name=$(basename "$cfg" .yaml)
  "$SPARTA" run "$cfg" --out "$OUT/$name"
  "$SPARTA" eval "$OUT/$name" --tasks configs/eval/cpu-scale.yaml --max-new-tokens 48
  "$SPARTA" report "$OUT/$name"
done
"$SPARTA" compare "$OUT/smollm2" "$OUT/prompted-judge" "$OUT/self-rewarding"
