"""``metalearn evaluate``: meta-test a run or checkpoint on sampled or fixed episodes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metalearn.build import image_channels, is_rl
from metalearn.cli.common import add_invert_argument, load_run, print_result, resolve_invert
from metalearn.data import EpisodeFolder
from metalearn.errors import ConfigError
from metalearn.training import meta_test
from metalearn.workflows import evaluate_learner, write_adaptation, write_result

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn evaluate``."""
    parser = subparsers.add_parser(
        "evaluate", aliases=["eval"], help="meta-test a run: mean and 95%% CI over test episodes"
    )
    parser.add_argument("run_path", metavar="RUN", help="run folder or checkpoint file")
    parser.add_argument(
        "--episodes", type=int, default=None, help="test episodes (default: preset)"
    )
    parser.add_argument("--subset", choices=("test", "val"), default="test")
    parser.add_argument(
        "--episode-folder", default=None, help="evaluate on a folder of fixed episodes, in order"
    )
    parser.add_argument(
        "--inner-steps", default=None, help="sweep, e.g. 0,1,2,3 (gradient learners)"
    )
    add_invert_argument(parser)
    parser.add_argument("--out", default=None, help="JSON file (default: RUN/<subset>.json)")
    parser.set_defaults(run=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    """Print and save the meta-test result."""
    overrides = list(args.overrides)
    if args.inner_steps:
        overrides.append(f"--eval.inner_steps={args.inner_steps}")
    config, learner, checkpoint = load_run(args.run_path, overrides=overrides)
    subset = args.subset
    if args.episode_folder:
        if is_rl(config):
            raise ConfigError("--episode-folder holds image episodes; RL runs test on tasks")
        folder = EpisodeFolder(
            args.episode_folder,
            config.data.image_size,
            channels=image_channels(config),
            invert=resolve_invert(config, args.invert),
        )
        result = meta_test(
            learner,
            folder,
            inner_steps=list(config.eval.inner_steps) or None,
            transductive=config.eval.transductive,
        )
        subset = f"folder:{args.episode_folder}"
    else:
        n = args.episodes or config.eval.episodes
        result = evaluate_learner(config, learner, subset, n, progress=True)
    out = Path(args.out) if args.out else checkpoint.parent / f"{args.subset}.json"
    print_result(f"{config.name} [{checkpoint}] on {subset}", result)  # kept if a write fails
    write_result(result, out, config, subset)
    if is_rl(config) and subset == "test":
        write_adaptation(result, out.parent, config)
    print(f"saved {out}")
    return 0
