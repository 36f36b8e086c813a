"""PNG plots of a run: learning curves, and a metric against the adaptation steps.

One episode's images are :mod:`metalearn.training.episode_plot`.

matplotlib is an optional dependency (``pip install 'metalearn[plot]'``), imported only when a
plot is drawn. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so plotting
neither changes the user's backend nor keeps figures alive in a global registry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from metalearn.errors import ConfigError
from metalearn.training.evaluation import EvalResult
from metalearn.training.logger import read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_curves", "plot_steps"]

_METRICS = ("accuracy", "mse", "return")


class _HasMeanCI(Protocol):
    @property
    def mean(self) -> float: ...
    @property
    def ci95(self) -> float: ...


StepResults = Mapping[int, _HasMeanCI]


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure of ``width`` x ``height`` inches, without pyplot.

    Raises:
        ModuleNotFoundError: saying how to install matplotlib, when it is missing.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ModuleNotFoundError(
            "plotting needs matplotlib, an optional dependency: pip install 'metalearn[plot]'"
        ) from e
    return Figure(figsize=(width, height), layout="constrained")


def save_png(fig: Figure, out_png: str | Path) -> Path:
    """Write ``fig`` as a PNG (creating its folder) and return the path."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


def plot_curves(
    metrics_jsonl: str | Path, out_png: str | Path, *, title: str | None = None
) -> Path:
    """Plot train and validation loss, and accuracy (or MSE, or return), against the step.

    Meta-RL runs (rows with ``return_pre``) get one panel of the average return before and
    after adaptation, for training and validation tasks, instead of the loss (TRPO's surrogate,
    about 1e-9, says nothing about progress).

    Args:
        metrics_jsonl: a run's ``metrics.jsonl`` (rows with ``step`` and ``split``).
        out_png: where to write the PNG.
        title: a title above the panels (e.g. the run and preset name); long ones wrap.

    Returns:
        ``out_png`` as a path.

    Raises:
        ConfigError: if the file holds no rows.
    """
    rows = read_metrics(metrics_jsonl)
    if not rows:
        raise ConfigError(f"{metrics_jsonl} holds no metric rows; train with a run_dir first")
    return save_png(_curves_figure(rows, title), out_png)


def _curves_figure(rows: list[dict[str, Any]], title: str | None) -> Figure:
    panels = _panels(rows)
    fig = new_figure(5.0 * len(panels), 3.5)
    for ax, (name, series) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        for label, split, key, colour in series:
            points = [(r["step"], r[key]) for r in rows if r.get("split") == split and key in r]
            if points:
                steps, values = zip(*points, strict=True)
                # a lone training point (a run shorter than log_every) needs a marker to show
                style = "o--" if split == "val" else "-" if len(points) > 1 else "o"
                ax.plot(steps, values, style, color=colour, label=label)
        ax.set_xlabel("outer step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    wrapped_title(fig, title, 5.0 * len(panels))
    return fig


# (legend label, split, metric key, colour) per line
_Series = list[tuple[str, str, str, str]]


def _panels(rows: list[dict[str, Any]]) -> list[tuple[str, _Series]]:
    """Return ``(y label, lines)`` per panel of :func:`plot_curves`."""
    if any("return_pre" in row for row in rows):  # meta-RL
        lines: _Series = [
            ("train, before adaptation", "train", "return_pre", "tab:blue"),
            ("train, after adaptation", "train", "return_post", "tab:orange"),
            ("val, before adaptation", "val", "return_pre", "tab:blue"),
            ("val, after adaptation", "val", "return", "tab:orange"),
        ]
        return [("average return", lines)]
    metric = next((m for m in _METRICS if any(m in row for row in rows)), None)
    names = ["loss"] if metric is None else ["loss", metric]
    colours = {"train": "tab:blue", "val": "tab:orange"}
    return [(name, [(s, s, name, colours[s]) for s in ("train", "val")]) for name in names]


def wrapped_title(fig: Figure, title: str | None, width_inches: float) -> None:
    """Put ``title`` above the figure, wrapped to its width so that nothing is clipped."""
    if title:
        # about 9 characters per inch at 11 points
        width = max(20, int(9 * width_inches))
        lines = [textwrap.fill(line, width) for line in title.splitlines()]
        fig.suptitle("\n".join(lines), fontsize=11)


def plot_steps(
    results: EvalResult | StepResults | Mapping[str, EvalResult | StepResults],
    out_png: str | Path,
    *,
    ylabel: str | None = None,
    title: str | None = None,
) -> Path:
    """Plot a metric against the number of adaptation steps, with its 95% CI as a band.

    Args:
        results: a sweep (an :class:`EvalResult` from ``meta_test(..., inner_steps=...)``, or
            ``{steps: MeanCI}``), or several by curve label (e.g. ``{"MAML": ..., "pretrained":
            ..., "random init": ...}``). Any value with ``mean`` and ``ci95`` works, so
            meta-RL returns plot the same way.
        out_png: where to write the PNG.
        ylabel: the y-axis label (default: the metric of an :class:`EvalResult`, or "metric").
        title: an optional title.

    Returns:
        ``out_png`` as a path.
    """
    curves = _curves(results)
    if not any(curves.values()):
        raise ConfigError("plot_steps got no adaptation-step results; sweep inner_steps first")
    fig = new_figure(5.0, 3.5)
    ax = fig.subplots()
    for label, points in curves.items():
        steps = [s for s, _ in points]
        mean = torch.tensor([p.mean for _, p in points])
        ci = torch.tensor([p.ci95 for _, p in points])
        line = ax.plot(steps, mean, marker="o", label=label or None)[0]
        ax.fill_between(steps, mean - ci, mean + ci, color=line.get_color(), alpha=0.2)
    default = results.metric if isinstance(results, EvalResult) else "metric"
    ax.set_xlabel("adaptation steps")
    ax.set_ylabel(ylabel or default)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if any(curves):
        ax.legend()
    return save_png(fig, out_png)


def _curves(results: Any) -> dict[str, list[tuple[int, _HasMeanCI]]]:
    def points(sweep: Any) -> list[tuple[int, _HasMeanCI]]:
        summary = sweep.steps_summary() if isinstance(sweep, EvalResult) else sweep
        return sorted(summary.items())

    if isinstance(results, EvalResult) or all(isinstance(k, int) for k in results):
        return {"": points(results)}
    return {str(label): points(sweep) for label, sweep in results.items()}
