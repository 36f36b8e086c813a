"""2D navigation: dynamics, rewards, clipping, termination and horizon match the MAML spec."""

import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import metalearn.rl  # noqa: F401 (registers the environments)
from metalearn.errors import TaskSpecError
from metalearn.rl.navigation import Navigation2DEnv, Navigation2DVectorEnv
from metalearn.rl.tasks import TaskDistribution

ENV_ID = "metalearn/Navigation2D-v0"


def test_agent_starts_at_origin_moves_by_clipped_action_and_is_rewarded_minus_distance():
    env = Navigation2DEnv({"goal": (0.3, -0.4)})
    obs, _ = env.reset(seed=0)
    assert_array_equal(obs, [0.0, 0.0])
    # (0.05, 0.5) clips to (0.05, 0.1): position (0.05, 0.1), offset (-0.25, 0.5)
    obs, reward, terminated, truncated, info = env.step(np.array([0.05, 0.5], dtype=np.float32))
    assert_allclose(obs, [0.05, 0.1], rtol=1e-6)
    assert reward == pytest.approx(-np.sqrt(0.25**2 + 0.5**2))
    assert info["distance"] == pytest.approx(np.sqrt(0.3125))
    assert not terminated
    assert not truncated
    obs, reward, *_ = env.step(np.array([-3.0, -3.0], dtype=np.float32))  # clips to (-0.1, -0.1)
    assert_allclose(obs, [-0.05, 0.0], atol=1e-7)
    assert reward == pytest.approx(-np.sqrt(0.35**2 + 0.4**2))


def test_squared_reward_is_minus_squared_distance():
    env = Navigation2DEnv({"goal": (0.3, -0.4)}, reward="squared")
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, dtype=np.float32))
    assert reward == pytest.approx(-0.25)


def test_episode_terminates_within_0_01_of_the_goal_in_both_coordinates():
    env = Navigation2DEnv({"goal": (0.1, 0.195)})
    env.reset(seed=0)
    *_, terminated, _, _ = env.step(np.array([0.1, 0.1], dtype=np.float32))
    assert not terminated
    *_, terminated, _, _ = env.step(np.array([0.0, 0.09], dtype=np.float32))  # offset (0, -0.005)
    assert terminated
    env = Navigation2DEnv({"goal": (0.0, 0.0)}, terminate_at_goal=False)
    env.reset(seed=0)
    *_, terminated, _, _ = env.step(np.zeros(2, dtype=np.float32))
    assert not terminated


def test_registered_env_truncates_after_100_steps():
    env = gymnasium.make(ENV_ID, task={"goal": (0.5, 0.5)}, terminate_at_goal=False)
    env.reset(seed=0)
    for _ in range(99):
        *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated
        assert not truncated
    *_, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert truncated
    assert env.spec.max_episode_steps == 100


def test_sampled_goals_are_uniform_in_the_half_square_and_reproducible():
    env = Navigation2DEnv()
    goals = np.array([t["goal"] for t in env.sample_tasks(2000, np.random.default_rng(0))])
    assert goals.shape == (2000, 2)
    assert goals.min() >= -0.5
    assert goals.max() <= 0.5
    assert_allclose(goals.mean(0), [0.0, 0.0], atol=0.03)  # std of the mean ~ 0.29 / sqrt(2000)
    again = [t["goal"] for t in env.sample_tasks(3, np.random.default_rng(0))]
    assert_array_equal(goals[:3], again)


@pytest.mark.parametrize("task", [{}, {"goal": (1.0,)}, {"goal": (np.nan, 0.0)}])
def test_malformed_goal_raises_task_spec_error(task):
    with pytest.raises(TaskSpecError, match="goal"):
        Navigation2DEnv().set_task(task)


@pytest.mark.parametrize("task", [{}, {"goal": (1.0,)}, {"goal": (np.nan, 0.0)}])
def test_vector_env_refuses_a_malformed_goal_of_any_agent(task):
    envs = Navigation2DVectorEnv(num_envs=2)
    with pytest.raises(TaskSpecError, match="goal"):
        envs.set_attr("task", [{"goal": (0.1, 0.2)}, task])


def test_an_environment_without_tasks_is_not_a_task_family():
    with pytest.raises(TaskSpecError, match="CartPole-v1 is not a task family"):
        TaskDistribution("CartPole-v1")


def test_task_property_and_reset_options_set_the_goal():
    env = Navigation2DEnv()
    assert env.task is None
    env.task = {"goal": (0.1, 0.2)}
    assert env.task == {"goal": (0.1, 0.2)}
    env.reset(options={"task": {"goal": (-0.3, 0.0)}})
    assert env.task == {"goal": (-0.3, 0.0)}


def _run(envs, goals, actions):
    envs.set_attr("task", [{"goal": g} for g in goals])
    out = [envs.reset(seed=0)[0]]
    for action in actions:
        obs, reward, terminated, truncated, _ = envs.step(action)
        out += [obs, reward, terminated, truncated]
    return out


def test_numpy_vector_env_equals_sync_vector_env_of_single_envs():
    # agent 0 reaches its goal at step 2 (termination, then next-step autoreset);
    # with max_episode_steps=4 the others truncate at step 4 and restart at step 5.
    goals = [(0.15, 0.15), (0.3, -0.2), (-0.5, 0.5)]
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.15, 0.15, size=(7, 3, 2)).astype(np.float32)
    actions[:2, 0] = 0.075
    kwargs = {"num_envs": 3, "max_episode_steps": 4}
    sync = gymnasium.make_vec(ENV_ID, vectorization_mode="sync", **kwargs)
    native = gymnasium.make_vec(ENV_ID, **kwargs)
    assert isinstance(native, Navigation2DVectorEnv)
    expected, actual = _run(sync, goals, actions), _run(native, goals, actions)
    assert expected[7][0]  # agent 0 terminated at step 2 (obs, then 4 entries per step)
    assert_array_equal(expected[16], [False, True, True])  # agent 0 restarted at step 3
    for e, a in zip(expected, actual, strict=True):
        assert_allclose(a, e, rtol=1e-6, atol=1e-7)


def test_metalearn_rl_imports_without_gymnasium():
    code = (
        "import sys; sys.modules['gymnasium'] = None\n"
        "import metalearn.rl\n"
        "assert metalearn.rl.discounted_returns and metalearn.rl.MetaRLLearner\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
