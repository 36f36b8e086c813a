#!/usr/bin/env bash
# Sinusoid regression, Meta-SGD paper protocol: train K-shot (70,000 meta-iterations, meta-batch
# 25, one inner step), test on 600 new tasks with K support and K query points, after 0, 1, 5
# and 10 inner steps (MAML) or 0 and 1 step (Meta-SGD,
# whose learned rates are for one step). Usage: bash benchmarks/sinusoid.sh [runs/bench] [steps]
set -euo pipefail
out=${1:-runs/bench}
steps=${2:-70000}
for algorithm in maml meta-sgd; do
  for k in 5 10 20; do
    run="$out/$algorithm-sinusoid-k$k"
    if [ -f "$run/test.json" ]; then continue; fi
    resume=()
    if [ -f "$run/checkpoint.pt" ]; then resume=(--resume "$run"); fi
    OMP_NUM_THREADS=1 .venv/bin/metalearn train --preset "$algorithm-sinusoid" \
      --data.n_shot=$k --data.n_query=$k --train.steps=$steps --train.eval_every=5000 \
      --train.checkpoint_every=5000 --eval.episodes=600 \
      --run-dir "$run" "${resume[@]}"
  done
done
