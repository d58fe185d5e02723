"""The method chooser: its table is the committed Fashion-MNIST results (read here, so that the two
cannot drift apart), its choices are the lowest measured gaps, the docs show the same table, and
`prunelora recommend` / `prunelora methods` answer from it; the budget warning of `unlearn`."""

from __future__ import annotations

import csv
import json
import shlex
import statistics
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from helpers import BENCHMARKS, one_error_line

from prunelora.cli import build_parser
from prunelora.methods import list_methods, unlearn
from prunelora.methods.budget import FAR_BELOW, BudgetWarning, budget_message
from prunelora.presets import preset_path
from prunelora.recommend import (
    BENCHMARK,
    CONFIGS,
    FAMILIES,
    KINDS,
    NOISE_FLOOR_ROW,
    RECOMMENDATIONS,
    RESULTS_PAGE,
    SCENARIOS,
    TIE,
    good_for,
    model_family,
    recommend,
    recommend_markdown,
)

REPO = BENCHMARKS.parent


def _committed() -> dict[tuple[str, str, str], tuple[float, float, float, float | None]]:
    """(config, scenario, row) -> mean (Avg.Gap, time / retrain, steps, Probe.Gap or None) over seeds,
    from results.csv."""
    found: dict = defaultdict(list)
    for config in set(CONFIGS.values()):
        with open(BENCHMARKS / "results" / config / "results.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["method"] != "retrain":
                    found[(config, row["scenario"], row["method"])].append(
                        (float(row["Avg.Gap"]), float(row["time_ratio"]), float(row["steps"]),
                         float(row["Probe.Gap"]) if row["Probe.Gap"] else None))
    out = {}
    for key, values in found.items():
        probes = [v[3] for v in values]
        out[key] = (*(statistics.fmean(v[i] for v in values) for i in range(3)),
                    None if None in probes else statistics.fmean(probes))
    return out


def test_the_table_is_the_committed_results():
    committed = _committed()
    assert set(BENCHMARK) == set(committed)
    for key, (gap, time, steps, probe) in BENCHMARK.items():
        want_gap, want_time, want_steps, want_probe = committed[key]
        assert gap == pytest.approx(want_gap, abs=0.0005 + 1e-9), key
        assert time == pytest.approx(want_time, abs=0.0005 + 1e-9), key
        assert steps == want_steps, key
        assert (probe is None) == (want_probe is None), key
        if probe is not None:
            assert probe == pytest.approx(want_probe, abs=0.005 + 1e-9), key


def _group_means(family: str, kind: str, index: int = 0) -> dict[str, float]:
    """Every row measured in all of the kind's scenarios on the family's benchmark -> mean Avg.Gap
    (index 3: mean Probe.Gap, for the rows that have one)."""
    config = CONFIGS[family]
    rows = {row for (c, s, row) in BENCHMARK if c == config and s in SCENARIOS[kind] and row != NOISE_FLOOR_ROW}
    rows = {row for row in rows if all((config, s, row) in BENCHMARK for s in SCENARIOS[kind])}
    values = {row: [BENCHMARK[(config, s, row)][index] for s in SCENARIOS[kind]] for row in rows}
    return {row: statistics.fmean(v) for row, v in values.items() if None not in v}


@pytest.mark.parametrize(("family", "kind"), [(f, k) for f in FAMILIES for k in KINDS])
def test_each_first_choice_is_close_at_the_outputs_and_hides_least_in_the_features(family, kind):
    rec = recommend(family, kind)
    means, probes = _group_means(family, kind), _group_means(family, kind, index=3)
    first = means[rec.first.row]
    assert first == pytest.approx(rec.first.gap(family, kind))
    assert first - min(means.values()) <= TIE
    tied = [row for row, gap in means.items() if gap - min(means.values()) <= TIE]
    if kind == "class":  # the probe decides between methods as close at the outputs
        assert probes[rec.first.row] == min(probes[row] for row in tied)
    else:  # no probe for records: the lowest gap
        assert first == min(means.values())
    lower = {row for row, gap in means.items() if gap < first}
    assert lower <= {c.row for c in rec.also}, "a method measured closer to the retrain must be listed"


def test_the_unmeasured_family_gets_the_choice_that_was_near_first_everywhere():
    for kind in KINDS:
        rec = recommend(None, kind)
        assert rec.sure.startswith("low")
        for family in FAMILIES:
            means = _group_means(family, kind)
            assert means[rec.first.row] - min(means.values()) <= 0.5


def test_every_recommended_command_parses_and_names_a_shipped_preset():
    parser, _ = build_parser(["unlearn"])
    for rec in RECOMMENDATIONS.values():
        for choice in (rec.first, *rec.also):
            args = parser.parse_args(["unlearn", "--checkpoint", "c", "--out", "o", "--forget-class", "3",
                                      *shlex.split(choice.flags)])
            if args.preset:
                assert yaml.safe_load(preset_path(args.preset).read_text())["method"] == choice.method
            else:
                assert args.method == choice.method
        for figure in rec.figures():
            assert (REPO / figure).is_file(), figure
    assert (REPO / RESULTS_PAGE).is_file()


def test_the_docs_page_shows_the_same_table():
    page = (REPO / "docs" / "guides" / "choosing-a-method.md").read_text()
    assert recommend_markdown() in page


def test_recommend_refuses_an_unknown_family_in_one_line():
    with pytest.raises(ValueError, match="'mlp' is not one of: conv, vit"):
        recommend("mlp", "class")


@pytest.mark.parametrize(("name", "shapes", "family"), [
    ("resnet8", None, "conv"), ("vit-tiny", None, "vit"), ("torchvision:resnet18", None, "conv"),
    ("timm:vit_small_patch16_224", None, "vit"),
    ("factory:net.py:make", {"blocks.0.attn.in_proj_weight": (192, 64), "patch.weight": (64, 1, 4, 4)}, "vit"),
    ("factory:net.py:make", {"features.0.weight": (16, 1, 3, 3), "logits.weight": (10, 16)}, "conv"),
    ("factory:net.py:make", {"fc1.weight": (32, 64), "fc2.weight": (10, 32)}, None),
])
def test_the_model_family_comes_from_the_name_else_from_the_tensors(name, shapes, family):
    assert model_family(name, shapes) == family


# --------------------------------------------------------------------------- the commands


def test_recommend_names_the_method_budget_and_evidence_for_a_class(run_cli, checkpoint_dir):
    code, stdout, stderr = run_cli("recommend", checkpoint_dir, "--forget-class", "3")
    assert code == 0, stderr
    rec = recommend("conv", "class")
    assert "a convolutional network" in stdout
    assert f"--forget-class 3 {rec.first.flags} --out OUT" in stdout  # a command to copy
    assert "how sure: high" in stdout and "two retrains differ by" in stdout
    assert "Probe.Gap 4.3 / 1.7 (two retrains: 0.9)" in stdout  # the features, beside the outputs
    assert rec.figures()[0] in stdout


def test_recommend_for_records_and_as_json(run_cli, checkpoint_dir):
    code, stdout, stderr = run_cli("recommend", checkpoint_dir, "--forget-fraction", "0.1", "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert (data["family"], data["kind"], data["first"]["method"]) == ("conv", "records", "cmf")
    assert data["first"]["avg_gap"] == pytest.approx(BENCHMARK[("fashion-mnist-resnet8", "random10", "cmf")][0])
    assert data["first"]["probe_gap"] is None and data["probe_noise_floor"] is None  # no probe for records
    assert data["noise_floor"] > 0 and data["how_sure"].startswith("medium")


@pytest.mark.parametrize(("args", "words"), [(("--forget-class", "12"), ["--forget-class 12", "0 to 9"]),
                                             ((), ["say what to forget"])])
def test_recommend_refuses_a_bad_request_in_one_line(run_cli, checkpoint_dir, args, words):
    line = one_error_line(run_cli("recommend", checkpoint_dir, *args), "recommend")
    assert all(w in line for w in words), line


def test_methods_lists_what_each_is_good_for_and_its_measured_gap(run_cli):
    code, stdout, stderr = run_cli("methods")
    assert code == 0, stderr
    lines = {line.split()[0]: line for line in stdout.splitlines()}
    assert list(lines) == list(list_methods())
    assert "good for: class " in lines["eu-k"] and "good for: class (runner-up), records " in lines["cmf"]
    assert "class (conv, runner-up, preset prunelora-forget-aware-resnet)" in lines["prunelora"]
    assert "class (vit, runner-up, preset prunelora-deep-light)" in lines["prunelora-deep"]
    assert "good for: - " in lines["ssd"] and "Avg.Gap 9.2-64.6" in lines["ssd"]
    assert "not measured" in lines["retrain"]
    assert good_for("random-label") == "class (conv, runner-up), records (runner-up)"


# --------------------------------------------------------------------------- the budget warning


def test_the_budget_message_names_both_step_counts():
    message = budget_message("prunelora", None, 55)
    assert "55 optimizer steps" in message and "about 1,750" in message and "\n" not in message
    assert budget_message("prunelora", None, int(1750 * FAR_BELOW)) is None  # not far below
    assert budget_message("random-label", None, 1) is None  # its recipe states no budget


def test_unlearn_warns_when_a_recipe_runs_far_below_its_budget(trained, class3_splits):
    with pytest.warns(BudgetWarning, match=r"finetune trained 2 optimizer steps; its recipe assumes about 1,750"):
        unlearn(trained.model, class3_splits, "finetune", steps=2, progress=False, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)  # a method whose recipe states no budget
        unlearn(trained.model, class3_splits, "ga", steps=2, progress=False, device="cpu")


def test_a_forget_aware_prunelora_is_held_to_its_own_short_repair(trained, class3_splits):
    options = {"prune_criterion": "activation-ratio", "prune_amount": 0.06, "prune_scope": "global",
               "progress": False, "device": "cpu"}
    with pytest.warns(BudgetWarning, match="about 190"):
        unlearn(trained.model, class3_splits, "prunelora", steps=2, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        unlearn(trained.model, class3_splits, "prunelora", steps=20, **options)


def test_the_unlearn_command_prints_the_warning_in_one_line(run_cli, checkpoint_dir, tmp_path: Path):
    from prunelora.cli.app import _one_line_warnings

    with pytest.warns(BudgetWarning) as record:
        code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--method", "lora", "--steps", "3",
                                  "--forget-class", "3", "--no-progress", "--out", tmp_path / "out")
    assert code == 0, stderr
    (warning,) = [w for w in record if w.category is BudgetWarning]
    with _one_line_warnings():
        printed = warnings.formatwarning(warning.message, BudgetWarning, "base.py", 1)
    assert printed.startswith("prunelora: warning: lora trained 3 optimizer steps") and printed.count("\n") == 1


def test_the_readme_shows_the_same_table():
    readme = (REPO / "README.md").read_text()
    assert recommend_markdown().strip() in readme
