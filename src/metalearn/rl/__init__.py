"""Meta-reinforcement learning: task families on Gymnasium, rollouts, returns and MAML-RL.

Importing this package registers the task families with Gymnasium (``gymnasium.make(
"metalearn/Navigation2D-v0")``). Modules that need gymnasium import it inside functions, or are
left out of this ``__init__`` (``navigation``, ``cheetah``), so this package imports without the
``rl`` extra. Must not import ``metalearn.data`` or ``metalearn.training``.
"""

from metalearn.rl.baseline import LinearFeatureBaseline
from metalearn.rl.batches import PolicyGradientBatch, RolloutData, policy_gradient_batch
from metalearn.rl.evaluation import (
    adaptation_returns,
    format_adaptation_table,
    plot_adaptation,
    write_adaptation_report,
)
from metalearn.rl.learner import MetaRLLearner
from metalearn.rl.policies import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob
from metalearn.rl.registration import ENV_HORIZONS, register_envs
from metalearn.rl.returns import discounted_returns, gae
from metalearn.rl.rollout import Trajectories, TrajectorySampler
from metalearn.rl.tasks import Task, TaskDistribution
from metalearn.rl.trpo import TRPOResult, conjugate_gradient, trpo_step

register_envs()

__all__ = [
    "MetaRLLearner",
    "PolicyGradientBatch",
    "RolloutData",
    "policy_gradient_batch",
    "GaussianMLPPolicy",
    "gaussian_kl",
    "gaussian_log_prob",
    "Task",
    "TaskDistribution",
    "Trajectories",
    "TrajectorySampler",
    "ENV_HORIZONS",
    "register_envs",
    "discounted_returns",
    "gae",
    "LinearFeatureBaseline",
    "TRPOResult",
    "conjugate_gradient",
    "trpo_step",
    "adaptation_returns",
    "format_adaptation_table",
    "plot_adaptation",
    "write_adaptation_report",
]
