"""``metalearn adapt`` and ``metalearn predict``: personalization from the command line.

``adapt`` turns a trained run and a support folder (``<class>/<images>``) into a personal
model file; ``predict`` gives the predicted class and its probability for new images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from metalearn.applications import Rejection, calibrate_on_classes, load_support_folder, personalize
from metalearn.build import build_dataset, image_channels
from metalearn.cli.common import add_invert_argument, load_run, resolve_invert
from metalearn.config import RunConfig
from metalearn.data.folders import list_images
from metalearn.errors import ConfigError, DatasetError
from metalearn.personal_model import (
    load_personal,
    payload_of,
    read_query_images,
    support_n_way,
)
from metalearn.utils.io import atomic_save

__all__ = ["add_parser", "run_adapt", "run_predict"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn adapt`` and ``metalearn predict``."""
    adapt = subparsers.add_parser("adapt", help="adapt a trained run to your support folder")
    adapt.add_argument("run_path", metavar="RUN", help="trained run folder or checkpoint")
    adapt.add_argument("support", help="folder of <class>/<images>: your few labelled examples")
    adapt.add_argument("-o", "--out", default="personal.pt", help="personal model file to write")
    add_invert_argument(adapt)
    adapt.add_argument(
        "--reject",
        type=float,
        metavar="RECALL",
        help="answer 'unknown' for images far from every class, with a threshold that keeps "
        "this fraction of known-class images of validation episodes (e.g. 0.95)",
    )
    adapt.add_argument(
        "--calibration-episodes",
        type=int,
        default=300,
        metavar="N",
        help="validation episodes that calibrate --reject (default 300)",
    )
    adapt.set_defaults(run=run_adapt)
    predict = subparsers.add_parser("predict", help="classify images with a personal model")
    predict.add_argument("model", help="personal model file written by `metalearn adapt`")
    predict.add_argument("images", nargs="+", help="image files or folders of images")
    predict.add_argument(
        "--json", action="store_true", help="print JSON (every class's probability) instead"
    )
    predict.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="map dark strokes on a light page to 1 on 0 (default: as for the support images)",
    )
    predict.set_defaults(run=run_predict)


def run_adapt(args: argparse.Namespace) -> int:
    """Adapt to the support folder and write the personal model file."""
    config, learner, _ = load_run(args.run_path)
    if config.data.dataset not in ("omniglot", "folder"):
        raise ConfigError(
            f"{config.name} is a {config.data.dataset} run: `adapt` personalizes image "
            "classifiers; use `metalearn evaluate` to adapt RL or regression runs to new tasks"
        )
    _check_reject(args)
    invert = resolve_invert(config, args.invert)
    channels = image_channels(config)
    support_x, support_y, names = load_support_folder(
        args.support, config.data.image_size, channels=channels, invert=invert
    )
    personal = personalize(learner, support_x, support_y, names, n_way=support_n_way(config))
    if args.reject is not None:
        personal.rejection = _calibrate(config, learner, support_y, args)
    atomic_save(payload_of(config, personal, invert=invert, channels=channels), args.out)
    n_examples = len(support_y)
    print(
        f"adapted {config.name} to {len(names)} classes ({', '.join(names)}), "
        f"{n_examples} examples; wrote {args.out}"
    )
    return 0


def _check_reject(args: argparse.Namespace) -> None:
    if args.reject is not None and not 0 < args.reject < 1:
        raise ConfigError(f"--reject {args.reject} must be a recall in (0, 1), e.g. 0.95")
    if args.calibration_episodes < 1:
        raise ConfigError(f"--calibration-episodes {args.calibration_episodes} must be >= 1")


def _calibrate(
    config: RunConfig, learner: Any, support_y: torch.Tensor, args: argparse.Namespace
) -> Rejection:
    """Calibrate "unknown" on validation episodes shaped like the user's support set."""
    counts = torch.bincount(support_y)
    rejection = calibrate_on_classes(
        learner,
        build_dataset(config, "val"),
        n_way=len(counts),
        n_shot=int(counts.min()),
        n_episodes=args.calibration_episodes,
        target_recall=args.reject,
        seed=config.eval.seed,
    )
    print(
        f"calibrated 'unknown' on {rejection.n_queries} validation images: it keeps "
        f"{rejection.recall:.1%} of known-class images (target {rejection.target_recall:.0%})"
    )
    return rejection


def _image_paths(items: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += list_images(path)
        elif path.is_file():
            paths.append(path)
        else:
            raise DatasetError(f"{item!r} is neither an image file nor a folder")
    return paths


def run_predict(args: argparse.Namespace) -> int:
    """Print the predicted class and its probability for every image (a table, or JSON)."""
    personal, meta = load_personal(args.model)
    paths = _image_paths(args.images)
    x = read_query_images(meta, paths, invert=args.invert)
    predictions = personal.predict(x)
    if args.json:
        probabilities = personal.predict_proba(x).tolist()
        rows = [
            {
                "image": str(path),
                "class": name,
                "probability": round(prob, 4),
                "probabilities": dict(
                    zip(personal.class_names, (round(p, 4) for p in row), strict=True)
                ),
            }
            for path, (name, prob), row in zip(paths, predictions, probabilities, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    else:
        print(_table(paths, predictions))
    return 0


def _table(paths: list[Path], predictions: list[tuple[str, float]]) -> str:
    """Return the predictions as aligned columns under a header."""
    rows = [("image", "class", "probability")]
    pairs = zip(paths, predictions, strict=True)
    rows += [(str(path), name, f"{prob:.3f}") for path, (name, prob) in pairs]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)
