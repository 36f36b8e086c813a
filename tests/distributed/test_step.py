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


def load_ranks(steps: Path, case: str) -> list[dict[str, torch.Tensor]]:
    return [torch.load(steps / "parallel" / f"{case}-{r}.pt", weights_only=True) for r in (0, 1)]


def test_ranks_draw_independent_noise_within_a_step_and_share_the_state_between(steps):
    ranks = load_ranks(steps, "rank_streams")
    assert not torch.equal(ranks[0]["inside"], ranks[1]["inside"])
    assert torch.equal(ranks[0]["after"], ranks[1]["after"])


def test_maml_trpo_training_takes_the_same_step_on_every_rank(steps):
    # each rank rolls out its own tasks, so the steps differ from one process's; but the
    # averaged TRPO step is the same on both ranks
    ranks = load_ranks(steps, "maml_trpo_training")
    assert ranks[0].keys() == ranks[1].keys()
    for name, value in ranks[0].items():
        torch.testing.assert_close(ranks[1][name], value, rtol=0, atol=0, msg=name)
    moved = [
        (ranks[0][k] - ranks[0][f"initial.{k}"]).abs().max()
        for k in ranks[0]
        if f"initial.{k}" in ranks[0]
    ]
    assert max(moved) > 1e-4
    assert ranks[0]["accepted"] > 0


def test_each_rank_trains_on_its_contiguous_slice_of_the_meta_batch(steps):
    single = torch.load(steps / "single" / "shards-0.pt", weights_only=True)
    ranks = load_ranks(steps, "shards")
    assert single["tasks"].tolist() == [0, 1, 2, 3]
    assert [r["tasks"].tolist() for r in ranks] == [[0, 1], [2, 3]]
    assert [r["listed"].tolist() for r in ranks] == [[0, 1], [2, 3]]


def test_a_meta_test_shared_out_over_the_ranks_equals_one_process(steps):
    single = torch.load(steps / "single" / "evaluation-0.pt", weights_only=True)
    assert single["values"].shape == (7,)
    assert set(single) == {"values", "steps0", "steps1", "steps3"}
    for held in load_ranks(steps, "evaluation"):  # every rank gets every episode's value
        assert held.keys() == single.keys()
        for name, expected in single.items():
            torch.testing.assert_close(held[name], expected, rtol=0, atol=1e-12, msg=name)
