"""MAML (second and first order): learn an initialisation from which a few gradient steps adapt.

It adapts with :func:`metalearn.algorithms.inner.gradient_descent` on the support loss and
predicts with ``torch.func.functional_call``. MAML++'s options are :class:`MAMLPlusPlus`
(:mod:`metalearn.algorithms.maml_plus_plus`); ANIL, Meta-SGD and Reptile build on :class:`MAML`
in their own modules. Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from torch import Tensor, nn
from torch.func import functional_call

from metalearn.algorithms.base import Learner
from metalearn.algorithms.inner import gradient_descent
from metalearn.algorithms.params import reject_native_batch_norm, select_names
from metalearn.types import Params

__all__ = ["MAML"]


class MAML(Learner[Params]):
    r"""Model-Agnostic Meta-Learning, second order by default.

    ``adapt`` takes ``steps`` gradient steps on the support loss from the meta-parameters and
    returns the fast parameters; the query loss at the fast parameters is the meta-loss,
    differentiated through the inner steps (or, with ``first_order=True``, with the inner
    gradients treated as constants: FOMAML).

    .. math::
        \theta'_i = \theta - \alpha \nabla_\theta L_{S_i}(\theta), \qquad
        \min_\theta \sum_i L_{Q_i}(\theta'_i)

    Args:
        model: the network; its parameters are the meta-parameters ``theta``. It must have no
            running statistics (use :class:`metalearn.nn.backbones.TaskBatchNorm`).
        inner_lr: the inner learning rate ``alpha`` (MAML: 0.4 on Omniglot, 0.01 on sinusoids).
        inner_steps: inner steps in training mode.
        eval_inner_steps: inner steps in evaluation mode (``not self.training``); defaults to
            ``inner_steps``. ``adapt(..., steps=n)`` overrides either for one call.
        first_order: drop the second-order terms (first-order MAML).
        adapted: names of the submodules (or parameters) of ``model`` to adapt, e.g.
            ``("head",)``; ``None`` adapts every parameter. The others keep their
            meta-values during adaptation (ANIL).
        batched: default path of :meth:`meta_loss`; ``None`` keeps the measured class default.

    References:
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017.
    """

    # measured defaults of the batched path (BENCHMARKS.md, "MAML throughput"): large tasks
    # one at a time on a thread each, small ones in vmap chunks
    chunk_numel = 100_000
    thread_numel = 1_000
    task_threads = None

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        adapted: Sequence[str] | None = None,
        batched: bool | None = None,
    ) -> None:
        super().__init__()
        reject_native_batch_norm(model)
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        self.first_order = first_order
        self.adapted_names = select_names(model, adapted)
        if batched is not None:
            self.batched = batched

    @property
    def current_first_order(self) -> bool:
        """Whether this adaptation drops second-order terms (:attr:`first_order` here)."""
        return self.first_order

    def inner_lrs(self, step: int = 0) -> float | Mapping[str, Tensor]:
        """Return the inner learning rate of ``step``: a scalar, or a tensor per parameter."""
        return self.inner_lr

    def meta_params(self) -> Params:
        """Return the meta-parameters of ``model`` by name (the starting point of adaptation)."""
        return dict(self.model.named_parameters())

    def adapt(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None, *, steps: int | None = None
    ) -> Params:
        """Return ``fast_params``: every parameter of ``model`` after the inner steps.

        Args:
            support_x: ``(n_support, *x_shape)`` inputs.
            support_y: ``(n_support,)`` labels, or ``(n_support, y_dim)`` regression targets.
            n_way: number of classes; ``None`` for regression (mean squared error).
            steps: inner steps; ``None``: ``inner_steps`` in training mode, else
                ``eval_inner_steps``.
        """
        state = self.meta_params()
        for fast_params in self.adaptation(support_x, support_y, n_way, steps=steps):
            state = fast_params
        return state

    def adaptation(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None, *, steps: int | None = None
    ) -> Iterator[Params]:
        """Yield every parameter of ``model`` after each inner step (arguments of :meth:`adapt`)."""
        if steps is None:
            steps = self.inner_steps if self.training else self.eval_inner_steps
        params = self.meta_params()
        fixed = {name: p for name, p in params.items() if name not in self.adapted_names}

        def support_loss(fast_params: Params) -> Tensor:
            output = functional_call(self.model, {**fixed, **fast_params}, (support_x,))
            # The inner loss is the same task loss as the query loss (CE or MSE).
            return self.query_loss(output, support_y, n_way)

        fast_params = {name: params[name] for name in self.adapted_names}
        first_order = self.current_first_order
        for step in range(steps):
            fast_params = gradient_descent(
                support_loss, fast_params, steps=1, lr=self.inner_lrs(step), first_order=first_order
            )
            yield {**fixed, **fast_params}

    def predict(self, state: Params, query_x: Tensor) -> Tensor:
        """Return logits ``(n_query, n_way)`` or predictions at the fast parameters ``state``."""
        return functional_call(self.model, state, (query_x,))
