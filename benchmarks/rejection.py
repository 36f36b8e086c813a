"""AUROC of "none of these": held-out Omniglot classes against noise and out-of-domain images.

Trains a ProtoNet briefly (or loads a run's weights), calibrates a rejection threshold on
validation episodes (``calibrate_on_classes``, 95% recall by default) and then, on test
episodes (classes never used for training or calibration), scores the queries of the episode's
own classes (known) against as many unknown images of each kind, each set predicted against the
episode's prototypes in a batch of its own:

* ``noise``: uniform random pixels;
* ``inverted``: the episode's query images inverted (black strokes on white, the mistake the
  ``--invert`` option of ``adapt`` and ``predict`` exists for);
* ``shapes``: random filled rectangles and ellipses.

It prints the AUROC of each kind (1: always separable, 0.5: chance), the recall of the known
queries at the calibrated threshold and the fraction of each kind it rejects.

    python benchmarks/rejection.py --data-root ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch import Tensor

from metalearn import Conv4, ProtoNet, TaskSampler, TrainConfig, load_omniglot, meta_train
from metalearn.algorithms.inductive import adapt_inductive, predict_inductive
from metalearn.applications import auroc, calibrate_on_classes
from metalearn.applications.rejection import known_scores

KINDS = ("noise", "inverted", "shapes")


def random_shapes(n: int, size: int, generator: torch.Generator) -> Tensor:
    """Return ``(n, 1, size, size)`` images of one filled rectangle or ellipse each (1 on 0)."""
    grid = torch.arange(size, dtype=torch.float32)
    y, x = grid[:, None], grid[None, :]
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        cy, cx, ry, rx = (torch.rand(4, generator=generator) * torch.tensor([0.6, 0.6, 0.3, 0.3])
                          + torch.tensor([0.2, 0.2, 0.1, 0.1])) * size  # fmt: skip
        if torch.rand((), generator=generator) < 0.5:
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        else:
            inside = ((y - cy).abs() <= ry) & ((x - cx).abs() <= rx)
        images[i, 0] = inside.float()
    return images


def unknown_images(kind: str, query_x: Tensor, generator: torch.Generator) -> Tensor:
    """Return as many unknown images of ``kind`` as there are queries."""
    if kind == "noise":
        return torch.rand(query_x.shape, generator=generator)
    if kind == "inverted":
        return 1 - query_x
    return random_shapes(len(query_x), query_x.shape[-1], generator)


def score_test_episodes(learner: ProtoNet, sampler: TaskSampler, n: int) -> dict[str, Tensor]:
    """Return the scores of known queries and of each unknown kind over ``n`` test episodes."""
    generator = torch.Generator().manual_seed(1)
    scores: dict[str, list[Tensor]] = {"known": [], **{kind: [] for kind in KINDS}}
    with torch.no_grad():
        for episode in sampler.episodes(n):
            # inductive, as personal models predict and as the threshold is calibrated
            state = adapt_inductive(learner, episode.support_x, episode.support_y, episode.n_way)
            known = predict_inductive(learner, state, episode.query_x)
            scores["known"].append(known_scores(known))
            for kind in KINDS:
                images = unknown_images(kind, episode.query_x, generator)
                scores[kind].append(known_scores(predict_inductive(learner, state, images)))
    return {name: torch.cat(values) for name, values in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--steps", type=int, default=300, help="ProtoNet training episodes")
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--n-shot", type=int, default=1)
    parser.add_argument("--recall", type=float, default=0.95, help="target known-class recall")
    parser.add_argument("--calibration-episodes", type=int, default=300)
    parser.add_argument("--test-episodes", type=int, default=300)
    args = parser.parse_args()

    torch.manual_seed(0)
    splits = {s: load_omniglot(args.data_root, "vinyals", s) for s in ("train", "val", "test")}
    learner = ProtoNet(Conv4(hidden_channels=32))
    config = TrainConfig(steps=args.steps, meta_batch_size=1, outer_lr=3e-3, eval_every=0,
                         checkpoint_every=0, progress=False)  # fmt: skip
    meta_train(learner, TaskSampler(splits["train"], 20, 1, 5, seed=0), config)
    learner.eval()
    rejection = calibrate_on_classes(
        learner, splits["val"], n_way=args.n_way, n_shot=args.n_shot,
        n_episodes=args.calibration_episodes, target_recall=args.recall,
    )  # fmt: skip
    test = TaskSampler(splits["test"], args.n_way, args.n_shot, 5, seed=1)
    scores = score_test_episodes(learner, test, args.test_episodes)
    known = scores["known"]
    report = {
        "setting": f"ProtoNet {args.steps} episodes, {args.n_way}-way {args.n_shot}-shot",
        "threshold": rejection.threshold,
        "calibration_recall": rejection.recall,
        "test_recall": float((known >= rejection.threshold).float().mean()),
        "n_known": len(known),
    }
    for kind in KINDS:
        report[f"auroc_{kind}"] = auroc(known, scores[kind])
        report[f"rejected_{kind}"] = float((scores[kind] < rejection.threshold).float().mean())
    print(json.dumps({k: round(v, 4) if isinstance(v, float) and math.isfinite(v) else v
                      for k, v in report.items()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
