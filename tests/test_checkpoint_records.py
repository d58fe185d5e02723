"""meta.json read as a typed record: attributes for code, the file's own mapping for callers that
index it, and the file unchanged by a read-then-write."""

from __future__ import annotations

import json

import pytest

from prunelora.checkpoint import (
    META,
    CheckpointMeta,
    DatasetRecord,
    ModelRecord,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)


def test_read_meta_is_typed(checkpoint_dir):
    meta = read_meta(checkpoint_dir)
    raw = json.loads((checkpoint_dir / META).read_text())
    assert isinstance(meta, CheckpointMeta)
    assert isinstance(meta.model, ModelRecord) and isinstance(meta.dataset, DatasetRecord)
    assert (meta.model.name, meta.model.num_classes, meta.model.in_channels) == ("resnet8", 10, 1)
    assert meta.dataset.name == "digits" and meta.dataset.digest == raw["dataset"]["digest"]
    assert meta.dataset.val_indices == raw["dataset"]["val_indices"]
    assert meta.kind == "original" and meta.original_run_id == meta.run_id == raw["run_id"]
    assert meta.weights_sha256 == raw["weights_sha256"]


def test_the_record_reads_as_the_file_it_came_from(checkpoint_dir):
    meta = read_meta(checkpoint_dir)
    raw = json.loads((checkpoint_dir / META).read_text())
    assert meta.as_json() == raw and meta == raw
    assert list(meta) == list(raw)  # the file's order
    assert meta["model"]["num_classes"] == raw["model"]["num_classes"] and meta.get("absent") is None
    with pytest.raises(TypeError):
        meta["kind"] = "other"  # a read-only view: change the attributes


def test_read_then_saved_is_the_same_file(checkpoint_dir, tmp_path):
    model, meta = load_checkpoint(checkpoint_dir)
    save_checkpoint(model, tmp_path / "again", meta)
    before = json.loads((checkpoint_dir / META).read_text())
    after = json.loads((tmp_path / "again" / META).read_text())
    assert list(after) == list(before)
    assert {k: v for k, v in after.items() if k != "versions"} == {k: v for k, v in before.items() if k != "versions"}


def test_records_built_from_dicts_are_typed():
    meta = CheckpointMeta(kind="original", model={"name": "resnet8", "num_classes": 3, "in_channels": 1,
                                                  "image_size": 8}, dataset={"name": "digits"})
    assert meta.model.kwargs == {} and meta.model.pruned is None
    assert meta.dataset.val_fraction == 0.1 and meta.dataset.split_seed == 0 and meta.dataset.train_subset is None
    assert meta.to_dict()["model"] == {"name": "resnet8", "num_classes": 3, "in_channels": 1, "image_size": 8}
    assert type(meta.to_dict()["dataset"]) is dict
