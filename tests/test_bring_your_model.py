"""The first hour with your own model: one factory for the CLI and the API, `preset=` in Python,
deletion requests that name every held-out index (and `--skip-heldout`), `info` without running a
factory, the bench on your own model and data — and the whole path, end to end, on a model
trained with a plain PyTorch loop."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch
from helpers import meta_json, one_error_line, tiny_resnet, write_yaml

import prunelora
from prunelora.data import ForgetSpec, build_splits
from prunelora.errors import InvalidInputError
from prunelora.factories import call_model_factory

FAST = ("--steps", "1", "--batch-size", "16", "--no-progress")

# ------------------------------------------------------------------ one factory signature, CLI and API


def test_the_command_lines_factory_retrains_through_the_python_api(user):
    """`unlearn(method="retrain", model_factory=build)` with the CLI's build(num_classes, in_channels,
    image_size): the sizes are given by name (a raw TypeError before)."""
    train, test, _ = user["datasets"].build()
    labels = torch.arange(len(train)) % 3
    retain = torch.utils.data.Subset(train, (labels != 1).nonzero().flatten().tolist())
    forget = torch.utils.data.Subset(train, (labels == 1).nonzero().flatten().tolist())
    result = prunelora.unlearn(user["net"], method="retrain", model_factory=user["models"].build,
                               recipe=prunelora.TrainConfig(steps=1, batch_size=16), retain=retain, forget=forget,
                               test=test, forget_classes=[1], progress=False)
    assert result.model.logits.out_features == 3 and result.model is not user["net"]


def test_the_python_apis_factory_works_on_the_command_line(user, run_cli, tmp_path):
    """A zero-argument factory (the API's model_factory) trains from `--model-factory` (refused before)."""
    out = tmp_path / "zero-arg"
    code, _, stderr = run_cli("train", "--model-factory", f"{user['folder'] / 'my_models.py'}:build_default",
                              "--dataset-factory", user["data"], *FAST, "--out", out)
    assert code == 0, stderr
    assert meta_json(out)["model"]["name"].endswith("my_models.py:build_default")


def test_a_factory_of_neither_signature_is_one_line_naming_both(user, run_cli, tmp_path):
    with pytest.raises(InvalidInputError, match=r"takes \(depth\); accepted: FUNC\(\) or FUNC\(num_classes, "
                                                r"in_channels, image_size\)"):
        call_model_factory(user["models"].odd, "model_factory", 3, 1, 12)
    line = one_error_line(run_cli("train", "--model-factory", f"{user['folder'] / 'my_models.py'}:odd",
                                  "--dataset-factory", user["data"], *FAST, "--out", tmp_path / "x"), "train")
    assert "takes (depth); accepted: FUNC() or FUNC(num_classes, in_channels, image_size)" in line
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ preset= in Python


def test_unlearn_takes_a_preset_in_python_as_the_command_line_does(class3_splits):
    result = prunelora.unlearn(tiny_resnet(), class3_splits, preset="prunelora-digits-resnet", steps=1,
                               progress=False)
    assert result.method_dict()["name"] == "prunelora"
    config = result.config
    assert (config.lora_rank, config.lora_alpha, config.prune_amount, config.optimizer) == (8, 16, 0.5, "adam")
    assert config.steps == 1  # a keyword wins over the preset
    with pytest.raises(InvalidInputError, match="recipe for method 'prunelora', not 'finetune'"):
        prunelora.unlearn(tiny_resnet(), class3_splits, "finetune", preset="prunelora-digits-resnet")
    with pytest.raises(InvalidInputError, match="'nope'"):
        prunelora.unlearn(tiny_resnet(), class3_splits, preset="nope")


# ------------------------------------------------------------------ deletion requests


def _request(checkpoint_dir, tmp_path, held: int, trained: int):
    meta = meta_json(checkpoint_dir)
    val = meta["dataset"]["val_indices"][:held]
    train = [i for i in range(1347) if i not in set(meta["dataset"]["val_indices"])][:trained]
    path = tmp_path / "request.txt"
    path.write_text("\n".join(map(str, val + train)) + "\n")
    return path, val, train


def test_a_deletion_request_names_every_held_out_index(checkpoint_dir, run_cli, tmp_path):
    request, val, _ = _request(checkpoint_dir, tmp_path, held=7, trained=43)
    out = tmp_path / "out"
    line = one_error_line(run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-indices", request,
                                  "--method", "finetune", *FAST, "--out", out), "unlearn")
    assert f"forget indices {', '.join(map(str, val))} (7 of 50) are in the original's validation split" in line
    assert "--skip-heldout" in line and not out.exists()


def test_a_long_list_of_bad_indices_is_capped(digits):
    val = build_splits(digits, None).val_indices.tolist()
    with pytest.raises(InvalidInputError, match=r"\.\.\. \(5 more\) \(25 of 25\) are in the original's validation"):
        build_splits(digits, ForgetSpec(kind="indices", indices=tuple(val[:25])))
    with pytest.raises(InvalidInputError, match=r"forget indices 2000, 3000 \(2 of 3\) are outside the training set"):
        build_splits(digits, ForgetSpec(kind="indices", indices=(0, 2000, 3000)))


def test_skip_heldout_drops_them_and_records_it(checkpoint_dir, run_cli, tmp_path):
    request, val, train = _request(checkpoint_dir, tmp_path, held=7, trained=43)
    out = tmp_path / "forgot"
    code, stdout, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-indices", request,
                                   "--skip-heldout", "--method", "finetune", *FAST, "--out", out)
    assert code == 0, stderr
    assert "skipped 7 held-out indices" in stdout
    forget = meta_json(out)["forget"]
    assert forget["indices"] == sorted(train) and forget["skipped"] == sorted(val) and forget["skip_heldout"]
    spec = dataclasses.replace(ForgetSpec.from_index_file(request), skip_heldout=True)
    splits = build_splits(prunelora.load_dataset("digits"), spec,
                          val_indices=meta_json(checkpoint_dir)["dataset"]["val_indices"])
    assert splits.forget_indices.tolist() == sorted(train) and splits.spec.skipped == tuple(sorted(val))


def test_skip_heldout_in_python(checkpoint_dir, tmp_path):
    request, val, train = _request(checkpoint_dir, tmp_path, held=3, trained=5)
    result = prunelora.unlearn_checkpoint(checkpoint_dir, ForgetSpec.from_index_file(request), "finetune",
                                          skip_heldout=True, steps=1, progress=False)
    assert result.meta.forget["skipped"] == sorted(val) and result.meta.forget["indices"] == sorted(train)


def test_train_says_what_it_held_out(run_cli, tmp_path):
    out = tmp_path / "original"
    code, stdout, stderr = run_cli("train", "--model", "resnet8", "--model-arg", "width=0.5", *FAST, "--out", out)
    assert code == 0, stderr
    held = len(meta_json(out)["dataset"]["val_indices"])
    assert held > 0
    assert f"validation: held out {held} of the 1347 training records (10%, --val-fraction)" in stdout


# ------------------------------------------------------------------ info without the factory


def test_info_reads_meta_json_without_running_the_factory(imported, user, run_cli):
    loaded = {name for name in sys.modules if name.startswith("prunelora_factory_")}
    code, stdout, stderr = run_cli("info", imported, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["model"]["name"].endswith("my_models.py:build")
    assert "weights not checked" in stderr and "--model-factory" in stderr
    code, stdout, _ = run_cli("info", imported)
    assert code == 0 and "not checked" in stdout and "imported" in stdout
    assert {name for name in sys.modules if name.startswith("prunelora_factory_")} == loaded  # nothing ran
    code, stdout, _ = run_cli("info", imported, "--model-factory", user["model"])
    assert code == 0 and "checked: they load" in " ".join(stdout.split())


# ------------------------------------------------------------------ the bench on your model and data


def _bench(**extra) -> dict:
    return {"name": "mine", "scenarios": [{"name": "middle", "forget_class": 1}], "seeds": [0],
            "methods": {"retrain": {}, "finetune": {"steps": 2, "batch_size": 16},
                        "random-label": {"steps": 2, "batch_size": 16}},
            "mia": {"attacks": ["confidence-svc"], "max_samples": 60}, "probe": {"enabled": False},
            "relearn": {"enabled": False}, **extra}


@pytest.mark.parametrize("flags,named", [
    ((), "pass --model-factory"),
    (("--model-factory", "my_models.py:build"), "pass --dataset-factory"),
    (("--model-factory", "my_models.py:build_default", "--dataset-factory", "my_data.py:build"),
     "is not the model of"),
    (("--model-factory", "my_models.py:build", "--dataset-factory", "my_data.py:build", "--workers", "2"),
     "run this bench with --workers 1"),
])
def test_a_bench_config_runs_a_factory_only_when_the_command_line_names_it(flags, named, user, run_cli, tmp_path,
                                                                          monkeypatch):
    config = write_yaml(user["folder"] / f"bench-{len(flags)}.yaml",
                        _bench(model_factory="my_models.py:build", dataset_factory="my_data.py:build"))
    monkeypatch.chdir(user["folder"])
    loaded = {name for name in sys.modules if name.startswith("prunelora_factory_")}
    out = tmp_path / "bench"
    line = one_error_line(run_cli("bench", "--config", config, *flags, "--out", out), "bench")
    assert named in line and not out.exists()
    if not flags:
        assert {name for name in sys.modules if name.startswith("prunelora_factory_")} == loaded


def test_the_bench_trains_an_original_from_the_factories_of_its_config(user, run_cli, tmp_path, monkeypatch):
    """`model_factory:` / `dataset_factory:` relative to the config file, named again on the command line."""
    config = write_yaml(user["folder"] / "bench-train.yaml",
                        {**_bench(model_factory="my_models.py:build", dataset_factory="my_data.py:build",
                                  train={"steps": 2, "batch_size": 16}),
                         "methods": {"retrain": {}, "finetune": {"steps": 1, "batch_size": 16}}})
    monkeypatch.chdir(tmp_path)  # the config's paths are the config folder's, not the working directory's
    code, _, stderr = run_cli("bench", "--config", config, "--model-factory", user["model"], "--dataset-factory",
                              user["data"], "--out", tmp_path / "bench", "--no-progress")
    assert code == 0, stderr
    rows = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {row["method"] for row in rows} >= {"retrain", "finetune"}
    assert meta_json(next((tmp_path / "bench").glob("cache/original-*")))["model"]["name"].endswith("my_models.py:build")


def test_your_model_trained_elsewhere_imported_benchmarked_and_reported(user, imported, run_cli, tmp_path):
    """End to end as a new user: a CNN of their own (classifier `logits`), their own Dataset, a plain
    PyTorch training loop (the `user` fixture), `prunelora import` (the `imported` fixture), then
    `prunelora bench` on that very model with two methods and a retrain, and its report."""
    config = write_yaml(tmp_path / "bench.yaml", _bench(original=str(imported)))
    out = tmp_path / "bench"
    code, stdout, stderr = run_cli("bench", "--config", config, "--model-factory", user["model"],
                                   "--dataset-factory", user["data"], "--out", out, "--no-progress")
    assert code == 0, stderr
    assert f"original: the given {imported.resolve()}" in stdout  # not trained again: the user's weights are it
    assert not list(out.glob("cache/original-*"))
    rows = json.loads((out / "results.json").read_text())
    assert {"retrain", "finetune", "random-label"} <= {row["method"] for row in rows}
    finetune = next(row for row in rows if row["method"] == "finetune")
    assert 0.0 <= finetune["UA"] <= 100.0 and finetune["Avg.Gap"] is not None
    report = (out / "report.md").read_text()
    assert "finetune" in report and "random-label" in report
    retrain_meta = meta_json(out / "cache" / "middle-retrain-seed0")
    assert retrain_meta["original"]["run_id"] == meta_json(imported)["run_id"]
    assert retrain_meta["recipe"]["steps"] == 4  # the recipe declared at import is what a retrain repeats
    bench_json = json.loads((out / "bench.json").read_text())
    assert bench_json["config"]["original"] == str(imported.resolve())
