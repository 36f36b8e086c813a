"""Class-indexed datasets: a per-class index over one in-memory tensor.

A :class:`TensorClassDataset` keeps every example once, as ``uint8`` (images) or float, and a
class is a list of rows of that tensor plus a quarter-turn count. So Omniglot's rotated classes
share their images with the unrotated ones and rotation is applied when a task is gathered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from metalearn.data.transforms import rot90_index, to_float

__all__ = ["ClassDataset", "TensorClassDataset"]


@runtime_checkable
class ClassDataset(Protocol):
    """What :class:`~metalearn.data.TaskSampler` needs from a dataset.

    Examples of class ``c`` are numbered ``0 .. class_sizes[c] - 1``.
    """

    @property
    def n_classes(self) -> int:
        """The number of classes."""

    @property
    def class_sizes(self) -> Tensor:
        """``(n_classes,)`` int64: the number of examples of each class."""

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. ``(1, 28, 28)``."""

    def class_name(self, c: int) -> str:
        """A readable name of class ``c``, for error messages."""

    def gather(self, classes: Tensor, indices: Tensor) -> Tensor:
        """Return examples by class and index within the class.

        Args:
            classes: ``(*batch,)`` int64 class ids.
            indices: ``(*batch, m)`` int64 example indices within each class.

        Returns:
            ``(*batch, m, *example_shape)`` float32.
        """


class TensorClassDataset:
    """A :class:`ClassDataset` over one tensor of examples and their integer labels.

    ``uint8`` examples are scaled to float32 in ``[0, 1]`` when gathered; floating examples are
    returned as float32.

    Args:
        x: ``(n, *example_shape)`` examples.
        y: ``(n,)`` integer labels in ``[0, n_classes)``; every class needs an example.
        class_names: a name per class (default ``"class0"``, ``"class1"``, ...).

    Raises:
        ValueError: if the shapes disagree, a label is negative, a class has no example or
            the number of names differs from the number of classes.
    """

    def __init__(self, x: Tensor, y: Tensor, class_names: Sequence[str] | None = None) -> None:
        if y.dim() != 1 or x.shape[0] != y.shape[0] or y.is_floating_point():
            raise ValueError(
                f"need x of shape (n, ...) and integer y of shape (n,), got x {tuple(x.shape)} "
                f"and y {tuple(y.shape)} {y.dtype}"
            )
        y = y.long()
        if y.numel() and y.min() < 0:
            raise ValueError(f"labels must be >= 0, got {y.min().item()}")
        sizes = torch.bincount(y)
        if (sizes == 0).any():
            missing = torch.nonzero(sizes == 0).flatten()[:5].tolist()
            raise ValueError(f"labels must cover 0..{sizes.numel() - 1}; no example of {missing}")
        # A stable sort keeps each class's examples in their original order.
        rows = torch.sort(y, stable=True).indices
        names = [f"class{c}" for c in range(sizes.numel())] if class_names is None else class_names
        self._init(x, rows, sizes, torch.zeros_like(sizes), list(names))

    def _init(
        self, x: Tensor, rows: Tensor, sizes: Tensor, turns: Tensor, names: list[str]
    ) -> None:
        if len(names) != sizes.numel():
            raise ValueError(f"got {len(names)} class names for {sizes.numel()} classes")
        self._x = x
        self._rows = rows
        self._sizes = sizes
        self._offsets = torch.cumsum(sizes, 0) - sizes
        self._turns = turns
        self._names = names
        self._rotated = bool((turns != 0).any())
        self._rotation_table = rot90_index(x.shape[-1]) if self._rotated else None

    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return self._sizes.numel()

    @property
    def class_sizes(self) -> Tensor:
        """``(n_classes,)`` int64: the number of examples of each class."""
        return self._sizes

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. ``(1, 28, 28)``."""
        return tuple(self._x.shape[1:])

    @property
    def class_names(self) -> list[str]:
        """The name of every class, in class-id order."""
        return list(self._names)

    def class_name(self, c: int) -> str:
        """A readable name of class ``c``, for error messages."""
        return self._names[c]

    def __len__(self) -> int:
        """The number of examples over all classes (a rotated copy counts once per rotation)."""
        return int(self._sizes.sum())

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.example_shape))
        return f"{type(self).__name__}({self.n_classes} classes, {len(self)} examples of {shape})"

    def gather(self, classes: Tensor, indices: Tensor) -> Tensor:
        """Return examples by class and index within the class, rotated as the class says.

        Args:
            classes: ``(*batch,)`` int64 class ids.
            indices: ``(*batch, m)`` int64 example indices within each class.

        Returns:
            ``(*batch, m, *example_shape)`` float32 (``uint8`` storage scaled to ``[0, 1]``).

        Raises:
            IndexError: if an index is outside its class.
        """
        if (indices < 0).any() or (indices >= self._sizes[classes].unsqueeze(-1)).any():
            raise IndexError("an example index is outside its class (0 <= index < class size)")
        rows = self._rows[self._offsets[classes].unsqueeze(-1) + indices]
        # index_select is several times faster than advanced indexing for a flat row list.
        x = self._x.index_select(0, rows.flatten()).view(*rows.shape, *self.example_shape)
        if self._rotated:
            assert self._rotation_table is not None
            turns = self._rotation_table[self._turns[classes]]  # (*batch, side * side)
            flat = x.flatten(-2)  # (*batch, m, channels, side * side)
            index = turns[..., None, None, :].expand_as(flat)
            x = flat.gather(-1, index).view_as(x)
        return to_float(x)

    def select(
        self, classes: Sequence[int] | Tensor, quarter_turns: Sequence[int] | Tensor | None = None
    ) -> TensorClassDataset:
        """Return a dataset of some of these classes, optionally rotated, sharing the storage.

        Args:
            classes: ``(k,)`` class ids of this dataset; one may appear several times.
            quarter_turns: ``(k,)`` counter-clockwise quarter-turns (0-3) added to each selected
                class; a rotated class is named ``"<name>/rotDDD"`` (e.g. ``.../rot090``), as in
                the Vinyals split files.

        Raises:
            ValueError: if a class id is out of range, the lengths differ, or rotation is asked
                of examples that are not square images ``(channels, side, side)``.
        """
        ids = torch.as_tensor(classes, dtype=torch.long).flatten()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_classes):
            raise ValueError(f"class ids must be in [0, {self.n_classes}), got {ids.tolist()[:5]}")
        turns = self._turns[ids].clone()
        names = [self._names[c] for c in ids.tolist()]
        if quarter_turns is not None:
            extra = torch.as_tensor(quarter_turns, dtype=torch.long).flatten()
            if extra.shape != ids.shape or (extra.numel() and (extra.min() < 0 or extra.max() > 3)):
                raise ValueError(
                    f"need one quarter_turn in 0..3 per class; got {extra.tolist()[:5]} for "
                    f"{ids.numel()} classes"
                )
            shape = self.example_shape
            if len(shape) != 3 or shape[1] != shape[2]:
                raise ValueError(f"rotation needs square images (c, s, s), got {shape}")
            turns = (turns + extra) % 4
            names = [f"{n}/rot{90 * k:03d}" for n, k in zip(names, extra.tolist(), strict=True)]
        sizes = self._sizes[ids]
        spans = [
            self._rows[o : o + s]
            for o, s in zip(self._offsets[ids].tolist(), sizes.tolist(), strict=True)
        ]
        rows = torch.cat(spans) if spans else self._rows[:0]
        subset = TensorClassDataset.__new__(TensorClassDataset)
        subset._init(self._x, rows, sizes.clone(), turns, names)
        return subset

    def with_rotations(self, quarter_turns: Sequence[int] = (0, 1, 2, 3)) -> TensorClassDataset:
        """Return every class once per rotation: class ``c`` at turn ``t`` becomes a new class.

        Classes are ordered class-major (``c0/rot000, c0/rot090, ..., c1/rot000, ...``).
        """
        k = len(quarter_turns)
        ids = torch.arange(self.n_classes).repeat_interleave(k)
        return self.select(ids, torch.as_tensor(list(quarter_turns)).repeat(self.n_classes))
