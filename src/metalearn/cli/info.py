"""``metalearn info``: versions, devices and whether the data root is found."""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np
import torch

from metalearn import __version__
from metalearn.errors import DataRootNotFoundError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn info``."""
    parser = subparsers.add_parser("info", help="versions, device and data root")
    parser.add_argument("--data.root", dest="data_root", default=None, help="data root to check")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print one ``name: value`` line per fact."""
    from metalearn.data import find_omniglot

    try:
        omniglot = f"found at {find_omniglot(args.data_root)}"
    except DataRootNotFoundError as e:
        omniglot = "not found (" + str(e).splitlines()[0] + ")"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    facts = {
        "metalearn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu threads": str(torch.get_num_threads()),
        "cuda": cuda,
        "METALEARN_DATA": os.environ.get("METALEARN_DATA", "(unset)"),
        "omniglot": omniglot,
    }
    for name, value in facts.items():
        print(f"{name}: {value}")
    return 0
