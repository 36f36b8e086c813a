"""A PNG grid of one image episode: a column per class, support above, predictions below.

matplotlib is an optional dependency (``pip install 'metalearn[plot]'``), imported only when a
plot is drawn (see :mod:`metalearn.training.plots`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training.plots import new_figure, save_png, wrapped_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_episode"]

_RIGHT, _WRONG = "tab:green", "tab:red"


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
    return save_png(figure, out_png)


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
    fig = new_figure(1.6 * n_way, 1.5 * n_rows + 0.6)
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
    wrapped_title(fig, "\n".join(lines) or None, 1.6 * n_way)
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
