"""metalearn.nn: backbones, per-task BatchNorm and the conversion of a user's network to it."""

from metalearn.nn.backbones import TaskBatchNorm
from metalearn.nn.convert import convert_batchnorm

__all__ = ["TaskBatchNorm", "convert_batchnorm"]
