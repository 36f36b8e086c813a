"""HalfCheetah velocity and direction: the MAML rewards from the root's velocity, horizon 200."""

import gymnasium
import numpy as np
import pytest

import metalearn.rl  # noqa: F401 (registers the environments)
from metalearn.errors import TaskSpecError

pytest.importorskip("mujoco")


def _step_with_velocity(env, action):
    """Step and return (reward, info, velocity recomputed from the root's x position)."""
    x_before = env.unwrapped.data.qpos[0]
    _, reward, terminated, truncated, info = env.step(action)
    velocity = (env.unwrapped.data.qpos[0] - x_before) / env.unwrapped.dt
    return reward, info, velocity, terminated, truncated


def test_velocity_reward_is_minus_speed_error_minus_0_05_squared_action_over_an_episode():
    env = gymnasium.make("metalearn/HalfCheetahVel-v0", task={"velocity": 1.3})
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(200):
        action = rng.uniform(-1.5, 1.5, size=6).astype(np.float32)
        reward, info, velocity, terminated, truncated = _step_with_velocity(env, action)
        clipped = np.clip(action.astype(np.float64), -1.0, 1.0)
        expected = -abs(velocity - 1.3) - 0.05 * np.sum(clipped**2)
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert info["x_velocity"] == pytest.approx(velocity)
        assert not terminated
        assert truncated == (t == 199)


def test_direction_reward_is_direction_times_velocity_minus_control_cost():
    for direction in (-1.0, 1.0):
        env = gymnasium.make("metalearn/HalfCheetahDir-v0", task={"direction": direction})
        env.reset(seed=1)
        action = np.full(6, 0.5, dtype=np.float32)
        for _ in range(5):
            reward, _, velocity, _, _ = _step_with_velocity(env, action)
            assert reward == pytest.approx(direction * velocity - 0.05 * 6 * 0.25)


def test_task_families_sample_their_paper_distributions():
    vel = gymnasium.make("metalearn/HalfCheetahVel-v0").unwrapped
    speeds = [t["velocity"] for t in vel.sample_tasks(500, np.random.default_rng(0))]
    assert 0.0 <= min(speeds) < 0.1
    assert 1.9 < max(speeds) <= 2.0
    direc = gymnasium.make("metalearn/HalfCheetahDir-v0").unwrapped
    directions = [t["direction"] for t in direc.sample_tasks(500, np.random.default_rng(0))]
    assert set(directions) == {-1.0, 1.0}
    assert 200 < directions.count(1.0) < 300


def test_invalid_cheetah_tasks_raise_task_spec_error():
    direc = gymnasium.make("metalearn/HalfCheetahDir-v0").unwrapped
    with pytest.raises(TaskSpecError, match="direction"):
        direc.set_task({"direction": 0.5})
    with pytest.raises(TaskSpecError, match="velocity"):
        direc.set_task({"velocity": 1.0})
