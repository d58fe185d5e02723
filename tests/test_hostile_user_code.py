"""Hostile and careless user code on the command line: factories and datasets that raise, recurse,
return the wrong things; an unreadable class folder; `--debug` and PRUNELORA_DEBUG=1.

Every refusal: exit 2, one line naming the factory (or folder) and the problem, nothing written.
"""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import pytest
from helpers import one_error_line

MODELS_PY = '''
from torch import nn


def build(num_classes, in_channels, image_size):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def raises(num_classes, in_channels, image_size):
    raise ValueError("no such width")


def recurses(num_classes, in_channels, image_size):
    return recurses(num_classes, in_channels, image_size)


class TwoOutputs(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.body = build(num_classes, in_channels, 0)

    def forward(self, x):
        return self.body(x), x.mean()


def returns_a_tuple(num_classes, in_channels, image_size):
    return TwoOutputs(num_classes, in_channels)


def float64(num_classes, in_channels, image_size):
    return build(num_classes, in_channels, image_size).double()


class Loops(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.body = build(num_classes, in_channels, 0)

    def forward(self, x):
        return self(x)


def forward_recurses(num_classes, in_channels, image_size):
    return Loops(num_classes, in_channels)


def three_channels(num_classes, in_channels, image_size):
    return build(num_classes, 3, image_size)
'''

DATA_PY = '''
import torch
from torch.utils.data import Dataset, TensorDataset


class Mine(TensorDataset):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x * 2 - 1, int(y)


def make(n, size=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.rand(n, 1, size, size, generator=gen), y


def build():
    return Mine(*make(60)), Mine(*make(30, seed=1)), ["a", "b", "c"]


def raises():
    raise OSError("bucket not mounted")


def recurses():
    return recurses()


def float64_inputs():
    x, y = make(60)
    return Mine(x.double(), y), Mine(*make(30, seed=1))


def uint8_inputs():
    x, y = make(60)
    return TensorDataset((x * 255).to(torch.uint8), y), Mine(*make(30, seed=1))


def test_of_another_shape():
    return Mine(*make(60)), Mine(*make(30, size=16, seed=1))


class FloatLabels(Dataset):
    def __init__(self, n):
        self.x, self.y = make(n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], float(self.y[index]) + 0.5


def float_labels():
    return FloatLabels(60), FloatLabels(30)


def huge_label():
    x, y = make(60)
    y[0] = 10**9
    return TensorDataset(x, y), Mine(*make(30, seed=1))


class Triples(Mine):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x, y, index


def triples():
    return Triples(*make(60)), Mine(*make(30, seed=1))


class FailsLater(Mine):
    targets = torch.arange(60) % 3

    def __getitem__(self, index):
        if index >= 50:
            raise KeyError(f"record {index} is not in the cache")
        return super().__getitem__(index)


def fails_later():
    return FailsLater(*make(60)), Mine(*make(30, seed=1))


class Loops(Mine):
    def __getitem__(self, index):
        return self[index]


def getitem_recurses():
    return Loops(*make(60)), Mine(*make(30, seed=1))
'''


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("usercode")
    (folder / "models.py").write_text(MODELS_PY)
    (folder / "data.py").write_text(DATA_PY)
    return folder


def _train(folder: Path, out: Path, model: str = "build", data: str = "build", *extra: str) -> list:
    return ["train", "--model-factory", f"{folder / 'models.py'}:{model}", "--dataset-factory",
            f"{folder / 'data.py'}:{data}", "--steps", "3", "--batch-size", "16", "--out", out, "--no-progress",
            *extra]


# (model factory, dataset factory) -> what the one line must name
CASES = {
    "model-factory-raises": (("raises", "build"), ["model factory", "models.py:raises", "ValueError", "no such width"]),
    "model-factory-recurses": (("recurses", "build"), ["models.py:recurses", "RecursionError"]),
    "model-returns-a-tuple": (("returns_a_tuple", "build"), ["models.py:returns_a_tuple", "tuple",
                                                             "one row of class scores"]),
    "model-float64": (("float64", "build"), ["models.py:float64", "torch.float64", "model.float()"]),
    "model-forward-recurses": (("forward_recurses", "build"), ["models.py:forward_recurses", "RecursionError"]),
    "model-wrong-channels": (("three_channels", "build"), ["models.py:three_channels", "(1, 12, 12)",
                                                           "RuntimeError"]),
    "dataset-factory-raises": (("build", "raises"), ["dataset factory", "data.py:raises", "OSError",
                                                     "bucket not mounted"]),
    "dataset-factory-recurses": (("build", "recurses"), ["data.py:recurses", "RecursionError"]),
    "float64-inputs": (("build", "float64_inputs"), ["data.py:float64_inputs", "torch.float64", "torch.float32"]),
    "uint8-inputs": (("build", "uint8_inputs"), ["data.py:uint8_inputs", "torch.uint8", "torch.float32"]),
    "test-images-of-another-shape": (("build", "test_of_another_shape"), ["test set", "(1, 16, 16)",
                                                                          "(1, 12, 12)"]),
    "float-labels": (("build", "float_labels"), ["data.py:float_labels", "label of record 0", "0.5",
                                                 "integer class index"]),
    "label-of-a-billion": (("build", "huge_label"), ["data.py:huge_label", "label 1000000000", "100,000"]),
    "records-of-three": (("build", "triples"), ["data.py:triples", "record 0 is a 3-tuple"]),
    "record-raises-mid-training": (("build", "fails_later"), ["data.py:fails_later", "train set (record 5",
                                                              "KeyError", "not in the cache"]),
    "getitem-recurses": (("build", "getitem_recurses"), ["data.py:getitem_recurses", "RecursionError"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_user_code_is_one_line_naming_it_and_writes_nothing(case, code, run_cli, tmp_path):
    (model, data), named = CASES[case]
    out = tmp_path / "out"
    line = one_error_line(run_cli(*_train(code, out, model, data)), "train")
    for text in named:
        assert text in line, (text, line)
    assert not out.exists()


def test_the_same_factories_train_when_they_are_right(code, run_cli, tmp_path):
    """The checks refuse the hostile cases above, not a plain factory pair."""
    result = run_cli(*_train(code, tmp_path / "out"))
    assert result[0] == 0, result[2]


@pytest.mark.parametrize("how", ["flag-after-the-command", "flag-before-the-command", "environment"])
def test_debug_lets_the_users_own_exception_through_with_its_traceback(how, code, run_cli, tmp_path, monkeypatch):
    args = _train(code, tmp_path / "out", "raises")
    if how == "flag-after-the-command":
        args.append("--debug")
    elif how == "flag-before-the-command":
        args.insert(0, "--debug")
    else:
        monkeypatch.setenv("PRUNELORA_DEBUG", "1")
    with pytest.raises(ValueError, match="no such width"):
        run_cli(*args)
    assert not (tmp_path / "out").exists()


def test_without_debug_the_line_says_how_to_see_the_traceback(code, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNELORA_DEBUG", "0")
    line = one_error_line(run_cli(*_train(code, tmp_path / "out", "build", "recurses")), "train")
    assert "PRUNELORA_DEBUG=1 or --debug" in line


def test_an_unreadable_class_folder_is_one_line(run_cli, tmp_path, monkeypatch):
    """chmod 000 does not stop root, so the folder's listing is made to fail as it would for a user."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "pics"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(root / name / f"{i}.png")
    locked = root / "dog"
    real = pathlib.Path.iterdir

    def iterdir(self):
        if os.fspath(self) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    out = tmp_path / "out"
    line = one_error_line(run_cli("train", "--dataset", f"imagefolder:{root}", "--model", "resnet8", "--steps", "1",
                                  "--out", out, "--no-progress"), "train")
    assert "class folder 'dog'" in line and "Permission denied" in line
    assert not out.exists()
