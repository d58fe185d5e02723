"""benchmarks/fashion_mnist_tables.py prints the results page's condensed tables and the README's
cross table from a bench's results.csv, with the report's own formatting."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers import load_script

FIELDS = ["scenario", "method", "seed", "reference_seed", "UA", "RA", "TA", "MIA", "Avg.Gap", "Probe.Gap",
          "relearn_ratio", "relearn_capped", "relearn_ref_capped", "time_ratio"]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(scenario, method, seed, gap, probe="", ratio="", capped=0):
    return {"scenario": scenario, "method": method, "seed": seed, "reference_seed": seed, "UA": 100, "RA": 99,
            "TA": 88, "MIA": 100, "Avg.Gap": gap, "Probe.Gap": probe, "relearn_ratio": ratio,
            "relearn_capped": capped if ratio != "" else "", "relearn_ref_capped": 0 if ratio != "" else "",
            "time_ratio": 0.1}


def test_condensed_tables_leave_out_what_a_scenario_does_not_define(tmp_path: Path):
    tables = load_script("fashion_mnist_tables")
    path = write_csv(tmp_path / "results.csv", [
        row("class3", "eu-k", 0, 0.2, probe=4.0, ratio=0.5), row("class3", "eu-k", 1, 0.4, probe=2.0, ratio=0.7,
                                                                   capped=1),
        row("random10", "eu-k", 0, 4.0), row("random10", "eu-k", 1, 5.0)])
    text = tables.tables(path)
    class3, random10 = text.split("### random10")
    assert "| Probe.Gap |" in class3 and "| eu-k | 100.0 ± 0.0 |" in class3
    assert "3.0 ± 1.4" in class3  # Probe.Gap mean ± std over the two seeds
    assert "≥ 0.60 ± 0.14" in class3  # relearning capped in a seed: a lower bound, as in the report
    assert "Probe.Gap" not in random10 and "relearn" not in random10 and "| 4.50 ± 0.71 |" in random10  # Avg.Gap: two decimals


def test_headline_is_one_row_per_method_across_configs(tmp_path: Path):
    tables = load_script("fashion_mnist_tables")
    resnet = write_csv(tmp_path / "a.csv", [row("class3", "eu-k", 0, 0.25, probe=4.0),
                                            row("random10", "cmf", 0, 2.5)])
    vit = write_csv(tmp_path / "b.csv", [row("class3", "eu-k", 0, 0.5, probe=13.0)])
    lines = tables.headline({"fashion-mnist-resnet8": resnet, "fashion-mnist-vit-tiny": vit}).splitlines()
    assert lines[0] == "| method | ResNet-8 class3 | ResNet-8 random10 | ViT class3 |"
    assert "| `eu-k` | 0.25 / 4.0 | – | 0.50 / 13.0 |" in lines
    assert "| `cmf` | – | 2.50 | – |" in lines
    assert not any("prunelora-deep" in line for line in lines)  # no figures: no row
