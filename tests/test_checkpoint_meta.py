"""meta.json through `CheckpointMeta`: one builder, written and read back unchanged, older files readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunelora.checkpoint import (
    META,
    CheckpointMeta,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    unlearned_run_id,
)
from prunelora.errors import CheckpointError
from prunelora.models import create_model

FILE_KEYS = ("format", "format_version", "versions", "weights_sha256")


def test_a_written_meta_reads_back_as_the_same_content(checkpoint_dir, trained):
    """What `train` returned as its meta is what meta.json holds, plus the keys the save adds."""
    on_disk = json.loads((checkpoint_dir / META).read_text())
    assert {k: v for k, v in on_disk.items() if k not in FILE_KEYS} == trained.meta
    meta = CheckpointMeta.read(checkpoint_dir)
    assert meta.to_dict() == trained.meta
    assert (meta.format_version, meta.weights_sha256) == (on_disk["format_version"], on_disk["weights_sha256"])
    assert meta.extra == {}
    assert list(on_disk)[:2] == ["format", "format_version"] and list(on_disk)[-2:] == ["versions", "weights_sha256"]


def _old_style_checkpoint(folder: Path) -> Path:
    """A meta.json as the first writers made it: format version 1, no run id, no history, no
    digest, and a key this version does not know."""
    torch.manual_seed(0)
    model = create_model("resnet8", 10, 1, 8)
    save_checkpoint(model, folder, {"model": {"name": "resnet8", "num_classes": 10, "in_channels": 1,
                                              "image_size": 8, "kwargs": {}}})
    meta = json.loads((folder / META).read_text())
    old = {"format": meta["format"], "format_version": 1, "kind": "original", "model": meta["model"],
           "dataset": {"name": "digits"}, "recipe": {"epochs": 2}, "seed": 0, "note": "kept",
           "weights_sha256": meta["weights_sha256"]}
    (folder / META).write_text(json.dumps(old))
    return folder


def test_an_older_meta_json_stays_readable_and_keeps_unknown_keys(tmp_path):
    folder = _old_style_checkpoint(tmp_path / "old")
    _, raw = load_checkpoint(folder)
    assert raw == json.loads((folder / META).read_text())  # read as written: nothing added
    meta = CheckpointMeta.read(folder)
    assert meta.run_id is None and meta.history is None and meta.extra == {"note": "kept"}
    saved = save_checkpoint(load_checkpoint(folder)[0], tmp_path / "again", meta)
    again = read_meta(saved)
    assert again["note"] == "kept" and again["kind"] == "original" and "run_id" not in again


def test_a_newer_format_version_is_refused(tmp_path):
    folder = _old_style_checkpoint(tmp_path / "new")
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(CheckpointError, match="format_version 2, newer"):
        CheckpointMeta.read(folder)


@pytest.mark.parametrize("method", ["retrain", "finetune"])
def test_unlearned_meta_follows_the_original(trained, method):
    config = {"seed": 3, "epochs": 1}
    forget = {"kind": "class", "classes": [3]}
    meta = CheckpointMeta.unlearned(trained.meta, forget=forget, method={"name": method, "config": config},
                                    cost={"wall_time_s": 1.0}, seed=3, architecture={"modules": {"layers.0": {"type": "x"}}},
                                    original_path="runs/original")
    assert meta.kind == ("retrain" if method == "retrain" else "unlearned")
    assert meta.run_id == unlearned_run_id(trained.meta["run_id"], forget, method, config)
    assert meta.recipe == trained.meta["recipe"] and meta.dataset == trained.meta["dataset"]
    assert meta.model["pruned"]["modules"] == {"layers.0": {"type": "x"}}  # the smaller modules, recorded
    assert "pruned" not in trained.meta["model"]  # the original's record is not changed
    assert meta.original == {"path": "runs/original", "run_id": trained.meta["run_id"]}
    assert meta.history == [] and meta.created
