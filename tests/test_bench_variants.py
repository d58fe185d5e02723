"""Method variants in a bench (`NAME@LABEL`): one method at several budgets, each on its own row,
cell and report line; refusals of unknown names, bad labels and variants of retrain."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from helpers import one_error_line, tiny_bench, write_yaml

from prunelora.bench import NOISE_FLOOR, BenchConfig, split_method_key
from prunelora.errors import InvalidInputError
from prunelora.presets import preset_path

METHODS = ("retrain", "finetune", "finetune@e1")
BATCH = 128  # finetune's default batch size


VARIANTS = {"retrain": {}, "finetune": {"steps": 2}, "finetune@e1": {"epochs": 1}}


def variants_bench(methods: dict | None = None) -> dict:
    return tiny_bench("variants", VARIANTS if methods is None else methods)


@pytest.fixture(scope="module")
def finished(run_cli, tmp_path_factory):
    """The tiny bench with `finetune` and `finetune@e1`, run once: (config, out, stdout)."""
    folder = tmp_path_factory.mktemp("variants")
    config, out = write_yaml(folder / "bench.yaml", variants_bench()), folder / "out"
    code, stdout, stderr = run_cli("bench", "--config", config, "--out", out, "--no-progress")
    assert code == 0, stderr
    return config, out, stdout


def test_a_variant_is_its_own_row_with_its_own_budget(finished):
    _, out, stdout = finished
    rows = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in rows] == [METHODS[0], NOISE_FLOOR, *METHODS[1:]]
    by_method = {r["method"]: r for r in rows}
    cell = next((out / "cells" / "class3").glob("finetune@e1-*/seed0.json"))
    retain = json.loads(cell.read_text())["sizes"]["retain"]
    assert by_method["finetune"]["steps"] == 2
    assert by_method["finetune@e1"]["steps"] == math.ceil(retain / BATCH) != 2  # one epoch of D_r
    assert by_method["finetune@e1"]["UA"] != by_method["finetune"]["UA"] or \
        by_method["finetune@e1"]["RA"] != by_method["finetune"]["RA"]
    assert "class3 finetune@e1 seed 0: running" in stdout


def test_a_variant_has_its_own_cell_run_by_its_method(finished):
    _, out, _ = finished
    cells = {p.parent.name.rsplit("-", 1)[0]: json.loads(p.read_text())
             for p in (out / "cells" / "class3").glob("*/seed0.json")}
    assert sorted(cells) == sorted(METHODS)
    assert cells["finetune@e1"]["row"]["method"] == "finetune@e1"
    assert cells["finetune@e1"]["record"]["method"]["name"] == "finetune"  # the registered method ran
    assert cells["finetune@e1"]["record"]["method"]["config"]["epochs"] == 1
    assert cells["finetune"]["record"]["method"]["config"]["steps"] == 2


def test_the_report_and_the_summary_show_each_variant(finished):
    _, out, stdout = finished
    report = (out / "report.md").read_text()
    table = report.split("| method | UA |", 1)[1].split("\n\n", 1)[0]
    for method in METHODS:
        assert f"\n| {method} |" in table, method
    assert table.count("\n| ") == len(METHODS) + 1  # and the noise floor
    for kind in ("metrics", "losses", "frontier"):
        assert (out / "plots" / f"class3-{kind}.png").is_file()
    table_rows = [line.split()[0] for line in stdout.split("scenario class3", 1)[1].splitlines()[4:] if line.strip()]
    assert table_rows[:len(METHODS) + 1] == [METHODS[0], NOISE_FLOOR, *METHODS[1:]]  # the terminal summary


def test_methods_override_takes_a_variant_and_reuses_its_cell(run_cli, finished):
    config, out, _ = finished
    cell = next((out / "cells" / "class3").glob("finetune@e1-*/seed0.json"))
    before = cell.read_bytes()
    code, stdout, stderr = run_cli("bench", "--config", config, "--out", out, "--no-progress",
                                   "--methods", "retrain,finetune@e1")
    assert code == 0, stderr
    assert "class3 finetune@e1 seed 0: done earlier, reusing" in stdout and ": running" not in stdout
    assert cell.read_bytes() == before
    rows = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in rows] == ["retrain", NOISE_FLOOR, "finetune@e1"]


def test_a_variant_takes_a_preset_and_overrides_it():
    config = BenchConfig.from_dict(variants_bench({"prunelora@1ep": {"preset": "prunelora-digits-resnet", "epochs": 1}}))
    preset = yaml.safe_load(preset_path("prunelora-digits-resnet").read_text())
    options = config.method_options("prunelora@1ep")
    assert options == {k: v for k, v in preset.items() if k != "method"} | {"epochs": 1}
    assert preset.get("epochs") != 1


def test_split_method_key():
    assert split_method_key("finetune") == ("finetune", None)
    assert split_method_key("prunelora@1ep") == ("prunelora", "1ep")
    assert split_method_key("lora@r4.a-b_C") == ("lora", "r4.a-b_C")


@pytest.mark.parametrize("key,named", [
    ("nosuch@x", ["unknown method 'nosuch'", "'nosuch@x'", "finetune"]),
    ("finetune@", ["'finetune@'", "label"]),
    ("finetune@two words", ["'finetune@two words'", "label"]),
    ("finetune@a@b", ["'finetune@a@b'", "label"]),
    ("retrain@x", ["'retrain@x'", "retrain is the reference"]),
])
def test_a_bad_variant_key_is_refused(key, named):
    with pytest.raises(InvalidInputError) as info:
        BenchConfig.from_dict(variants_bench({"retrain": {}, key: {}}), "b.yaml")
    message = str(info.value)
    assert message.startswith("b.yaml: ") and "\n" not in message
    for text in named:
        assert text in message


def test_a_bad_option_of_a_variant_names_the_variant():
    with pytest.raises(InvalidInputError, match=r"^finetune@e1: method 'finetune' does not take option 'lora_rank'"):
        BenchConfig.from_dict(variants_bench({"finetune@e1": {"lora_rank": 4}}))
    with pytest.raises(InvalidInputError, match="preset 'prunelora-digits-resnet' is for method 'prunelora', not 'finetune'"):
        BenchConfig.from_dict(variants_bench({"finetune@p": {"preset": "prunelora-digits-resnet"}}))


@pytest.mark.parametrize("methods,named", [("finetune,nosuch@x", "'nosuch'"), ("retrain@x", "'retrain@x'")])
def test_a_bad_variant_on_the_command_line_writes_nothing(run_cli, tmp_path, methods, named):
    config, out = write_yaml(tmp_path / "bench.yaml", variants_bench()), tmp_path / "out"
    line = one_error_line(run_cli("bench", "--config", config, "--out", out, "--no-progress", "--methods", methods), "bench")
    assert named in line
    assert not out.exists()


def test_a_method_restricted_to_some_scenarios_runs_only_there(tmp_path):
    from prunelora.bench import run_bench

    data = variants_bench({"retrain": {}, "finetune": {"steps": 1},
                       "finetune@e2": {"steps": 2, "scenarios": ["class3"]}})
    data["scenarios"] = [{"name": "class3", "forget_class": 3}, {"name": "class5", "forget_class": 5}]
    config = BenchConfig.from_dict(data)
    assert config.method_scenarios("finetune") == ["class3", "class5"]
    assert config.method_scenarios("finetune@e2") == ["class3"]
    assert "scenarios" not in config.method_options("finetune@e2")  # not a method option
    rows, _ = run_bench(config, tmp_path / "out", progress=False, log=lambda *a: None)
    ran = sorted((r["scenario"], r["method"]) for r in rows)
    assert ran == [("class3", "finetune"), ("class3", "finetune@e2"), ("class3", "retrain"),
                   ("class3", NOISE_FLOOR), ("class5", "finetune"), ("class5", "retrain"), ("class5", NOISE_FLOOR)]


@pytest.mark.parametrize("scenarios", [["class9"], [], "class3"])
def test_a_method_restricted_to_unknown_scenarios_is_refused(scenarios):
    data = variants_bench({"finetune": {"steps": 1, "scenarios": scenarios}})
    with pytest.raises(InvalidInputError, match=r"finetune: scenarios .* must be a non-empty list of this "
                                                 r"config's scenarios \(class3\)"):
        BenchConfig.from_dict(data)


def test_retrain_cannot_be_restricted_to_some_scenarios():
    data = variants_bench({"retrain": {"scenarios": ["class3"]}, "finetune": {"steps": 1}})
    with pytest.raises(InvalidInputError, match="retrain runs in every scenario"):
        BenchConfig.from_dict(data)


def test_methods_override_refuses_a_variant_the_config_does_not_define(run_cli, tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", variants_bench())
    line = one_error_line(run_cli("bench", "--config", config, "--out", tmp_path / "out",
                                  "--methods", "retrain,finetune@e2"), "bench")
    assert "'finetune@e2' is not in" in line and "finetune@e1" in line
    assert not (tmp_path / "out").exists()


def test_a_resumed_report_says_how_much_it_reused_and_what_the_runs_cost(run_cli, tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", variants_bench())
    out = tmp_path / "out"
    assert run_cli("bench", "--config", config, "--out", out, "--no-progress")[0] == 0
    first = (out / "report.md").read_text()
    assert "cells run" not in first  # everything ran in that invocation
    cells = [json.loads(p.read_text())["row"] for p in out.glob("cells/*/*/seed*.json")]
    assert len(cells) == len(METHODS) + 1  # and a second retrain for the noise floor
    original = json.loads(next(out.glob("cache/original-*/meta.json")).read_text())["cost"]["wall_time_s"]
    total = sum(r["wall_time_s"] for r in cells) + original
    assert f"evaluation excluded): {total:.0f} s" in first
    assert run_cli("bench", "--config", config, "--out", out, "--no-progress")[0] == 0
    second = (out / "report.md").read_text()
    assert f"(0 of {len(cells)} cells run, the others reused from an earlier invocation)" in second
    assert f"evaluation excluded): {total:.0f} s" in second  # the measured runs, not the resume


def test_undefined_metrics_are_written_as_empty_cells_and_json_null(tmp_path):
    import csv

    from prunelora.evaluation.report import write_results

    rows = [{"scenario": "random10", "method": "finetune", "seed": 0, "UA": 3.0, "FA": float("nan")}]
    write_results(rows, tmp_path)
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))[0]["FA"] is None
    with open(tmp_path / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["FA"] == "" and row["UA"] == "3.0"
    assert math.isnan(rows[0]["FA"])  # the caller's rows are left as they were


def test_the_report_names_the_retrain_each_seed_is_compared_with():
    from prunelora.evaluation.report import reference_text

    def rows(pairs):
        return [{"method": "retrain", "seed": 0, "reference_seed": 0}] + [
            {"method": "finetune", "seed": seed, "reference_seed": ref} for seed, ref in pairs]

    assert reference_text(rows([(0, 0), (1, 1)])) == "the retrain of the same seed"
    # retrain_seeds: [0] with seeds 0, 1, 2 is one reference, not "the same seed's retrain"
    assert reference_text(rows([(0, 0), (1, 0), (2, 0)])) == "the retrain of seed 0 (one reference for every seed)"
    assert reference_text(rows([(0, 0), (1, 1), (2, 0)])) == \
        "the retrain of seed 0 for seed 0, 1 for seed 1, 0 for seed 2"
