"""benchmarks/deep_forgetting_sweep.py runs in --quick mode (digits) and writes its table and CSV,
one row for the retrain and one per variant and peer, per scenario; the numbers of a quick run are not
checked. A second run with the same --cache reuses the trained models (the same reference rows)."""

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
    cache = tmp_path / "cache"
    rows, paths = module.main(["--quick", "--out", str(tmp_path), "--models", "resnet8", "--variants", "deep",
                               "deep-rl", "--peers", "opc", "--cache", str(cache)])
    assert [(r["scenario"], r["variant"]) for r in rows] == [
        (scenario, variant) for scenario in ("class4", "random10-seed1")
        for variant in ("retrain", "deep", "deep-rl", "opc")]  # class 4: no benchmark config uses it
    for row in rows:
        assert row["wall_time_s"] > 0
        for key in ("Avg.Gap", "UA", "TA") if row["variant"] != "retrain" else ("UA", "TA"):
            assert math.isfinite(row[key]), key
    for row in rows[1:4]:  # class-wise: the representation metrics
        for key in ("Probe.Gap", "Residue.Gap", "CKA-original-forget", "CKA-retrain-forget"):
            assert math.isfinite(row[key]), key
    with paths["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert paths["md"].read_text().count("\n") == len(rows) + 2
    # each folder: the run's name and a hash of what defines it (recipe, model options, subset, forget set)
    names = sorted(p.name for p in cache.iterdir())
    assert [n.rsplit("-", 1)[0] for n in names] == [
        "digits-resnet8-seed0-quick-original", "digits-resnet8-seed0-quick-retrain-class4",
        "digits-resnet8-seed0-quick-retrain-random10-seed1"]
    assert all(len(n.rsplit("-", 1)[1]) == 8 for n in names)
    again, _ = module.main(["--quick", "--out", str(tmp_path / "again"), "--models", "resnet8", "--variants",
                            "deep", "--peers", "--scenarios", "class", "--cache", str(cache)])
    for key in ("UA", "RA", "TA", "Probe-FA", "wall_time_s"):  # the cached retrain ...
        assert again[0][key] == rows[0][key], key
    assert again[1]["UA"] == rows[1]["UA"] and again[1]["RA"] == rows[1]["RA"]  # ... and the cached original
    assert sorted(p.name for p in cache.iterdir()) == names  # nothing trained again
