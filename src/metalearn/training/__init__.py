"""The one meta-training loop, meta-test evaluation, checkpoints, logging and plots."""

from metalearn.training.checkpoint import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    load_checkpoint,
    save_checkpoint,
)
from metalearn.training.episode_plot import plot_episode
from metalearn.training.evaluation import EvalResult, EvaluatedLearner, meta_test
from metalearn.training.logger import MetricsLogger, read_metrics
from metalearn.training.loop import TrainResult, meta_train
from metalearn.training.objective import MetaObjective
from metalearn.training.plots import plot_curves, plot_steps
from metalearn.training.settings import TrainConfig

__all__ = [
    "MetaObjective",
    "TrainConfig",
    "TrainResult",
    "meta_train",
    "EvalResult",
    "EvaluatedLearner",
    "meta_test",
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "load_checkpoint",
    "save_checkpoint",
    "MetricsLogger",
    "read_metrics",
    "plot_curves",
    "plot_episode",
    "plot_steps",
]
