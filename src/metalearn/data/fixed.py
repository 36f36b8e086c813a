"""Fixed episodes on disk: a benchmark read in order, with no sampling.

Layout::

    root/<episode>/support/<class>/<image files>
    root/<episode>/query/<class>/<image files>

Episodes are read in sorted order of their folder names. Within an episode, the classes in
sorted order of their names get labels ``0..n_way-1``, the same in the support and the query
set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from metalearn.data.folders import list_class_folders, list_images, read_labelled_images
from metalearn.data.stream import check_count
from metalearn.data.transforms import Channels, normalize_size, to_float
from metalearn.episode import Episode
from metalearn.errors import DatasetError, EpisodeSpecError

__all__ = ["EpisodeFolder"]


class EpisodeFolder:
    """A folder of fixed episodes, read in order (a benchmark, not a task distribution).

    The layout is checked when the folder is opened; images are decoded when an episode is
    read. ``support_x`` is ``(n_support, channels, *image_size)`` float32 in ``[0, 1]`` with
    examples grouped by label (files in sorted order), and likewise ``query_x``. Classes may
    hold different numbers of images.

    Args:
        root: the folder holding one sub-folder per episode.
        image_size: ``(height, width)``, or one int for square images.
        channels: 1 (grayscale) or 3 (RGB).
        invert: store ``1 - value`` (dark strokes on a light page become 1 on 0).

    Raises:
        DataRootNotFoundError: if ``root`` is not a folder.
        DatasetError: if an episode lacks ``support/`` or ``query/``, its support and query
            classes differ (the message names the episode and the classes), or a class
            folder is empty or cannot be read.

    Examples:
        >>> benchmark = EpisodeFolder("my_benchmark", image_size=28)  # doctest: +SKIP
        >>> for episode in benchmark:  # doctest: +SKIP
        ...     ...
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | tuple[int, int] = (28, 28),
        *,
        channels: Channels = 1,
        invert: bool = False,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.root = Path(root)
        self.image_size = normalize_size(image_size)
        self.channels: Channels = channels
        self.invert = invert
        self._episodes = [_index_episode(p) for p in list_class_folders(self.root, what="episode")]

    @property
    def names(self) -> list[str]:
        """The episode folder names, in reading order."""
        return [name for name, _, _ in self._episodes]

    def __len__(self) -> int:
        return len(self._episodes)

    def __repr__(self) -> str:
        return f"EpisodeFolder({str(self.root)!r}, {len(self)} episodes)"

    def __getitem__(self, i: int) -> Episode:
        """Read episode ``i`` (in sorted order of the episode folder names).

        Raises:
            CorruptImageError: if an image cannot be decoded (the message names the file).
        """
        _, support, query = self._episodes[i]
        sx, sy = self._read(support)
        qx, qy = self._read(query)
        return Episode(sx, sy, qx, qy, len(support))

    def __iter__(self) -> Iterator[Episode]:
        return (self[i] for i in range(len(self)))

    def episodes(
        self, n: int | None = None, *, seed: int | None = None, batch_size: int | None = None
    ) -> Iterator[Episode]:
        """Yield the first ``n`` episodes (all by default) in order, like a sampler's eval set.

        Args:
            n: number of episodes; at most ``len(self)``.
            seed: accepted for symmetry with samplers and must be ``None``: the episodes are
                fixed on disk.
            batch_size: yield stacked batches of up to this many episodes (they need equal
                shapes).

        Raises:
            EpisodeSpecError: if ``n`` exceeds the number of episodes or ``seed`` is given.
        """
        if seed is not None:
            raise EpisodeSpecError(f"fixed episodes take no seed, got seed={seed!r}")
        n = len(self) if n is None else check_count("n", n, 0)
        if n > len(self):
            raise EpisodeSpecError(f"asked for {n} episodes; {str(self.root)!r} holds {len(self)}")
        step = 1 if batch_size is None else check_count("batch_size", batch_size, 1)
        for start in range(0, n, step):
            tasks = [self[i] for i in range(start, min(start + step, n))]
            yield tasks[0] if batch_size is None else Episode.stack(tasks)

    def _read(self, classes: list[list[Path]]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = read_labelled_images(classes, self.image_size, self.channels, self.invert)
        return to_float(x), y


def _index_episode(folder: Path) -> tuple[str, list[list[Path]], list[list[Path]]]:
    """Return ``(name, support files by class, query files by class)`` of one episode."""
    sets = {}
    for part in ("support", "query"):
        if not (folder / part).is_dir():
            raise DatasetError(
                f"episode {str(folder)!r} has no {part}/ folder; expected "
                f"{folder}/support/<class>/* and {folder}/query/<class>/*"
            )
        sets[part] = {p.name: p for p in list_class_folders(folder / part)}
    support, query = sets["support"], sets["query"]
    if support.keys() != query.keys():
        raise DatasetError(
            f"episode {str(folder)!r}: support classes {sorted(support)} differ from query "
            f"classes {sorted(query)}; classes only in support: "
            f"{sorted(support.keys() - query.keys())}, only in query: "
            f"{sorted(query.keys() - support.keys())}"
        )
    names = sorted(support)
    return (
        folder.name,
        [list_images(support[c]) for c in names],
        [list_images(query[c]) for c in names],
    )
