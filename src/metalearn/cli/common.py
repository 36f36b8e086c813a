"""What the subcommands share: configs from presets and overrides, run folders, results."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metalearn.build import resolve_channels
from metalearn.cli.overrides import apply_overrides
from metalearn.config import RunConfig, read_config
from metalearn.config_checks import check_config
from metalearn.errors import CheckpointError, ConfigError
from metalearn.presets import get_preset
from metalearn.registry import ALGORITHMS, get_algorithm
from metalearn.training.evaluation import EvalResult
from metalearn.workflows import best_checkpoint, load_learner

__all__ = [
    "add_invert_argument",
    "resolve_invert",
    "add_config_arguments",
    "check_algorithm",
    "load_run",
    "new_run_dir",
    "normalize_overrides",
    "print_result",
    "resolve_config",
]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset`` and document the dotted overrides every config command accepts."""
    parser.add_argument("--preset", default=None, help="preset name (see `metalearn presets`)")
    parser.epilog = (
        "Any config field can be overridden as --section.field=value (or --section.field value), "
        "e.g. --train.steps=2000 --data.root ../shared/datasets. `metalearn config --preset P` "
        "prints every field."
    )
    parser.set_defaults(accepts_overrides=True)


def add_invert_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--invert/--no-invert`` for commands that read the user's image files."""
    parser.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="map dark strokes on a light page to 1 on 0 (default: on for Omniglot models)",
    )


def resolve_invert(config: RunConfig, invert: bool | None) -> bool:
    """``--invert`` as given, else on for Omniglot runs (whose images are strokes 1 on 0)."""
    return config.data.dataset == "omniglot" if invert is None else invert


def normalize_overrides(extra: Sequence[str]) -> list[str]:
    """Turn ``["--a.b", "1", "--c.d=2"]`` into ``["a.b=1", "c.d=2"]``.

    Raises:
        ConfigError: for an argument that is neither ``--key=value`` nor ``--key value``.
    """
    items, i = [], 0
    while i < len(extra):
        item = extra[i]
        if not item.startswith("--"):
            raise ConfigError(
                f"unexpected argument {item!r}; overrides look like --train.steps=2000"
            )
        if "=" in item:
            items.append(item[2:])
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            items.append(f"{item[2:]}={extra[i + 1]}")
            i += 2
        else:
            raise ConfigError(f"{item} needs a value: {item}=VALUE")
    return items


def resolve_config(
    preset: str | None, extra: Sequence[str], base: RunConfig | None = None
) -> RunConfig:
    """Return the preset (or ``base``) with the command line's overrides applied, checked.

    Raises:
        ConfigError: for a missing preset, a bad override, or a field out of range
            (:func:`metalearn.config_checks.check_config`).
    """
    if base is None:
        if preset is None:
            raise ConfigError("--preset is required (see `metalearn presets`)")
        base = get_preset(preset)
    config = apply_overrides(base, normalize_overrides(extra))
    check_algorithm(config)
    return resolve_channels(check_config(config))


def check_algorithm(config: RunConfig) -> None:
    """Refuse an unregistered algorithm name, or a classifier on sinusoid regression.

    Raises:
        ConfigError: before any file is written.
    """
    algorithm = get_algorithm(config.algorithm.name)
    if config.data.dataset == "sinusoid" and algorithm.kind != "gradient":
        regressors = [name for name, a in ALGORITHMS.items() if a.kind == "gradient"]
        raise ConfigError(
            f"--algorithm.name={algorithm.name} classifies; sinusoid regression needs one of "
            f"{', '.join(regressors)}"
        )


def new_run_dir(config: RunConfig, runs_root: str | Path = "runs") -> Path:
    """Create and return ``runs_root/<preset>-<YYYYmmdd-HHMMSS>`` (suffixed if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(runs_root) / f"{config.name}-{stamp}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)  # not exist_ok: two processes never share a new folder
            return path
        except FileExistsError:
            path, n = Path(f"{base}-{n}"), n + 1


def load_run(path: str | Path, *, overrides: Sequence[str] = ()) -> tuple[RunConfig, Any, Path]:
    """Return ``(config, learner, checkpoint_path)`` of a run folder or checkpoint file.

    A run folder loads ``best.pt`` when validation kept one, else ``checkpoint.pt``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run folder or checkpoint file")
    if path.is_dir():
        run_dir, checkpoint = path, best_checkpoint(path)
    else:
        run_dir, checkpoint = path.parent, path
    config = resolve_config(None, overrides, base=read_config(run_dir))
    return config, load_learner(config, checkpoint), checkpoint


def print_result(label: str, result: EvalResult) -> None:
    """Print ``label: result`` and, for a sweep, the value after each number of steps."""
    print(f"{label}: {result}")
    for n_steps, summary in result.steps_summary().items():
        print(f"  after {n_steps} steps: {summary.mean:.4f} +- {summary.ci95:.4f}")
