"""The transfer-learning table of BENCHMARKS.md from the JSON lines of ``transfer.py``.

One row per method (``--label``), one column per test domain and shot count; the training
columns give the steps and wall-clock minutes of the run behind the Vinyals-split and the
lake-split cells. A cell that was not run says so.

    python benchmarks/transfer_table.py results.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COLUMNS = [("vinyals", 1), ("vinyals", 5), ("lake", 1), ("lake", 5), ("glyphs", 1), ("glyphs", 5)]
TITLES = {"vinyals": "Omniglot", "lake": "cross-alphabet", "glyphs": "glyphs"}


def training(rows: list[dict[str, Any]]) -> str:
    """``steps, minutes`` of the run behind ``rows`` (they share it), or a dash."""
    if not rows:
        return "-"
    return f"{rows[0]['train_steps']:,} steps, {rows[0]['train_s'] / 60:.1f} min"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table; later lines of the same cell replace earlier ones."""
    cells = {(r["label"], r["domain"], r["shots"]): r for r in rows}
    labels = list(dict.fromkeys(r["label"] for r in rows))
    header = ["method", "training (Vinyals split)", "training (lake split)"]
    header += [f"{TITLES[d]} {s}-shot" for d, s in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        line = [
            label,
            training([r for r in mine if r["domain"] != "lake"]),
            training([r for r in mine if r["domain"] == "lake"]),
        ]
        for domain, shots in COLUMNS:
            r = cells.get((label, domain, shots))
            line.append(
                "not run" if r is None else f"{100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}"
            )
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON lines written by transfer.py --out")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
