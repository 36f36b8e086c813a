"""PNG plots of a run: learning curves, one episode's images, and metric vs adaptation steps.

matplotlib is an optional dependency (``pip install 'metalearn[plot]'``), imported only when a
plot is drawn. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so plotting
neither changes the user's backend nor keeps figures alive in a global registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training.evaluation import EvalResult
from metalearn.training.logger import read_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_curves", "plot_episode", "plot_steps"]

_METRICS = ("accuracy", "mse", "return")
_RIGHT, _WRONG = "tab:green", "tab:red"


class _HasMeanCI(Protocol):
    @property
    def mean(self) -> float: ...
    @property
    def ci95(self) -> float: ...


StepResults = Mapping[int, _HasMeanCI]


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ModuleNotFoundError(
            "plotting needs matplotlib, an optional dependency: pip install 'metalearn[plot]'"
        ) from e
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


def plot_curves(metrics_jsonl: str | Path, out_png: str | Path) -> Path:
    """Plot train and validation loss, and accuracy (or MSE, or return), against the step.

    Args:
        metrics_jsonl: a run's ``metrics.jsonl`` (rows with ``step`` and ``split``).
        out_png: where to write the PNG.

    Returns:
        ``out_png`` as a path.

    Raises:
        ConfigError: if the file holds no rows.
    """
    rows = read_metrics(metrics_jsonl)
    if not rows:
        raise ConfigError(f"{metrics_jsonl} holds no metric rows; train with a run_dir first")
    metric = next((m for m in _METRICS if any(m in row for row in rows)), None)
    names = ["loss"] if metric is None else ["loss", metric]
    fig = _figure(5.0 * len(names), 3.5)
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        for split in ("train", "val"):
            points = [(r["step"], r[name]) for r in rows if r.get("split") == split and name in r]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if split == "val" else None, label=split)
        ax.set_xlabel("outer step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out_png)


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
    fig = _figure(5.0, 3.5)
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
    return _save(fig, out_png)


def _curves(results: Any) -> dict[str, list[tuple[int, _HasMeanCI]]]:
    def points(sweep: Any) -> list[tuple[int, _HasMeanCI]]:
        summary = sweep.steps_summary() if isinstance(sweep, EvalResult) else sweep
        return sorted(summary.items())

    if isinstance(results, EvalResult) or all(isinstance(k, int) for k in results):
        return {"": points(results)}
    return {str(label): points(sweep) for label, sweep in results.items()}


def plot_episode(
    episode: Episode,
    out_png: str | Path,
    predictions: Tensor | None = None,
    probabilities: Tensor | None = None,
) -> Path:
    """Draw one image episode: a column per class, support rows above query rows.

    Query titles give the predicted class (with its probability when known), green when right
    and red when wrong; without predictions they give the true label.

    Args:
        episode: one classification episode; ``support_x`` is ``(n_support, C, H, W)`` with
            ``C`` 1 or 3, or ``(n_support, H, W)``.
        out_png: where to write the PNG.
        predictions: ``(n_query,)`` predicted labels, or ``(n_query, n_way)`` logits.
        probabilities: ``(n_query, n_way)`` class probabilities (their argmax is the prediction
            when ``predictions`` is not given).

    Returns:
        ``out_png`` as a path.
    """
    n_way = _check_image_episode(episode)
    if predictions is None and probabilities is not None:
        predictions = probabilities.argmax(-1)
    if predictions is not None and predictions.dim() == 2:
        predictions = predictions.argmax(-1)
    support = _by_class(episode.support_y, n_way)
    query = _by_class(episode.query_y, n_way)
    n_support_rows = max(map(len, support))
    n_rows = n_support_rows + max(map(len, query))
    fig = _figure(1.3 * n_way, 1.4 * n_rows)
    axes = fig.subplots(n_rows, n_way, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for c in range(n_way):
        for row, i in enumerate(support[c]):
            _show(axes[row][c], episode.support_x[i])
            axes[row][c].set_title(f"support {c}", fontsize=8)
        for row, i in enumerate(query[c], start=n_support_rows):
            title, colour = _query_title(c, i, predictions, probabilities)
            _show(axes[row][c], episode.query_x[i])
            axes[row][c].set_title(title, fontsize=8, color=colour)
    return _save(fig, out_png)


def _check_image_episode(episode: Episode) -> int:
    if episode.n_way is None or episode.is_batched:
        raise ConfigError(
            "plot_episode draws one classification episode; got "
            f"{'a stacked batch' if episode.is_batched else 'a regression episode'}: "
            "pass a single episode (e.g. batch.unbind()[0])"
        )
    shape = tuple(episode.support_x.shape[1:])
    if not (len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))):
        raise ConfigError(f"plot_episode needs images (C, H, W) or (H, W); got {shape}")
    return episode.n_way


def _by_class(labels: Tensor, n_way: int) -> list[list[int]]:
    return [torch.nonzero(labels == c).flatten().tolist() for c in range(n_way)]


def _query_title(
    label: int, index: int, predictions: Tensor | None, probabilities: Tensor | None
) -> tuple[str, str]:
    if predictions is None:
        return f"query {label}", "black"
    predicted = int(predictions[index])
    title = f"pred {predicted}"
    if probabilities is not None:
        title += f" ({float(probabilities[index, predicted]):.2f})"
    return title, _RIGHT if predicted == label else _WRONG


def _show(ax: Axes, image: Tensor) -> None:
    image = image.detach().to("cpu", torch.float32)
    if image.dim() == 3:
        image = image.permute(1, 2, 0)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    if image.dim() == 3 and image.shape[-1] == 1:
        image = image.squeeze(-1)
    ax.imshow(image.numpy(), cmap="gray" if image.dim() == 2 else None, vmin=0.0, vmax=1.0)
