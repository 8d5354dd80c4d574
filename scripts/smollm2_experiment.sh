#!/usr/bin/env bash
# The SmolLM2 experiment of docs/results.md section 5: SPARTA (paper rule), SPARTA (best aggregation rule), Self-
# Rewarding and SPPO against Best Init, on 200 held-out gold items with paired intervals and McNemar p-values.
# Sized to fit 90 minutes of wall time on 2 quiet CPU cores: two runs at a time, one torch thread each.
# Run from the repository root. Every step resumes where it stopped (runs, evaluations and init-pool are resumable),
# so running the script again after an interruption finishes the job.
#
#   scripts/smollm2_experiment.sh                                   # the experiment
#   BEST_AGGREGATOR=peer_rank scripts/smollm2_experiment.sh         # another rule for SPARTA (best)
#   OUT=runs/smoke RUN_ARGS="--set run.rounds=1 --set run.instructions_per_round=4" \
#     EVAL_TASKS=configs/experiment/eval-smoke.yaml scripts/smollm2_experiment.sh    # the same at a tiny size
#
# OUT        where the runs go (default runs/smollm2-experiment)
# POOL       the expert pool; configs/experiment/*.yaml name their adapters under pools/experiment, so only a
#            smoke run with matching --set overrides may change it
# RUN_ARGS   extra arguments for every `sparta run` (e.g. --set overrides); EVAL_ARGS for every `sparta eval`;
#            POOL_ARGS for `sparta init-pool`; EVAL_TASKS the evaluation's task file (configs/experiment/eval.yaml)
# BEST_AGGREGATOR  tournament.aggregation of SPARTA (best): the best rule of `sparta simulate --study aggregation`
#            (docs/results.md section 1: dawid_skene)
# BEST_JUDGE judge.type of SPARTA (best); default: the judge type `sparta judge-check --gold` finds most accurate on
#            gold-decided pairs of this pool's answers, run as phase 0 beside phase 1 ($OUT/judge-check.json)
# JUDGE_CHECK_ARGS  the judge check's size (default: 40 gold items, 3 samples at temperatures 0.3 and 1.0)
set -euo pipefail
OUT=${OUT:-runs/smollm2-experiment}
POOL=${POOL:-pools/experiment}
SPARTA=${SPARTA:-.venv/bin/sparta}
BEST_AGGREGATOR=${BEST_AGGREGATOR:-dawid_skene}
BEST_JUDGE=${BEST_JUDGE:-}
JUDGE_CHECK_ARGS=${JUDGE_CHECK_ARGS:---gold 40 --samples 3 --temperatures 0.3,1.0 --max-pairs 48}
RUN_ARGS=${RUN_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:-}
POOL_ARGS=${POOL_ARGS:-}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1    # two jobs at a time on two cores
CONFIGS=configs/experiment
EVAL=(--tasks "${EVAL_TASKS:-$CONFIGS/eval.yaml}" --max-new-tokens 48)
mkdir -p "$OUT"
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$OUT/timeline.txt"; }

run() {  # run NAME CONFIG [extra sparta-run arguments]
  local name=$1 config=$2
  shift 2
  stamp "run $name: start"
  # shellcheck disable=SC2086
  "$SPARTA" run "$config" --out "$OUT/$name" $RUN_ARGS "$@" > "$OUT/$name.run.log" 2>&1
  stamp "run $name: done"
}

evaluate() {  # evaluate NAME: round 0 and the last round; round 0 reused from the SPARTA run where the pool is the same
  local name=$1
  if [[ $name != sparta && $name != self-rewarding && -d "$OUT/sparta/eval_cache/round_000" ]]; then
    mkdir -p "$OUT/$name/eval_cache" && cp -rn "$OUT/sparta/eval_cache/round_000" "$OUT/$name/eval_cache/"
  fi
  stamp "eval $name: start"
  # shellcheck disable=SC2086
  "$SPARTA" eval "$OUT/$name" "${EVAL[@]}" $EVAL_ARGS > "$OUT/$name.eval.log" 2>&1
  stamp "eval $name: done"
}

best_initial_member() {  # the best member at round 0 of the SPARTA run's evaluation: Best Init
  python3 -c 'import json, sys; best = json.load(open(sys.argv[1]))["best"]["0"]; print(next(iter(best.values()))["member"])' \
    "$OUT/sparta/eval.json"
}

judge_check() {  # phase 0: each judge type on gold-decided pairs of the pool's own answers (docs/judges.md)
  [[ -s "$OUT/judge-check.json" ]] && return 0
  stamp "judge-check: start"
  # shellcheck disable=SC2086
  "$SPARTA" judge-check "$CONFIGS/sparta.yaml" --n 0 $JUDGE_CHECK_ARGS $RUN_ARGS --out "$OUT/judge-check.json" \
    > "$OUT/judge-check.log" 2>&1
  stamp "judge-check: done"
}

most_accurate_judge() {  # the judge type that most often preferred the right answer in the judge check
  python3 -c 'import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["gold"]["rows"] if r["decided"]["rate"]["score"] is not None]
print(max(rows, key=lambda r: (r["decided"]["rate"]["score"], r["judgments_per_s"]))["judge_type"])' \
    "$OUT/judge-check.json"
}

wait_both() {  # wait for two background jobs; fail if either failed (after both have ended)
  local status=0
  wait "$1" || status=$?
  wait "$2" || status=$?
  return "$status"
}

stamp "init-pool: start"
# shellcheck disable=SC2086
"$SPARTA" init-pool configs/pool-demo.yaml --out "$POOL" $POOL_ARGS > "$OUT/init-pool.log" 2>&1
stamp "init-pool: done"

# phase 0 and 1: the judge check beside the two runs on the expert pool that need nothing else
if [[ -z $BEST_JUDGE ]]; then judge_check & c=$!; fi
run sparta "$CONFIGS/sparta.yaml" & a=$!
run sppo "$CONFIGS/sppo.yaml" & b=$!
wait_both $a $b
if [[ -z $BEST_JUDGE ]]; then
  wait "$c"
  BEST_JUDGE=$(most_accurate_judge)
fi
stamp "SPARTA (best): judge.type=$BEST_JUDGE, tournament.aggregation=$BEST_AGGREGATOR"
# phase 2: Best Init (round 0) and SPARTA after training; meanwhile SPARTA with the best aggregation rule and judge
evaluate sparta & a=$!
run sparta-best "$CONFIGS/sparta-best.yaml" --set "tournament.aggregation=$BEST_AGGREGATOR" \
  --set "judge.type=$BEST_JUDGE" & b=$!
wait_both $a $b
# phase 3: Self-Rewarding on the Best Init expert; meanwhile SPPO's evaluation
best=$(best_initial_member)
stamp "Best Init: $best"
self_pool="[{name: self, model: smollm2-135m-instruct, adapter: $POOL/adapters/$best}, {name: self-sample2, clone_of: self}]"
run self-rewarding "$CONFIGS/self-rewarding.yaml" --set "pool.members=$self_pool" & a=$!
evaluate sppo & b=$!
wait_both $a $b
# phase 4: the last two evaluations
evaluate self-rewarding & a=$!
evaluate sparta-best & b=$!
wait_both $a $b

"$SPARTA" compare --markdown "$OUT/sparta" "$OUT/sparta-best" "$OUT/self-rewarding" "$OUT/sppo" | tee "$OUT/compare.md"
stamp "all done"
