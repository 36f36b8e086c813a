"""The ``metalearn`` command: registers the subcommands and maps errors to exit codes.

Usage errors (bad flags, unknown preset or override, a value out of range, an episode the data
cannot fill) exit with 2, runtime errors (missing data, corrupt image, bad checkpoint, a diverged
run, a locked run folder, any ``OSError``: full disk, read-only folder, permission) with 1; both
print one ``error: ...`` line, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Sequence
from typing import Any

from metalearn import __version__
from metalearn.errors import ConfigError, MetalearnError

__all__ = ["main"]


def _subcommands() -> list[Any]:
    # Imported here so that `metalearn --help` stays fast and each module stays independent.
    from metalearn.cli import (
        adapt,
        demo,
        evaluate,
        finetune,
        info,
        plot,
        presets,
        serve,
        train,
    )

    return [train, evaluate, adapt, finetune, serve, plot, demo, presets, info]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``metalearn`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="metalearn",
        description="Meta-learning in deep networks: train, evaluate, adapt and predict.",
    )
    parser.add_argument("--version", action="version", version=f"metalearn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _subcommands():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``metalearn`` command line and return its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.run(args))
    except ConfigError as error:
        _print_error(str(error))
        return 2
    except MetalearnError as error:
        _print_error(str(error))
        return 1
    except OSError as error:
        _print_error(describe_os_error(error))
        return 1
    except KeyboardInterrupt:
        print("interrupted: resume with --resume", file=sys.stderr)
        return 130


_OS_ADVICE = {
    errno.ENOSPC: "free disk space, then run the command again (train: with --resume)",
    errno.EDQUOT: "free disk space, then run the command again (train: with --resume)",
    errno.EACCES: "check the permissions, or choose another folder",
    errno.EPERM: "check the permissions, or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
}


def describe_os_error(error: OSError) -> str:
    """One line for an ``OSError``: what failed, on which file, and what to do."""
    message = error.strerror or str(error) or type(error).__name__
    if error.filename is not None:
        message = f"{message}: {error.filename}"
    advice = _OS_ADVICE.get(error.errno or 0)
    return f"{message}; {advice}" if advice else message


def _print_error(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # always one line


if __name__ == "__main__":
    sys.exit(main())
