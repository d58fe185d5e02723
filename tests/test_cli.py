"""The command line, run in-process: happy paths, --config files, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import error_line, meta_json

from prunelora.checkpoint import META, WEIGHTS

TRAIN = ("train", "--dataset", "digits", "--model", "resnet8", "--no-progress")


@pytest.fixture(scope="module")
def cli_run(run_cli, tmp_path_factory):
    """`prunelora train ... --epochs 1 --out DIR`, run once for the module: (DIR, rc, stdout, stderr)."""
    out = tmp_path_factory.mktemp("cli") / "original"
    code, stdout, stderr = run_cli(*TRAIN, "--epochs", "1", "--out", out)
    return out, code, stdout, stderr


@pytest.fixture(scope="module")
def cli_checkpoint(cli_run) -> Path:
    out, code, _, stderr = cli_run
    assert code == 0, stderr
    return out


# --------------------------------------------------------------------------- happy paths


def test_train_writes_a_checkpoint(cli_run):
    out, code, stdout, stderr = cli_run
    assert code == 0, stderr
    assert stderr == ""  # --no-progress: no bar
    assert sorted(p.name for p in out.iterdir()) == [META, WEIGHTS]
    meta = meta_json(out)
    assert meta["kind"] == "original"
    assert meta["model"]["name"] == "resnet8"
    assert meta["recipe"]["epochs"] == 1
    assert stdout.startswith("original:") and str(out) in stdout


def test_info_prints_the_model(run_cli, cli_checkpoint):
    code, stdout, stderr = run_cli("info", cli_checkpoint)
    assert code == 0, stderr
    assert "resnet8" in stdout and "digits" in stdout
    assert "original" in stdout


def test_info_json_is_meta(run_cli, cli_checkpoint):
    code, stdout, stderr = run_cli("info", cli_checkpoint, "--json")
    assert code == 0, stderr
    assert json.loads(stdout) == meta_json(cli_checkpoint)


def test_retrain_forgets_a_class(run_cli, cli_checkpoint, tmp_path):
    out = tmp_path / "retrained"
    code, stdout, stderr = run_cli("retrain", "--checkpoint", cli_checkpoint, "--forget-class", "3",
                                   "--out", out, "--no-progress")
    assert code == 0, stderr
    assert stdout.startswith("retrain:")
    meta = meta_json(out)
    original = meta_json(cli_checkpoint)
    assert meta["kind"] == "retrain"
    assert meta["forget"]["kind"] == "class" and meta["forget"]["classes"] == [3]
    assert meta["recipe"] == original["recipe"]  # exact unlearning repeats the original recipe
    assert meta["model"] == original["model"]
    assert meta["original"] == {"path": str(cli_checkpoint), "run_id": original["run_id"]}
    assert {"UA", "FA", "RA", "TA"} <= set(meta["metrics"])
    code, stdout, _ = run_cli("info", out)
    assert code == 0 and "class 3" in stdout


def test_rerunning_the_same_command_is_accepted(run_cli, cli_checkpoint, tmp_path):
    out = Path(shutil.copytree(cli_checkpoint, tmp_path / "again"))
    code, _, stderr = run_cli(*TRAIN, "--epochs", "1", "--out", out)
    assert code == 0, stderr
    assert meta_json(out)["run_id"] == meta_json(cli_checkpoint)["run_id"]


def test_out_holding_a_different_run(run_cli, cli_checkpoint, tmp_path, snapshot):
    out = Path(shutil.copytree(cli_checkpoint, tmp_path / "taken"))
    before = snapshot(out)
    code, stdout, stderr = run_cli(*TRAIN, "--steps", "2", "--seed", "1", "--out", out)
    assert code == 2 and stdout == ""
    line = error_line(stderr)
    assert str(out) in line and "--overwrite" in line
    assert snapshot(out) == before

    code, _, stderr = run_cli(*TRAIN, "--steps", "2", "--seed", "1", "--out", out, "--overwrite")
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["seed"] == 1 and meta["cost"]["steps"] == 2


def test_models_and_datasets_commands(run_cli):
    code, stdout, _ = run_cli("models")
    assert code == 0
    for name in ("resnet8", "resnet50", "vit-tiny", "torchvision:<name>"):
        assert name in stdout
    code, stdout, _ = run_cli("datasets")
    assert code == 0
    for name in ("digits", "fashion-mnist", "imagefolder:PATH"):
        assert name in stdout


def test_no_command_prints_help(run_cli):
    code, stdout, _ = run_cli()
    assert code == 2 and "train" in stdout and "retrain" in stdout


# --------------------------------------------------------------------------- --config


def test_config_file(run_cli, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("dataset: digits\nmodel: resnet8\nepochs: 1\nno-progress: true\nbatch_size: 256\n")
    out = tmp_path / "out"
    code, _, stderr = run_cli("train", "--config", config, "--out", out)
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["model"]["name"] == "resnet8"
    assert meta["recipe"]["epochs"] == 1 and meta["recipe"]["batch_size"] == 256
    assert meta["cost"]["steps"] == 5  # 1212 retain images / 256


def test_command_line_overrides_config_file(run_cli, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("model: resnet20\nsteps: 5\nseed: 4\n")
    out = tmp_path / "out"
    code, _, stderr = run_cli("train", "--config", config, "--model", "resnet8", "--steps", "2",
                              "--out", out, "--no-progress")
    assert code == 0, stderr
    meta = meta_json(out)
    assert meta["model"]["name"] == "resnet8"
    assert meta["cost"]["steps"] == 2 and meta["recipe"]["steps"] == 2
    assert meta["seed"] == 4  # not overridden: taken from the file


def test_config_file_for_retrain(run_cli, cli_checkpoint, tmp_path):
    config = tmp_path / "forget.yaml"
    config.write_text(f"checkpoint: {cli_checkpoint}\nforget_class: [3, 5]\nno_progress: true\n")
    out = tmp_path / "out"
    code, _, stderr = run_cli("retrain", "--config", config, "--out", out)
    assert code == 0, stderr
    assert meta_json(out)["forget"]["classes"] == [3, 5]


def test_config_file_for_retrain_with_flags(run_cli, cli_checkpoint, tmp_path):
    config = tmp_path / "forget.yaml"
    config.write_text("forget-class: 3\nno_progress: true\n")
    out = tmp_path / "out"
    code, _, stderr = run_cli("retrain", "--config", config, "--checkpoint", cli_checkpoint, "--out", out)
    assert code == 0, stderr
    assert meta_json(out)["forget"]["classes"] == [3]


def test_config_file_can_give_out(run_cli, tmp_path):
    config = tmp_path / "recipe.yaml"
    out = tmp_path / "out"
    config.write_text(f"model: resnet8\nsteps: 1\nno_progress: true\nout: {out}\n")
    code, _, stderr = run_cli("train", "--config", config)
    assert code == 0, stderr
    assert (out / META).is_file()


# --------------------------------------------------------------------------- bad input: exit 2, one line


@dataclass
class Ctx:
    tmp: Path
    checkpoint: Path
    out: Path

    def file(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def damaged(self, how: str) -> Path:
        folder = Path(shutil.copytree(self.checkpoint, self.tmp / f"ckpt-{how}"))
        weights = folder / WEIGHTS
        if how == "truncated":
            data = weights.read_bytes()
            weights.write_bytes(data[: len(data) // 2])
        elif how == "not-safetensors":
            weights.write_bytes(bytes(range(256)) * 16)
        elif how == "num-classes":
            meta = json.loads((folder / META).read_text())
            meta["model"]["num_classes"] = 5
            (folder / META).write_text(json.dumps(meta))
        return folder


@pytest.fixture
def ctx(tmp_path, cli_checkpoint) -> Ctx:
    return Ctx(tmp=tmp_path, checkpoint=cli_checkpoint, out=tmp_path / "out")


def _train(c: Ctx, *args) -> list:
    return ["train", "--dataset", "digits", "--model", "resnet8", "--steps", "1", "--out", c.out,
            "--no-progress", *args]


def _retrain(c: Ctx, *args) -> list:
    return ["retrain", "--checkpoint", c.checkpoint, "--out", c.out, "--no-progress", *args]


# id -> (argv builder, substrings the error line must contain)
BAD_INPUT = {
    "unknown-dataset": (lambda c: _train(c, "--dataset", "cifar11"), ["'cifar11'", "digits"]),
    "unknown-model": (lambda c: _train(c, "--model", "resnet9000"), ["'resnet9000'", "resnet8"]),
    "unknown-model-arg": (lambda c: _train(c, "--model-arg", "depth=3"), ["depth"]),
    "model-arg-not-kv": (lambda c: _train(c, "--model-arg", "width"), ["'width'", "key=value"]),
    "epochs-zero": (lambda c: ["train", "--epochs", "0", "--out", c.out, "--no-progress"], ["epochs 0"]),
    "lr-negative": (lambda c: _train(c, "--lr", "-1"), ["learning rate -1"]),
    "epochs-not-a-number": (lambda c: _train(c, "--epochs", "abc"), ["'abc'"]),
    "unknown-optimizer": (lambda c: _train(c, "--optimizer", "rmsprop"), ["'rmsprop'"]),
    "val-fraction": (lambda c: _train(c, "--val-fraction", "1.5"), ["1.5"]),
    "fashion-missing": (lambda c: _train(c, "--dataset", "fashion-mnist", "--data-dir", c.tmp),
                        ["fashion-mnist", "{tmp}"]),
    "imagefolder-missing": (lambda c: _train(c, "--dataset", f"imagefolder:{c.tmp / 'pics'}"), ["pics"]),
    "forget-class-10": (lambda c: _retrain(c, "--forget-class", "10"), ["10", "[0, 10)"]),
    "forget-class-word": (lambda c: _retrain(c, "--forget-class", "three"), ["'three'"]),
    "forget-everything": (lambda c: _retrain(c, "--forget-class", "0,1,2,3,4,5,6,7,8,9"),
                          ["whole training set"]),
    "forget-fraction-0": (lambda c: _retrain(c, "--forget-fraction", "0"), ["--forget-fraction 0.0"]),
    "forget-fraction-1.5": (lambda c: _retrain(c, "--forget-fraction", "1.5"), ["--forget-fraction 1.5"]),
    "forget-nothing": (lambda c: _retrain(c), ["--forget-class", "--forget-fraction", "--forget-indices"]),
    "forget-two-ways": (lambda c: _retrain(c, "--forget-class", "3", "--forget-fraction", "0.1"),
                        ["--forget-class", "--forget-fraction"]),
    "index-not-integer": (lambda c: _retrain(c, "--forget-indices", c.file("ids.txt", "1\n2\nabc\n")),
                          ["ids.txt:3", "'abc'"]),
    "index-out-of-range": (lambda c: _retrain(c, "--forget-indices", c.file("ids.txt", "1\n99999\n")),
                           ["99999", "[0, 1347)"]),
    "index-file-missing": (lambda c: _retrain(c, "--forget-indices", c.tmp / "absent.txt"), ["absent.txt"]),
    "checkpoint-missing": (lambda c: ["retrain", "--checkpoint", c.tmp / "nope", "--forget-class", "3",
                                      "--out", c.out, "--no-progress"], ["nope"]),
    "config-unknown-key": (lambda c: ["train", "--config", c.file("c.yaml", "epochs: 1\nbogus_key: 3\n"),
                                      "--out", c.out], ["'bogus_key'"]),
    "config-bad-value": (lambda c: ["train", "--config", c.file("c.yaml", "epochs: many\n"), "--out", c.out],
                         ["epochs", "'many'"]),
    "config-bad-choice": (lambda c: ["train", "--config", c.file("c.yaml", "optimizer: rmsprop\n"),
                                     "--out", c.out], ["'rmsprop'"]),
    "config-not-mapping": (lambda c: ["train", "--config", c.file("c.yaml", "- 1\n- 2\n"), "--out", c.out],
                           ["mapping"]),
    "config-missing": (lambda c: ["train", "--config", c.tmp / "absent.yaml", "--out", c.out], ["absent.yaml"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_cli, ctx, snapshot, case):
    build, expected = BAD_INPUT[case]
    argv = build(ctx)
    checkpoint_before = snapshot(ctx.checkpoint)
    code, stdout, stderr = run_cli(*argv)
    assert code == 2, stderr
    assert stdout == ""
    line = error_line(stderr)
    for text in expected:
        assert text.format(tmp=ctx.tmp) in line
    assert not ctx.out.exists()
    assert snapshot(ctx.checkpoint) == checkpoint_before


DAMAGED = {
    "missing": ["does not exist"],
    "truncated": ["truncated or not a safetensors file"],
    "not-safetensors": ["truncated or not a safetensors file"],
    "num-classes": ["head", "(5,)"],
}


@pytest.mark.parametrize("how", list(DAMAGED))
def test_info_on_a_bad_checkpoint(run_cli, ctx, how):
    folder = ctx.tmp / "absent" if how == "missing" else ctx.damaged(how)
    code, stdout, stderr = run_cli("info", folder)
    assert code == 2 and stdout == ""
    line = error_line(stderr)
    assert str(folder) in line
    for text in DAMAGED[how]:
        assert text in line


@pytest.mark.parametrize("how", [
    "missing",
    "truncated",
    "not-safetensors",
    "num-classes",
])
def test_retrain_from_a_bad_checkpoint(run_cli, ctx, how):
    folder = ctx.tmp / "absent" if how == "missing" else ctx.damaged(how)
    code, stdout, stderr = run_cli("retrain", "--checkpoint", folder, "--forget-class", "3",
                                   "--out", ctx.out, "--no-progress")
    assert code == 2, f"exit {code}; stdout: {stdout}"
    line = error_line(stderr)
    assert str(folder) in line
    assert not ctx.out.exists()


def test_unknown_torchvision_model_arg(run_cli, ctx):
    try:
        code, _, stderr = run_cli(*_train(ctx, "--model", "torchvision:resnet18", "--model-arg", "width=2"))
    except TypeError as exc:
        raise AssertionError(f"uncaught {exc!r}") from None
    assert code == 2
    assert "width" in error_line(stderr)
    assert not ctx.out.exists()
