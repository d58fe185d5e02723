"""benchmarks/forget_aware_sweep.py runs in --quick mode (digits) and writes its table, CSV and plot
with one row per retrain and per criterion x amount; the numbers of a quick run are not checked."""

from __future__ import annotations

import csv
import math

import pytest
from helpers import load_script

# slow: a benchmark script: ten pruned runs and two retrains; the criteria and the
# amount search are covered by tests/test_forget_aware.py
pytestmark = pytest.mark.slow

def test_forget_aware_sweep_script_runs_in_quick_mode(tmp_path):
    module = load_script("forget_aware_sweep")
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


def test_merge_replaces_only_the_rows_measured_again(tmp_path):
    module = load_script("forget_aware_sweep")

    def row(model, criterion, gap, scenario="class", amount=0.06):
        return {"model": model, "scenario": scenario, "criterion": criterion,
                "amount": math.nan if criterion == "retrain" else amount, "chosen_amount": amount,
                "UA": 100.0, "RA": 99.0, "TA": 88.0, "MIA": 100.0, "Avg.Gap": gap, "Probe-FA": 90.0,
                "wall_time_s": 30.0}

    def same(a, b):
        return [{k: (None if v != v else v) for k, v in r.items()} for r in a] == \
            [{k: (None if v != v else v) for k, v in r.items()} for r in b]

    earlier = [row("resnet8", "l2", 4.0), row("vit", "retrain", 0.0), row("vit", "l2", 9.0),
               row("vit", "tfidf", 6.0), row("vit", "tfidf", 7.0, amount=0.5),
               row("vit", "retrain", 0.0, scenario="random10"), row("vit", "tfidf", 8.0, scenario="random10")]
    module.write(earlier, tmp_path)
    assert same(module.read_rows(tmp_path / "sweep.csv"), earlier)
    # tfidf at 6% on the ViT's class scenario again: that row and that retrain go, the rest stays
    again = [row("vit", "retrain", 0.1), row("vit", "tfidf", 2.0)]
    merged = module.merge(again, tmp_path / "sweep.csv")
    assert same(merged, [earlier[0], earlier[2], earlier[4], earlier[5], earlier[6], *again])
    assert same(module.merge(again, tmp_path / "absent.csv"), again)


def test_replot_rewrites_table_and_plot_from_the_csv_in_order(tmp_path):
    module = load_script("forget_aware_sweep")
    base = {"chosen_amount": 0.06, "UA": 100.0, "RA": 99.0, "TA": 88.0, "MIA": 100.0, "Avg.Gap": 1.0,
            "Probe-FA": 90.0, "wall_time_s": 30.0}
    rows = [{"model": "vit", "scenario": "class", "criterion": "tfidf", "amount": 0.5, **base},
            {"model": "resnet8", "scenario": "random10", "criterion": "l2", "amount": 0.06, **base, "Probe-FA": math.nan},
            {"model": "vit", "scenario": "class", "criterion": "retrain", "amount": math.nan, **base},
            {"model": "vit", "scenario": "class", "criterion": "tfidf", "amount": 0.06, **base}]
    module.write(rows, tmp_path)
    (tmp_path / "sweep.png").unlink()
    replotted, paths = module.main(["--replot", "--out", str(tmp_path)])
    assert [(r["model"], r["criterion"], r["amount"]) for r in replotted][:1] == [("resnet8", "l2", 0.06)]
    assert replotted[1]["criterion"] == "retrain" and math.isnan(replotted[1]["amount"])
    assert [(r["criterion"], r["amount"]) for r in replotted[2:]] == [("tfidf", 0.06), ("tfidf", 0.5)]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["md"].read_text().count("\n") == len(rows) + 2
    with pytest.raises(SystemExit, match="no sweep.csv"):
        module.main(["--replot", "--out", str(tmp_path / "empty")])
