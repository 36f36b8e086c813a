"""``metalearn plot``: learning curves of a run and a PNG grid of one episode with predictions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from metalearn.build import build_dataset, episode_spec, is_rl
from metalearn.cli.common import load_run
from metalearn.config import RunConfig
from metalearn.episode import Episode
from metalearn.training import METRICS_FILE, plot_curves, plot_episode
from metalearn.workflows import run_title

__all__ = ["add_parser", "plot_run", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn plot``."""
    parser = subparsers.add_parser("plot", help="learning curves and an episode grid of a run")
    parser.add_argument("run_path", metavar="RUN", help="run folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write ``curves.png`` and ``episode.png`` into the run folder."""
    for path in plot_run(Path(args.run_path)):
        print(f"wrote {path}")
    return 0


def plot_run(run_dir: Path) -> list[Path]:
    """Plot the curves of ``run_dir`` and, for image tasks, one test episode with predictions."""
    config, learner, _ = load_run(run_dir)
    title = run_title(run_dir, config)
    written = [plot_curves(run_dir / METRICS_FILE, run_dir / "curves.png", title=title)]
    if config.data.dataset != "sinusoid" and not is_rl(config):
        written.append(_plot_test_episode(config, learner, run_dir / "episode.png", title))
    return written


def _plot_test_episode(
    config: RunConfig, learner: Any, out: Path, title: str, *, max_query_rows: int = 3
) -> Path:
    episode, names = _named_test_episode(config)
    with torch.no_grad():
        state = learner.adapt(episode.support_x, episode.support_y, episode.n_way)
        probabilities = learner.predict(state, episode.query_x).softmax(-1)
    accuracy = float((probabilities.argmax(-1) == episode.query_y).float().mean())
    # Queries are grouped by label: keep the first few of each class so the grid stays legible.
    n_query = episode.query_y.numel() // len(names)
    keep = torch.arange(episode.query_y.numel()) % n_query < max_query_rows
    shown = episode._replace(query_x=episode.query_x[keep], query_y=episode.query_y[keep])
    return plot_episode(
        shown,
        out,
        probabilities=probabilities[keep],
        class_names=names,
        title=f"{title}: test classes",
        accuracy=accuracy,
    )


def _named_test_episode(config: RunConfig) -> tuple[Episode, list[str]]:
    """Draw one test episode (seeded by ``eval.seed``) and the names of its classes."""
    dataset = build_dataset(config, "test")
    n_way, n_shot, n_query = episode_spec(config, "test")
    generator = torch.Generator().manual_seed(config.eval.seed)
    classes = torch.randperm(dataset.n_classes, generator=generator)[:n_way]
    indices = torch.stack(
        [
            torch.randperm(int(dataset.class_sizes[c]), generator=generator)[: n_shot + n_query]
            for c in classes.tolist()
        ]
    )
    images = dataset.gather(classes, indices)  # (n_way, n_shot + n_query, *image_shape)
    labels = torch.arange(n_way)
    episode = Episode(
        images[:, :n_shot].flatten(0, 1),
        labels.repeat_interleave(n_shot),
        images[:, n_shot:].flatten(0, 1),
        labels.repeat_interleave(n_query),
        n_way,
    )
    return episode, [dataset.class_name(c) for c in classes.tolist()]
