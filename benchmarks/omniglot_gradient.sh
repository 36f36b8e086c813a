#!/usr/bin/env bash
# Omniglot 5-way 1-shot, MAML paper protocol (maml split, strided conv4, meta-batch 32, one inner
# step at 0.4 in training, three at test, 600 test episodes), shortened to $2 meta-iterations.
# Usage: bash benchmarks/omniglot_gradient.sh [runs/bench] [steps] [algorithms...]
set -euo pipefail
out=${1:-runs/bench}
steps=${2:-1200}
shift 2 || true
algorithms=("$@")
if [ ${#algorithms[@]} -eq 0 ]; then algorithms=(maml fomaml meta-sgd); fi
for algorithm in "${algorithms[@]}"; do
  run="$out/$algorithm-omniglot-5w1s"
  if [ -f "$run/test.json" ]; then continue; fi
  resume=()
  if [ -f "$run/checkpoint.pt" ]; then resume=(--resume "$run"); fi
  OMP_NUM_THREADS=1 .venv/bin/metalearn train --preset "$algorithm-omniglot-5w1s" \
    --train.steps=$steps --train.eval_every=200 --train.checkpoint_every=100 \
    --eval.val_episodes=100 --run-dir "$run" "${resume[@]}"
done
