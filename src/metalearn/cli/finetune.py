"""``metalearn finetune RUN DATA``: supervised transfer learning on a user's class folders.

The trained run's encoder gets a new linear head over the classes of ``DATA/train/<class>/``;
the whole network trains as a plain classifier (the training loop, checkpoints, progress and
``metrics.jsonl`` of every run), with early stopping on ``DATA/val/`` (or a held-out share of
train). The output folder is a run folder plus ``model.pt``, which ``metalearn predict`` reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import torch

from metalearn.algorithms.baseline import Baseline, encoder_state
from metalearn.applications.transfer import (
    LabelledFolders,
    read_labelled_folders,
    train_with_early_stopping,
    validation_metrics,
)
from metalearn.build import build_learner, image_channels
from metalearn.cli.common import (
    add_invert_argument,
    load_run,
    new_run_dir,
    resolve_config,
    resolve_invert,
)
from metalearn.config import AlgorithmConfig, RunConfig, read_config, to_dict, write_config
from metalearn.errors import CheckpointError, ConfigError
from metalearn.personal_model import personal_payload
from metalearn.training import BEST_FILE, CHECKPOINT_FILE, TrainConfig, load_checkpoint
from metalearn.utils.io import atomic_save, atomic_write_text

__all__ = ["META_FILE", "MODEL_FILE", "add_parser", "run"]

META_FILE = "finetune.json"
MODEL_FILE = "model.pt"
DEFAULT_TRAIN = TrainConfig(
    steps=2000, meta_batch_size=16, outer_lr=1e-3, eval_every=50, checkpoint_every=50
)
"""Adam at 1e-3 on batches of 16 (Chen et al.'s training settings), validated every 50 steps."""


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn finetune``."""
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a trained run on your class folders (DATA/train/<class>/)"
    )
    parser.add_argument("run_path", metavar="RUN", help="trained run folder or checkpoint")
    parser.add_argument("data", metavar="DATA", help="folder with train/<class>/ (and val/)")
    parser.add_argument("-o", "--out", default=None, help="output run folder (default: new)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the killed run in --out (its RUN and DATA are reused)",
    )
    parser.add_argument("--patience", type=int, default=5, help="validations without gain")
    parser.add_argument("--val-share", type=float, default=0.2, help="held out without val/")
    add_invert_argument(parser)
    parser.epilog = "Training settings are overridable as --train.steps=500 etc."
    parser.set_defaults(run=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    """Fine-tune, then write ``model.pt`` from the best validation checkpoint."""
    if args.patience < 1 or not 0 < args.val_share < 1:
        raise ConfigError("--patience must be >= 1 and --val-share in (0, 1)")
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out, the folder of the run to continue")
        out = Path(args.out)
        meta = _read_meta(out)
        config = _with_patience(
            resolve_config(None, args.overrides, base=read_config(out)), meta["patience"]
        )
        data = _read_data(meta, config)
        learner = _baseline(config)
    else:
        source, source_learner, _ = load_run(args.run_path)
        if source.data.dataset not in ("omniglot", "folder"):
            raise ConfigError(f"{source.name} is not an image classifier run; nothing to fine-tune")
        meta = {
            "source": str(args.run_path),
            "data": str(args.data),
            "invert": resolve_invert(source, args.invert),
            "channels": image_channels(source),
            "val_share": args.val_share,
            "patience": args.patience,
        }
        data = _read_data(meta, source)  # before anything is written: bad data changes nothing
        meta["class_names"] = data.class_names
        config = _with_patience(
            _finetune_config(source, len(data.class_names), args.overrides), args.patience
        )  # before anything is written: a setting that cannot stop early changes nothing
        learner = _baseline(config)
        learner.encoder.load_state_dict(encoder_state(source_learner.state_dict()))
        out = _new_out(config, args.out)
        write_config(config, out)
        atomic_write_text(json.dumps(meta, indent=2) + "\n", out / META_FILE)
    result = train_with_early_stopping(
        learner,
        data,
        config.train,
        out,
        resume=args.resume,
        extra_state={"config": to_dict(config)},
    )
    return _finish(config, learner, data, meta, out, result.step)


def _baseline(config: RunConfig) -> Baseline:
    learner = build_learner(config)
    assert isinstance(learner, Baseline)  # _finetune_config names a Baseline learner
    return learner


def _with_patience(config: RunConfig, patience: int) -> RunConfig:
    """``config`` with early stopping after ``patience`` validations.

    ``TrainConfig`` checks itself when replaced, so a setting that cannot stop early
    (``--train.eval_every=0``) is refused here, before the output folder is written.
    """
    return dataclasses.replace(config, train=dataclasses.replace(config.train, patience=patience))


def _read_data(meta: dict[str, Any], config: RunConfig) -> LabelledFolders:
    return read_labelled_folders(
        meta["data"],
        config.data.image_size,
        channels=meta["channels"],
        invert=meta["invert"],
        val_share=meta["val_share"],
    )


def _read_meta(out: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((out / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{out} is not a `metalearn finetune` run ({META_FILE}: {e})") from e
    return meta


def _finetune_config(source: RunConfig, n_classes: int, overrides: list[str]) -> RunConfig:
    """The source run's network and input format, a new head over ``n_classes`` classes."""
    name: Literal["baseline", "baseline-pp"] = (
        "baseline-pp" if source.algorithm.name == "baseline-pp" else "baseline"
    )
    config = dataclasses.replace(
        source,
        name=f"finetune-{source.name}",
        description=f"{source.name} fine-tuned on {n_classes} classes",
        algorithm=AlgorithmConfig(name=name, n_classes=n_classes, keep_head=True),
        train=DEFAULT_TRAIN,
    )
    return resolve_config(None, overrides, base=config)


def _new_out(config: RunConfig, out: str | None) -> Path:
    if out is None:
        return new_run_dir(config)
    path = Path(out)
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{path} is not empty: pass --resume to continue it, or another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _finish(
    config: RunConfig,
    learner: Any,
    data: LabelledFolders,
    meta: dict[str, Any],
    out: Path,
    last: int,
) -> int:
    """Load the best checkpoint, write ``model.pt`` for ``metalearn predict`` and report."""
    best = out / BEST_FILE if (out / BEST_FILE).is_file() else out / CHECKPOINT_FILE
    payload = load_checkpoint(best)
    learner.load_state_dict(payload["learner"])
    learner.eval()
    metrics = validation_metrics(learner, data.val_x, data.val_y)
    size = config.data.image_size
    # a fine-tuned model predicts with its trained head: no support set to re-adapt on
    support = (
        torch.zeros(0, meta["channels"], size, size),
        torch.zeros(0, dtype=torch.long),
        meta["class_names"],
    )
    model = personal_payload(
        config, learner, support, invert=meta["invert"], channels=meta["channels"]
    )
    atomic_save(model, out / MODEL_FILE)
    print(
        f"fine-tuned {len(meta['class_names'])} classes for {last} steps; {best.name} from step "
        f"{payload['step']}: validation accuracy {metrics['accuracy']:.4f} on "
        f"{len(data.val_y)} images"
    )
    print(f"run folder: {out}; predict with: metalearn predict {out / MODEL_FILE} IMAGES")
    return 0
