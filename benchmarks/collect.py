"""Print a Markdown table of the meta-test results of run folders (test.json + config.json).

Usage: python benchmarks/collect.py runs/bench/*
"""

import argparse
import json
from pathlib import Path


def row(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    result = json.loads((run / "test.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    minutes = max((r.get("elapsed_s", 0.0) for r in rows), default=0.0) / 60
    steps = max((r["step"] for r in rows), default=0)
    data, ev = config["data"], config["eval"]
    way = ev["n_way"] or data["n_way"]
    shot = ev["n_shot"] or data["n_shot"]
    setting = f"K={shot}" if data["dataset"] == "sinusoid" else f"{way}-way {shot}-shot"
    by_steps = result.get("by_inner_steps", {})
    sweep = ", ".join(f"{k} steps: {v['mean']:.3f} ± {v['ci95']:.3f}" for k, v in by_steps.items())
    headline = f"{result['mean']:.4f} ± {result['ci95']:.4f}"
    return (
        f"| {run.name} | {setting} | {steps} | {minutes:.1f} min | {result['metric']} | "
        f"{headline} | {result['episodes']} | {sweep} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| run | setting | steps | train time | metric | mean ± 95% CI | episodes | by steps |")
    print("|---|---|---:|---:|---|---:|---:|---|")
    for run in args.runs:
        if (run / "test.json").is_file():
            print(row(run))


if __name__ == "__main__":
    main()
