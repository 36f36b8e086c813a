import torch
from torch.testing import assert_close

from metalearn.algorithms.inner import gradient_descent, sgd_step


def _quadratic(params):
    # L = a^2 + 3 b^2: grad (2a, 6b)
    return params["a"].square().sum() + 3 * params["b"].square().sum()


def _params():
    return {
        "a": torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True),
        "b": torch.tensor(0.5, dtype=torch.float64, requires_grad=True),
    }


def test_zero_steps_return_the_parameters_unchanged():
    params = _params()
    assert gradient_descent(_quadratic, params, steps=0, lr=0.1) == params


def test_two_steps_equal_the_hand_computation():
    # a <- a (1 - 2 lr), b <- b (1 - 6 lr) per step, lr = 0.1
    fast = gradient_descent(_quadratic, _params(), steps=2, lr=0.1)
    assert_close(fast["a"], torch.tensor([1.0, -2.0], dtype=torch.float64) * 0.8**2)
    assert_close(fast["b"], torch.tensor(0.5 * 0.4**2, dtype=torch.float64))


def test_per_parameter_learning_rates_apply_to_their_own_parameter():
    lrs = {"a": torch.tensor([0.1, 0.2], dtype=torch.float64), "b": torch.tensor(0.0)}
    fast = gradient_descent(_quadratic, _params(), steps=1, lr=lrs)
    assert_close(fast["a"], torch.tensor([1.0 - 0.2, -2.0 + 0.8], dtype=torch.float64))
    assert_close(fast["b"], torch.tensor(0.5, dtype=torch.float64))


def test_second_order_differentiates_through_the_inner_gradient():
    # one step: a1 = a (1 - 2 lr) so d(sum a1)/da = 1 - 2 lr; first order keeps only 1
    for first_order, expected in [(False, 0.8), (True, 1.0)]:
        params = _params()
        fast = gradient_descent(_quadratic, params, steps=1, lr=0.1, first_order=first_order)
        (grad,) = torch.autograd.grad(fast["a"].sum(), params["a"])
        assert_close(grad, torch.full((2,), expected, dtype=torch.float64))


def test_gradient_descent_adapts_under_no_grad():
    with torch.no_grad():
        fast = gradient_descent(_quadratic, _params(), steps=1, lr=0.1)
    assert_close(fast["b"], torch.tensor(0.5 * 0.4, dtype=torch.float64))
    assert not fast["b"].requires_grad


def test_sgd_step_takes_scalar_and_mapping_learning_rates():
    params = {"w": torch.tensor([1.0, 2.0])}
    grads = {"w": torch.tensor([10.0, 10.0])}
    assert_close(sgd_step(params, grads, 0.1)["w"], torch.tensor([0.0, 1.0]))
    assert_close(
        sgd_step(params, grads, {"w": torch.tensor([0.1, 0.0])})["w"], torch.tensor([0.0, 2.0])
    )
