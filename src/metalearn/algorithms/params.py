"""Which parameters of a model a gradient learner adapts, and the models it refuses.

Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["lr_keys", "reject_native_batch_norm", "select_names"]


def lr_keys(names: Sequence[str]) -> dict[str, str]:
    """Map parameter names to ``ParameterDict`` keys (``.`` -> ``_``; module keys have no dots).

    Raises:
        ValueError: if two names collide once their dots are replaced.
    """
    keys = {name: name.replace(".", "_") for name in names}
    if len(set(keys.values())) != len(keys):
        raise ValueError(
            f"parameter names {list(keys)} collide once '.' is replaced by '_'; "
            "rename the submodules of the model"
        )
    return keys


def reject_native_batch_norm(model: nn.Module) -> None:
    """Raise if ``model`` holds a ``torch.nn`` BatchNorm layer.

    With running statistics it leaks information across tasks and cannot run under ``vmap``;
    without them, its second-order meta-gradient under ``vmap`` is wrong (PyTorch 2.13).
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"model layer {name!r} is a torch.nn {type(module).__name__}, which gives a wrong "
                "second-order meta-gradient under vmap (and leaks running statistics across "
                "tasks); use metalearn.nn.backbones.TaskBatchNorm, which computes the same "
                "per-task normalisation"
            )


def select_names(model: nn.Module, adapted: Sequence[str] | None) -> tuple[str, ...]:
    """Return the parameter names of ``model`` under the prefixes ``adapted`` (all if ``None``).

    Raises:
        ValueError: if a prefix matches no parameter (the message lists the valid names).
    """
    names = [name for name, _ in model.named_parameters()]
    if adapted is None:
        return tuple(names)
    if isinstance(adapted, str):
        adapted = (adapted,)
    for prefix in adapted:
        if not any(name == prefix or name.startswith(prefix + ".") for name in names):
            raise ValueError(
                f"adapted={prefix!r} matches no parameter of the model; "
                f"choose a submodule or parameter name among {names}"
            )
    return tuple(
        name
        for name in names
        if any(name == prefix or name.startswith(prefix + ".") for prefix in adapted)
    )
