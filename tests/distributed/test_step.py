"""One data-parallel meta-step on 2 ranks equals the single-process step (float64, 1e-10)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

CASES = ["maml", "protonet", "maml_trpo"]


@pytest.fixture(scope="module")
def steps(tmp_path_factory, launcher) -> Path:
    """Runs step_worker.py in one process (``single/``) and on 2 ranks (``parallel/``)."""
    pytest.importorskip("gymnasium")
    out = tmp_path_factory.mktemp("steps")
    (out / "single").mkdir()
    (out / "parallel").mkdir()
    worker = launcher.script("step_worker.py")
    launcher.run([sys.executable, worker, str(out / "single")])
    launcher.run(launcher.torchrun(worker, str(out / "parallel")))
    return out


@pytest.mark.parametrize("case", CASES)
def test_one_distributed_step_equals_the_single_process_step(steps, case):
    single = torch.load(steps / "single" / f"{case}-0.pt", weights_only=True)
    ranks = [torch.load(steps / "parallel" / f"{case}-{r}.pt", weights_only=True) for r in (0, 1)]
    assert single.keys() == ranks[0].keys() == ranks[1].keys()
    for name, expected in single.items():
        assert expected.dtype == torch.float64, name
        for r, held in enumerate(ranks):
            message = f"{name} on rank {r}"
            torch.testing.assert_close(held[name], expected, rtol=0, atol=1e-10, msg=message)
    moved = [
        (single[name] - single[f"initial.{name}"]).abs().max()
        for name in single
        if f"initial.{name}" in single
    ]
    assert moved
    assert max(moved) > 1e-3  # a real step, not two copies of the initial parameters
    if case == "maml_trpo":
        assert single["accepted"] == 1
