"""Fixtures of the CLI tests: an isolated working folder and the session's Omniglot cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METALEARN_CACHE", str(cache_dir))


@pytest.fixture
def run_cli(capsys):
    """Run ``metalearn`` in-process; return ``(exit_code, stdout, stderr)``."""
    from metalearn.cli.main import main

    def run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
