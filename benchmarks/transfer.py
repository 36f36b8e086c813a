"""Few-shot accuracy of a trained run on Omniglot or printed glyphs, optionally fine-tuned.

Every run is scored on the same fixed 5-way test episodes of a domain (``--seed``), with the
run's own learner or, with ``--as baseline`` / ``--as baseline-pp``, with a new linear /
cosine head fitted on each support set over the run's encoder (Chen et al.'s fine-tuning;
``--finetune-encoder`` fine-tunes the whole network too). One JSON line per shot setting is
appended to ``--out``, with the run's training steps and seconds.

    python benchmarks/transfer.py runs/protonet --domain vinyals --shots 1 5 --out t.jsonl
    python benchmarks/transfer.py runs/protonet --as baseline --domain glyphs --glyphs glyphs/
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from metalearn.build import build_tasks
from metalearn.cli.common import load_run
from metalearn.data import ImageFolderDataset, TaskSampler
from metalearn.training import load_checkpoint, meta_test


def episodes(config: Any, domain: str, shots: int, n: int, seed: int, glyphs: Path | None) -> Any:
    """The fixed 5-way ``shots``-shot test episodes (15 queries per class) of ``domain``."""
    if domain == "glyphs":
        assert glyphs is not None, "--domain glyphs needs --glyphs DIR (make_glyphs.py output)"
        dataset = ImageFolderDataset(glyphs / "test", config.data.image_size, invert=True)
        return list(TaskSampler(dataset, 5, shots, 15, seed=seed).episodes(n))
    data = dataclasses.replace(config.data, split=domain)
    ev = dataclasses.replace(config.eval, n_way=5, n_shot=shots, n_query=15, seed=seed)
    test = dataclasses.replace(config, data=data, eval=ev)
    return list(build_tasks(test, "test").episodes(n))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--domain", choices=("vinyals", "lake", "glyphs"), default="vinyals")
    parser.add_argument("--glyphs", type=Path, default=None)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--as", dest="as_", choices=("baseline", "baseline-pp"), default=None)
    parser.add_argument("--finetune-encoder", action="store_true")
    parser.add_argument("--label", default=None)
    parser.add_argument("--out", type=Path, default=Path("transfer.jsonl"))
    args = parser.parse_args()
    overrides = [f"--algorithm.name={args.as_}", "--algorithm.n_classes=0"] if args.as_ else []
    if args.finetune_encoder:
        overrides.append("--algorithm.finetune_encoder=true")
    config, learner, checkpoint = load_run(args.run, overrides=overrides)
    trained = load_checkpoint(checkpoint)
    for shots in args.shots:
        start = time.perf_counter()
        test = episodes(config, args.domain, shots, args.episodes, args.seed, args.glyphs)
        result = meta_test(learner, test, batch_size=config.eval.batch_size)
        row = {
            "label": args.label or config.name,
            "run": str(args.run),
            "learner": config.algorithm.name + (" +ft-encoder" if args.finetune_encoder else ""),
            "domain": args.domain,
            "shots": shots,
            "mean": result.mean,
            "ci95": result.ci95,
            "episodes": result.n,
            "train_steps": trained["step"],
            "train_s": trained["elapsed_s"],
            "test_s": time.perf_counter() - start,
        }
        print(json.dumps(row))
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
