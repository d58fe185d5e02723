"""A checkpoint (or config) made by an adversary can do nothing but be refused.

Its meta.json chooses what is built, read and run: the model and its arguments, the data folder,
the recipe a retrain repeats. Every case here must end in exit 2 with one line naming the field,
nothing written, no network connection (sockets are blocked for the whole module) and no file
opened that the checkpoint chose, and no hang: the cases that would block or run forever run
under an alarm.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import meta_json, one_error_line, tiny_bench, write_yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import prunelora
from prunelora import checkpoint
from prunelora.checkpoint import META, WEIGHTS, load_checkpoint
from prunelora.errors import CheckpointError, InvalidInputError

DETECTOR = "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"  # fetches backbone weights by default


# --------------------------------------------------------------------------- no network, no hang


class NetworkAttempt(BaseException):
    """Raised by a blocked socket; a BaseException so that no `except Exception` can hide it."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path) -> list:
    """Every internet connection (and name lookup) of the test is recorded and refused; caches of
    downloaded weights point at an empty folder, so a cached file cannot hide a download."""
    attempts: list = []
    internet = (socket.AF_INET, socket.AF_INET6)
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def blocked(*args, **kwargs):
        attempts.append(args[:2])
        raise NetworkAttempt(f"network access during a test: {args[:2]}")

    def guarded(original):
        def run(self, address):
            if self.family in internet:
                blocked(address)
            return original(self, address)
        return run

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    for variable in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(tmp_path / "empty-cache"))
    yield attempts
    assert attempts == [], f"the test opened network connections: {attempts}"


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail, instead of hanging the suite, when the block runs longer than `seconds` (an open of a
    FIFO blocks; a recipe of 1e12 epochs runs forever)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- hostile files


class Hostile:
    """Builds hostile checkpoints, folders and configs under `tmp`, from the session checkpoint."""

    def __init__(self, tmp: Path, checkpoint: Path) -> None:
        self.tmp, self.checkpoint, self.out = tmp, checkpoint, tmp / "out"

    def copy(self, name: str = "ckpt") -> Path:
        return Path(shutil.copytree(self.checkpoint, self.tmp / name))

    def meta(self, change: Callable[[dict], None], name: str = "ckpt") -> Path:
        folder = self.copy(name)
        meta = meta_json(folder)
        change(meta)
        (folder / META).write_text(json.dumps(meta))
        return folder

    def text_meta(self, edit: Callable[[str], str]) -> Path:
        folder = self.copy()
        (folder / META).write_text(edit((folder / META).read_text()))
        return folder

    def weights(self, change: Callable[[dict], None]) -> Path:
        folder = self.copy()
        state = load_file(folder / WEIGHTS)
        change(state)
        save_file(state, str(folder / WEIGHTS), metadata={"format": checkpoint.FORMAT})
        meta = meta_json(folder)
        meta["weights_sha256"] = checkpoint._sha256_file(folder / WEIGHTS)
        (folder / META).write_text(json.dumps(meta))
        return folder

    def file(self, name: str, data: bytes = b"not a checkpoint") -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def mnist_folder(self, bomb: bytes | None = None, fifo: bool = False) -> Path:
        """A folder of the four MNIST idx files (tiny and valid), the training images replaced by
        `bomb` (gzip bytes) or by a FIFO."""
        folder = self.tmp / "idx"
        folder.mkdir()
        for stem, shape in (("train-images-idx3-ubyte", (20, 8, 8)), ("train-labels-idx1-ubyte", (20,)),
                            ("t10k-images-idx3-ubyte", (10, 8, 8)), ("t10k-labels-idx1-ubyte", (10,))):
            data = np.arange(math.prod(shape), dtype=np.uint8) % 10
            (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_header(shape) + data.tobytes()))
        images = folder / "train-images-idx3-ubyte.gz"
        if bomb is not None:
            images.write_bytes(bomb)
        if fifo:
            images.unlink()
            os.mkfifo(images)
        return folder

    def image_folder(self, fifo: bool = False) -> Path:
        root = self.tmp / "pics"
        rng = np.random.default_rng(0)
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
        if fifo:
            os.mkfifo(root / "a" / "zz.png")
        return root

    def bench(self, **changes) -> list:
        config = write_yaml(self.tmp / "bench.yaml", {**tiny_bench(), **changes})
        return ["bench", "--config", config, "--out", self.out, "--no-progress"]


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


def _gzip_bomb(shape: tuple[int, ...], inflated: int) -> bytes:
    """A small gzip: an idx header declaring `shape`, then `inflated` zero bytes."""
    return gzip.compress(_idx_header(shape) + bytes(inflated), compresslevel=9)


@pytest.fixture
def hostile(tmp_path, checkpoint_dir) -> Hostile:
    return Hostile(tmp_path, checkpoint_dir)


def _model(**changes) -> Callable[[dict], None]:
    return lambda m: m["model"].update(changes)


def _dataset(**changes) -> Callable[[dict], None]:
    return lambda m: m["dataset"].update(changes)


def _unlearn(h: Hostile, folder: Path, *extra) -> list:
    return ["unlearn", "--checkpoint", folder, "--method", "finetune", "--steps", "1", "--forget-class", "3",
            "--out", h.out, "--no-progress", *extra]


def _eval(h: Hostile, folder: Path, *extra) -> list:
    return ["eval", folder, "--forget-class", "3", "--json", h.out, *extra]


def _train(h: Hostile, *extra) -> list:
    return ["train", "--dataset", "digits", "--steps", "1", "--out", h.out, "--no-progress", *extra]


def _refused(h: Hostile, run_cli, snapshot, argv: list, expected: list[str]) -> str:
    """Run `argv`: exit 2, one line holding every `expected` text, nothing written anywhere."""
    before, reference = snapshot(h.tmp), snapshot(h.checkpoint)
    code, stdout, stderr = run_cli(*argv)
    line = one_error_line((code, stdout, stderr), str(argv[0]))
    for text in expected:
        assert text in line, line
    assert len(line) < 600, f"an unbounded message: {len(line)} characters"
    assert not h.out.exists()
    assert snapshot(h.tmp) == before and snapshot(h.checkpoint) == reference
    return line


# --------------------------------------------------------------------------- 1, 2: what is built, offline

BUILT: dict[str, tuple[Callable[[Hostile], list], list[str]]] = {
    # a detection model fetches backbone weights even with weights=None: refused by name, offline
    "detector-info": (lambda h: ["info", h.meta(_model(name=DETECTOR))], ["fasterrcnn", "not a classification"]),
    "detector-train": (lambda h: _train(h, "--model", DETECTOR), ["fasterrcnn", "not a classification"]),
    "detector-unlearn": (lambda h: _unlearn(h, h.meta(_model(name=DETECTOR))), ["not a classification"]),
    "detector-eval": (lambda h: _eval(h, h.meta(_model(name=DETECTOR))), ["not a classification"]),
    "detector-bench": (lambda h: h.bench(model=DETECTOR), ["not a classification"]),
    # a checkpoint naming a file for timm to torch.load
    "timm-checkpoint-path-info": (
        lambda h: ["info", h.meta(_model(name="timm:resnet18", kwargs={"checkpoint_path": str(h.file("w.pth"))}))],
        ["model.kwargs.checkpoint_path", "would choose weights or a file"]),
    "timm-checkpoint-path-unlearn": (
        lambda h: _unlearn(h, h.meta(_model(name="timm:resnet18", kwargs={"checkpoint_path": str(h.file("w.pth"))}))),
        ["model.kwargs.checkpoint_path"]),
    "timm-checkpoint-path-eval": (
        lambda h: _eval(h, h.meta(_model(name="timm:resnet18", kwargs={"checkpoint_path": str(h.file("w.pth"))}))),
        ["model.kwargs.checkpoint_path"]),
    "timm-checkpoint-path-train": (
        lambda h: _train(h, "--model", "timm:resnet18", "--model-arg", f"checkpoint_path={h.file('w.pth')}"),
        ["checkpoint_path", "would choose weights or a file"]),
    "timm-checkpoint-path-bench": (
        lambda h: h.bench(model="timm:resnet18", model_kwargs={"checkpoint_path": str(h.file("w.pth"))}),
        ["checkpoint_path", "would choose weights or a file"]),
    "timm-pretrained": (lambda h: ["info", h.meta(_model(name="timm:resnet18", kwargs={"pretrained": True}))],
                        ["model.kwargs.pretrained", "would choose weights"]),
    "timm-pretrained-cfg-overlay": (
        lambda h: ["info", h.meta(_model(name="timm:resnet18", kwargs={"pretrained_cfg_overlay": "x"}))],
        ["model.kwargs.pretrained_cfg_overlay"]),
    "tv-weights": (lambda h: ["info", h.meta(_model(name="torchvision:resnet18", kwargs={"weights": "IMAGENET1K_V1"}))],
                   ["model.kwargs.weights", "would choose weights"]),
    "tv-weights-backbone": (
        lambda h: ["info", h.meta(_model(name="torchvision:resnet18", kwargs={"weights_backbone": "IMAGENET1K_V1"}))],
        ["model.kwargs.weights_backbone", "would choose weights"]),
    "tv-weights-train": (lambda h: _train(h, "--model", "torchvision:resnet18", "--model-arg", "weights=DEFAULT"),
                         ["weights", "would choose weights"]),
    "registered-unknown-key": (lambda h: ["info", h.meta(_model(kwargs={"norm_layer": 1}))],
                               ["model.kwargs.norm_layer", "resnet8", "accepted: width"]),
    "registered-path-key": (lambda h: ["info", h.meta(_model(kwargs={"data_path": "/etc/passwd"}))],
                            ["model.kwargs.data_path", "would choose weights or a file"]),
    "registered-dropout-5": (lambda h: ["info", h.meta(_model(name="vit-tiny", kwargs={"dropout": 5}))],
                             ["model.kwargs.dropout 5", "[0, 1]"]),
    "registered-width-string": (lambda h: ["info", h.meta(_model(kwargs={"width": "2"}))],
                                ["model.kwargs.width '2'", "finite number"]),
}


@pytest.mark.parametrize("case", list(BUILT))
def test_a_checkpoint_or_config_chooses_no_weights_no_file_and_no_network(case, hostile, run_cli, snapshot,
                                                                         no_network):
    build, expected = BUILT[case]
    _refused(hostile, run_cli, snapshot, build(hostile), expected)
    assert no_network == []


def test_torchvision_builders_get_every_download_switch_off():
    """A builder declaring `weights_backbone` (detection) gets it None, `pretrained*` False."""
    import torchvision

    from prunelora.models.offline import download_switches

    switches = download_switches(torchvision.models.get_model_builder("fasterrcnn_mobilenet_v3_large_320_fpn"))
    assert switches == {"weights": None, "weights_backbone": None}
    assert download_switches(torchvision.models.get_model_builder("resnet18")) == {"weights": None}


def test_a_build_that_still_reaches_the_network_is_refused(no_network):
    """Whatever a builder does, a connection during the build is one line, not a download."""
    from prunelora.models.offline import NetworkRefusedError
    from prunelora.models.offline import no_network as offline

    with pytest.raises(NetworkRefusedError, match="building torchvision:x tried to open a network connection"), \
            offline("torchvision:x"):
        socket.create_connection(("download.pytorch.org", 443))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkRefusedError), \
            offline("timm:y"):
        sock.connect(("127.0.0.1", 9))
    assert no_network == []  # refused before the test's own guard saw anything


def test_the_declared_arguments_still_build():
    """What the registered, torchvision and timm models declare is accepted and built."""
    model = prunelora.create_model("torchvision:resnet18", 10, 1, 32, zero_init_residual=True)
    assert model.head.out_features == 10
    with pytest.raises(InvalidInputError, match="width is not an argument torchvision:resnet18 declares"):
        prunelora.create_model("torchvision:resnet18", 10, 1, 32, width=2)


# --------------------------------------------------------------------------- 3: data and recipe from a checkpoint


def _counting_gzip_reads(monkeypatch) -> list[int]:
    """The bytes each gzip read returned (to prove a bomb is not inflated)."""
    sizes: list[int] = []
    read = gzip.GzipFile.read

    def counted(self, size=-1):
        data = read(self, size)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counted)
    return sizes


@pytest.mark.parametrize(("shape", "inflated", "expected"), [
    ((20, 8, 8), 16 * 2**20, ["more data than its header declares"]),
    ((100_000, 1000, 1000), 16 * 2**20, ["declares 100,000,000,000 values", "at most"]),
], ids=["beyond-the-header", "header-beyond-the-cap"])
def test_a_gzip_bomb_in_the_checkpoints_data_dir_is_not_inflated(shape, inflated, expected, hostile, run_cli,
                                                                 snapshot, monkeypatch):
    folder = hostile.mnist_folder(bomb=_gzip_bomb(shape, inflated))
    ckpt = hostile.meta(_dataset(name="mnist", data_dir=str(folder)))
    sizes = _counting_gzip_reads(monkeypatch)
    _refused(hostile, run_cli, snapshot, _unlearn(hostile, ckpt), ["train-images-idx3-ubyte.gz", *expected])
    assert sum(sizes) <= math.prod(shape[:1]) * 64 + 2**20 and sum(sizes) < inflated // 8


def _fifo_cases() -> dict[str, Callable[[Hostile], list]]:
    return {
        "imagefolder-from-checkpoint": lambda h: _unlearn(h, h.meta(_dataset(name=f"imagefolder:{h.image_folder(True)}"))),
        "imagefolder-train": lambda h: _train(h, "--dataset", f"imagefolder:{h.image_folder(True)}"),
        "idx-from-checkpoint": lambda h: _eval(h, h.meta(_dataset(name="mnist", data_dir=str(h.mnist_folder(fifo=True))))),
    }


@pytest.mark.parametrize("case", list(_fifo_cases()))
def test_a_fifo_among_the_data_is_refused_without_opening_it(case, hostile, run_cli, snapshot):
    argv = _fifo_cases()[case](hostile)
    with within(30):
        _refused(hostile, run_cli, snapshot, argv, ["not a regular file"])


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 1e12), ("steps", 10**12), ("batch_size", 10**9), ("lr", math.inf), ("epochs", "30"),
    ("seed", -1), ("seed", 2**63),
])
def test_a_checkpoints_recipe_is_bounded(field, value, hostile, run_cli, snapshot):
    """`retrain` repeats the recipe: one of 1e12 epochs would run forever."""
    ckpt = hostile.meta(lambda m: m["recipe"].update({field: value}))
    with within(20):
        line = _refused(hostile, run_cli, snapshot, ["retrain", "--checkpoint", ckpt, "--forget-class", "3",
                                                     "--out", hostile.out, "--no-progress"], [f"recipe.{field}"])
    assert "expected" in line


# --------------------------------------------------------------------------- 4: one typed schema


def _set(path: str, value) -> Callable[[dict], None]:
    def change(meta: dict) -> None:
        *parents, leaf = path.split(".")
        node = meta
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return change


SCHEMA: dict[str, tuple[str, Callable[[dict], None], list[str]]] = {
    # id -> (command, change, texts of the line)
    "dataset-null": ("info", _set("dataset", None), ["dataset is null"]),
    "method-a-string": ("info", _set("method", "x"), ["method 'x'", "expected a mapping"]),
    "forget-classes-a-string": ("info", _set("forget", {"kind": "class", "classes": "abc"}), ["forget.classes 'abc'"]),
    "train-subset-a-number": ("info", _set("dataset.train_subset", 5), ["dataset.train_subset 5"]),
    "val-indices-a-number": ("info", _set("dataset.val_indices", 5), ["dataset.val_indices 5"]),
    "sparsity-overall-a-word": ("info", _set("sparsity", {"overall": "half"}), ["sparsity.overall 'half'"]),
    "versions-a-list": ("info", _set("versions", ["torch", "2.0"]), ["versions ['torch', '2.0']"]),
    "original-a-string": ("eval", _set("original", "x"), ["original 'x'"]),
    "pruned-module-a-number": ("info", _set("model.pruned", {"format": 1, "modules": {"head": 5}}),
                               ["model.pruned.modules.head 5"]),
    "pruned-module-unknown-type": ("info", _set("model.pruned", {"format": 1, "modules": {"head": {"type": "Evil"}}}),
                                   ["model.pruned.modules.head.type 'Evil'"]),
    "metric-a-string": ("info", _set("metrics.RA", "high"), ["metrics.RA 'high'"]),
    "metric-infinite": ("info", _set("metrics.TA", math.inf), ["metrics.TA inf"]),
    "metric-nan-ua": ("info", _set("metrics.UA", math.nan), ["metrics.UA nan"]),
    "cost-wall-time-zero": ("info", _set("cost.wall_time_s", 0), ["cost.wall_time_s 0"]),
    "cost-wall-time-a-word": ("info", _set("cost.wall_time_s", "slow"), ["cost.wall_time_s 'slow'"]),
    "kind-unknown": ("info", _set("kind", "evil"), ["kind 'evil'"]),
    "history-not-a-list": ("info", _set("history", {"loss": 1}), ["history"]),
    "unbounded-value-shortened": ("info", _set("dataset.classes", "x" * 200_000), ["dataset.classes 'xxx", "..."]),
    "unbounded-kwarg-shortened": ("info", _set("model.kwargs", {"width": list(range(100_000))}),
                                  ["model.kwargs.width", "a list of 100000 items"]),
    "control-characters-in-a-name": ("info", _set("model.name", "resnet8\x1b[2J"), ["model.name", "\\x1b"]),
}


@pytest.mark.parametrize("case", list(SCHEMA))
def test_every_field_of_meta_json_is_typed_on_load(case, hostile, run_cli, snapshot):
    command, change, expected = SCHEMA[case]
    ckpt = hostile.meta(change)
    argv = ["info", ckpt] if command == "info" else _eval(hostile, ckpt)
    _refused(hostile, run_cli, snapshot, argv, ["meta.json", *expected])
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)


def test_a_key_given_twice_is_refused(hostile, run_cli, snapshot):
    """JSON keeps the last of two equal keys silently: a reader checking the first would be fooled."""
    ckpt = hostile.text_meta(lambda text: text.replace('"kind": "original"', '"kind": "original", "kind": "x"', 1))
    _refused(hostile, run_cli, snapshot, ["info", ckpt], ["key 'kind' is given twice"])


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, checkpoint_dir) -> Path:
    """A one-step retrain of the session checkpoint (class 3): a reference for `eval`."""
    out = tmp_path_factory.mktemp("reference") / "retrain"
    prunelora.retrain(checkpoint_dir, prunelora.ForgetSpec.from_classes(3), out=out, progress=False)
    return out


@pytest.mark.parametrize(("change", "expected"), [
    (_set("cost.wall_time_s", 0), "cost.wall_time_s 0"),
    (_set("cost.wall_time_s", "slow"), "cost.wall_time_s 'slow'"),
    (_set("metrics.RA", math.nan), "metrics.RA nan"),
    (_set("metrics.TA", -math.inf), "metrics.TA -inf"),
    (_set("metrics.UA", "100"), "metrics.UA '100'"),
], ids=["wall-time-zero", "wall-time-a-word", "metric-nan", "metric-infinite", "metric-a-string"])
def test_a_reference_with_bad_cost_or_metrics_is_refused_before_evaluating(change, expected, retrained, hostile,
                                                                           run_cli, snapshot):
    reference = Path(shutil.copytree(retrained, hostile.tmp / "reference"))
    meta = meta_json(reference)
    change(meta)
    (reference / META).write_text(json.dumps(meta))
    _refused(hostile, run_cli, snapshot, _eval(hostile, hostile.checkpoint, "--reference", reference), [expected])


# --------------------------------------------------------------------------- 5: finite after loading


def test_a_float64_weight_beyond_float32s_range_is_refused(hostile, run_cli, snapshot):
    """1e300 is finite as stored (float64) and infinite once copied into the float32 model."""
    def widen(state: dict) -> None:
        weight = state["conv1.weight"].double()
        weight.view(-1)[0] = 1e300
        state["conv1.weight"] = weight

    ckpt = hostile.weights(widen)
    _refused(hostile, run_cli, snapshot, ["info", ckpt], ["conv1.weight", "NaN or infinite", "float32"])
    with pytest.raises(CheckpointError, match="conv1.weight"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_evaluate_refuses_a_non_finite_model(poison, class3_splits):
    """argmax over NaN logits is class 0: UA would read 100 for a model that predicts nothing."""
    broken = prunelora.create_model("resnet8", 10, 1, 8)
    with torch.no_grad():
        broken.conv1.weight.view(-1)[0] = poison
    with pytest.raises(InvalidInputError, match="conv1.weight holds NaN or infinite"):
        prunelora.evaluate(broken, class3_splits, attacks=(), probe=False, relearn=None, throughput=False,
                           macs=False)


@pytest.mark.parametrize("bad", [{"UA": math.nan}, {"RA": math.inf}, {"TA": "97"}, {"MIA": True}],
                         ids=["ua-nan", "ra-inf", "ta-string", "mia-bool"])
def test_evaluate_refuses_reference_metrics_that_are_not_numbers(bad, trained, class3_splits):
    reference = {"UA": 100.0, "RA": 99.0, "TA": 98.0, "MIA": 100.0, **bad}
    with pytest.raises(InvalidInputError, match=f"reference.{next(iter(bad))}"):
        prunelora.evaluate(trained.model, class3_splits, reference=reference, attacks=(), probe=False,
                           relearn=None, throughput=False, macs=False)


def test_a_valid_checkpoint_still_loads_and_shows(hostile, run_cli):
    """The schema accepts what prunelora writes (an original, its metrics with NaN where a part is
    empty) and an unknown top-level key (a newer writer's)."""
    ckpt = hostile.meta(lambda m: m.update(note="kept", metrics={**m["metrics"], "val": math.nan}))
    code, stdout, stderr = run_cli("info", ckpt)
    assert code == 0, stderr
    assert "resnet8" in stdout
    model, meta = load_checkpoint(ckpt)
    assert meta.extra == {"note": "kept"} and math.isnan(meta.metrics["val"])


def test_the_whole_suite_refuses_connections_to_other_machines():
    """conftest's guard (every test, not only this module's): a TCP connect to another machine fails
    the test, one to this machine passes through (a local Ray instance listens there)."""
    import conftest

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(AssertionError, match="network connection to"):
        conftest._local_only(lambda *a: None)(sock, ("192.0.2.1", 443))  # TEST-NET-1: never this machine
    assert conftest._this_machine("127.0.0.1") and not conftest._this_machine("192.0.2.1")
