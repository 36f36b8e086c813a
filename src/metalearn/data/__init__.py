"""Data sources: class-indexed datasets, task samplers, Omniglot, class folders, sinusoids.

Everything here produces :class:`~metalearn.episode.Episode` s; learning code never imports
this package.
"""

from metalearn.data.base import ClassDataset, TensorClassDataset
from metalearn.data.download import download_omniglot
from metalearn.data.fixed import EpisodeFolder
from metalearn.data.folders import ImageFolderDataset
from metalearn.data.omniglot import find_omniglot, load_omniglot
from metalearn.data.sampler import TaskSampler
from metalearn.data.sinusoid import SinusoidTasks, sinusoid
from metalearn.data.stream import EpisodeStream
from metalearn.data.synthetic import gaussian_clusters

__all__ = [
    "ClassDataset",
    "TensorClassDataset",
    "TaskSampler",
    "EpisodeStream",
    "load_omniglot",
    "find_omniglot",
    "download_omniglot",
    "ImageFolderDataset",
    "EpisodeFolder",
    "SinusoidTasks",
    "sinusoid",
    "gaussian_clusters",
]
