"""metalearn: meta-learning in deep networks ("learning to learn") on PyTorch."""

from metalearn.episode import BATCH_DIMS, Episode, TaskSource

__version__ = "0.1.0"

__all__ = ["BATCH_DIMS", "Episode", "TaskSource", "__version__"]
