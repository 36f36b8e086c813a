"""Type aliases shared across metalearn. Imports nothing from metalearn."""

from __future__ import annotations

from typing import TypeAlias

from torch import Tensor

__all__ = ["Buffers", "Metrics", "Params"]

Params: TypeAlias = dict[str, Tensor]
"""Named parameters of a model, as used by ``torch.func.functional_call``."""

Buffers: TypeAlias = dict[str, Tensor]
"""Named buffers of a model."""

Metrics: TypeAlias = dict[str, Tensor]
"""Scalar metrics of a step or episode, by name (``"accuracy"``, ``"loss"``, ...)."""
