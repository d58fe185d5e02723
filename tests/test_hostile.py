"""Hostile, broken and changed input against the CLI, as an adversary would try it.

Every case: exit 2, one line on stderr naming the bad value, nothing written and nothing left
behind. Above all, no wrong model is reported as a success: NaN weights, data that changed since
training and checkpoints of a newer format are refused. The hostile files are built here.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import meta_json, one_error_line, subprocess_env, write_yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import prunelora
from prunelora import checkpoint
from prunelora.checkpoint import META, WEIGHTS

# --------------------------------------------------------------------------- hostile files


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / META).write_text(json.dumps(meta))


def _rewrite_weights(folder: Path, change: Callable[[dict], None], keep_digest: bool = False) -> None:
    """Change the tensors of a checkpoint; meta.json's weights digest is updated to match unless
    `keep_digest` (then the pair is mixed, as after an interrupted save)."""
    state = load_file(folder / WEIGHTS)
    change(state)
    save_file(state, str(folder / WEIGHTS), metadata={"format": checkpoint.FORMAT})
    if not keep_digest:
        meta = meta_json(folder)
        meta["weights_sha256"] = checkpoint._sha256_file(folder / WEIGHTS)
        _write_meta(folder, meta)


def _png(path: Path, seed: int, size: int = 8) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A valid PNG whose header claims width x height (with almost no pixel data): PIL reads the
    size before decoding, as it would of a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))


def _image_folder(root: Path, counts: dict[str, int]) -> Path:
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            _png(root / name / f"{i:03d}.png", seed=100 * c + i)
    return root


@dataclass
class Ctx:
    tmp: Path
    checkpoint: Path  # the session's reference checkpoint: never modified
    out: Path

    def copy(self, name: str = "ckpt") -> Path:
        return Path(shutil.copytree(self.checkpoint, self.tmp / name))

    def file(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    def with_meta(self, change: Callable[[dict], None], name: str = "ckpt") -> Path:
        folder = self.copy(name)
        meta = meta_json(folder)
        change(meta)
        _write_meta(folder, meta)
        return folder

    def nan_checkpoint(self) -> Path:
        folder = self.copy("nan")
        _rewrite_weights(folder, lambda s: s["conv1.weight"].fill_(float("nan")))
        return folder

    def trained_folder(self) -> tuple[Path, Path]:
        """An image folder of 2 x 15 images (24 training images after the 80/20 split) and a
        checkpoint trained on it for one step."""
        from prunelora.api import train
        from prunelora.training import TrainConfig

        folder = _image_folder(self.tmp / "pics", {"a": 15, "b": 15})
        ckpt = self.tmp / "pics-ckpt"
        train(f"imagefolder:{folder}", "resnet8", TrainConfig(steps=1), out=ckpt, progress=False)
        assert meta_json(ckpt)["dataset"]["train_size"] == 24
        return folder, ckpt

    def changed_folder(self) -> Path:
        """The checkpoint of `trained_folder`, after two images were added to its folder."""
        folder, ckpt = self.trained_folder()
        _png(folder / "a" / "new-1.png", seed=999)
        _png(folder / "b" / "new-2.png", seed=998)
        return ckpt


@pytest.fixture
def ctx(tmp_path, checkpoint_dir) -> Ctx:
    return Ctx(tmp=tmp_path, checkpoint=checkpoint_dir, out=tmp_path / "out")


def _unlearn(c: Ctx, checkpoint: Path, *extra) -> list:
    return ["unlearn", "--checkpoint", checkpoint, "--forget-class", "3", "--out", c.out, "--no-progress", *extra]


def _train(c: Ctx, *extra, out=None) -> list:
    return ["train", "--dataset", "digits", "--model", "resnet8", "--steps", "1", "--no-progress",
            "--out", c.out if out is None else out, *extra]


def _train_on(c: Ctx, counts: dict[str, int], extra: Callable[[Path], None] | None = None) -> list:
    folder = _image_folder(c.tmp / "pics", counts)
    if extra is not None:
        extra(folder)
    return _train(c, "--dataset", f"imagefolder:{folder}")


def _bench(c: Ctx, scenario: dict, out=None, methods: dict | None = None) -> list:
    config = write_yaml(c.tmp / "bench.yaml", {"model": "resnet8", "train": {"steps": 1}, "seeds": [0],
                                                "scenarios": [{"name": "s", **scenario}],
                                                "methods": methods or {"finetune": {"steps": 1}}})
    return ["bench", "--config", config, "--out", c.out if out is None else out, "--no-progress"]


def _config(c: Ctx, text: str, command: str = "train") -> list:
    config = c.file("c.yaml", text)
    if command == "retrain":
        return ["retrain", "--checkpoint", c.checkpoint, "--config", config, "--out", c.out]
    return ["train", "--config", config, "--model", "resnet8", "--steps", "1", "--out", c.out]


def _symlink(c: Ctx, name: str, target: str) -> Path:
    link = c.tmp / name
    os.symlink(target, link)
    return link


def _meta_nested(c: Ctx) -> Path:
    folder = c.copy()
    depth = 100_000
    (folder / META).write_text('{"format": "prunelora-checkpoint", "x": ' + "[" * depth + "]" * depth + "}")
    return folder


def _meta_bytes(c: Ctx, data: bytes) -> Path:
    folder = c.copy()
    (folder / META).write_bytes(data)
    return folder


def _kwargs(**kwargs) -> Callable[[dict], None]:
    return lambda m: m["model"].update(kwargs=kwargs)


# id -> (argv builder, substrings the one error line must contain)
CASES: dict[str, tuple[Callable[[Ctx], list], list[str]]] = {
    # wrong results reported as success
    "nan-weights-ssd": (lambda c: _unlearn(c, c.nan_checkpoint(), "--method", "ssd"), ["conv1.weight", "NaN"]),
    "nan-weights-info": (lambda c: ["info", c.nan_checkpoint()], ["conv1.weight", "NaN"]),
    "nan-weights-eval": (lambda c: ["eval", c.nan_checkpoint(), "--forget-class", "3", "--json", c.out],
                         ["conv1.weight", "NaN"]),
    "changed-data-unlearn": (lambda c: ["unlearn", "--checkpoint", c.changed_folder(), "--method", "finetune",
                                        "--steps", "1", "--forget-indices", c.file("ids.txt", "24\n"),
                                        "--out", c.out, "--no-progress"], ["other data", "imagefolder:"]),
    "changed-data-retrain": (lambda c: ["retrain", "--checkpoint", c.changed_folder(), "--forget-class", "0",
                                        "--out", c.out, "--no-progress"], ["other data"]),
    "changed-data-eval": (lambda c: ["eval", c.changed_folder(), "--forget-class", "0", "--json", c.out],
                          ["other data"]),
    "format-version-99": (lambda c: ["info", c.with_meta(lambda m: m.update(format_version=99))],
                          ["format_version 99", "upgrade"]),
    "format-version-99-unlearn": (lambda c: _unlearn(c, c.with_meta(lambda m: m.update(format_version=99))),
                                  ["format_version 99"]),
    "format-version-string": (lambda c: ["info", c.with_meta(lambda m: m.update(format_version="1"))],
                              ["format_version '1'"]),
    "mixed-pair-after-interrupted-save": (
        lambda c: ["info", _mixed(c)], ["model.safetensors", "SHA-256"]),
    "imagefolder-empty-class": (lambda c: _train_on(c, {"a": 3, "b": 3, "c": 0}), ["'c'", "0 images", "2 per class"]),
    "imagefolder-one-image-class": (lambda c: _train_on(c, {"a": 3, "b": 1}), ["'b'", "1 images"]),
    # resources an input can exhaust
    "meta-width-300": (lambda c: ["info", c.with_meta(_kwargs(width=300))], ["has shape", "expects (4800"]),
    "meta-width-300-retrain": (lambda c: ["retrain", "--checkpoint", c.with_meta(_kwargs(width=300)),
                                          "--forget-class", "3", "--out", c.out], ["has shape"]),
    "meta-width-1e9": (lambda c: ["info", c.with_meta(_kwargs(width=1e9))], ["model.kwargs.width"]),
    "meta-depth-string-number": (lambda c: ["info", c.with_meta(_kwargs(width=[1] * 5))], ["model.kwargs.width"]),
    "meta-num-classes-huge": (lambda c: ["info", c.with_meta(lambda m: m["model"].update(num_classes=10**9))],
                              ["model.num_classes 1000000000"]),
    "meta-image-size-huge": (lambda c: ["info", c.with_meta(lambda m: m["model"].update(image_size=10**6))],
                             ["model.image_size"]),
    "meta-num-classes-bool": (lambda c: ["info", c.with_meta(lambda m: m["model"].update(num_classes=True))],
                              ["model.num_classes True"]),
    "meta-deeply-nested": (lambda c: ["info", _meta_nested(c)], ["nested too deeply"]),
    "meta-not-utf8": (lambda c: ["info", _meta_bytes(c, b'{"format": "\xff\xfe"}')], ["UTF-8"]),
    "lora-rank-100000": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--steps", "1",
                                            "--lora-rank", "100000"), ["100000", "conv1"]),
    "lora-rank-200": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--steps", "1", "--lora-rank", "200",
                                         "--lora-pattern", r"layers\.2\."), ["200", "allows (64"]),
    "image-decompression-bomb": (lambda c: _train_on(c, {"a": 3, "b": 3},
                                                     lambda f: _png_claiming(f / "a" / "bomb.png", 20000, 20000)),
                                 ["bomb.png", "pixels"]),
    "image-corrupt": (lambda c: _train_on(c, {"a": 3, "b": 3},
                                          lambda f: (f / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")),
                      ["broken.png", "cannot be read"]),
    # outputs that cannot be written: refused before any work
    "out-empty": (lambda c: _train(c, out=""), ["--out is empty"]),
    "out-under-proc": (lambda c: _train(c, out="/proc/prunelora-hostile/out"), ["/proc"]),
    "out-parent-is-a-file": (lambda c: _train(c, out=c.file("afile", "x") / "out"), ["afile' is not a directory"]),
    "out-symlink-loop": (lambda c: _train(c, out=_symlink(c, "loop", "loop")), ["symbolic link", "loop"]),
    "out-under-symlink-loop": (lambda c: _train(c, out=_symlink(c, "loop", "loop") / "sub"), ["symbolic link"]),
    "out-dangling-symlink": (lambda c: _train(c, out=_symlink(c, "dangling", "nowhere")), ["symbolic link"]),
    "bench-out-a-file": (lambda c: _bench(c, {"forget_class": 3}, out=c.file("afile", "x")), ["not a directory"]),
    "eval-json-a-directory": (lambda c: ["eval", c.checkpoint, "--forget-class", "3", "--json", c.tmp],
                              ["--json", "is a directory"]),
    "eval-json-under-a-file": (lambda c: ["eval", c.checkpoint, "--forget-class", "3", "--json",
                                          c.file("afile", "x") / "m.json"], ["--json", "not a directory"]),
    "save-adapter-an-existing-file": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--steps", "1",
                                                         "--save-adapter", c.file("afile", "x")),
                                      ["--save-adapter", "not a directory"]),
    "save-adapter-into-another-run": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--steps", "1",
                                                         "--save-adapter", c.copy("other-run")),
                                      ["--save-adapter", "different run"]),
    "save-adapter-is-out": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--steps", "1",
                                               "--save-adapter", c.out), ["--save-adapter", "--out"]),
    "device-bogus": (lambda c: _train(c, "--device", "bogus"), ["'bogus'", "available: auto, cpu"]),
    "device-cuda-99": (lambda c: _train(c, "--device", "cuda:99"), ["'cuda:99'"]),
    "device-bogus-unlearn": (lambda c: _unlearn(c, c.checkpoint, "--device", "bogus"), ["'bogus'"]),
    "device-bogus-eval": (lambda c: ["eval", c.checkpoint, "--forget-class", "3", "--device", "bogus",
                                     "--json", c.out], ["'bogus'"]),
    "forget-indices-not-utf8": (lambda c: ["retrain", "--checkpoint", c.checkpoint, "--forget-indices",
                                           c.file("ids.txt", b"1\n\xff\xfe2\n"), "--out", c.out],
                                ["ids.txt", "UTF-8"]),
    "label-smoothing-2": (lambda c: _train(c, "--label-smoothing", "2"), ["label smoothing 2"]),
    "lora-alpha-negative": (lambda c: _unlearn(c, c.checkpoint, "--method", "lora", "--lora-alpha", "-1"),
                            ["lora_alpha -1"]),
    # configuration files: strict types, each option once
    "config-epochs-true": (lambda c: _config(c, "epochs: true\n"), ["epochs=True"]),
    "config-batch-size-float": (lambda c: _config(c, "batch-size: 1.5\n"), ["batch-size=1.5", "integer"]),
    "config-epochs-list": (lambda c: _config(c, "epochs: [1, 2]\n"), ["epochs=[1, 2]"]),
    "config-lr-nan": (lambda c: _config(c, "lr: .nan\n"), ["lr=nan"]),
    "config-flag-not-bool": (lambda c: _config(c, "no-progress: 'yes'\n"), ["no-progress='yes'", "true or false"]),
    "config-out-a-number": (lambda c: ["train", "--config", c.file("c.yaml", "out: 7\n")], ["out=7"]),
    "config-same-option-two-spellings": (lambda c: _config(c, "forget-class: 3\nforget_class: 4\n", "retrain"),
                                         ["'forget-class'", "'forget_class'"]),
    "config-same-key-twice": (lambda c: _config(c, "epochs: 1\nepochs: 2\n"), ["'epochs' is given twice"]),
    "config-deeply-nested": (lambda c: _config(c, "epochs: " + "[" * 5000 + "]" * 5000 + "\n"), ["nested too deeply"]),
    "config-not-utf8": (lambda c: _config(c, b"epochs: \xff\n"), ["UTF-8"]),
    "config-method-option-bool": (lambda c: ["unlearn", "--checkpoint", c.checkpoint, "--forget-class", "3",
                                             "--config", c.file("c.yaml", "lora-rank: true\n"), "--out", c.out],
                                  ["lora-rank=True"]),
    "bench-forget-class-42": (lambda c: _bench(c, {"forget_class": 42}), ["forget class 42"]),
    "bench-forget-every-class": (lambda c: _bench(c, {"forget_class": list(range(10))}), ["whole training set"]),
    "bench-lora-rank-100000": (lambda c: _bench(c, {"forget_class": 3}, methods={"lora": {"lora_rank": 100000}}),
                               ["lora:", "100000", "conv1"]),
    "bench-train-epochs-bool": (lambda c: ["bench", "--config", write_yaml(
        c.tmp / "b.yaml", {"train": {"epochs": True}}), "--out", c.out], ["epochs True"]),
}


def _mixed(c: Ctx) -> Path:
    """New weights beside the meta.json of the old ones: what an interruption between the two
    renames of a save could leave."""
    folder = c.copy("mixed")
    _rewrite_weights(folder, lambda s: s["conv1.weight"].mul_(2), keep_digest=True)
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line_exit_2_and_leaves_nothing(case, ctx, run_cli, snapshot):
    build, expected = CASES[case]
    if case == "out-under-proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    argv = build(ctx)
    reference_before = snapshot(ctx.checkpoint)
    tmp_before = snapshot(ctx.tmp)
    entries_before = sorted(p.name for p in ctx.tmp.iterdir())
    code, stdout, stderr = run_cli(*argv)
    line = one_error_line((code, stdout, stderr), str(argv[0]))
    assert stdout == ""
    for text in expected:
        assert text in line, line
    assert not ctx.out.exists() or ctx.out == ctx.tmp
    assert snapshot(ctx.tmp) == tmp_before  # nothing written, no temporary left
    assert sorted(p.name for p in ctx.tmp.iterdir()) == entries_before  # not even an empty folder
    assert snapshot(ctx.checkpoint) == reference_before


# --------------------------------------------------------------------------- cases that need more set-up


def test_a_method_producing_nan_is_refused_not_saved(ctx, run_cli, monkeypatch, snapshot):
    """A method whose output is not finite (SSD can divide by zero importances) is refused before
    it is scored or saved: NaN logits would otherwise score UA 100."""
    from prunelora.methods import base
    from prunelora.methods.ssd import SSDConfig

    def diverge(model, splits, config, context):
        with torch.no_grad():
            model.conv1.weight.fill_(float("nan"))
        return model, {}

    monkeypatch.setitem(base._METHODS, "diverge", base.Method("diverge", SSDConfig, diverge, "test: NaN weights",
                                                              base._METHODS["ssd"].capabilities))
    before = snapshot(ctx.tmp)
    code, stdout, stderr = run_cli(*_unlearn(ctx, ctx.checkpoint, "--method", "diverge"))
    line = one_error_line((code, stdout, stderr), "unlearn")
    assert "'diverge'" in line and "conv1.weight" in line and "NaN" in line
    assert not ctx.out.exists() and snapshot(ctx.tmp) == before


def test_save_refuses_non_finite_weights(tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(prunelora.CheckpointError, match="weight"):
        checkpoint.save_checkpoint(model, tmp_path / "ckpt", {"model": {"name": "x"}})
    assert not (tmp_path / "ckpt").exists()


def test_the_checkpoint_records_the_data_digest_and_weights_digest(checkpoint_dir, digits):
    from prunelora.data import data_digest

    meta = meta_json(checkpoint_dir)
    assert meta["dataset"]["digest"] == data_digest(digits)
    assert meta["weights_sha256"] == checkpoint._sha256_file(checkpoint_dir / WEIGHTS)


def test_data_digest_tells_one_changed_pixel(digits):
    import dataclasses

    from prunelora.data import data_digest

    images = digits.train.images.clone()
    images[5, 0, 3, 3] ^= 1
    changed = dataclasses.replace(digits, train=digits.train.subset(range(len(images))))
    changed.train.images = images
    assert data_digest(changed) != data_digest(digits)


def test_unchanged_image_folder_is_accepted(ctx, run_cli):
    _, ckpt = ctx.trained_folder()
    code, _, stderr = run_cli("unlearn", "--checkpoint", ckpt, "--method", "finetune", "--steps", "1",
                              "--forget-indices", ctx.file("ids.txt", "23\n"), "--out", ctx.out, "--no-progress")
    assert code == 0, stderr
    assert meta_json(ctx.out)["dataset"]["digest"] == meta_json(ckpt)["dataset"]["digest"]


def test_a_checkpoint_without_digests_loads_with_one_warning_line(ctx, run_cli):
    """Checkpoints written before the digests existed still work; the data is then not checked,
    and the command says so in one line."""
    def forget_digests(meta):
        del meta["dataset"]["digest"], meta["weights_sha256"]

    old = ctx.with_meta(forget_digests, "old")
    with pytest.warns(UserWarning, match="not checked") as record:
        code, _, stderr = run_cli(*_unlearn(ctx, old, "--method", "finetune", "--steps", "1"))
    assert code == 0, stderr
    assert (ctx.out / WEIGHTS).is_file()
    # as the command prints it (pytest records warnings instead of printing them; the command's
    # one-line formatter holds only while a command runs)
    import warnings

    from prunelora.cli.app import _one_line_warnings

    with _one_line_warnings():
        printed = warnings.formatwarning(record[0].message, UserWarning, "api.py", 1)
    assert printed.startswith("prunelora: warning:") and printed.count("\n") == 1


@pytest.mark.parametrize("fail_on", ["weights", "meta"])
def test_disk_full_while_saving_is_one_line_and_leaves_nothing(fail_on, ctx, run_cli, monkeypatch, snapshot):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fail_on == "weights":
        monkeypatch.setattr(checkpoint, "save_file", no_space)
    else:
        real_write_text = Path.write_text
        monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: no_space() if ".meta.json." in self.name
                            else real_write_text(self, text, *a, **k))
    before = snapshot(ctx.tmp)
    code, stdout, stderr = run_cli(*_train(ctx, out=ctx.tmp / "deep" / "out"))
    line = one_error_line((code, stdout, stderr), "train")
    assert "No space left on device" in line and "deep" in line
    assert not (ctx.tmp / "deep").exists()  # the folders the save created are gone again
    assert snapshot(ctx.tmp) == before

    # over a previous checkpoint: that one survives, byte for byte, with no temporary beside it
    previous = ctx.copy("previous")
    kept = snapshot(previous)
    code, _, stderr = run_cli(*_train(ctx, "--overwrite", out=previous))
    assert "No space left on device" in one_error_line((code, "", stderr), "train")
    assert snapshot(previous) == kept


def test_out_on_a_read_only_filesystem_is_refused_before_training(ctx, run_cli, monkeypatch):
    """A read-only mount (simulated: mkdir there fails with EROFS, as the kernel answers)."""
    read_only = ctx.tmp / "ro"
    read_only.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(read_only)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    trained = []
    monkeypatch.setattr("prunelora.api.fit", lambda *a, **k: trained.append(1))
    code, stdout, stderr = run_cli(*_train(ctx, out=read_only / "run"))
    line = one_error_line((code, stdout, stderr), "train")
    assert "Read-only file system" in line and "ro/run" in line
    assert not trained and list(read_only.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only-mode folder")
def test_out_in_a_folder_without_write_permission(ctx, run_cli):
    locked = ctx.tmp / "locked"
    locked.mkdir(mode=0o555)
    code, stdout, stderr = run_cli(*_train(ctx, out=locked / "run"))
    assert "Permission denied" in one_error_line((code, stdout, stderr), "train")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_names_the_available_devices(ctx, run_cli):
    code, stdout, stderr = run_cli(*_train(ctx, "--device", "cuda"))
    line = one_error_line((code, stdout, stderr), "train")
    assert "'cuda'" in line and "available: auto, cpu" in line
    assert not ctx.out.exists()


def test_save_adapter_rerun_of_the_same_run_is_accepted(ctx, run_cli):
    adapter = ctx.tmp / "adapter"
    argv = _unlearn(ctx, ctx.checkpoint, "--method", "lora", "--steps", "1", "--save-adapter", adapter)
    with pytest.warns(UserWarning, match="adapter alone"):
        code, _, stderr = run_cli(*argv)
    assert code == 0, stderr
    assert json.loads((adapter / "prunelora-run.json").read_text())["run_id"] == meta_json(ctx.out)["run_id"]
    with pytest.warns(UserWarning, match="adapter alone"):
        code, _, stderr = run_cli(*argv)
    assert code == 0, stderr


def test_failed_checkpoint_save_removes_the_new_adapter(ctx, run_cli, monkeypatch):
    """The adapter is written first; when the checkpoint then fails, no adapter is left behind."""
    monkeypatch.setattr(checkpoint, "save_file", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    adapter = ctx.tmp / "adapter"
    with pytest.warns(UserWarning, match="adapter alone"):
        code, stdout, stderr = run_cli(*_unlearn(ctx, ctx.checkpoint, "--method", "lora", "--steps", "1",
                                                 "--save-adapter", adapter))
    assert "No space left" in one_error_line((code, stdout, stderr), "unlearn")
    assert not adapter.exists() and not ctx.out.exists()


def test_lora_rank_at_the_layer_limit_is_accepted(ctx, run_cli):
    # conv1 of a 1-channel ResNet is 16 x (1 x 3 x 3): rank 9 is its limit
    code, _, stderr = run_cli(*_unlearn(ctx, ctx.checkpoint, "--method", "lora", "--steps", "1", "--lora-rank", "9"))
    assert code == 0, stderr
    code, _, stderr = run_cli(*_unlearn(ctx, ctx.checkpoint, "--method", "lora", "--steps", "1", "--lora-rank", "10",
                                        "--overwrite"))
    assert "allows (9" in one_error_line((code, "", stderr), "unlearn")


def test_model_larger_than_the_bound_is_refused_before_allocation(ctx, run_cli):
    code, stdout, stderr = run_cli(*_train(ctx, "--model-arg", "width=300"))
    line = one_error_line((code, stdout, stderr), "train")
    assert "width" in line and "parameters" in line
    assert not ctx.out.exists()


# --------------------------------------------------------------------------- subprocesses


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA counts mmaps on Linux")
def test_absurd_width_under_a_memory_limit_is_refused_cleanly(ctx):
    """`retrain` on a 318 KB checkpoint whose meta.json asks for width 300 (about 1.7 GB per layer
    when built): under a 2 GiB data limit the command must refuse in one line, not die."""
    folder = ctx.with_meta(_kwargs(width=300))
    limit = 2 * 2**30

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "prunelora", "retrain", "--checkpoint", str(folder),
                           "--forget-class", "3", "--out", str(ctx.out), "--no-progress"],
                          capture_output=True, text=True, env=subprocess_env(), preexec_fn=limit_memory, timeout=300)
    line = one_error_line((proc.returncode, proc.stdout, proc.stderr), "retrain")
    assert "has shape" in line and "expects (4800" in line
    assert not ctx.out.exists()


def _maps_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports")
@pytest.mark.parametrize("after", [0.0, 0.3])
def test_ctrl_c_during_start_up_is_one_line(after, ctx):
    """SIGINT while the command is still importing (torch, then numpy and peft): one line, exit 130.
    The signal is sent once the process has mapped libtorch (it is then inside `main`), plus `after`
    seconds, so that it lands among the heavy imports whatever the machine's load."""
    proc = subprocess.Popen([sys.executable, "-m", "prunelora", *map(str, _train(ctx))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + 60
    while not _maps_torch(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    assert stderr == "prunelora: interrupted\n" and stdout == ""
    assert not ctx.out.exists()
