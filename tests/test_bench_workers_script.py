"""benchmarks/bench_workers.py: the subset it measures is the Fashion-MNIST ResNet-8 config cut to
one scenario and one seed (still a valid bench), and its runs compare the same cells. The runs
themselves (minutes) are a slow smoke test; their timings are not checked."""

from __future__ import annotations

import pytest
import yaml
from helpers import load_script, write_yaml

from prunelora.bench import BenchConfig
from prunelora.presets import CONFIG_DIR


def script():
    return load_script("bench_workers")


def test_the_default_subset_is_one_scenario_one_seed_every_method_run_there(tmp_path):
    source = CONFIG_DIR / "fashion-mnist-resnet8.yaml"
    data = script().subset_config(source, "random10", [0])
    full = yaml.safe_load(source.read_text())
    assert [s["name"] for s in data["scenarios"]] == ["random10"]
    assert data["seeds"] == data["retrain_seeds"] == [0]
    everywhere = {k for k, v in full["methods"].items() if "random10" in ((v or {}).get("scenarios") or ["random10"])}
    assert set(data["methods"]) == everywhere and len(everywhere) > 10 and data["train"] == full["train"]
    BenchConfig.from_file(write_yaml(tmp_path / "subset.yaml", data))  # still a valid bench


def test_an_unknown_scenario_is_refused():
    with pytest.raises(SystemExit, match="'nope' is not in"):
        script().subset_config(CONFIG_DIR / "fashion-mnist-resnet8.yaml", "nope", None)


@pytest.mark.slow  # two small benches in subprocesses
def test_the_script_compares_the_same_cells(tmp_path):
    config = write_yaml(tmp_path / "tiny.yaml", {
        "name": "tiny", "dataset": "digits", "model": "resnet8", "train": {"epochs": 1, "seed": 0},
        "scenarios": [{"name": "class3", "forget_class": 3}], "seeds": [0],
        "methods": {"retrain": {}, "finetune": {"steps": 2}}, "mia": {"max_samples": 200},
        "probe": {"enabled": False}, "relearn": {"enabled": False}, "noise_floor": False})
    out = tmp_path / "workers.md"
    assert script().main(["--config", str(config), "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all(row.split("|")[3].strip() == "2" for row in rows)  # retrain, finetune
    # one original for both: the second run reused the first's
    assert len(list((tmp_path / "work" / "workers2" / "cache").glob("original-*"))) == 1
