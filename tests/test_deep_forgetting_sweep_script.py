"""benchmarks/deep_forgetting_sweep.py runs in --quick mode (digits) and writes its table and CSV,
one row for the retrain and one per rank x strength x repair; the numbers of a quick run are not checked."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import pytest

# slow: a benchmark script (two trainings and three unlearning runs); the method is covered by
# tests/test_prunelora_deep.py and the metrics by tests/test_representation.py
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "deep_forgetting_sweep.py"


def test_deep_forgetting_sweep_script_runs_in_quick_mode(tmp_path):
    spec = importlib.util.spec_from_file_location("deep_forgetting_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows, paths = module.main(["--quick", "--out", str(tmp_path), "--models", "resnet8", "--ranks", "1", "2",
                               "--strengths", "1.0", "--repairs", "subspace", "none"])
    assert [(r["repair"], r["rank"]) for r in rows] == [
        ("retrain", rows[0]["rank"]), ("subspace", 1), ("none", 1), ("subspace", 2), ("none", 2)]
    assert rows[0]["class"] == 7  # a class no benchmark config uses
    for row in rows[1:]:
        for key in ("Avg.Gap", "Probe.Gap", "Residue.Gap", "CKA-original-forget", "CKA-retrain-forget"):
            assert math.isfinite(row[key]), key
        assert row["wall_time_s"] > 0
    with paths["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert paths["md"].read_text().count("\n") == len(rows) + 2
