"""MAML-TRPO on 2D navigation (Finn et al. 2017, section 5.3) against pretraining and random init.

Defaults follow the MAML code (cbfinn/maml_rl ``maml_trpo_point.py``): 20 trajectories per
task, 40 tasks per meta-iteration, 100 meta-iterations, two hidden layers of 100 ReLU units,
max KL 0.01; the step size is pytorch-maml-rl's 0.1 (the MAML code's 0.5 acts on actions
normalised to [-1, 1], ten times our action scale). The reward is the negative distance (the
MAML code's form; ``--reward squared`` for the paper text's). Output in ``--out`` (see
rl_common.py); ``--resume`` continues interrupted runs.

    python benchmarks/rl_navigation.py --out runs/rl-navigation
    python benchmarks/rl_navigation.py --out runs/rl-navigation --resume   # after a kill
"""

from __future__ import annotations

import sys
from pathlib import Path

from rl_common import build_parser, run


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(
        __doc__.splitlines()[0],
        steps=100,
        meta_batch_size=40,
        fast_batch_size=20,
        out=Path("runs/rl-navigation"),
    )
    parser.add_argument("--reward", choices=["distance", "squared"], default="distance")
    args = parser.parse_args(argv)
    args.env_kwargs = {"reward": args.reward}
    run(args, "metalearn/Navigation2D-v0", f"2D navigation ({args.reward} reward)")


if __name__ == "__main__":
    main(sys.argv[1:])
