"""benchmarks/conv_ceiling.py: the ceiling is the workload's conv FLOPs at the measured rates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_DIR = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ceiling_module():
    sys.path.insert(0, str(_DIR))  # the script imports maml_throughput beside it
    try:
        spec = importlib.util.spec_from_file_location("conv_ceiling", _DIR / "conv_ceiling.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(_DIR))


def test_nominal_flops_of_one_task_by_hand(ceiling_module):
    # conv4 forward on one 28x28 image: 2*9*64*(28^2*1 + 14^2*64 + 7^2*64 + 3^2*64) + head 2*64*5
    forward = 2 * 9 * 64 * (784 + 196 * 64 + 49 * 64 + 9 * 64) + 640
    assert forward == 19_630_720
    w = ceiling_module.Workload(n_query=1)
    # 5 query images at 3 forwards, 5 support images at 7
    assert ceiling_module.nominal_flops(w) == 32 * (3 * 5 + 7 * 5) * forward


def test_ceiling_runs_every_layer_at_its_best_rate(ceiling_module, monkeypatch):
    # layer 1 at 10 GFLOP/s (forward) or 20 (backward), the others at 100 or 50: a task's conv
    # FLOPs per layer, divided by the faster of the two
    rates = [(1, 28, 10.0, 20.0), (64, 14, 100.0, 50.0), (64, 7, 100.0, 50.0), (64, 3, 50.0, 100.0)]
    monkeypatch.setattr(ceiling_module, "layer_rates", lambda images, repeats: rates)
    tasks_per_s, _ = ceiling_module.ceiling(ceiling_module.Workload(n_query=1), repeats=1)
    per_layer = [2 * 9 * 64 * n for n in (784, 196 * 64, 49 * 64, 9 * 64)]
    task = 50 * (sum(per_layer) + 640)  # 50 image forwards per task, head spread over layers
    seconds = sum(
        task * f / sum(per_layer) / (r * 1e9)
        for f, r in zip(per_layer, (20, 100, 100, 100), strict=True)
    )
    assert tasks_per_s == pytest.approx(1 / seconds, rel=1e-12)


def test_measured_rates_are_positive_and_finite(ceiling_module):
    rates = ceiling_module.layer_rates(images=4, repeats=1)
    assert [(c, s) for c, s, _, _ in rates] == [(1, 28), (64, 14), (64, 7), (64, 3)]
    assert all(0 < f < 1e5 and 0 < b < 1e5 for _, _, f, b in rates)
