"""Registers the task families with Gymnasium, so that ``gymnasium.make`` builds them.

``import metalearn.rl`` calls :func:`register_envs`. Without gymnasium installed (the ``rl``
extra) there is nothing to register, and the gymnasium-free parts of ``metalearn.rl`` (policies,
returns, baseline) still import.
"""

from __future__ import annotations

import importlib.util

__all__ = ["ENV_HORIZONS", "register_envs"]

_ENTRY_POINTS = {
    "metalearn/Navigation2D-v0": "metalearn.rl.navigation:Navigation2DEnv",
    "metalearn/HalfCheetahVel-v0": "metalearn.rl.cheetah:HalfCheetahVelEnv",
    "metalearn/HalfCheetahDir-v0": "metalearn.rl.cheetah:HalfCheetahDirEnv",
}

_VECTOR_ENTRY_POINTS = {
    "metalearn/Navigation2D-v0": "metalearn.rl.navigation:Navigation2DVectorEnv",
}

ENV_HORIZONS = {
    "metalearn/Navigation2D-v0": 100,
    "metalearn/HalfCheetahVel-v0": 200,
    "metalearn/HalfCheetahDir-v0": 200,
}
"""The horizon (``max_episode_steps``) of each registered family, as in the MAML paper."""


def register_envs() -> None:
    """Register every family with Gymnasium (idempotent; a no-op without gymnasium)."""
    if importlib.util.find_spec("gymnasium") is None:
        return
    import gymnasium

    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                env_id,
                entry_point=entry_point,
                vector_entry_point=_VECTOR_ENTRY_POINTS.get(env_id),
                max_episode_steps=ENV_HORIZONS[env_id],
            )
