"""``metalearn presets`` and ``metalearn config``: list presets, print a resolved config."""

from __future__ import annotations

import argparse
import json
from typing import Any

from metalearn.cli.common import add_config_arguments, resolve_config
from metalearn.config import to_dict
from metalearn.presets import PRESETS

__all__ = ["add_parser", "run_config", "run_presets"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn presets`` and ``metalearn config``."""
    presets = subparsers.add_parser("presets", help="list the presets, one per paper setting")
    presets.set_defaults(run=run_presets)
    config = subparsers.add_parser("config", help="print the resolved config of a preset as JSON")
    add_config_arguments(config)
    config.set_defaults(run=run_config)


def run_presets(args: argparse.Namespace) -> int:
    """Print every preset with its one-line description."""
    width = max(map(len, PRESETS))
    for name, config in PRESETS.items():
        print(f"{name:<{width}}  {config.description}")
    return 0


def run_config(args: argparse.Namespace) -> int:
    """Print the preset with its overrides applied."""
    print(json.dumps(to_dict(resolve_config(args.preset, args.overrides)), indent=2))
    return 0
