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
