"""MAML (second and first order, with MAML++'s options): learn an initialisation that adapts.

It adapts with :func:`metalearn.algorithms.inner.gradient_descent` on the support loss and
predicts with ``torch.func.functional_call``. ANIL, Meta-SGD and Reptile build on :class:`MAML`
in their own modules. Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metalearn.algorithms.base import Learner
from metalearn.algorithms.inner import gradient_descent
from metalearn.episode import Episode
from metalearn.types import Metrics, Params

__all__ = ["MAML", "lr_keys"]


class MAML(Learner[Params]):
    r"""Model-Agnostic Meta-Learning, second order by default.

    ``adapt`` takes ``inner_steps`` gradient steps on the support loss from the meta-parameters
    and returns the fast parameters; the query loss at the fast parameters is the meta-loss,
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
            ``inner_steps``. Read at every call, so an evaluator may change it between calls.
        first_order: drop the second-order terms (first-order MAML).
        adapted: names of the submodules (or parameters) of ``model`` to adapt, e.g.
            ``("head",)``; ``None`` adapts every parameter. The others keep their
            meta-values during adaptation (ANIL).
        vectorize: default path of :meth:`meta_loss`; ``None`` keeps the measured class default.
        per_step_lrs: MAML++'s learned per-layer per-step learning rates (LSLR): every
            adapted tensor gets one meta-learned rate per inner step, initialised to
            ``inner_lr`` (in :attr:`step_lrs`).
        multi_step_loss: MAML++'s multi-step loss (MSL): in training, the meta-loss weighs
            the query losses after every inner step, annealed towards the last step over this
            many meta-iterations (:meth:`step_loss_weights`); 0 turns it off.
        first_order_iterations: MAML++'s derivative-order annealing (DA): the first this many
            training meta-iterations are first order, the rest second order.

    Attributes:
        inner_steps: inner steps in training mode.
        eval_inner_steps: inner steps in evaluation mode.
        first_order: whether the meta-gradient ignores second derivatives.
        adapted_names: the names of the adapted parameters, in ``model`` order.
        chunk_numel: input elements (support and query inputs of all the tasks) per ``vmap``
            call in the batched path of :meth:`meta_loss` when :attr:`chunk_size` is ``None``:
            a chunk holds ``max(1, chunk_numel // numel_per_task)`` tasks, and larger tasks
            run one at a time without ``vmap``. ``None`` maps the whole meta-batch at once.
        thread_numel: input elements per task from which tasks run one at a time, each on
            one of :attr:`task_threads` threads (default ``None``: torch's intra-op threads).

    References:
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017.
        Antoniou, Edwards and Storkey. "How to train your MAML." ICLR 2019 (MAML++).
    """

    vectorize = True
    chunk_numel: int | None = 100_000
    thread_numel: int = 1_000
    task_threads = None
    meta_iterations: Tensor  # a buffer, with multi_step_loss or first_order_iterations only

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        adapted: Sequence[str] | None = None,
        vectorize: bool | None = None,
        per_step_lrs: bool = False,
        multi_step_loss: int = 0,
        first_order_iterations: int = 0,
    ) -> None:
        super().__init__()
        _reject_native_batch_norm(model)
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.eval_inner_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
        self.first_order = first_order
        self.adapted_names = _select_names(model, adapted)
        if vectorize is not None:
            self.vectorize = vectorize
        self.step_lrs: nn.ParameterDict | None = None
        if per_step_lrs:
            self._lr_keys = lr_keys(self.adapted_names)
            self.step_lrs = nn.ParameterDict(
                {
                    key: nn.Parameter(torch.full((inner_steps,), inner_lr))
                    for key in self._lr_keys.values()
                }
            )
        for name, value in [
            ("multi_step_loss", multi_step_loss),
            ("first_order_iterations", first_order_iterations),
        ]:
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0 (0: off)")
        self.multi_step_loss = multi_step_loss
        self.first_order_iterations = first_order_iterations
        if self.counts_meta_iterations:
            # counts meta-iterations for the annealing; a buffer, so checkpoints resume it
            self.register_buffer("meta_iterations", torch.zeros((), dtype=torch.long))

    @property
    def counts_meta_iterations(self) -> bool:
        """Whether an option anneals over meta-iterations (counted in :attr:`meta_iterations`)."""
        return bool(self.multi_step_loss or self.first_order_iterations)

    @property
    def current_first_order(self) -> bool:
        """:attr:`first_order`, or whether training is still in its first-order iterations."""
        if self.first_order or not (self.first_order_iterations and self.training):
            return self.first_order
        return int(self.meta_iterations) < self.first_order_iterations

    @property
    def current_inner_steps(self) -> int:
        """``inner_steps`` in training mode, ``eval_inner_steps`` in evaluation mode."""
        return self.inner_steps if self.training else self.eval_inner_steps

    def inner_lrs(self, step: int = 0) -> float | Mapping[str, Tensor]:
        """Return the inner learning rate of ``step``: a scalar, or a tensor per parameter name.

        With ``per_step_lrs``, each adapted tensor's learned rate for that step; steps beyond
        the trained ``inner_steps`` (a longer evaluation) reuse the last step's rates.
        """
        if self.step_lrs is None:
            return self.inner_lr
        step = min(step, self.inner_steps - 1)
        return {name: self.step_lrs[key][step] for name, key in self._lr_keys.items()}

    def step_loss_weights(self) -> list[float]:
        """Return the weights of the query losses after each inner step (MAML++'s annealing).

        Uniform at the start of meta-training; over ``multi_step_loss`` meta-iterations every
        step but the last decays linearly to ``0.03 / steps`` and the last grows to take up
        the rest, as in MAML++ (there per epoch of 500 iterations, here per iteration).
        """
        n = self.inner_steps
        if not self.multi_step_loss or n < 2:
            return [0.0] * (n - 1) + [1.0]
        progress = int(self.meta_iterations) / (n * self.multi_step_loss)
        floor = 0.03 / n
        early = max(1.0 / n - progress, floor)
        last = min(1.0 / n + (n - 1) * progress, 1.0 - (n - 1) * floor)
        return [early] * (n - 1) + [last]

    def episode_loss(self, episode: Episode) -> tuple[Tensor, Metrics]:
        """Return the query loss after the inner steps, and its metrics.

        With ``multi_step_loss`` in training, the loss is the weighted sum of the query losses
        after each step (:meth:`step_loss_weights`); the metrics are those after the last.
        """
        if not (self.multi_step_loss and self.training and self.inner_steps > 1):
            return super().episode_loss(episode)
        weights = self.step_loss_weights()
        loss = torch.zeros((), dtype=episode.query_x.dtype, device=episode.query_x.device)
        for weight, state in zip(
            weights,
            self.adaptation(episode.support_x, episode.support_y, episode.n_way),
            strict=True,
        ):
            output = self.predict(state, episode.query_x)
            step_loss = self.query_loss(output, episode.query_y, episode.n_way)
            loss = loss + weight * step_loss
        return loss, self.metrics(output, episode.query_y, step_loss, episode.n_way)

    def meta_loss(self, batch: Episode, *, vectorize: bool | None = None) -> tuple[Tensor, Metrics]:
        """See :meth:`Learner.meta_loss`; also counts training meta-iterations (MAML++)."""
        result = super().meta_loss(batch, vectorize=vectorize)
        if self.counts_meta_iterations and self.training and torch.is_grad_enabled():
            self.meta_iterations += 1
        return result

    def tasks_per_chunk(self, batch: Episode) -> int | None:
        """Return :attr:`chunk_size`, or 1 (large tasks, several threads), or a ``vmap`` chunk.

        Tasks with at least :attr:`thread_numel` input elements run one at a time, on
        :meth:`threads_for_tasks` threads at once when there are several (a thread each, with
        one intra-op thread). Measured on the shared 2-core CPU (conv4, 28x28, meta-batch 32,
        second order, one step, 2 threads): 0.63 s per iteration with 10 images per task (vmap
        chunks of 12 tasks: 0.82 s) and 2.1 s with 80 (one task at a time with 2 intra-op
        threads: 4.5 s): small convs and elementwise passes barely gain from intra-op
        threads, while tasks on separate threads scale almost linearly. Otherwise a chunk holds
        the tasks whose inputs fit in :attr:`chunk_numel`: with one thread, chunks of 4 to 32
        tasks of 10 images all took 1.5 to 1.65 s per iteration, while one task at a time
        without ``vmap`` won at 80 images per task (5.2 s against 6.3 s for 2-task chunks).
        Small tasks (sinusoids) all go in one ``vmap`` call, and so do tasks on an accelerator,
        up to :attr:`chunk_numel`.
        """
        if self.chunk_size is not None or self.chunk_numel is None:
            return self.chunk_size
        numel_per_task = (
            (batch.support_x[0].numel() + batch.query_x[0].numel()) if batch.is_batched else 1
        )
        on_cpu = batch.support_x.device.type == "cpu"  # threads are for CPU ops
        if on_cpu and numel_per_task >= self.thread_numel and self.threads_for_tasks() > 1:
            return 1
        return max(1, self.chunk_numel // max(1, numel_per_task))

    def meta_params(self) -> Params:
        """Return the meta-parameters of ``model`` by name (the starting point of adaptation)."""
        return dict(self.model.named_parameters())

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> Params:
        """Return ``fast_params``: every parameter of ``model`` after the inner steps.

        Args:
            support_x: ``(n_support, *x_shape)`` inputs.
            support_y: ``(n_support,)`` labels, or ``(n_support, y_dim)`` regression targets.
            n_way: number of classes; ``None`` for regression (mean squared error).
        """
        state = self.meta_params()
        for fast_params in self.adaptation(support_x, support_y, n_way):
            state = fast_params
        return state

    def adaptation(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None
    ) -> Iterator[Params]:
        """Yield every parameter of ``model`` after each inner step (arguments of :meth:`adapt`)."""
        params = self.meta_params()
        fixed = {name: p for name, p in params.items() if name not in self.adapted_names}

        def support_loss(fast_params: Params) -> Tensor:
            output = functional_call(self.model, {**fixed, **fast_params}, (support_x,))
            # The inner loss is the same task loss as the query loss (CE or MSE).
            return self.query_loss(output, support_y, n_way)

        fast_params = {name: params[name] for name in self.adapted_names}
        first_order = self.current_first_order
        for step in range(self.current_inner_steps):
            fast_params = gradient_descent(
                support_loss,
                fast_params,
                steps=1,
                lr=self.inner_lrs(step),
                first_order=first_order,
            )
            yield {**fixed, **fast_params}

    def predict(self, state: Params, query_x: Tensor) -> Tensor:
        """Return logits ``(n_query, n_way)`` or predictions at the fast parameters ``state``."""
        return functional_call(self.model, state, (query_x,))


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


def _reject_native_batch_norm(model: nn.Module) -> None:
    """Raise if ``model`` holds a ``torch.nn`` BatchNorm layer.

    With running statistics it leaks information across tasks and cannot run under ``vmap``;
    without them, its second-order meta-gradient under ``vmap`` is wrong (PyTorch 2.13).
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"model layer {name!r} is a torch.nn {type(module).__name__}, which gives a wrong "
                "second-order meta-gradient under vmap (and leaks running statistics across "
                "tasks); convert the model with metalearn.nn.convert_batchnorm(model), which "
                "swaps every BatchNorm layer for the per-task metalearn.nn.TaskBatchNorm"
            )


def _select_names(model: nn.Module, adapted: Sequence[str] | None) -> tuple[str, ...]:
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
