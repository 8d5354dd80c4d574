#!/usr/bin/env bash
# The diversity ablation of docs/results.md: homogeneous vs persona vs SFT-expert pools, each through the same
# SPARTA rounds and evaluation. Run from the repository root; resumable. RUN_ARGS passes overrides to every run
# (the recorded results used RUN_ARGS="--set run.rounds=1" to fit the time available).
set -euo pipefail
OUT=${OUT:-runs/diversity}
SPARTA=${SPARTA:-.venv/bin/sparta}
"$SPARTA" init-pool configs/pool-demo.yaml --out "$OUT/expert-pool"
declare -A CONFIGS=([homogeneous]=configs/diversity/homogeneous.yaml [persona]=configs/diversity/persona.yaml
                    [expert]="$OUT/expert-pool/pool.yaml")
for name in homogeneous persona expert; do
  # shellcheck disable=SC2086
  "$SPARTA" run "${CONFIGS[$name]}" --out "$OUT/$name" ${RUN_ARGS:-}
  "$SPARTA" eval "$OUT/$name" --tasks configs/eval/diversity.yaml --max-new-tokens 48
  "$SPARTA" report "$OUT/$name"
done
"$SPARTA" compare "$OUT/homogeneous" "$OUT/persona" "$OUT/expert"
