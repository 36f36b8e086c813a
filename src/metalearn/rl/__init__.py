"""Meta-reinforcement learning: task families on Gymnasium, rollouts, returns and MAML-RL.

Importing this package registers the task families with Gymnasium (``gymnasium.make(
"metalearn/Navigation2D-v0")``). Modules that need gymnasium import it inside functions, or are
left out of this ``__init__`` (``navigation``, ``cheetah``), so this package imports without the
``rl`` extra. Must not import ``metalearn.data`` or ``metalearn.training``.
"""

from metalearn.rl.policies import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob
from metalearn.rl.registration import ENV_HORIZONS, register_envs
from metalearn.rl.rollout import Trajectories, TrajectorySampler
from metalearn.rl.tasks import Task, TaskDistribution

register_envs()

__all__ = [
    "ENV_HORIZONS",
    "GaussianMLPPolicy",
    "Task",
    "TaskDistribution",
    "Trajectories",
    "TrajectorySampler",
    "gaussian_kl",
    "gaussian_log_prob",
    "register_envs",
]
