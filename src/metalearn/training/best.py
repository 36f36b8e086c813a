"""Which validation metric selects ``best.pt``, and whether higher or lower is better."""

from __future__ import annotations

import math
from typing import NamedTuple

from metalearn.errors import ConfigError

__all__ = ["METRIC_DIRECTIONS", "MetricRule", "metric_rule"]

METRIC_DIRECTIONS = {"accuracy": "max", "return": "max", "mse": "min", "loss": "min"}
"""Known validation metrics and whether higher (``max``) or lower (``min``) is better. With
``val_metric="auto"`` the first of these that ``validate()`` reports selects ``best.pt``."""


class MetricRule(NamedTuple):
    """Which validation metric selects the best checkpoint, and whether higher is better.

    ``name`` is ``None`` for ``"auto"``: resolved by :meth:`resolve` from the reported metrics.
    """

    name: str | None
    higher_is_better: bool

    def resolve(self, metrics: dict[str, float]) -> MetricRule:
        """Return the rule for ``metrics`` (reported by ``validate()``).

        Raises:
            ConfigError: if the metric is not among ``metrics``.
        """
        names = [self.name] if self.name is not None else list(METRIC_DIRECTIONS)
        for name in names:
            if name in metrics:
                higher = self.higher_is_better if self.name else METRIC_DIRECTIONS[name] == "max"
                return MetricRule(name, higher)
        raise ConfigError(
            f"validate() reported {sorted(metrics)}, none of {names}: return one of them, or "
            "set TrainConfig.val_metric to 'max:NAME' or 'min:NAME' for a reported NAME"
        )

    def is_better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (``None``: nothing yet). NaN never does."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


def metric_rule(spec: str) -> MetricRule:
    """Parse ``TrainConfig.val_metric``.

    Examples:
        >>> metric_rule("mse")
        MetricRule(name='mse', higher_is_better=False)
        >>> metric_rule("max:success_rate")
        MetricRule(name='success_rate', higher_is_better=True)
    """
    if spec == "auto":
        return MetricRule(None, True)
    if spec in METRIC_DIRECTIONS:
        return MetricRule(spec, METRIC_DIRECTIONS[spec] == "max")
    direction, _, name = spec.partition(":")
    if direction in ("max", "min") and name:
        return MetricRule(name, direction == "max")
    raise ConfigError(
        f"TrainConfig.val_metric={spec!r} has no known direction; use 'auto', one of "
        f"{sorted(METRIC_DIRECTIONS)}, or 'max:NAME' / 'min:NAME'"
    )
