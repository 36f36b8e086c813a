"""Meta-RL tests run torch on one thread.

Rollouts and MAML-TRPO steps are many small tensor operations. On the shared 2-core machine,
2 intra-op threads made a 10-iteration navigation run take 90 s against 10 s with one thread.
"""

import pytest
import torch

pytest.importorskip("gymnasium")


@pytest.fixture(autouse=True)
def _one_thread(_seed_and_threads):
    torch.set_num_threads(1)
