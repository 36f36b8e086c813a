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

from metalearn.applications import Personalized, load_support_folder, personalize
from metalearn.build import GRADIENT_ALGORITHMS, build_learner, image_channels
from metalearn.cli.common import add_invert_argument, load_run, resolve_invert
from metalearn.config import RunConfig, from_dict, to_dict
from metalearn.data.folders import list_images, read_images
from metalearn.data.transforms import to_float
from metalearn.errors import CheckpointError, ConfigError, DatasetError, MetalearnError
from metalearn.training.checkpoint import first_line
from metalearn.utils.io import atomic_save

__all__ = ["add_parser", "load_personal", "run_adapt", "run_predict"]

FORMAT = "metalearn-personal-1"


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn adapt`` and ``metalearn predict``."""
    adapt = subparsers.add_parser("adapt", help="adapt a trained run to your support folder")
    adapt.add_argument("run_path", metavar="RUN", help="trained run folder or checkpoint")
    adapt.add_argument("support", help="folder of <class>/<images>: your few labelled examples")
    adapt.add_argument("-o", "--out", default="personal.pt", help="personal model file to write")
    add_invert_argument(adapt)
    adapt.set_defaults(run=run_adapt)
    predict = subparsers.add_parser("predict", help="classify images with a personal model")
    predict.add_argument("model", help="personal model file written by `metalearn adapt`")
    predict.add_argument("images", nargs="+", help="image files or folders of images")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(run=run_predict)


def run_adapt(args: argparse.Namespace) -> int:
    """Adapt to the support folder and write the personal model file."""
    config, learner, _ = load_run(args.run_path)
    if config.data.dataset not in ("omniglot", "folder"):
        raise ConfigError(
            f"{config.name} is a {config.data.dataset} run: `adapt` personalizes image "
            "classifiers; use `metalearn evaluate` to adapt RL or regression runs to new tasks"
        )
    invert = resolve_invert(config, args.invert)
    channels = image_channels(config)
    support_x, support_y, names = load_support_folder(
        args.support, config.data.image_size, channels=channels, invert=invert
    )
    n_way = config.data.n_way if config.algorithm.name in GRADIENT_ALGORITHMS else None
    personalize(learner, support_x, support_y, names, n_way=n_way)
    payload = {
        "format": FORMAT,
        "config": to_dict(config),
        "learner": learner.state_dict(),
        "support_x": support_x,
        "support_y": support_y,
        "class_names": names,
        "invert": invert,
        "channels": channels,
    }
    atomic_save(payload, args.out)
    n_examples = len(support_y)
    print(
        f"adapted {config.name} to {len(names)} classes ({', '.join(names)}), "
        f"{n_examples} examples; wrote {args.out}"
    )
    return 0


def load_personal(path: str | Path) -> tuple[Personalized, dict[str, Any]]:
    """Load a personal model file and re-adapt its learner to the stored support set."""
    not_personal = f"{path} is not a personal model written by `metalearn adapt`"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no personal model at {path}: run `metalearn adapt` first") from None
    except OSError as e:
        raise CheckpointError(f"cannot read personal model {path}: {e.strerror or e}") from e
    except Exception as e:  # torch.load raises almost anything on bytes it did not write
        raise CheckpointError(f"{not_personal} ({type(e).__name__})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(not_personal)
    try:
        config: RunConfig = from_dict(payload["config"])
        learner = build_learner(config)
        learner.load_state_dict(payload["learner"])
    except MetalearnError:
        raise  # e.g. a device this machine lacks: its own message says what to do
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{not_personal}: it is damaged ({first_line(e)})") from e
    personal = personalize(
        learner, payload["support_x"], payload["support_y"], payload["class_names"]
    )
    return personal, {**payload, "config": config}


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
    """Print the predicted class and its probability for every image."""
    personal, meta = load_personal(args.model)
    size = meta["config"].data.image_size
    paths = _image_paths(args.images)
    x = torch.from_numpy(read_images(paths, (size, size), meta["channels"], meta["invert"]))
    predictions = personal.predict(to_float(x))
    rows: list[dict[str, Any]] = [
        {"image": str(p), "class": name, "probability": round(prob, 4)}
        for p, (name, prob) in zip(paths, predictions, strict=True)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["image"]) for r in rows)
        for r in rows:
            print(f"{r['image']:<{width}}  {r['class']}  {r['probability']:.3f}")
    return 0
