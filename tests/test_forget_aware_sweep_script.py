"""benchmarks/forget_aware_sweep.py runs in --quick mode (digits) and writes its table, CSV and plot
with one row per retrain and per criterion x amount; the numbers of a quick run are not checked."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import pytest

# slow: a benchmark script: ten pruned runs and two retrains; the criteria and the
# amount search are covered by tests/test_forget_aware.py
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "forget_aware_sweep.py"


def test_forget_aware_sweep_script_runs_in_quick_mode(tmp_path):
    spec = importlib.util.spec_from_file_location("forget_aware_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows, paths = module.main(["--quick", "--out", str(tmp_path), "--models", "resnet8", "--scenarios", "class",
                               "random10", "--criteria", "l2", "activation-ratio", "--amounts", "0.06", "0.5"])
    assert [(r["scenario"], r["criterion"], r["amount"]) for r in rows if r["criterion"] != "retrain"] == [
        (s, c, a) for s in ("class", "random10") for c in ("l2", "activation-ratio") for a in (0.06, 0.5)]
    assert sum(r["criterion"] == "retrain" for r in rows) == 2
    for row in rows:
        if row["criterion"] != "retrain":
            assert row["chosen_amount"] == row["amount"]  # no automatic amount asked for
            assert math.isfinite(row["Avg.Gap"]) and row["wall_time_s"] > 0
    class_rows = [r for r in rows if r["scenario"] == "class"]
    assert all(math.isfinite(r["Probe-FA"]) for r in class_rows)  # the probe needs class-wise forgetting
    with paths["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert paths["md"].read_text().count("\n") == len(rows) + 2
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merge_keeps_the_other_models_rows_and_replaces_the_rerun_ones(tmp_path):
    spec = importlib.util.spec_from_file_location("forget_aware_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def row(model, criterion, gap):
        return {"model": model, "scenario": "class", "criterion": criterion, "amount": 0.06, "chosen_amount": 0.06,
                "UA": 100.0, "RA": 99.0, "TA": 88.0, "MIA": 100.0, "Avg.Gap": gap, "Probe-FA": 90.0,
                "wall_time_s": 30.0}

    module.write([row("resnet8", "l2", 4.0), row("vit", "l2", 9.0)], tmp_path)
    assert module.read_rows(tmp_path / "sweep.csv") == [row("resnet8", "l2", 4.0), row("vit", "l2", 9.0)]
    merged = module.merge([row("vit", "tfidf", 1.5)], tmp_path / "sweep.csv", ["vit"])
    assert merged == [row("resnet8", "l2", 4.0), row("vit", "tfidf", 1.5)]
    assert module.merge([row("vit", "l2", 2.0)], tmp_path / "absent.csv", ["vit"]) == [row("vit", "l2", 2.0)]
    # one criterion again: its rows and the retrain's are replaced, the other criteria's kept
    module.write([row("vit", "retrain", 0.0), row("vit", "l2", 9.0), row("vit", "tfidf", 6.0)], tmp_path)
    merged = module.merge([row("vit", "retrain", 0.1), row("vit", "tfidf", 2.0)], tmp_path / "sweep.csv", ["vit"],
                          ["tfidf"])
    assert merged == [row("vit", "l2", 9.0), row("vit", "retrain", 0.1), row("vit", "tfidf", 2.0)]
