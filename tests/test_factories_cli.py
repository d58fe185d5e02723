"""Your model and data on the command line: --model-factory / --dataset-factory, --classifier-name,
--image-size; a checkpoint never runs a factory that the command line did not name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line

MODELS_PY = '''
from torch import nn

def build(num_classes, in_channels, image_size):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

def wrong_classes(num_classes, in_channels, image_size):
    return build(num_classes + 1, in_channels, image_size)
'''

DATA_PY = '''
import torch
from torch.utils.data import TensorDataset

class Mine(TensorDataset):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x * 2 - 1, int(y)

def build():
    gen = torch.Generator().manual_seed(0)
    def make(n):
        y = torch.arange(n) % 3
        x = torch.rand(n, 1, 12, 12, generator=gen)
        x[:, :, :4, :4] += y.view(-1, 1, 1, 1) * 0.3
        return Mine(x, y)
    return make(90), make(30), ["a", "b", "c"]

def not_a_pair():
    return 42
'''


@pytest.fixture(scope="module")
def factories(tmp_path_factory) -> tuple[str, str, Path]:
    folder = tmp_path_factory.mktemp("factories")
    (folder / "my_models.py").write_text(MODELS_PY)
    (folder / "my_data.py").write_text(DATA_PY)
    return f"{folder / 'my_models.py'}:build", f"{folder / 'my_data.py'}:build", folder


@pytest.fixture(scope="module")
def factory_checkpoint(factories, run_cli, tmp_path_factory) -> Path:
    model, data, _ = factories
    out = tmp_path_factory.mktemp("runs") / "original"
    code, stdout, stderr = run_cli("train", "--model-factory", model, "--dataset-factory", data, "--steps", "4",
                                   "--batch-size", "16", "--out", out, "--no-progress")
    assert code == 0, stderr
    return out


def test_train_records_the_factories_and_the_classes(factory_checkpoint, factories):
    meta = json.loads((factory_checkpoint / "meta.json").read_text())
    model, data, _ = factories
    assert meta["model"]["name"] == f"factory:{Path(model.split(':')[0]).resolve()}:build"
    assert meta["dataset"]["name"].endswith("my_data.py:build")
    assert meta["dataset"]["classes"] == ["a", "b", "c"] and meta["model"]["num_classes"] == 3
    assert meta["dataset"]["digest"].startswith("sha256:")


def test_unlearn_eval_and_info_run_with_the_factories_named_again(factory_checkpoint, factories, run_cli, tmp_path):
    model, data, _ = factories
    out = tmp_path / "forgot"
    code, stdout, stderr = run_cli("unlearn", "--checkpoint", factory_checkpoint, "--model-factory", model,
                                   "--dataset-factory", data, "--forget-class", "1", "--method", "prunelora",
                                   "--steps", "2", "--batch-size", "16", "--classifier-name", "5", "--out", out,
                                   "--no-progress")
    assert code == 0, stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sparsity"]["overall"] > 0  # the convs were pruned, the classifier (module 5) was not
    assert "5.weight" not in meta["sparsity"]["layers"]
    code, stdout, stderr = run_cli("eval", out, "--model-factory", model, "--dataset-factory", data, "--no-relearn")
    assert code == 0, stderr
    assert "UA" in stdout and "Probe-FA" in stdout
    code, stdout, stderr = run_cli("info", out, "--model-factory", model)
    assert code == 0, stderr


def test_a_checkpoint_never_runs_a_factory_the_command_line_did_not_name(factory_checkpoint, run_cli, tmp_path):
    """(`info` shows such a checkpoint's meta.json without the factory: tests/test_bring_your_model.py.)"""
    import sys

    loaded = {name for name in sys.modules if name.startswith("prunelora_factory_")}
    out = tmp_path / "out"
    line = one_error_line(run_cli("unlearn", "--checkpoint", factory_checkpoint, "--forget-class", "1", "--out", out),
                          "unlearn")
    assert "pass --model-factory" in line and "my_models.py:build" in line
    assert not out.exists()
    assert {name for name in sys.modules if name.startswith("prunelora_factory_")} == loaded


@pytest.mark.parametrize("flag,value,named", [
    ("--model-factory", "my_models.py", "is not FILE.py:FUNCTION"),
    ("--model-factory", "missing.py:build", "missing.py"),
    ("--model-factory", "my_models.py:nothing", "no function 'nothing'"),
    ("--model-factory", "my_models.py:wrong_classes", "4 outputs for 3 classes"),
    ("--dataset-factory", "my_data.py:not_a_pair", "must return (train, test)"),
    ("--dataset-factory", "broken.py:build", "failed to load: ZeroDivisionError"),
])
def test_bad_factories_are_one_line_and_write_nothing(flag, value, named, factories, run_cli, tmp_path, monkeypatch):
    model, data, folder = factories
    (folder / "broken.py").write_text("1 / 0\n")
    monkeypatch.chdir(folder)
    args = {"--model-factory": model, "--dataset-factory": data, flag: value}
    out = tmp_path / "out"
    line = one_error_line(run_cli("train", *(x for kv in args.items() for x in kv), "--steps", "1", "--out", out,
                                  "--no-progress"), "train")
    assert named in line
    assert not out.exists()


def test_image_folders_take_their_size_from_the_command_line(run_cli, tmp_path):
    from PIL import Image

    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    out = tmp_path / "original"
    code, _, stderr = run_cli("train", "--dataset", f"imagefolder:{root}", "--model", "resnet8", "--image-size", "16",
                              "--steps", "1", "--out", out, "--no-progress")
    assert code == 0, stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"]["image_size"] == 16 and meta["model"]["image_size"] == 16
    # unlearning rebuilds the folder at the recorded size (the data digest would refuse another)
    code, _, stderr = run_cli("unlearn", "--checkpoint", out, "--forget-class", "0", "--method", "finetune",
                              "--steps", "1", "--out", tmp_path / "forgot", "--no-progress")
    assert code == 0, stderr
    line = one_error_line(run_cli("train", "--dataset", f"imagefolder:{root}", "--image-size", "2", "--steps", "1",
                                  "--out", tmp_path / "tiny", "--no-progress"), "train")
    assert "image size 2" in line and not (tmp_path / "tiny").exists()
