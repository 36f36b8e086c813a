"""metalearn: meta-learning in deep networks ("learning to learn") on PyTorch.

The curated public API; see the subpackages for the rest (``metalearn.data``,
``metalearn.algorithms``, ``metalearn.training``, ``metalearn.nn``, ``metalearn.rl``).
"""

from metalearn.algorithms import (
    ANIL,
    MAML,
    Learner,
    MAMLPlusPlus,
    MatchingNet,
    MetaSGD,
    ProtoNet,
    Reptile,
    SiameseNet,
)
from metalearn.data import (
    EpisodeFolder,
    ImageFolderDataset,
    SinusoidTasks,
    TaskSampler,
    load_omniglot,
)
from metalearn.episode import BATCH_DIMS, Episode, TaskSource
from metalearn.nn.backbones import MLP, Conv4
from metalearn.training import EvalResult, TrainConfig, meta_test, meta_train

__version__ = "0.1.0"

__all__ = [
    "BATCH_DIMS",
    "Episode",
    "TaskSource",
    "TaskSampler",
    "SinusoidTasks",
    "EpisodeFolder",
    "ImageFolderDataset",
    "load_omniglot",
    "Conv4",
    "MLP",
    "Learner",
    "MAML",
    "MAMLPlusPlus",
    "ANIL",
    "MetaSGD",
    "Reptile",
    "ProtoNet",
    "MatchingNet",
    "SiameseNet",
    "TrainConfig",
    "EvalResult",
    "meta_train",
    "meta_test",
    "__version__",
]
