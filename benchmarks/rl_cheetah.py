"""MAML-TRPO on HalfCheetah velocity or direction (Finn et al. 2017, section 5.3).

The MAML code (``cluster_maml_trpo_cheetah.py``) meta-trains with 20 trajectories per task,
40 tasks per meta-iteration and 1000 meta-iterations of 200-step episodes: 320k MuJoCo steps
per iteration, 320M in all. The defaults here (10 tasks x 10 trajectories, 30 iterations) fit
a few minutes of this 2-core CPU; raise ``--steps`` (and ``--resume``) as time allows, and say
how much shorter the run is when reporting it.

    python benchmarks/rl_cheetah.py --task velocity --steps 200 --eval-tasks 20
    python benchmarks/rl_cheetah.py --task direction   # output in runs/rl-cheetah-direction
"""

from __future__ import annotations

import sys
from pathlib import Path

from rl_common import build_parser, run

ENV_IDS = {"velocity": "metalearn/HalfCheetahVel-v0", "direction": "metalearn/HalfCheetahDir-v0"}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(
        __doc__.splitlines()[0],
        steps=30,
        meta_batch_size=10,
        fast_batch_size=10,
        eval_tasks=10,
        eval_steps=2,
        out=None,
    )
    parser.add_argument("--task", choices=sorted(ENV_IDS), default="velocity")
    args = parser.parse_args(argv)
    args.env_kwargs = {}
    args.out = args.out or Path(f"runs/rl-cheetah-{args.task}")
    run(args, ENV_IDS[args.task], f"HalfCheetah {args.task}")


if __name__ == "__main__":
    main(sys.argv[1:])
