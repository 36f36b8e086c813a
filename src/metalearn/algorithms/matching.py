"""Matching Networks: attention over the support set, with optional Full Context Embeddings."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metalearn.algorithms.base import Learner, require_n_way
from metalearn.errors import ConfigError
from metalearn.nn.functional import cosine_similarity, embed, embedding_size

__all__ = [
    "MatchingNet",
    "MatchingState",
    "SupportContext",
    "QueryContext",
    "matching_attention",
    "lstm_step",
]


class MatchingState(NamedTuple):
    """What :class:`MatchingNet` keeps of a support set.

    Attributes:
        support_embeddings: ``(..., n_support, d)`` embeddings ``g(x_i, S)``.
        support_one_hot: ``(..., n_support, n_way)`` one-hot labels.
    """

    support_embeddings: Tensor
    support_one_hot: Tensor


def matching_attention(queries: Tensor, support: Tensor, scale: float = 1.0) -> Tensor:
    """Return the attention ``a(q, x_i) = softmax_i(scale * cos(q, x_i))`` over the support set.

    Args:
        queries: ``(..., n_query, d)`` query embeddings.
        support: ``(..., n_support, d)`` support embeddings.
        scale: inverse temperature of the softmax (1 in the paper).

    Returns:
        ``(..., n_query, n_support)``; each row sums to 1.
    """
    return torch.softmax(scale * cosine_similarity(queries, support), dim=-1)


def lstm_step(cell: nn.LSTMCell, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(h, c)`` after one step of ``cell`` on inputs ``x`` ``(..., d_in)``.

    Written with elementary operations on the cell's parameters (gate order i, f, g, o, as in
    PyTorch) because ``aten::lstm`` and ``aten::lstm_cell`` have no ``vmap`` batching rule.
    Any leading dims are allowed.
    """
    gates = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class SupportContext(nn.Module):
    """Full Context Embedding of the support set: ``g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)``.

    A bidirectional LSTM reads the support embeddings in their episode order, so the result
    depends on that order (as the paper notes).

    Args:
        dim: embedding size ``d``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.forward_cell = nn.LSTMCell(dim, dim)
        self.backward_cell = nn.LSTMCell(dim, dim)

    def forward(self, support: Tensor) -> Tensor:
        """Map ``(..., n_support, d)`` to context embeddings of the same shape."""
        steps = support.unbind(-2)
        forward = self._read(self.forward_cell, steps)
        backward = self._read(self.backward_cell, steps[::-1]).flip(-2)
        return support + forward + backward

    @staticmethod
    def _read(cell: nn.LSTMCell, steps: tuple[Tensor, ...]) -> Tensor:
        """Run ``cell`` over ``steps`` (each ``(..., d)``) from a zero state: ``(..., n, d)``."""
        h = c = torch.zeros_like(steps[0])
        outputs = []
        for x in steps:
            h, c = lstm_step(cell, x, h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=-2)


class QueryContext(nn.Module):
    """Full Context Embedding of the queries: an attention LSTM over the support set.

    For ``k = 1..K``: ``r = sum_i softmax_i(h . g_i) g_i``;
    ``h_hat, c = LSTM(f'(x), (h + r, c))``; ``h = h_hat + f'(x)``, from ``h = f'(x)``, ``c = 0``.
    The paper concatenates ``[h, r]`` as the LSTM state, which makes the state twice as wide as
    the output; summing them keeps one width, as common reimplementations do.

    Args:
        dim: embedding size ``d``.
        steps: the number ``K`` of processing steps.
    """

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(dim, dim)
        self.steps = steps

    def forward(self, queries: Tensor, support: Tensor) -> Tensor:
        """Map queries ``(..., n_query, d)`` given support ``(..., n_support, d)`` to ``f(x, S)``.

        The leading dims of ``queries`` and ``support`` must be equal.
        """
        h, c = queries, torch.zeros_like(queries)
        for _ in range(self.steps):
            readout = torch.softmax(h @ support.transpose(-1, -2), dim=-1) @ support
            h_hat, c = lstm_step(self.cell, queries, h + readout, c)
            h = h_hat + queries
        return h


class MatchingNet(Learner[MatchingState]):
    r"""Matching Networks.

    A query's class distribution is the attention-weighted sum of the support labels, the
    attention being a softmax over cosine similarities. Its logarithm serves as logits.

    .. math:: P(y \mid \hat x, S) = \sum_i \mathrm{softmax}_i(s \cos(f(\hat x), g(x_i))) \, y_i

    Args:
        encoder: maps inputs ``(n, *x_shape)`` to embeddings ``(n, d)`` (or to features that
            are flattened).
        fce: use Full Context Embeddings (a bidirectional LSTM ``g`` over the support set and
            an attention LSTM ``f`` over it for the queries).
        embedding_dim: the encoder's output size ``d``, used with ``fce=True``; by default the
            encoder's ``embedding_dim`` attribute (as :class:`metalearn.nn.backbones.Conv4` has).
        fce_steps: processing steps ``K`` of the attention LSTM.
        scale: inverse temperature ``s`` of the attention softmax (1 in the paper).

    Raises:
        ConfigError: if ``fce=True`` and the embedding size is unknown, or ``fce_steps < 1``.

    References:
        Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra. "Matching Networks for One
        Shot Learning." NeurIPS 2016.
    """

    batched = False  # a loop over tasks was as fast or faster than vmap with conv encoders on CPU

    def __init__(
        self,
        encoder: nn.Module,
        *,
        fce: bool = False,
        embedding_dim: int | None = None,
        fce_steps: int = 1,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.scale = scale
        self.support_context: SupportContext | None = None
        self.query_context: QueryContext | None = None
        if fce:
            if fce_steps < 1:
                raise ConfigError(f"fce_steps={fce_steps} must be at least 1")
            size = embedding_size(encoder, embedding_dim)
            self.support_context = SupportContext(size)
            self.query_context = QueryContext(size, fce_steps)

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> MatchingState:
        """Return the support embeddings ``(..., n_support, d)`` and one-hot labels."""
        embeddings = embed(self.encoder, support_x, support_y.dim() - 1)
        if self.support_context is not None:
            embeddings = self.support_context(embeddings)
        one_hot = F.one_hot(support_y, require_n_way(n_way)).to(embeddings.dtype)
        return MatchingState(embeddings, one_hot)

    def predict(self, state: MatchingState, query_x: Tensor) -> Tensor:
        """Return logits ``(..., n_query, n_way)``: log attention-weighted label distributions."""
        support = state.support_embeddings
        queries = embed(self.encoder, query_x, support.dim() - 2)
        if self.query_context is not None:
            queries = self.query_context(queries, support)
        probs = matching_attention(queries, support, self.scale) @ state.support_one_hot
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()  # a class may get 0 mass
