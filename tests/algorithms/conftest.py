"""Fixtures of the algorithm tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The models here are tiny: a second intra-op thread only adds synchronisation, which
    # costs several times the work on a loaded 2-core machine (as in tests/training).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
