"""PNG plots of a run: learning curves, one episode's images, and metric vs adaptation steps.

matplotlib is an optional dependency (``pip install 'metalearn[plot]'``), imported only when a
plot is drawn. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so plotting
neither changes the user's backend nor keeps figures alive in a global registry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
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
    return _save(_curves_figure(rows, title), out_png)


def _curves_figure(rows: list[dict[str, Any]], title: str | None) -> Figure:
    panels = _panels(rows)
    fig = _figure(5.0 * len(panels), 3.5)
    for ax, (name, series) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        for label, split, key, colour in series:
            points = [(r["step"], r[key]) for r in rows if r.get("split") == split and key in r]
            if points:
                steps, values = zip(*points, strict=True)
                val = split == "val"
                ax.plot(steps, values, "o--" if val else "-", color=colour, label=label)
        ax.set_xlabel("outer step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _title(fig, title, 5.0 * len(panels))
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


def _title(fig: Figure, title: str | None, width_inches: float) -> None:
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
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    accuracy: float | None = None,
) -> Path:
    """Draw one image episode: a column per class, support rows above query rows.

    Support titles name the class; query titles give the predicted class (with its
    probability when known), green when right and red when wrong; without predictions they
    give the true class. With predictions, the figure title gives the episode's accuracy.

    Args:
        episode: one classification episode; ``support_x`` is ``(n_support, C, H, W)`` with
            ``C`` 1 or 3, or ``(n_support, H, W)``.
        out_png: where to write the PNG.
        predictions: ``(n_query,)`` predicted labels, or ``(n_query, n_way)`` logits.
        probabilities: ``(n_query, n_way)`` class probabilities (their argmax is the prediction
            when ``predictions`` is not given).
        class_names: a name per label (default: ``class 0``, ``class 1``, ...).
        title: a first title line (e.g. the run and preset name); long ones wrap.
        accuracy: the accuracy to report, e.g. over all of the episode's queries when only
            some are drawn (default: over the drawn queries).

    Returns:
        ``out_png`` as a path.
    """
    figure = _episode_figure(episode, predictions, probabilities, class_names, title, accuracy)
    return _save(figure, out_png)


def _episode_figure(
    episode: Episode,
    predictions: Tensor | None,
    probabilities: Tensor | None,
    class_names: Sequence[str] | None,
    title: str | None,
    accuracy: float | None,
) -> Figure:
    n_way = _check_image_episode(episode)
    names = [f"class {c}" for c in range(n_way)] if class_names is None else list(class_names)
    if len(names) != n_way:
        raise ConfigError(f"plot_episode got {len(names)} class names for {n_way} classes")
    if predictions is None and probabilities is not None:
        predictions = probabilities.argmax(-1)
    if predictions is not None and predictions.dim() == 2:
        predictions = predictions.argmax(-1)
    support = _by_class(episode.support_y, n_way)
    query = _by_class(episode.query_y, n_way)
    n_support_rows = max(map(len, support))
    n_rows = n_support_rows + max(map(len, query))
    fig = _figure(1.6 * n_way, 1.5 * n_rows + 0.6)
    axes = fig.subplots(n_rows, n_way, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for c in range(n_way):
        for row, i in enumerate(support[c]):
            _show(axes[row][c], episode.support_x[i])
            axes[row][c].set_title(_short(names[c]), fontsize=8)
        for row, i in enumerate(query[c], start=n_support_rows):
            text, colour = _query_title(c, i, names, predictions, probabilities)
            _show(axes[row][c], episode.query_x[i])
            axes[row][c].set_title(text, fontsize=7, color=colour)
    lines = [] if title is None else [title]
    if predictions is not None:
        if accuracy is None:
            accuracy = float((predictions == episode.query_y).float().mean())
        lines.append(f"{n_way}-way episode, accuracy {accuracy:.1%} (support above, queries below)")
    _title(fig, "\n".join(lines) or None, 1.6 * n_way)
    return fig


def _short(name: str, width: int = 18) -> str:
    """Return ``name`` on at most two lines of ``width`` characters (an ellipsis if longer)."""
    return "\n".join(textwrap.wrap(name, width, max_lines=2, placeholder="..."))


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
    label: int,
    index: int,
    names: Sequence[str],
    predictions: Tensor | None,
    probabilities: Tensor | None,
) -> tuple[str, str]:
    if predictions is None:
        return _short(names[label]), "black"
    predicted = int(predictions[index])
    text = _short(names[predicted])
    if probabilities is not None:
        text += f" ({float(probabilities[index, predicted]):.2f})"
    return text, _RIGHT if predicted == label else _WRONG


def _show(ax: Axes, image: Tensor) -> None:
    image = image.detach().to("cpu", torch.float32)
    if image.dim() == 3:
        image = image.permute(1, 2, 0)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    if image.dim() == 3 and image.shape[-1] == 1:
        image = image.squeeze(-1)
    ax.imshow(image.numpy(), cmap="gray" if image.dim() == 2 else None, vmin=0.0, vmax=1.0)
