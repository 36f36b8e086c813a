"""Linear feature baseline: features as in rllab, fit equal to a NumPy least-squares solve."""

import numpy as np
import torch
from torch.testing import assert_close

from metalearn.rl.baseline import LinearFeatureBaseline, linear_features


def test_features_are_clipped_observations_their_squares_time_polynomial_and_one():
    obs = torch.tensor([[[20.0, -1.0]], [[0.5, 2.0]]])  # (T=2, B=1, obs_dim=2)
    features = linear_features(obs)
    assert features.shape == (2, 1, 8)
    assert_close(features[0, 0], torch.tensor([10.0, -1.0, 100.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
    assert_close(features[1, 0], torch.tensor([0.5, 2.0, 0.25, 4.0, 0.01, 1e-4, 1e-6, 1.0]))


def test_fit_equals_numpy_lstsq_of_the_ridge_problem_over_steps_inside_episodes():
    T, B, D, reg = 30, 4, 3, 1e-5
    obs = torch.randn(T, B, D, dtype=torch.float64)
    returns = torch.randn(T, B, dtype=torch.float64)
    masks = torch.ones(T, B, dtype=torch.float64)
    masks[20:, 1] = 0.0
    baseline = LinearFeatureBaseline(reg_coeff=reg).fit(obs, returns * masks, masks)
    # ridge = least squares on [X; sqrt(reg) I] w = [y; 0], over the valid rows only
    keep = masks.flatten().bool().numpy()
    X = linear_features(obs).reshape(T * B, -1).numpy()[keep]
    y = returns.flatten().numpy()[keep]
    X_aug = np.concatenate([X, np.sqrt(reg) * np.eye(X.shape[1])])
    y_aug = np.concatenate([y, np.zeros(X.shape[1])])
    expected = np.linalg.lstsq(X_aug, y_aug, rcond=None)[0]
    assert_close(baseline.coeffs, torch.from_numpy(expected), rtol=1e-6, atol=1e-8)
    assert_close(baseline.predict(obs), torch.from_numpy(linear_features(obs).numpy() @ expected))


def test_batched_fit_equals_one_fit_per_task():
    obs = torch.randn(3, 20, 5, 2)
    returns = torch.randn(3, 20, 5)
    masks = torch.ones(3, 20, 5)
    batched = LinearFeatureBaseline().fit(obs, returns, masks)
    for i in range(3):
        single = LinearFeatureBaseline().fit(obs[i], returns[i], masks[i])
        assert_close(batched.coeffs[i], single.coeffs)
        assert_close(batched.predict(obs)[i], single.predict(obs[i]))


def test_unfitted_baseline_predicts_zero():
    assert (LinearFeatureBaseline().predict(torch.randn(4, 2, 3)) == 0).all()
