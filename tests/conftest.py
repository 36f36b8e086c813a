"""Shared fixtures: seeding, thread count and the data root."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    torch.set_num_threads(2)


def _find_data_root() -> Path | None:
    root = Path(os.environ.get("METALEARN_DATA", DEFAULT_DATA_ROOT))
    return root if (root / "omniglot" / "images_background.zip").is_file() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root holding omniglot/; skipped locally when absent, a failure under CI."""
    root = _find_data_root()
    if root is None:
        message = (
            "Omniglot archives not found: set METALEARN_DATA to a folder holding "
            "omniglot/images_background.zip and omniglot/images_evaluation.zip"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A writable cache shared by the tests of one session (decoded Omniglot arrays)."""
    return tmp_path_factory.mktemp("metalearn-cache")
