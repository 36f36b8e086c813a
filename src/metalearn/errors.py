"""The library's exceptions. Each message names the offending value, the constraint and the fix.

This module imports nothing from metalearn.
"""

from __future__ import annotations

__all__ = [
    "MetalearnError",
    "DataRootNotFoundError",
    "DatasetError",
    "CorruptImageError",
    "EpisodeSpecError",
    "ConfigError",
    "CheckpointError",
    "TrainingDivergedError",
    "TaskSpecError",
]


class MetalearnError(Exception):
    """Base class of every error metalearn raises on bad input."""


class DataRootNotFoundError(MetalearnError, FileNotFoundError):
    """The data root, or an archive expected under it, is missing."""


class DatasetError(MetalearnError, ValueError):
    """A dataset on disk does not have the expected content (counts, layout, truncation)."""


class CorruptImageError(DatasetError):
    """An image file cannot be decoded. The message names the file."""


class EpisodeSpecError(MetalearnError, ValueError):
    """An episode asks for more classes or examples than the data holds."""


class ConfigError(MetalearnError, ValueError):
    """A configuration value or override is invalid."""


class CheckpointError(MetalearnError, ValueError):
    """A checkpoint cannot be read or does not match what it is loaded into."""


class TaskSpecError(MetalearnError, ValueError):
    """A reinforcement-learning task (goal, velocity, direction) is malformed or missing."""


class TrainingDivergedError(MetalearnError, FloatingPointError):
    """The meta-training loss, a meta-gradient or a weight became NaN or infinite.

    Attributes:
        step: the outer step that diverged, when known.
        reason: what was not finite, without advice (e.g. ``"the meta-training loss is nan"``).
    """

    def __init__(self, message: str, *, step: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.step = step
        self.reason = message if reason is None else reason
