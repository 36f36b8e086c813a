"""Configuration-override fuzz: seeded random overrides against `config` and `train`.

Every case must end with a valid result (exit 0) or one ``error: ...`` line with exit 2 (exit 1
only for data that is not there), never a traceback; and a refused command must leave the run
folder it names byte-identical, and a refused new run must create no folder.

The values are wrong types, out-of-range numbers (just past each bound, so that nothing huge
is ever allocated), impossible episode specs (no classes for sinusoids, metric learners on
regression) and unknown keys, mixed with small valid values so that valid runs happen too.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import types
import typing
from pathlib import Path

import pytest

from metalearn.cli.overrides import flatten
from metalearn.config import RunConfig
from metalearn.registry import ALGORITHMS

KEYS = [key for key, _ in flatten(RunConfig())]
UNKNOWN = ["train.stepz", "foo.bar", "data", "data.n_way.x", "model.hidden_size", "device.x"]
INTS = ["-3", "0", "1", "2", "3", "1e400", "-1e400", "nan", "inf", "abc", "", "1.5", "3e0",
        "100001", "1025", "8193", "10001", "true"]  # fmt: skip
FLOATS = ["nan", "inf", "-inf", "0", "-1", "1e-3", "0.5", "2", "1e400", "x", "", "1e-13"]
BOOLS = ["true", "false", "maybe", "2", "", "on"]
STRINGS = ["", "x", "euclidean", "adam", "sgd", "max:loss", "min:", "auto", "cuda", "tpu",
           "cuda:7", "cpu", "mps", "cuda:x"]  # fmt: skip
TUPLES = ["0,1", "-1", "a,b", "", "0,10001", "3"]
NONE = ["none", "null"]

SINUSOID = [
    "--preset", "maml-sinusoid", "--train.meta_batch_size=2", "--eval.val_episodes=2",
    "--eval.episodes=2", "--train.log_every=1",
]  # fmt: skip


@pytest.fixture
def run_cli(capsys, tmp_path, monkeypatch, cache_dir):
    """Run ``metalearn`` in-process in an empty folder; return ``(code, stdout, stderr)``."""
    from metalearn.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METALEARN_CACHE", str(cache_dir))
    monkeypatch.setenv("CI", "1")

    def run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _annotation(key: str) -> object:
    owner: object = RunConfig()
    *path, name = key.split(".")
    for part in path:
        owner = getattr(owner, part)
    assert dataclasses.is_dataclass(owner)
    return typing.get_type_hints(type(owner))[name]


def _values(annotation: object) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [v for option in typing.get_args(annotation) for v in _values(option)] + NONE
    if origin is typing.Literal:
        return [str(c) for c in typing.get_args(annotation)] + ["bogus", ""]
    if origin is tuple:
        return TUPLES
    pools = {int: INTS, float: FLOATS, bool: BOOLS, str: STRINGS, type(None): NONE}
    return pools.get(annotation, STRINGS)  # type: ignore[call-overload]


NAMES = [*ALGORITHMS, "bogus", ""]  # algorithm.name is any registered name


def cases(seed: int, n: int) -> list[list[str]]:
    """``n`` lists of 1 to 3 overrides, drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    drawn = []
    for _ in range(n):
        overrides = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.1:
                overrides.append(f"--{rng.choice(UNKNOWN)}={rng.choice(INTS)}")
                continue
            key = rng.choice(KEYS)
            values = NAMES if key == "algorithm.name" else _values(_annotation(key))
            overrides.append(f"--{key}={rng.choice(values)}")
        drawn.append(overrides)
    return drawn


RL = ("navigation", "cheetah-vel", "cheetah-dir")


def trainable(case: list[str]) -> bool:
    """Cases for `train`: meta-RL's rollouts take minutes, so those are fuzzed by `config`."""
    return not any(o.startswith("--data.dataset=") and o.split("=", 1)[1] in RL for o in case)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def check_outcome(code: int, err: str, case: list[str]) -> None:
    assert "Traceback" not in err, case
    if code == 0:
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1, (case, err)
    assert lines[0].startswith("error: "), (case, err)
    assert code == 2 or (code == 1 and "not found" in err), (case, code, err)


def test_the_generator_covers_every_kind_of_bad_value():
    drawn = [o for case in cases(0, 300) for o in case]
    assert any("1e400" in o for o in drawn)
    assert any("=nan" in o for o in drawn)
    assert any(o.startswith("--foo.bar") or o.startswith("--train.stepz") for o in drawn)
    classifiers = [n for n, a in ALGORITHMS.items() if a.kind != "gradient"]  # not on sinusoids
    assert any(o.startswith("--algorithm.name=") and o.split("=")[1] in classifiers for o in drawn)
    assert len({o.split("=")[0] for o in drawn}) > 40


def test_config_command_never_tracebacks(run_cli):
    outcomes = {0: 0, 2: 0}
    for case in cases(0, 300):
        code, out, err = run_cli("config", "--preset", "maml-sinusoid", *case)
        check_outcome(code, err, case)
        assert code in outcomes, (case, err)
        outcomes[code] += 1
        if code == 0:
            json.loads(out)
    assert outcomes[0] > 10, outcomes
    assert outcomes[2] > 50, outcomes


@pytest.mark.slow
def test_train_resume_never_tracebacks_and_a_refusal_changes_nothing(run_cli):
    code, _, err = run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "R", "--no-test")
    assert code == 0, err
    original = snapshot(Path("R"))
    accepted = 0
    # a change resume allows comes first, so that the accepting path runs whatever the draw
    # (the seeded draws shift whenever a config field is added)
    allowed = [["--train.log_every=2", "--eval.episodes=3"]]
    for i, case in enumerate([*allowed, *filter(trainable, cases(1, 30))]):
        copy = Path(f"R{i}")
        shutil.copytree("R", copy)
        code, _, err = run_cli(
            "train", "--resume", str(copy), *case, "--train.steps=2", "--no-test"
        )
        check_outcome(code, err, case)
        if code != 0:
            assert snapshot(copy) == original, case
        accepted += code == 0
        shutil.rmtree(copy)
    assert accepted > 0


@pytest.mark.slow
def test_train_new_run_never_tracebacks_and_a_refusal_creates_nothing(run_cli):
    accepted = 0
    for i, case in enumerate(filter(trainable, cases(2, 20))):
        root = Path(f"runs{i}")
        code, _, err = run_cli(
            "train", *SINUSOID, *case, "--train.steps=2", "--runs", str(root), "--no-test"
        )
        check_outcome(code, err, case)
        if code != 0:
            assert not root.exists(), case
        accepted += code == 0
    assert accepted > 2
