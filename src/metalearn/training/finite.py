"""Non-finite guards: a diverged step stops the run before anything non-finite is written.

Each check costs one device sync per outer step, and names the step and the first offending
tensor only on the failure path. Must not import ``metalearn.data`` or ``metalearn.rl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from metalearn.errors import TrainingDivergedError

__all__ = ["check_finite_step", "check_finite_weights", "check_finite_state_dict"]

_ADVICE = "lower the outer learning rate (or set grad_clip) and resume from the last checkpoint"


def _all_finite(tensors: list[Tensor]) -> bool:
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def check_finite_step(
    loss: Tensor, parameters: Iterable[tuple[str, nn.Parameter]], step: int
) -> None:
    """Raise unless the loss and every gradient of the named ``parameters`` are finite.

    Called after backward and before the optimizer step, so the weights are still good.

    Raises:
        TrainingDivergedError: naming the step and the loss or the first non-finite gradient.
    """
    grads = [(name, p.grad) for name, p in parameters if p.grad is not None]
    loss = loss.detach()
    if _all_finite([loss, *(g for _, g in grads)]):
        return
    if not bool(torch.isfinite(loss).all()):
        what = f"the meta-training loss is {loss.item()}"
    else:
        name = next(n for n, g in grads if not bool(torch.isfinite(g).all()))
        what = f"the meta-gradient of {name} is not finite"
    raise TrainingDivergedError(
        f"{what} at step {step}; stopped before updating the weights: {_ADVICE}",
        step=step,
        reason=f"{what} at step {step}",
    )


def check_finite_weights(parameters: Iterable[nn.Parameter], step: int) -> None:
    """Raise unless every parameter is finite (objectives that take their own outer step).

    Raises:
        TrainingDivergedError: naming the step.
    """
    if not _all_finite([p.detach() for p in parameters]):
        reason = f"the weights are not finite after step {step}"
        raise TrainingDivergedError(f"{reason}: {_ADVICE}", step=step, reason=reason)


def check_finite_state_dict(state: Mapping[str, object], where: str) -> None:
    """Raise if a floating tensor of ``state`` holds NaN or infinity (nothing is written then).

    Raises:
        TrainingDivergedError: naming ``where`` and the tensor.
    """
    for name, value in state.items():
        if not isinstance(value, Tensor) or not value.is_floating_point():
            continue
        if not bool(torch.isfinite(value).all()):
            raise TrainingDivergedError(
                f"refusing to write {where}: {name} holds NaN or infinite values; {_ADVICE}"
            )
