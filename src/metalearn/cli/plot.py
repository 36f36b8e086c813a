"""``metalearn plot``: learning curves of a run and a PNG grid of one episode with predictions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from metalearn.build import build_tasks, is_rl
from metalearn.cli.common import load_run
from metalearn.config import RunConfig
from metalearn.training import METRICS_FILE, plot_curves, plot_episode

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
    written = [plot_curves(run_dir / METRICS_FILE, run_dir / "curves.png")]
    config, learner, _ = load_run(run_dir)
    if config.data.dataset != "sinusoid" and not is_rl(config):
        written.append(_plot_test_episode(config, learner, run_dir / "episode.png"))
    return written


def _plot_test_episode(
    config: RunConfig, learner: Any, out: Path, *, max_query_rows: int = 3
) -> Path:
    episode = next(iter(build_tasks(config, "test").episodes(1)))  # type: ignore[attr-defined]
    with torch.no_grad():
        state = learner.adapt(episode.support_x, episode.support_y, episode.n_way)
        probabilities = learner.predict(state, episode.query_x).softmax(-1)
    # Queries are grouped by label: keep the first few of each class so the grid stays legible.
    n_query = episode.query_y.numel() // episode.n_way
    keep = torch.arange(episode.query_y.numel()) % n_query < max_query_rows
    shown = episode._replace(query_x=episode.query_x[keep], query_y=episode.query_y[keep])
    return plot_episode(shown, out, probabilities=probabilities[keep])
