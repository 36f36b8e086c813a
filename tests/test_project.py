"""The README's promises: its two commands exist and CI runs the test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert re.search(r"^demo:", makefile, re.MULTILINE)
    # torch is pinned before the package so pip never resolves a CUDA build
    assert makefile.index("torch==2.13.0") < makefile.index('-e ".[dev,rl,plot]"')


def test_test_files_have_unique_names():
    # Test folders without __init__.py share one module namespace under pytest's default mode.
    names = [p.name for p in ROOT.glob("tests/**/test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
