import math

import pytest
import torch

from metalearn.data import SinusoidTasks, sinusoid
from metalearn.episode import Episode
from metalearn.errors import EpisodeSpecError


def fit_amplitude_and_phase(x, y):
    """Least squares of y = a sin x + b cos x; A sin(x - p) = A cos p sin x - A sin p cos x."""
    design = torch.cat([torch.sin(x), torch.cos(x)], dim=-1).double()
    coef = torch.linalg.lstsq(design, y.double()).solution.squeeze(-1)
    a, b = coef[..., 0], coef[..., 1]
    return torch.sqrt(a**2 + b**2), torch.atan2(-b, a)


def test_sinusoid_is_amplitude_times_sine_of_x_minus_phase():
    x = torch.tensor([0.0, math.pi / 2, math.pi])
    torch.testing.assert_close(sinusoid(x, 2.0, math.pi / 2), torch.tensor([-2.0, 0.0, 2.0]))


def test_episodes_have_regression_shapes_and_no_n_way():
    tasks = SinusoidTasks(n_shot=5, n_query=7)
    batch = tasks.sample_batch(4)
    assert batch.n_way is None
    assert batch.support_x.shape == batch.support_y.shape == (4, 5, 1)
    assert batch.query_x.shape == batch.query_y.shape == (4, 7, 1)
    assert batch.is_batched
    assert batch.n_tasks == 4
    single = tasks.sample()
    assert single.support_x.shape == (5, 1)
    assert not single.is_batched


def test_support_and_query_of_a_task_lie_on_one_sinusoid_with_parameters_in_range():
    batch = SinusoidTasks(n_shot=10, n_query=10, seed=3).sample_batch(200)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    amplitude, phase = fit_amplitude_and_phase(x, y)
    assert (x.abs() <= 5).all()
    assert amplitude.min() >= 0.1 - 1e-4
    assert amplitude.max() <= 5.0 + 1e-4
    assert phase.min() >= -1e-4
    assert phase.max() <= math.pi + 1e-4
    refit = sinusoid(x, amplitude.view(-1, 1, 1), phase.view(-1, 1, 1))
    torch.testing.assert_close(refit.float(), y, atol=1e-4, rtol=0)
    # 200 tasks cover the amplitude range: U[0.1, 5] has mean 2.55.
    assert abs(amplitude.mean().item() - 2.55) < 0.35


def test_query_on_grid_spans_the_x_range_in_order():
    batch = SinusoidTasks(n_shot=3, n_query=11, query_on_grid=True).sample_batch(2)
    torch.testing.assert_close(batch.query_x[0, :, 0], torch.linspace(-5, 5, 11))
    torch.testing.assert_close(batch.query_x[0], batch.query_x[1])
    assert not torch.equal(batch.query_y[0], batch.query_y[1])


def test_state_restore_and_fixed_evaluation_set_behave_as_for_classification():
    tasks = SinusoidTasks(5, 5, seed=1)
    state = tasks.state_dict()
    expected = tasks.sample_batch(3)
    fresh = SinusoidTasks(5, 5, seed=9)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.sample_batch(3).support_y, expected.support_y, rtol=0, atol=0)
    a = Episode.stack(list(tasks.episodes(4)))
    b = next(tasks.episodes(4, batch_size=4))
    torch.testing.assert_close(a.query_y, b.query_y, rtol=0, atol=0)
    with pytest.raises(EpisodeSpecError, match="sinusoid"):
        SinusoidTasks(6, 5).load_state_dict(state)


def test_bad_counts_and_reversed_ranges_raise():
    with pytest.raises(EpisodeSpecError, match="n_shot must be an int >= 1"):
        SinusoidTasks(0, 5)
    with pytest.raises(EpisodeSpecError, match="x_range must be"):
        SinusoidTasks(5, 5, x_range=(5.0, -5.0))
