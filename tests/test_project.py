"""The README's promises: its two commands exist and CI runs the test command."""

import re
from pathlib import Path

import pytest

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


def test_no_source_file_is_over_300_lines():
    # issue 16: each file reads top to bottom as the one thing it names
    sources = ROOT.glob("src/**/*.py")
    lengths = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in sources}
    assert not {path: n for path, n in lengths.items() if n > 300}


def test_test_files_have_unique_names():
    # Test folders without __init__.py share one module namespace under pytest's default mode.
    names = [p.name for p in ROOT.glob("tests/**/test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.slow
@pytest.mark.data
def test_the_readme_python_quickstart_runs(data_root, tmp_path, monkeypatch, cache_dir):
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Python API")[1].split("```python")[1].split("```")[0]
    shortened = (
        code.replace("steps=1000", "steps=2")
        .replace("test.episodes(600)", "test.episodes(10)")
        .replace("../shared/datasets", str(data_root))
    )
    assert shortened.count("steps=2") == 1, "the quick-start changed: update this test"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METALEARN_CACHE", str(cache_dir))
    namespace: dict = {}
    exec(compile(shortened, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (5 * 15, 5)
    assert (tmp_path / "runs" / "mine" / "checkpoint.pt").is_file()
