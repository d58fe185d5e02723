"""`prunelora methods` and `prunelora unlearn`, run in-process: presets, forget kinds, adapter
export, and one-line errors that leave nothing behind. Every method end to end (unlearn, then
info) is in tests/test_method_matrix.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import error_line, meta_json, one_error_line

from prunelora.checkpoint import META, WEIGHTS

METHODS = ("finetune", "lora", "prune-finetune", "prunelora", "retrain")


def unlearn_args(checkpoint: Path, out: Path, *extra: str, forget: tuple[str, ...] = ("--forget-class", "3")):
    return ("unlearn", "--checkpoint", checkpoint, *forget, "--out", out, "--no-progress", *extra)


def fast(method: str) -> tuple[str, ...]:
    """--steps 3 for every method but retrain, which repeats the original's (2-epoch) recipe."""
    return ("--method", method) + (() if method == "retrain" else ("--steps", "3"))


def test_methods_lists_every_registered_method(run_cli):
    from prunelora.methods import list_methods

    code, stdout, stderr = run_cli("methods")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(list_methods())
    assert set(METHODS) <= set(list_methods())
    assert all(len(line.split()) > 2 for line in lines)  # each with its summary


def test_preset_applies_and_flags_override_it(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "preset"
    code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, out, "--preset", "prunelora-digits-resnet",
                                            "--steps", "3"))
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["method"]["name"] == "prunelora"
    config = meta["method"]["config"]
    assert config["epochs"] == 30  # from the preset
    assert config["steps"] == 3  # the flag wins
    assert config["lora_rank"] == 8 and config["lora_alpha"] == 16
    assert config["prune_amount"] == 0.5 and config["prune_types"] == ["conv"]
    assert config["keep_sparsity"] is True and config["bn_recalibrate"] is True


def test_forget_fraction(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "fraction"
    code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, out, *fast("finetune"), forget=("--forget-fraction", "0.1")))
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["forget"]["kind"] == "fraction" and meta["forget"]["fraction"] == 0.1
    assert "UA" in meta["metrics"] and "FA" not in meta["metrics"]  # no test-forget set


def test_forget_indices_file(run_cli, checkpoint_dir, tmp_path):
    indices = tmp_path / "delete-me.txt"
    indices.write_text("# records whose owners asked for deletion\n17\n5\n\n0\n")
    out = tmp_path / "indices"
    code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, out, *fast("prunelora"),
                                            forget=("--forget-indices", str(indices))))
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["forget"]["kind"] == "indices"
    assert meta["forget"]["indices"] == [0, 5, 17]
    assert meta["forget"]["source"] == str(indices)


def test_forget_set_is_drawn_from_the_originals_training_records(run_cli, checkpoint_dir, tmp_path, digits):
    """The original recorded the validation split it held out; a deletion request naming one of those
    records is refused (the original never trained on it), and a class-wise D_f excludes them."""
    val = meta_json(checkpoint_dir)["dataset"]["val_indices"]
    assert val and val == sorted(set(val))
    indices = tmp_path / "delete-me.txt"
    indices.write_text(f"{val[0]}\n")
    out = tmp_path / "held-out"
    line = one_error_line(run_cli(*unlearn_args(checkpoint_dir, out, *fast("finetune"),
                                                forget=("--forget-indices", str(indices)))), "unlearn")
    assert f"forget index {val[0]} is in the original's validation split" in line
    assert not out.exists()

    from prunelora.api import load_for_unlearning
    from prunelora.data import ForgetSpec

    _, _, _, splits = load_for_unlearning(checkpoint_dir, ForgetSpec.from_classes(3))
    assert splits.val_indices.tolist() == val
    trained = [i for i in range(len(digits.train)) if i not in set(val)]
    assert len(splits.forget) == int((digits.train.targets[trained] == 3).sum())


def test_save_adapter_writes_an_adapter_and_warns(run_cli, checkpoint_dir, tmp_path):
    out, adapter = tmp_path / "lora", tmp_path / "adapter"
    with pytest.warns(UserWarning, match="adapter alone"):
        code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, out, *fast("lora"), "--save-adapter", adapter))
    assert code == 0, stderr
    assert (out / WEIGHTS).is_file()  # the merged model is still the main output
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra,named", [
    (("--method", "forget-all"), "'forget-all'"),
    (("--lora-rank", "0"), "rank 0"),
    (("--prune-amount", "1.5"), "1.5"),
    (("--method", "finetune", "--lora-rank", "4"), "--lora-rank"),
    (("--prune-pattern", "nomatch", "--steps", "3"), "'nomatch'"),
    (("--method", "lora", "--lora-pattern", "nomatch", "--steps", "3"), "'nomatch'"),
    (("--method", "retrain", "--steps", "3"), "--steps"),
    (("--preset", "no-such-preset"), "'no-such-preset'"),
    (("--lora-rank", "eight"), "'eight'"),
    (("--no-prune-structured", "--steps", "3"), "unstructured pruning (--no-prune-structured) with LoRA through peft"),
    (("--method", "lora", "--lora-types", "mha", "--steps", "3"), "dropout 0.1 cannot apply to attention"),
])
def test_bad_input_is_one_line_and_writes_nothing(extra, named, run_cli, checkpoint_dir, tmp_path, snapshot):
    before = snapshot(checkpoint_dir)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(*unlearn_args(checkpoint_dir, out, "--no-progress", *extra))
    assert code == 2
    assert named in error_line(stderr, "unlearn")
    assert not out.exists()
    assert snapshot(checkpoint_dir) == before


def test_option_of_another_method_is_named_with_the_method(run_cli, checkpoint_dir, tmp_path):
    code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, tmp_path / "out", "--method", "finetune",
                                            "--lora-rank", "4"))
    assert code == 2
    line = error_line(stderr, "unlearn")
    assert "--lora-rank" in line and "'finetune'" in line


def test_retrain_without_a_recipe_is_refused(run_cli, checkpoint_copy, tmp_path):
    meta = meta_json(checkpoint_copy)
    del meta["recipe"]
    (checkpoint_copy / META).write_text(json.dumps(meta))
    out = tmp_path / "out"
    code, _, stderr = run_cli(*unlearn_args(checkpoint_copy, out, "--method", "retrain"))
    assert code == 2
    assert "recipe" in error_line(stderr, "unlearn")
    assert not out.exists()


def test_save_adapter_for_a_method_without_adapters_writes_nothing(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run_cli(*unlearn_args(checkpoint_dir, out, *fast("finetune"), "--save-adapter",
                                            tmp_path / "adapter"))
    assert code == 2
    assert "--save-adapter" in error_line(stderr, "unlearn")
    assert not out.exists()
