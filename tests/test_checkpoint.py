"""Checkpoints: safetensors + meta.json, strict loading, atomic writes, output-directory safety."""

from __future__ import annotations

import json
import os
import pathlib
from pathlib import Path

import pytest
import safetensors
import torch

import prunelora.checkpoint as checkpoint
from prunelora.checkpoint import (
    META,
    WEIGHTS,
    check_output_dir,
    load_checkpoint,
    read_meta,
    read_weights,
    save_checkpoint,
)
from prunelora.data import NORMALIZATION
from prunelora.errors import CheckpointError, InvalidInputError, MissingFileError
from prunelora.models import create_model
from prunelora.training import TrainConfig, predict


def _meta(name="resnet8", num_classes=10, in_channels=1, image_size=8, **extra) -> dict:
    return {"model": {"name": name, "num_classes": num_classes, "in_channels": in_channels,
                      "image_size": image_size, "kwargs": {}}, **extra}


def _small_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("resnet8", 10, 1, 8)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trip and meta


def test_round_trip_gives_identical_logits(trained, digits):
    model, meta = load_checkpoint(trained.path)
    assert not model.training
    original, _ = predict(trained.model, digits.test)
    reloaded, _ = predict(model, digits.test)
    assert torch.equal(original, reloaded)
    assert meta["run_id"] == trained.meta["run_id"]


def test_checkpoint_holds_exactly_two_files(checkpoint_dir):
    assert _files(checkpoint_dir) == [META, WEIGHTS]


def test_weights_are_plain_safetensors(checkpoint_dir, trained):
    with safetensors.safe_open(str(checkpoint_dir / WEIGHTS), framework="pt") as f:
        assert f.metadata() == {"format": checkpoint.FORMAT}
        assert set(f.keys()) == set(trained.model.state_dict())


def test_meta_records_what_is_needed_to_rebuild_and_judge(checkpoint_dir):
    meta = json.loads((checkpoint_dir / META).read_text())
    assert meta["format"] == "prunelora-checkpoint" and meta["format_version"] == 1
    assert meta["kind"] == "original"
    assert meta["model"] == {"name": "resnet8", "num_classes": 10, "in_channels": 1, "image_size": 8,
                             "kwargs": {}}
    mean, std = NORMALIZATION["digits"]
    assert meta["dataset"]["name"] == "digits"
    assert meta["dataset"]["normalization"] == {"mean": list(mean), "std": list(std)}
    assert meta["dataset"]["val_fraction"] == 0.1
    assert meta["recipe"] == TrainConfig(epochs=2, seed=0).to_dict()
    assert meta["seed"] == 0
    assert meta["forget"] is None
    for package in ("python", "torch", "safetensors", "prunelora", "scikit-learn"):
        assert meta["versions"][package]
    assert set(meta["metrics"]) >= {"RA", "val", "TA", "test"}
    assert meta["cost"]["steps"] == 20 and meta["cost"]["wall_time_s"] > 0
    assert isinstance(meta["run_id"], str) and len(meta["run_id"]) == 16


def test_loading_never_unpickles(checkpoint_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load (pickle) was called while loading a safetensors checkpoint")

    monkeypatch.setattr(torch, "load", refuse)
    model, _ = load_checkpoint(checkpoint_dir)
    assert model.head.out_features == 10


# --------------------------------------------------------------------------- damaged checkpoints


def test_missing_directory(tmp_path):
    with pytest.raises(MissingFileError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")


def test_directory_without_meta(checkpoint_copy):
    (checkpoint_copy / META).unlink()
    with pytest.raises(MissingFileError, match=META):
        load_checkpoint(checkpoint_copy)


def test_directory_without_weights(checkpoint_copy):
    (checkpoint_copy / WEIGHTS).unlink()
    with pytest.raises(MissingFileError, match=WEIGHTS):
        load_checkpoint(checkpoint_copy)


def test_truncated_weights(checkpoint_copy):
    path = checkpoint_copy / WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(checkpoint_copy)


def test_weights_that_are_not_safetensors(checkpoint_copy):
    (checkpoint_copy / WEIGHTS).write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=WEIGHTS):
        load_checkpoint(checkpoint_copy)


def test_empty_weights_file(checkpoint_copy):
    (checkpoint_copy / WEIGHTS).write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint_copy)


def _edit_meta(folder: Path, edit) -> None:
    meta = json.loads((folder / META).read_text())
    edit(meta)
    (folder / META).write_text(json.dumps(meta))


def test_meta_with_another_num_classes(checkpoint_copy):
    _edit_meta(checkpoint_copy, lambda m: m["model"].update(num_classes=5))
    with pytest.raises(CheckpointError, match=r"head\.\w+ has shape \(10"):
        load_checkpoint(checkpoint_copy)


def test_meta_with_another_architecture(checkpoint_copy):
    _edit_meta(checkpoint_copy, lambda m: m["model"].update(name="resnet20"))
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(checkpoint_copy)


def test_meta_that_is_not_json(checkpoint_copy):
    (checkpoint_copy / META).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_meta(checkpoint_copy)


def test_meta_of_another_format(checkpoint_copy):
    _edit_meta(checkpoint_copy, lambda m: m.pop("format"))
    with pytest.raises(CheckpointError, match="not a prunelora checkpoint"):
        read_meta(checkpoint_copy)


def test_checkpoint_errors_are_one_line_value_errors(checkpoint_copy):
    (checkpoint_copy / WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint_copy)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidInputError)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- .pt/.pth import


def test_pth_import_strips_module_prefix(tmp_path):
    state = {"module.conv.weight": torch.randn(2, 3), "module.bn.running_mean": torch.zeros(2),
             "step": 7}
    torch.save(state, tmp_path / "ddp.pth")
    weights = read_weights(tmp_path / "ddp.pth")
    assert set(weights) == {"conv.weight", "bn.running_mean"}  # non-tensors dropped
    assert torch.equal(weights["conv.weight"], state["module.conv.weight"])


def test_pth_import_unwraps_state_dict_key(tmp_path):
    torch.save({"state_dict": {"head.bias": torch.ones(3)}, "epoch": 3}, tmp_path / "ckpt.pt")
    assert set(read_weights(tmp_path / "ckpt.pt")) == {"head.bias"}


def test_pth_import_uses_weights_only(tmp_path, monkeypatch):
    torch.save({"w": torch.ones(1)}, tmp_path / "w.pth")
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_weights(tmp_path / "w.pth")
    assert seen.get("weights_only") is True


class _Exploit:
    """Unpickling this would create a file: what weights_only=True must refuse to do."""

    marker: Path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pth_with_arbitrary_pickle_is_refused(tmp_path):
    exploit = _Exploit()
    exploit.marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(1), "payload": exploit}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        read_weights(tmp_path / "evil.pth")
    assert not exploit.marker.exists()


def test_pth_that_is_not_a_dict(tmp_path):
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="state dict"):
        read_weights(tmp_path / "tensor.pt")


def test_missing_weights_file(tmp_path):
    with pytest.raises(MissingFileError, match="absent.pth"):
        read_weights(tmp_path / "absent.pth")


# --------------------------------------------------------------------------- atomic saves


@pytest.mark.parametrize("failure", ["exception", "interrupt"])
def test_interrupted_weights_write_keeps_previous_checkpoint(checkpoint_copy, snapshot, trained, digits,
                                                              monkeypatch, failure):
    before = snapshot(checkpoint_copy)

    def fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 1000)
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", fail)
    with pytest.raises(KeyboardInterrupt if failure == "interrupt" else OSError):
        save_checkpoint(_small_model(seed=5), checkpoint_copy, _meta(kind="other"))
    monkeypatch.undo()

    assert snapshot(checkpoint_copy) == before  # same files, same bytes, no temporary left behind
    model, meta = load_checkpoint(checkpoint_copy)
    assert meta["kind"] == "original"
    assert torch.equal(predict(model, digits.test)[0], predict(trained.model, digits.test)[0])


def test_interrupted_text_write_leaves_no_temporary(tmp_path, monkeypatch):
    def fail(self, text):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError):
        checkpoint.atomic_write_text(tmp_path / META, "{}")
    monkeypatch.undo()
    assert _files(tmp_path) == []


def test_failed_meta_keeps_previous_checkpoint(checkpoint_copy, snapshot):
    before = snapshot(checkpoint_copy)
    with pytest.raises(TypeError, match="cannot store"):
        save_checkpoint(_small_model(seed=5), checkpoint_copy, _meta(kind="other", bad=object()))
    assert snapshot(checkpoint_copy) == before


def test_save_refuses_meta_without_model(tmp_path):
    with pytest.raises(ValueError, match="meta must describe the model"):
        save_checkpoint(_small_model(), tmp_path / "x", {"kind": "original"})
    assert not (tmp_path / "x").exists()


def test_save_then_load_a_fresh_model(tmp_path):
    model = _small_model(seed=2).eval()
    path = save_checkpoint(model, tmp_path / "fresh", _meta(path=tmp_path, tensor=torch.arange(3)))
    loaded, meta = load_checkpoint(path)
    assert meta["path"] == str(tmp_path) and meta["tensor"] == [0, 1, 2]  # stored as JSON
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert _files(path) == [META, WEIGHTS]


def test_atomic_write_text_replaces_content(tmp_path):
    target = tmp_path / "note.txt"
    checkpoint.atomic_write_text(target, "one")
    checkpoint.atomic_write_text(target, "two")
    assert target.read_text() == "two" and _files(tmp_path) == ["note.txt"]


# --------------------------------------------------------------------------- output directories


def test_check_output_dir_creates_nothing(tmp_path):
    out = check_output_dir(tmp_path / "a" / "b", run_id="r1")
    assert out == tmp_path / "a" / "b" and not (tmp_path / "a").exists()


def test_check_output_dir_accepts_empty_folder(tmp_path):
    assert check_output_dir(tmp_path, run_id="r1") == tmp_path


def test_check_output_dir_refuses_different_run(checkpoint_copy, snapshot):
    before = snapshot(checkpoint_copy)
    with pytest.raises(InvalidInputError, match="--overwrite") as info:
        check_output_dir(checkpoint_copy, run_id="another-run")
    assert str(checkpoint_copy) in str(info.value)
    assert snapshot(checkpoint_copy) == before
    assert check_output_dir(checkpoint_copy, run_id="another-run", overwrite=True) == checkpoint_copy


def test_check_output_dir_accepts_same_run(checkpoint_copy, trained):
    assert check_output_dir(checkpoint_copy, run_id=trained.meta["run_id"]) == checkpoint_copy


def test_check_output_dir_refuses_unrelated_files(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidInputError):
        check_output_dir(tmp_path, run_id="r1")
    with pytest.raises(InvalidInputError):
        check_output_dir(tmp_path, run_id=None)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_check_output_dir_refuses_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        check_output_dir(tmp_path / "out", overwrite=True)
