"""`prunelora import` and `prunelora.import_model`: weights trained elsewhere become a checkpoint
(meta.json + model.safetensors, as `train` writes one) that unlearn, eval and info take."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import meta_json, one_error_line

import prunelora
from prunelora.checkpoint import load_checkpoint
from prunelora.errors import CheckpointError, InvalidInputError
from prunelora.factories import load_factory


def test_import_records_an_original_whose_test_accuracy_is_the_users_own(user, imported):
    meta = meta_json(imported)
    assert meta["kind"] == "original" and meta["forget"] is None
    assert meta["model"]["name"] == f"factory:{user['folder'].resolve() / 'my_models.py'}:build"
    assert meta["model"]["num_classes"] == 3 and meta["dataset"]["classes"] == ["top", "middle", "bottom"]
    # measured by prunelora on the imported weights = measured by the user's own loop
    assert meta["metrics"]["test"] == pytest.approx(user["test_accuracy"], abs=1e-4)
    assert meta["dataset"]["val_indices"] == [] and meta["dataset"]["val_fraction"] == 0.0  # the default: none
    assert meta["recipe"]["steps"] == 4 and meta["recipe"]["batch_size"] == 16  # what a retrain repeats
    assert meta["imported"]["weights"] == str(user["weights"])
    state = torch.load(user["weights"], weights_only=True)
    load_factory(user["model"])  # as --model-factory does: loading it runs the user's file
    model, _ = load_checkpoint(imported)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_import_says_what_it_measured_and_held_out(user, run_cli, tmp_path):
    out = tmp_path / "mine"
    code, stdout, stderr = run_cli("import", "--weights", user["weights"], "--model-factory", user["model"],
                                   "--dataset-factory", user["data"], "--out", out)
    assert code == 0, stderr
    assert f"test accuracy {user['test_accuracy']:.2f} on 30 images" in stdout
    assert "validation: none held out; all 90 training records were trained on" in stdout


def test_the_imported_checkpoint_is_unlearned_and_evaluated_by_the_commands(user, imported, run_cli, tmp_path):
    factories = ("--model-factory", user["model"], "--dataset-factory", user["data"])
    out = tmp_path / "forgot"
    code, _, stderr = run_cli("unlearn", "--checkpoint", imported, *factories, "--forget-class", "1", "--method",
                              "finetune", "--steps", "1", "--batch-size", "16", "--out", out, "--no-progress")
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["kind"] == "unlearned" and meta["original"]["run_id"] == meta_json(imported)["run_id"]
    code, stdout, stderr = run_cli("eval", out, *factories, "--no-relearn", "--no-probe", "--attacks", "loss-lr")
    assert code == 0, stderr
    assert "UA" in stdout


@pytest.mark.parametrize("flag,value,expected", [
    ("--val-fraction", "0.2", list(range(18))),  # 6 of each class's 30, stratified
    ("--val-indices", "3\n5\n# a comment\n80\n", [3, 5, 80]),
])
def test_import_holds_out_the_validation_split_the_user_chooses(flag, value, expected, user, run_cli, tmp_path):
    if flag == "--val-indices":
        (tmp_path / "never-trained.txt").write_text(value)
        value = tmp_path / "never-trained.txt"
    out = tmp_path / "mine"
    code, stdout, stderr = run_cli("import", "--weights", user["weights"], "--model-factory", user["model"],
                                   "--dataset-factory", user["data"], flag, value, "--out", out)
    assert code == 0, stderr
    val = meta_json(out)["dataset"]["val_indices"]
    if flag == "--val-fraction":
        assert len(val) == len(expected) and len(set(val)) == len(val)
    else:
        assert val == expected
    assert f"validation: held out {len(val)} of the 90 training records" in stdout


def _save_whole_module(user, folder):
    torch.save(user["net"], folder / "whole.pt")  # a pickled module, not a state dict
    return folder / "whole.pt"


def _save_other_architecture(user, folder):
    torch.save(torch.nn.Linear(3, 3).state_dict(), folder / "other.pt")
    return folder / "other.pt"


def _save_nan(user, folder):
    state = {k: v.clone() for k, v in user["net"].state_dict().items()}
    state["logits.weight"][0, 0] = float("nan")
    torch.save(state, folder / "nan.pt")
    return folder / "nan.pt"


@pytest.mark.parametrize("make,extra,named", [
    (_save_whole_module, (), "weights_only=True"),
    (_save_other_architecture, (), "another architecture"),
    (_save_nan, (), "NaN or infinite"),
    (lambda user, folder: folder / "absent.pt", (), "does not exist"),
    (lambda user, folder: user["folder"] / "my_models.py", (), "accepted: a state dict in .safetensors"),
    (lambda user, folder: user["weights"], ("--val-fraction", "1.5"), "--val-fraction 1.5 is outside [0, 1)"),
    (lambda user, folder: user["weights"], ("--val-fraction", "0.1", "--val-indices", "x.txt"), "not both"),
])
def test_bad_imports_are_one_line_and_write_nothing(make, extra, named, user, run_cli, tmp_path):
    out = tmp_path / "out"
    line = one_error_line(run_cli("import", "--weights", make(user, tmp_path), "--model-factory", user["model"],
                                  "--dataset-factory", user["data"], *extra, "--out", out), "import")
    assert named in line
    assert not out.exists()


def test_import_without_a_model_or_data_says_which_flag(user, run_cli, tmp_path):
    line = one_error_line(run_cli("import", "--weights", user["weights"], "--dataset-factory", user["data"],
                                  "--out", tmp_path / "out"), "import")
    assert "--model NAME or --model-factory" in line
    line = one_error_line(run_cli("import", "--weights", user["weights"], "--model", "resnet8",
                                  "--out", tmp_path / "out"), "import")
    assert "--dataset NAME or --dataset-factory" in line


def test_import_help_states_the_default_validation_split(run_cli):
    code, stdout, _ = run_cli("import", "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "--weights FILE" in text and "weights_only=True" in text
    assert "(default: 0, none held out" in text


def test_import_model_in_python_takes_the_users_functions_and_module(user, tmp_path):
    out = tmp_path / "mine"
    result = prunelora.import_model(user["net"], user["models"].build, user["datasets"].build,
                                    recipe=prunelora.TrainConfig(steps=2), val_fraction=0.1, out=out)
    meta = json.loads((out / "meta.json").read_text())
    # recorded as the file and function, so that the command line's --model-factory names it again
    assert meta["model"]["name"] == f"factory:{(user['folder'] / 'my_models.py').resolve()}:build"
    assert meta["dataset"]["name"] == f"factory:{(user['folder'] / 'my_data.py').resolve()}:build"
    assert len(meta["dataset"]["val_indices"]) == 9 and result.meta.metrics["test"] == pytest.approx(
        user["test_accuracy"], abs=1e-4)
    model, _ = load_checkpoint(out)
    x = torch.rand(4, 1, 12, 12)
    assert torch.equal(model(x), user["net"](x))


def test_import_model_refuses_what_it_cannot_record_or_load(user, tmp_path):
    with pytest.raises(InvalidInputError, match="top level of a .py file"):
        prunelora.import_model(user["net"], lambda: user["models"].Net(), user["datasets"].build)
    wrong = {**user["net"].state_dict(), "extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="1 unexpected"):
        prunelora.import_model(wrong, user["models"].build, user["datasets"].build)
    assert "import_model" in prunelora.__all__
