"""benchmarks/fashion_mnist_summary.py judges the forget-aware targets from a bench's rows: the
PruneLoRA family's best against the best other method, per scenario."""

from __future__ import annotations

from helpers import load_script


def rows(scenario, method, gaps, wall, probe_gap):
    return [{"scenario": scenario, "method": method, "seed": float(s), "Avg.Gap": g, "wall_time_s": wall,
             "Probe.Gap": probe_gap} for s, g in enumerate(gaps)]


def test_family_best_against_best_other_per_scenario():
    summary = load_script("fashion_mnist_summary")
    data = (rows("class3", "retrain", [0, 0], 200, 0) + rows("class3", "retrain-vs-retrain", [0.4], 200, 1.0)
            + rows("class3", "prunelora", [5, 7], 20, 3.0)
            + rows("class3", "prunelora@forget-aware", [0.2, 0.4], 25, 1.5)
            + rows("class3", "random-label", [0.5, 0.7], 30, 4.0)
            + rows("class3", "finetune", [9, 9], 10, 0.5)
            + rows("random10", "retrain", [0, 0], 200, float("nan"))
            + rows("random10", "prunelora", [8, 8], 20, float("nan"))
            + rows("random10", "random-label", [3, 3], 30, float("nan")))
    lines = summary.forget_aware_targets("cfg", data)
    assert len(lines) == 2
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    # family best: forget-aware (mean 0.3) against random-label (0.6), faster, and within 2 probe points
    assert cells[:3] == ["cfg", "class3", "prunelora@forget-aware"]
    assert cells[3] == "0.30" and cells[6] == "random-label" and cells[7] == "0.60"
    assert cells[10] == "0.40"  # the noise floor
    assert cells[11] == "gap and time held; probe held"
    assert cells[12] == "prunelora@forget-aware: 0.30, 25.0 s, Probe.Gap 1.5"
    random_cells = [c.strip() for c in lines[1].strip("|").split("|")]
    assert random_cells[2] == "prunelora" and random_cells[11] == "gap missed"


def test_probe_not_separated_and_slower_family_miss():
    summary = load_script("fashion_mnist_summary")
    data = (rows("class8", "prunelora", [0.1], 50, 1.0) + rows("class8", "random-label", [0.2], 30, 1.5))
    cells = [c.strip() for c in summary.forget_aware_targets("cfg", data)[0].strip("|").split("|")]
    assert cells[11] == "gap and time missed; probe not separated (both within 2)"


def test_the_family_member_judged_is_the_best_one_no_slower_than_the_rival():
    summary = load_script("fashion_mnist_summary")
    data = (rows("class3", "prunelora@forget-aware", [0.2], 50, 1.0) + rows("class3", "prunelora", [0.5], 20, 1.0)
            + rows("class3", "random-label", [0.6], 30, 5.0))
    cells = [c.strip() for c in summary.forget_aware_targets("cfg", data)[0].strip("|").split("|")]
    assert cells[2] == "prunelora" and cells[11] == "gap and time held; probe held"
    # the lowest gap of the family, slower than the rival, is shown beside the verdict
    assert cells[12] == "prunelora@forget-aware: 0.20, 50.0 s, Probe.Gap 1.0"


def test_an_unmeasured_gap_ranks_last_and_an_unmeasured_probe_is_said():
    summary = load_script("fashion_mnist_summary")
    nan = float("nan")
    data = (rows("class3", "prunelora", [0.5], 20, nan) + rows("class3", "ssd", [nan], 5, 1.0)
            + rows("class3", "random-label", [0.6], 30, 5.0))
    cells = [c.strip() for c in summary.forget_aware_targets("cfg", data)[0].strip("|").split("|")]
    assert cells[6] == "random-label"  # not ssd, whose gap is missing
    assert cells[11] == "gap and time held; probe unmeasured"
