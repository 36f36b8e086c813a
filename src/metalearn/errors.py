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
    """The meta-training loss became NaN or infinite. The message names the step."""
