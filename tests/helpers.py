"""Helpers shared by the test modules: one definition each (importable: pytest puts tests/ on sys.path).

Fixtures live in conftest.py; plain functions live here, so that a test module imports what it uses
by name instead of copying it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.nn import functional as F

import prunelora
from prunelora.checkpoint import META
from prunelora.models import create_model
from prunelora.training.loop import predict

# The source tree under test, for subprocesses (`python -m prunelora ...`) that must run it too.
SRC = Path(prunelora.__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def subprocess_env() -> dict[str, str]:
    """This environment with the source tree under test first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def load_script(name: str):
    """benchmarks/NAME.py imported as a module (the scripts are not a package), freshly each call."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the CLI


def error_line(stderr: str, command: str | None = None) -> str:
    """The single line a refusal prints: no traceback, `prunelora COMMAND: error: ...` (any command
    when `command` is None). Returns that line."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    if command is None:
        assert lines[0].startswith("prunelora") and "error" in lines[0]
    else:
        assert lines[0].startswith(f"prunelora {command}: error:")
    return lines[0]


def one_error_line(result: tuple[int, str, str], command: str | None = None) -> str:
    """`result` of run_cli is a refusal: exit 2 and one error line on stderr (see `error_line`)."""
    code, _, stderr = result
    assert code == 2, stderr
    return error_line(stderr, command)


def meta_json(folder: Path) -> dict:
    """A checkpoint folder's meta.json as raw JSON (no validation: tests read damaged ones too)."""
    return json.loads((folder / META).read_text())


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_bench(name: str = "tiny", methods: dict | None = None, **extra) -> dict:
    """A bench config that runs in seconds: digits, resnet8 trained 2 steps, class 3, seed 0, one
    cheap attack; `methods` default: retrain and a 1-step finetune. `extra` adds top-level keys."""
    return {"name": name, "dataset": "digits", "model": "resnet8", "train": {"steps": 2, "seed": 0},
            "scenarios": [{"name": "class3", "forget_class": 3}], "seeds": [0],
            "methods": methods if methods is not None else {"retrain": {}, "finetune": {"steps": 1}},
            "mia": {"attacks": ["confidence-svc"], "max_samples": 100}, **extra}


# --------------------------------------------------------------------------- models and weights


def tiny_resnet(seed: int = 0) -> nn.Module:
    """resnet8 for digits at half width: convs of 8/16/32 output channels."""
    torch.manual_seed(seed)
    return create_model("resnet8", 10, 1, 8, width=0.5)


def tiny_vit(seed: int = 0, depth: int = 2) -> nn.Module:
    """vit-tiny for digits at quarter width: dim 32, packed q/k/v of 96 rows, MLP 64."""
    torch.manual_seed(seed)
    return create_model("vit-tiny", 10, 1, 8, width=0.25, depth=depth)


def zero_channels(weight: torch.Tensor) -> int:
    """Output channels (dim 0) whose weights are all exactly zero (entries of a 1-D tensor)."""
    return int((weight.detach().reshape(len(weight), -1) == 0).all(dim=1).sum())


def stays_pruned(tensor: torch.Tensor, mask: torch.Tensor) -> bool:
    """Every masked entry is exactly zero; for a weight, exactly the masked output channels are."""
    zeros = bool((tensor.detach()[mask == 0] == 0).all())
    return zeros and (mask.ndim < 2 or zero_channels(tensor) == zero_channels(mask))


def weight_of(model: nn.Module, key: str) -> torch.Tensor:
    """The tensor behind a state-dict key such as `layer1.0.conv1.weight`."""
    module_name, param = key.rsplit(".", 1)
    return getattr(model.get_submodule(module_name), param).detach()


def forget_loss(model: nn.Module, dataset) -> float:
    """Mean cross-entropy on `dataset` in eval mode."""
    logits, targets = predict(model, dataset)
    return F.cross_entropy(logits, targets).item()


# --------------------------------------------------------------------------- data


def empty_forget(splits):
    """`splits` with an empty forget set (what a method that needs D_f must refuse)."""
    return dataclasses.replace(splits, forget=splits.forget.subset([]),
                               forget_indices=torch.empty(0, dtype=torch.long))


def scored_outputs(n: int, true_boost: float, seed: int, noise: float = 1.0,
                   num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits with `true_boost` added to the true class (large boost = memorised), and targets."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, num_classes, (n,), generator=g)
    logits = noise * torch.randn(n, num_classes, generator=g)
    logits[torch.arange(n), targets] += true_boost
    return logits, targets


# --------------------------------------------------------------------------- a user's own project

# A new user's model file: a small CNN whose classifier is named `logits` (no `head`), a factory
# in the command line's signature, one in the Python API's (no argument), and one in neither.
USER_MODELS_PY = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=3, in_channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.logits = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.logits(self.features(x))


def build(num_classes, in_channels, image_size):
    return Net(num_classes, in_channels)


def build_default():
    return Net()


def odd(depth):
    return Net()
'''

# ... and their own Dataset (not a TensorDataset, no `.targets`), three classes of 12x12 images.
USER_DATA_PY = '''
import torch
from torch.utils.data import Dataset


class Stripes(Dataset):
    def __init__(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.images = torch.rand(n, 1, 12, 12, generator=gen) * 0.5
        for c in range(3):
            self.images[self.labels == c, :, 4 * c:4 * c + 4, :] += 0.5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


def build():
    return Stripes(90, 0), Stripes(30, 1), ["top", "middle", "bottom"]
'''


def load_user_module(path: Path):
    """A user's file imported as their own code would be (registered in sys.modules, so that its
    functions are what a top-level import gives)."""
    import sys

    name = f"user_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def user_project(folder: Path) -> dict:
    """A user's files in `folder`, their model trained there with a plain PyTorch loop (no
    prunelora) and its state dict saved as `weights.pt`. Returns the paths, the factory references
    the command line takes, the modules, the trained model and its test accuracy (percent)."""
    from torch.utils.data import DataLoader

    (folder / "my_models.py").write_text(USER_MODELS_PY)
    (folder / "my_data.py").write_text(USER_DATA_PY)
    models, data = load_user_module(folder / "my_models.py"), load_user_module(folder / "my_data.py")
    train, test, _ = data.build()
    torch.manual_seed(0)
    net = models.build(3, 1, 12)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(4):
        for x, y in DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        x, y = next(iter(DataLoader(test, batch_size=len(test))))
        accuracy = 100.0 * (net(x).argmax(1) == y).float().mean().item()
    torch.save(net.state_dict(), folder / "weights.pt")
    return {"folder": folder, "weights": folder / "weights.pt", "model": f"{folder / 'my_models.py'}:build",
            "data": f"{folder / 'my_data.py'}:build", "models": models, "datasets": data, "net": net,
            "test_accuracy": accuracy}
