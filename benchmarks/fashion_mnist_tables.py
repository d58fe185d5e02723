"""The condensed tables of the results page (docs/results/fashion-mnist.md), from the committed results.

Each config's `report.md` holds every column (22 of them); the results page shows the ones its
narrative reads — the outputs (UA, RA, TA, MIA-Eff, Avg.Gap), the features (Probe.Gap, Residue.Gap,
CKA to the original and to the retrain), relearning and cost — formatted by the same code as the
report (`prunelora.evaluation.report.markdown_table`), so the two cannot disagree.

`--headline` prints instead the README's table: a few methods across both configs and every
scenario, Avg.Gap / Probe.Gap (means over seeds; random 10%: Avg.Gap alone, the probe is class-wise).

Run: .venv/bin/python benchmarks/fashion_mnist_tables.py [--results benchmarks/results] [--headline]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from prunelora.evaluation.report import markdown_table, summarize

CONFIGS = ["fashion-mnist-resnet8", "fashion-mnist-vit-tiny"]
COLUMNS = [("UA", "UA"), ("RA", "RA"), ("TA", "TA"), ("MIA", "MIA-Eff"), ("Avg.Gap", "Avg.Gap"),
           ("Probe.Gap", "Probe.Gap"), ("Residue.Gap", "Residue.Gap"), ("CKA-original-forget", "CKA→orig"),
           ("CKA-retrain-forget", "CKA→retrain"), ("relearn_ratio", "relearn / retrain"),
           ("time_ratio", "time / retrain")]

HEADLINE = ["retrain-vs-retrain", "prunelora", "prunelora@forget-aware", "prunelora-deep", "prunelora-deep@light",
            "prunelora-deep@records", "eu-k", "cmf", "random-label", "opc", "damp", "prune-finetune"]
SHORT = {"fashion-mnist-resnet8": "ResNet-8", "fashion-mnist-vit-tiny": "ViT"}


def read_rows(path: Path) -> list[dict]:
    """results.csv as the bench wrote it: numbers as floats, an empty cell (undefined) as NaN."""
    with open(path, newline="") as f:
        return [{k: (v if k in ("scenario", "method") else float(v) if v != "" else math.nan)
                 for k, v in row.items()} for row in csv.DictReader(f)]


def tables(path: Path) -> str:
    """One condensed table per scenario; a column undefined for every method of it is left out."""
    out = []
    for scenario, methods in summarize(read_rows(path)).items():
        columns = [(k, label) for k, label in COLUMNS
                   if any(not math.isnan(m.get(k, (math.nan,))[0]) for m in methods.values())]
        out += [f"### {scenario}", "", markdown_table(methods, columns), ""]
    return "\n".join(out)


def headline(paths: dict[str, Path]) -> str:
    """The README's table: one row per method of HEADLINE, one column per config and scenario."""
    summaries = {config: summarize(read_rows(path)) for config, path in paths.items()}
    columns = [(config, scenario) for config, summary in summaries.items() for scenario in summary]
    lines = ["| method | " + " | ".join(f"{SHORT.get(c, c)} {s}" for c, s in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for method in HEADLINE:
        cells = []
        for config, scenario in columns:
            metrics = summaries[config][scenario].get(method)
            gap = metrics["Avg.Gap"][0] if metrics else math.nan
            probe = metrics.get("Probe.Gap", (math.nan,))[0] if metrics else math.nan
            cells.append("–" if math.isnan(gap) else f"{gap:.2f}" if math.isnan(probe) else f"{gap:.2f} / {probe:.1f}")
        if any(c != "–" for c in cells):
            lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results")
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--headline", action="store_true", help="the README's cross table instead")
    args = parser.parse_args()
    paths = {config: Path(args.results) / config / "results.csv" for config in args.configs}
    for path in paths.values():
        if not path.is_file():
            raise SystemExit(f"no results at {path}: run benchmarks/run_fashion_mnist.sh first")
    if args.headline:
        print(headline(paths))
        return
    for config, path in paths.items():
        print(f"## {config}\n\n{tables(path)}")


if __name__ == "__main__":
    main()
