"""Fixtures of the `metalearn serve` tests: a served (untrained) ProtoNet."""

from __future__ import annotations

import pytest


@pytest.fixture
def served():
    """A ``ServedModel`` of an untrained ProtoNet (the tests check its maths, not accuracy)."""
    from metalearn.build import build_learner
    from metalearn.cli.serve import served_model
    from metalearn.presets import get_preset

    config = get_preset("protonet-omniglot-5w1s")
    return served_model(config, build_learner(config).eval(), invert=True)
