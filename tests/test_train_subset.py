"""Training on a stratified train subset: recorded in the checkpoint, rebuilt alike by unlearning,
evaluation and the bench, part of every run identity, and one-line errors for bad sizes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import one_error_line, tiny_bench, write_yaml

from prunelora.api import load_for_unlearning, train, unlearn_checkpoint
from prunelora.bench import BenchConfig, original_checkpoint
from prunelora.checkpoint import META, read_meta
from prunelora.data import ForgetSpec, Splits, build_splits, stratified_subset
from prunelora.errors import InvalidInputError
from prunelora.training import TrainConfig

DIGITS_TRAIN = 1347
SIZE, SEED = 500, 1
CLASS3 = ForgetSpec.from_classes(3)


def subset_splits(digits, spec: ForgetSpec | None, size: int = SIZE, seed: int = SEED) -> Splits:
    """The splits of digits cut to a stratified subset, built by hand (what everything must rebuild)."""
    bundle = dataclasses.replace(digits, train=stratified_subset(digits.train, size, seed))
    return build_splits(bundle, spec, val_fraction=0.1, seed=0)


def same_data(a: Splits, b: Splits) -> bool:
    return a.sizes() == b.sizes() and all(
        torch.equal(getattr(a, part).images, getattr(b, part).images)
        and torch.equal(getattr(a, part).targets, getattr(b, part).targets)
        for part in ("forget", "retain", "val", "test_retain", "test_forget"))


@pytest.fixture(scope="module")
def subset_original(tmp_path_factory):
    """resnet8 trained 2 steps on 500 of digits' 1,347 training images (subset seed 1), saved."""
    out = tmp_path_factory.mktemp("subset") / "original"
    return train("digits", "resnet8", TrainConfig(steps=2, seed=0), out=out, progress=False,
                 train_subset=SIZE, subset_seed=SEED)


# --------------------------------------------------------------------------- the Python API


def test_train_on_a_subset_records_it_and_keeps_the_test_set(subset_original, digits):
    meta = subset_original.meta
    assert meta["dataset"]["train_subset"] == {"size": SIZE, "seed": SEED, "of": DIGITS_TRAIN}
    assert meta["dataset"]["train_size"] == SIZE
    assert read_meta(subset_original.path)["dataset"]["train_subset"] == meta["dataset"]["train_subset"]
    splits = subset_original.splits
    assert len(splits.retain) + len(splits.val) == SIZE  # validation is carved from the subset
    assert len(splits.test_retain) == len(digits.test)  # the test set is never cut
    assert same_data(splits, subset_splits(digits, None))


def test_whole_train_set_records_no_subset(trained):
    assert trained.meta["dataset"]["train_subset"] is None
    assert trained.meta["dataset"]["train_size"] == DIGITS_TRAIN


def test_the_subset_is_part_of_the_run_identity(subset_original, tmp_path):
    """An `out` holding the subset run refuses the same recipe on the whole set, or on another subset."""
    out = Path(shutil.copytree(subset_original.path, tmp_path / "original"))
    for extra in ({}, {"train_subset": SIZE, "subset_seed": SEED + 1}, {"train_subset": SIZE + 1}):
        with pytest.raises(InvalidInputError, match="already holds a different run"):
            train("digits", "resnet8", TrainConfig(steps=2, seed=0), out=out, progress=False, **extra)


def test_unlearn_checkpoint_rebuilds_the_originals_subset(subset_original, digits, tmp_path):
    result = unlearn_checkpoint(subset_original.path, CLASS3, "finetune", out=tmp_path / "ft", progress=False,
                                steps=1)
    expected = subset_splits(digits, CLASS3)
    assert same_data(result.splits, expected)
    assert len(result.splits.retain) < len(build_splits(digits, CLASS3).retain)
    assert result.meta["dataset"]["train_subset"] == subset_original.meta["dataset"]["train_subset"]
    # an unlearned checkpoint is evaluated (`prunelora eval`) on the same data, from its own meta.json
    _, _, _, again = load_for_unlearning(tmp_path / "ft", CLASS3)
    assert same_data(again, expected)


def test_forget_indices_and_fractions_refer_to_the_subset(subset_original):
    _, _, bundle, splits = load_for_unlearning(subset_original.path, ForgetSpec(kind="fraction", fraction=0.1))
    assert len(bundle.train) == SIZE
    trained = [i for i in range(SIZE) if i not in set(splits.val_indices.tolist())]
    assert len(splits.forget) == round(0.1 * len(trained))  # a fraction of the records the original trained on
    ends = (trained[0], trained[-1])
    _, _, _, splits = load_for_unlearning(subset_original.path, ForgetSpec(kind="indices", indices=ends))
    assert splits.forget_indices.tolist() == list(ends)
    with pytest.raises(InvalidInputError, match=rf"forget index {SIZE} is outside the training set \[0, {SIZE}\)"):
        load_for_unlearning(subset_original.path, ForgetSpec(kind="indices", indices=(SIZE,)))


def test_a_dataset_of_another_size_is_refused(subset_original, tmp_path):
    folder = Path(shutil.copytree(subset_original.path, tmp_path / "moved"))
    meta = json.loads((folder / META).read_text())
    meta["dataset"]["train_subset"]["of"] = 60000
    (folder / META).write_text(json.dumps(meta))
    with pytest.raises(InvalidInputError) as info:
        load_for_unlearning(folder, CLASS3)
    assert "60000" in str(info.value) and str(DIGITS_TRAIN) in str(info.value)


@pytest.mark.parametrize("size", [5, DIGITS_TRAIN + 1])
def test_a_bad_subset_size_is_refused_before_training(tmp_path, size):
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError) as info:
        train("digits", "resnet8", TrainConfig(steps=2), out=out, progress=False, train_subset=size)
    assert str(size) in str(info.value) and f"[10, {DIGITS_TRAIN}]" in str(info.value)
    assert not out.exists()


# --------------------------------------------------------------------------- the command line


def test_cli_train_subset(run_cli, tmp_path):
    out = tmp_path / "original"
    code, stdout, stderr = run_cli("train", "--dataset", "digits", "--model", "resnet8", "--steps", "1",
                                   "--train-subset", "300", "--subset-seed", "2", "--out", out, "--no-progress")
    assert code == 0, stderr
    assert read_meta(out)["dataset"]["train_subset"] == {"size": 300, "seed": 2, "of": DIGITS_TRAIN}
    code, stdout, stderr = run_cli("info", out)
    assert code == 0, stderr
    assert "train subset of 300 images, seed 2" in stdout


@pytest.mark.parametrize("value,named", [("99999", "99999"), ("3", "[10, 1347]"), ("abc", "'abc'")])
def test_cli_bad_train_subset_is_one_line(run_cli, tmp_path, value, named):
    out = tmp_path / "original"
    line = one_error_line(run_cli("train", "--dataset", "digits", "--model", "resnet8", "--steps", "1",
                                  "--train-subset", value, "--out", out, "--no-progress"), "train")
    assert named in line
    assert not out.exists()


# --------------------------------------------------------------------------- the bench


def test_bench_on_a_subset_matches_unlearning_its_original(run_cli, tmp_path, digits):
    config = write_yaml(tmp_path / "bench.yaml", tiny_bench("subset", train_subset={"size": SIZE, "seed": SEED}))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("bench", "--config", config, "--out", out, "--no-progress")
    assert code == 0, stderr
    original = original_checkpoint(out)
    assert read_meta(original)["dataset"]["train_subset"] == {"size": SIZE, "seed": SEED, "of": DIGITS_TRAIN}
    expected = subset_splits(digits, CLASS3)
    for cell in sorted((out / "cells" / "class3").glob("*/seed0.json")):
        assert json.loads(cell.read_text())["sizes"] == expected.sizes(), cell
    # `prunelora unlearn --checkpoint <the bench's original>` works on exactly the bench's data
    result = unlearn_checkpoint(original, CLASS3, "finetune", progress=False, steps=1)
    assert same_data(result.splits, expected)
    # and so does evaluating the bench's cached retrain
    _, _, _, retrain_splits = load_for_unlearning(out / "cache" / "class3-retrain-seed0", CLASS3)
    assert same_data(retrain_splits, expected)
    report = (out / "report.md").read_text()
    assert f"subset of {SIZE} of 1,347 training images (seed {SEED})" in report
    assert f"D_r {len(expected.retain):,}" in report


def test_bench_subset_larger_than_the_dataset_writes_nothing(run_cli, tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", tiny_bench("subset", train_subset={"size": 5000}))
    out = tmp_path / "out"
    line = one_error_line(run_cli("bench", "--config", config, "--out", out, "--no-progress"), "bench")
    assert "5000" in line and f"[10, {DIGITS_TRAIN}]" in line
    assert not out.exists()


@pytest.mark.parametrize("value,named", [
    (2000, ["train_subset must be a mapping", "2000"]),
    ({"size": "big"}, ["train_subset.size 'big'"]),
    ({"seed": 1}, ["train_subset.size None"]),
    ({"size": 0}, ["train_subset.size 0"]),
    ({"size": True}, ["train_subset.size True"]),
    ({"size": 100, "seed": 1.5}, ["train_subset.seed must be an integer", "1.5"]),
    ({"size": 100, "sed": 1}, ["'sed'", "seed, size"]),
])
def test_bench_config_refuses_a_bad_train_subset(value, named):
    with pytest.raises(InvalidInputError) as info:
        BenchConfig.from_dict(tiny_bench("subset", train_subset=value), "b.yaml")
    message = str(info.value)
    assert message.startswith("b.yaml: ") and "\n" not in message
    for text in named:
        assert text in message


def test_bench_identity_includes_the_subset():
    def ident(**extra) -> str:
        return BenchConfig.from_dict(tiny_bench("subset", **extra)).identity()

    whole = ident()
    assert ident(train_subset=None) == whole  # null is the default: older benches keep their identity
    assert ident(train_subset={"size": SIZE}) == ident(train_subset={"size": SIZE, "seed": 0})
    assert len({whole, ident(train_subset={"size": SIZE}), ident(train_subset={"size": SIZE, "seed": 1}),
                ident(train_subset={"size": SIZE + 1})}) == 4
