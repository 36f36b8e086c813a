"""Kill fuzz (short): SIGKILL a sinusoid run at seeded random points, resume, compare.

The long version, with the counts in BENCHMARKS.md, is ``benchmarks/kill_fuzz.py``; this test
runs one round of it: three kills (aimed at a checkpoint write half of the time, each write
widened to 50 ms; else at a random logged step), resumes, and a final run that must equal
an uninterrupted one bit for bit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_fuzz.py"


def _kill_fuzz():
    spec = importlib.util.spec_from_file_location("kill_fuzz", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kill_fuzz"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3])
def test_sigkilled_and_resumed_runs_end_bit_identical_to_an_uninterrupted_run(tmp_path, seed):
    kill_fuzz = _kill_fuzz()
    counts = kill_fuzz.Counts()
    kill_fuzz.fuzz_round(tmp_path, seed, kills=3, steps=40, write_delay=0.05, counts=counts)
    assert counts.kills >= 1  # a process that finishes before its kill time is not killed
    assert counts.corrupt_checkpoints == 0
    assert counts.stale_temporaries_after_final_run == 0
    assert counts.differing == []
    assert counts.equal_rounds == 1
