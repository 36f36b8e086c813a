#!/usr/bin/env bash
# Omniglot benchmark runs, shortened to STEPS meta-iterations (or training episodes), one thread
# each; a run that stopped is resumed from its checkpoint, a finished one (test.json) is skipped.
# Gradient learners follow the MAML paper's protocol (their presets: maml split, meta-batch 32,
# 600 test episodes), metric learners the ProtoNets/Matching Nets one (vinyals split, 1,000 test
# episodes). A metric learner trained 5-way is also tested 20-way (test-20way.json); a gradient
# learner's head is fixed to its training ways.
# Usage: bash benchmarks/omniglot.sh OUT STEPS SETTING METHOD...
#   e.g. bash benchmarks/omniglot.sh runs/bench 1200 5w5s maml fomaml meta-sgd
set -euo pipefail
out=$1
steps=$2
setting=$3
shift 3
for method in "$@"; do
  run="$out/$method-omniglot-$setting"
  case $method in
    maml | fomaml | meta-sgd | anil | reptile)
      metric=false
      every=(--train.eval_every=200 --train.checkpoint_every=100 --eval.val_episodes=100) ;;
    *)
      metric=true
      every=(--train.eval_every=1000 --train.checkpoint_every=500 --eval.val_episodes=200) ;;
  esac
  if [ ! -f "$run/test.json" ]; then
    resume=()
    if [ -f "$run/checkpoint.pt" ]; then resume=(--resume "$run"); fi
    OMP_NUM_THREADS=1 .venv/bin/metalearn train --preset "$method-omniglot-$setting" \
      --train.steps="$steps" "${every[@]}" --run-dir "$run" "${resume[@]}"
  fi
  if $metric && [ "${setting%%w*}" = 5 ] && [ ! -f "$run/test-20way.json" ]; then
    OMP_NUM_THREADS=1 .venv/bin/metalearn evaluate "$run" --eval.n_way=20 \
      --out "$run/test-20way.json"
  fi
done
