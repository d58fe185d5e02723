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


def deep_rows(scenario, method, gap, probe_gap, wall, cka=(0.5, 0.6), relearn=1.0, seeds=2):
    return [{"scenario": scenario, "method": method, "seed": float(s), "Avg.Gap": gap, "Probe.Gap": probe_gap,
             "wall_time_s": wall, "CKA-original-forget": cka[0], "CKA-retrain-forget": cka[1],
             "relearn_ratio": relearn} for s in range(seeds)]


def test_deep_forgetting_targets_judge_one_member_on_every_class():
    summary = load_script("fashion_mnist_summary")
    data = []
    for scenario in ("class3", "class8"):
        data += (deep_rows(scenario, "retrain-vs-retrain", 0.2, 1.0, 200, relearn=0.8, seeds=1)
                 + deep_rows(scenario, "retrain-vs-retrain", 0.2, 1.0, 200, relearn=1.5, seeds=1)
                 + deep_rows(scenario, "random-label", 0.6, 5.0, 30)  # the fastest other with Avg.Gap <= 1
                 + deep_rows(scenario, "prunelora@forget-aware", 0.1, 6.0, 20)  # fast, but hides
                 + deep_rows(scenario, "eu-k", 2.0, 0.5, 60))
    data += deep_rows("class3", "prunelora-deep", 0.3, 1.5, 25) + deep_rows("class8", "prunelora-deep", 0.35, 1.9, 28)
    data += deep_rows("random10", "prunelora-deep", 3.0, float("nan"), 25) + deep_rows("random10", "random-label", 3.5,
                                                                                        float("nan"), 30)
    lines, held = summary.deep_targets("cfg", data)
    assert held == {1: True, 2: True, 3: True, 4: False}  # four peers are missing
    assert "prunelora-deep: Avg.Gap 0.30 (2x floor 0.40), Probe.Gap 1.5 (2x floor 2.0)" in lines[0]
    assert lines[-1].endswith("missing: cf-k, damp, opc, cmf; beating prunelora-deep on both axes: none | missed |")
    # a member slower than the fastest close rival misses target 1; CKA nearer the original misses target 2
    slow = [dict(r, wall_time_s=40.0) if r["method"] == "prunelora-deep" and r["scenario"] == "class8" else r
            for r in data]
    assert summary.deep_targets("cfg", slow)[1][1] is False
    hid = [dict(r, **{"CKA-retrain-forget": 0.4}) if r["method"] == "prunelora-deep" else r for r in data]
    assert summary.deep_targets("cfg", hid)[1][2] is False
    relearns_fast = [dict(r, relearn_ratio=0.2) if r["method"] == "prunelora-deep" else r for r in data]
    assert summary.deep_targets("cfg", relearns_fast)[1][2] is False
    worse = [dict(r, **{"Avg.Gap": 2.0, "Probe.Gap": 0.4}) if r["method"] == "eu-k" else r for r in data]
    worse = [dict(r, **{"Avg.Gap": 0.2}) if r["method"] == "eu-k" and r["scenario"] == "class3" else r for r in worse]
    assert "eu-k on class3 (Avg.Gap 0.20, Probe.Gap 0.4)" in summary.deep_targets("cfg", worse)[0][-1]


def relearn_rows(scenario, method, acc10, ratio, probe_gap, seeds=2):
    return [{"scenario": scenario, "method": method, "seed": float(s), "relearn_acc@10": acc10,
             "relearn_ratio": ratio, "Probe.Gap": probe_gap} for s in range(seeds)]


def test_relearning_is_consistent_when_both_classes_order_the_methods_alike():
    summary = load_script("fashion_mnist_summary")
    # four methods, hiding more (Probe.Gap) relearning faster (accuracy up, ratio down) on both classes
    methods = {"a": (5.0, 1.2, 0.5), "b": (20.0, 0.9, 2.0), "c": (40.0, 0.5, 5.0), "d": (70.0, 0.2, 9.0)}
    data = []
    for scenario, shift in (("class3", 0.0), ("class8", 3.0)):
        data += relearn_rows(scenario, "retrain", 0.0, 1.0, 0.0)  # left out of the orders
        for method, (acc, ratio, probe) in methods.items():
            data += relearn_rows(scenario, method, acc + shift, ratio, probe + shift)
    data += relearn_rows("random10", "a", 90.0, 0.1, float("nan"))  # a random forget set is not a class
    lines, verdict = summary.relearn_consistency("cfg", data)
    assert verdict is True
    assert lines[0] == "| cfg | relearn_acc@10 | 4 | 1.00 | 1.00 | 1.00 | consistent |"
    assert lines[1] == "| cfg | relearn_ratio | 4 | 1.00 | -1.00 | -1.00 | consistent |"
    # the second class orders the accuracy the other way round: not consistent (rho -1)
    flipped = [dict(r, **{"relearn_acc@10": 100 - r["relearn_acc@10"]}) if r["scenario"] == "class8" else r
               for r in data]
    lines, verdict = summary.relearn_consistency("cfg", flipped)
    assert verdict is False
    assert lines[0].startswith("| cfg | relearn_acc@10 | 4 | -1.00 |") and lines[0].endswith("not consistent |")
    # one class only, or every method alike: nothing to judge
    assert summary.relearn_consistency("cfg", [r for r in data if r["scenario"] != "class8"]) == ([], None)
    same = [dict(r, **{"relearn_acc@10": 50.0}) for r in data]
    assert summary.relearn_consistency("cfg", same)[1] is None


def test_deep_targets_never_judge_a_missing_probe_and_take_a_zero_floor():
    summary = load_script("fashion_mnist_summary")
    data = []
    for scenario in ("class3", "class8"):
        data += (deep_rows(scenario, "retrain-vs-retrain", 0.2, 1.0, 200, seeds=1)
                 + deep_rows(scenario, "random-label", 0.6, 5.0, 30)
                 + deep_rows(scenario, "prunelora-deep", 0.3, float("nan"), 25)  # the probe did not run
                 + deep_rows(scenario, "eu-k@5ep", 0.2, 0.5, 60))  # a peer under a variant name
    lines, held = summary.deep_targets("cfg", data)
    assert held[1] is None  # not "held" on Avg.Gap alone
    assert lines[0].endswith("| unmeasured |")
    assert "eu-k" in lines[-1].split("peers measured: ")[1].split(";")[0]
    # a noise floor of exactly 0 (two retrains alike): no crash, only a gap of 0 is within it
    alike = [dict(r, **{"Avg.Gap": 0.0}) if r["method"] == "retrain-vs-retrain" else r for r in data]
    alike = [dict(r, **{"Probe.Gap": 0.5}) if r["method"] == "prunelora-deep" else r for r in alike]
    lines, held = summary.deep_targets("cfg", alike)
    assert held[1] is False and "(2x floor 0.00)" in lines[0]
    # the peer beating the member on both axes is named under its variant name
    assert "eu-k@5ep on class3 (Avg.Gap 0.20, Probe.Gap 0.5)" not in lines[-1]  # not below 0.5 on the probe
    better = [dict(r, **{"Probe.Gap": 0.1}) if r["method"] == "eu-k@5ep" else r for r in alike]
    assert "eu-k@5ep on class3 (Avg.Gap 0.20, Probe.Gap 0.1)" in summary.deep_targets("cfg", better)[0][-1]
