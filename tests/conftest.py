"""Shared fixtures: the embedded digits data, one tiny trained checkpoint, and an in-process CLI runner.

Everything here is session-scoped where it can be, so that the suite loads digits and trains the
reference checkpoint once. Tests that damage a checkpoint work on a copy (`checkpoint_copy`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from prunelora.api import RunResult
from prunelora.data import DatasetBundle, ForgetSpec, Splits, build_splits, load_dataset
from prunelora.training import TrainConfig

# No test opens a connection to another machine (prunelora fetches nothing without --download): every
# TCP connect of the test process must go to an address of this machine (loopback, or the address a
# local Ray instance listens on); anything else fails the test that made it. UDP "connects" send
# nothing (Ray finds its node address with one) and pass.
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


@functools.cache
def _this_machine(host: str) -> bool:
    """Whether `host` is an address of this machine: only those can be bound to."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


def _local_only(connect):
    def guarded(sock: socket.socket, address, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM \
                and not _this_machine(str(address[0])):
            raise AssertionError(f"a test opened a network connection to {address!r}")
        return connect(sock, address, *args)
    return guarded


socket.socket.connect, socket.socket.connect_ex = _local_only(_connect), _local_only(_connect_ex)

# Tiny models on a 2-core machine: one intra-op thread is both faster (no thread hand-off for
# 8x8 images) and immune to oversubscription when something else is running on the machine.
torch.set_num_threads(1)

# Every train and unlearn measures its peak memory, which starts with a full gc.collect(): ~0.25 s
# in a process holding torch's, scikit-learn's and transformers' ~500,000 objects, hundreds of times
# per worker. What is alive now (imports, mostly) is moved out of the collector's sight, and again
# before any test that follows new imports (`_freeze_new_imports`): garbage made after a freeze is
# still collected, as in a user's process.
gc.collect()
gc.freeze()
_modules_at_freeze = [len(sys.modules)]


@pytest.fixture(autouse=True)
def _freeze_new_imports():
    """After a test imported more (peft and transformers, scikit-learn, ...): collect, then freeze."""
    if len(sys.modules) != _modules_at_freeze[0]:
        gc.collect()
        gc.freeze()
        _modules_at_freeze[0] = len(sys.modules)


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CHECKPOINT_RECIPE = TrainConfig(epochs=2, seed=0)

CliResult = tuple[int, str, str]


@pytest.fixture(scope="session")
def digits() -> DatasetBundle:
    """The embedded scikit-learn digits, split 1347/450. Treat as read-only."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def class3_splits(digits: DatasetBundle) -> Splits:
    """digits split for forgetting class 3 (val 10%, seed 0), as the CLI builds it. Read-only."""
    return build_splits(digits, ForgetSpec.from_classes(3), val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """resnet8 trained 2 epochs on digits (seed 0) and saved; `.path` is its checkpoint directory."""
    from prunelora.api import train

    out = tmp_path_factory.mktemp("trained") / "digits-resnet8"
    result = train("digits", "resnet8", CHECKPOINT_RECIPE, out=out, progress=False)
    assert result.path == out
    return result


@pytest.fixture(scope="session")
def checkpoint_dir(trained: RunResult) -> Path:
    """The reference checkpoint directory. Never modify it: use `checkpoint_copy`."""
    return trained.path


@pytest.fixture
def checkpoint_copy(checkpoint_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the reference checkpoint that a test may damage."""
    return Path(shutil.copytree(checkpoint_dir, tmp_path / "checkpoint"))


def _run_cli(*args: str | Path) -> CliResult:
    from prunelora.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors and --help leave through SystemExit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """`run_cli("train", "--dataset", "digits", ...) -> (returncode, stdout, stderr)`, in-process."""
    return _run_cli


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under `root` (to prove nothing was written)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    return tree_snapshot


def _state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def state_dicts_equal() -> Callable[[dict, dict], bool]:
    """True when two state dicts have the same keys and bit-identical tensors."""
    return _state_dicts_equal


@pytest.fixture(scope="session")
def fraction_splits(digits: DatasetBundle) -> Splits:
    """Sample-wise forgetting: a random 10% of train (seed 1). Read-only."""
    return build_splits(digits, ForgetSpec(kind="fraction", fraction=0.1, seed=1), val_fraction=0.1, seed=0)


@pytest.fixture(params=["class", "fraction"])
def splits(request, class3_splits: Splits, fraction_splits: Splits) -> Splits:
    """Both forget kinds in turn: class 3, then a random 10% of train."""
    return class3_splits if request.param == "class" else fraction_splits


@pytest.fixture(scope="module")
def small_train(digits: DatasetBundle):
    """256 digits training images: a few optimizer steps take milliseconds."""
    return digits.train.subset(range(256))


@pytest.fixture(scope="module")
def batch(digits: DatasetBundle) -> torch.Tensor:
    """64 digits test images, as one input batch."""
    return digits.test[list(range(64))][0]


@pytest.fixture(scope="session")
def user(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A new user's own model file (classifier `logits`) and Dataset file, the model trained with a
    plain PyTorch loop and saved as a state dict (see `helpers.user_project`). Read-only."""
    from helpers import user_project

    return user_project(tmp_path_factory.mktemp("user"))


@pytest.fixture(scope="session")
def imported(user: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's weights brought in with `prunelora import` (recipe: 4 steps of batch 16). Read-only."""
    out = tmp_path_factory.mktemp("imported") / "mine"
    code, _, stderr = _run_cli("import", "--weights", user["weights"], "--model-factory", user["model"],
                               "--dataset-factory", user["data"], "--steps", "4", "--batch-size", "16",
                               "--out", out, "--no-progress")
    assert code == 0, stderr
    return out
