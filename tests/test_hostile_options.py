"""Option values checked before they are used: out-of-range and non-finite hyper-parameters, model
arguments, seeds, a probe layer that cannot be probed, record numbers that are not ASCII digits.

Every case: exit 2, one line naming the option (not the learning rate when the learning rate is
fine), nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_error_line

BIG = str(2**63)


def _train(out: Path, *extra: str) -> list:
    return ["train", "--dataset", "digits", "--model", "resnet8", "--steps", "1", "--no-progress", "--out", out,
            *extra]


def _unlearn(checkpoint: Path, out: Path, *extra: str) -> list:
    return ["unlearn", "--checkpoint", checkpoint, "--method", "finetune", "--steps", "1", "--no-progress",
            "--out", out, *extra]


# command -> the line must contain each text; "{ckpt}" is the session's checkpoint
CASES = {
    "momentum-negative": (("train", "--momentum", "-1"), ["momentum -1.0", "[0, 1)"]),
    "momentum-nan": (("train", "--momentum", "nan"), ["momentum nan", "finite"]),
    "weight-decay-nan": (("train", "--weight-decay", "nan"), ["weight_decay nan", "finite"]),
    "lr-inf": (("train", "--lr", "inf"), ["lr inf", "finite"]),
    "unlearn-momentum-nan": (("unlearn", "--momentum", "nan"), ["momentum nan", "finite"]),
    "lora-alpha-inf": (("unlearn", "--method", "lora", "--lora-alpha", "inf"), ["lora_alpha inf", "finite"]),
    "scrub-alpha-inf": (("unlearn", "--method", "scrub", "--scrub-alpha", "inf"), ["scrub_alpha inf", "finite"]),
    "model-arg-width-nan": (("train", "--model-arg", "width=.nan"), ["width=.nan", "not a finite number"]),
    "model-arg-width-inf": (("train", "--model-arg", "width=.inf"), ["width=.inf", "not a finite number"]),
    "model-arg-width-nan-text": (("train", "--model-arg", "width=nan"), ["width=nan", "not a finite number"]),
    "model-arg-width-1e9": (("train", "--model-arg", "width=1e9"), ["width multiplier 1000000000.0",
                                                                    "(0, 1024]"]),
    "model-arg-width-1.0e+9": (("train", "--model-arg", "width=1.0e+9"), ["width multiplier 1000000000.0"]),
    "train-seed-2^63": (("train", "--seed", BIG), [f"seed {BIG}", "[0, 2^63)"]),
    "train-seed-negative": (("train", "--seed", "-1"), ["seed -1", "[0, 2^63)"]),
    "subset-seed-2^63": (("train", "--train-subset", "200", "--subset-seed", BIG), ["--subset-seed", BIG]),
    "subset-seed-negative": (("train", "--train-subset", "200", "--subset-seed", "-5"), ["--subset-seed", "-5"]),
    "forget-seed-2^63": (("unlearn", "--forget-fraction", "0.1", "--forget-seed", BIG), ["--forget-seed", BIG]),
    "forget-seed-negative": (("unlearn", "--forget-fraction", "0.1", "--forget-seed", "-1"), ["--forget-seed -1"]),
    "unlearn-seed-2^63": (("unlearn", "--seed", BIG), [f"seed {BIG}", "[0, 2^63)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_option_values_are_refused_naming_the_option(case, run_cli, checkpoint_dir, tmp_path):
    (command, *extra), named = CASES[case]
    out = tmp_path / "out"
    if command == "train":
        args = _train(out, *extra)
    else:
        if not any(a.startswith("--forget-") for a in extra):
            extra = ["--forget-class", "3", *extra]
        args = _unlearn(checkpoint_dir, out, *extra)
    line = one_error_line(run_cli(*args), command)
    for text in named:
        assert text in line, (text, line)
    assert "learning rate" not in line or case == "lr-inf"
    assert not out.exists()


@pytest.mark.parametrize("text", ["1_0", "\u0663", "\uff13", "3\u0663"])
def test_record_numbers_are_ascii_digits_only(text, run_cli, checkpoint_dir, tmp_path):
    """Python's int() reads `1_0` as 10 and Arabic-Indic or full-width digits as numbers: a deletion
    request naming records that way is refused, not read as other records."""
    request = tmp_path / "request.txt"
    request.write_text(f"5\n{text}\n", encoding="utf-8")
    out = tmp_path / "out"
    line = one_error_line(run_cli(*_unlearn(checkpoint_dir, out, "--forget-indices", request)), "unlearn")
    assert f"{request}:2" in line and repr(text) in line
    assert not out.exists()


@pytest.mark.parametrize("text", ["1_0", "\u0663", "\uff13"])
def test_forget_classes_are_ascii_digits_only(text, run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "out"
    line = one_error_line(run_cli(*_unlearn(checkpoint_dir, out, "--forget-class", text)), "unlearn")
    assert "--forget-class" in line and repr(text) in line
    assert not out.exists()


def test_plain_ascii_record_numbers_still_work():
    from prunelora.data import ForgetSpec

    assert ForgetSpec.from_classes(" 3, +5 ").classes == (3, 5)


PROBE_MODEL_PY = '''
from torch import nn


class WithScore(nn.Module):
    """A classifier with a side head that scores each input with one number: its output is 1-D."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.score = nn.Sequential(nn.Linear(8, 1), nn.Flatten(0))
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        features = self.body(x)
        self.last_score = self.score(features)
        return self.head(features)


def build(num_classes, in_channels, image_size):
    return WithScore(num_classes, in_channels)
'''


def test_a_probe_layer_with_1d_output_is_refused_before_the_evaluation(run_cli, tmp_path, monkeypatch):
    (tmp_path / "probe_models.py").write_text(PROBE_MODEL_PY)
    factory = f"{tmp_path / 'probe_models.py'}:build"
    original = tmp_path / "original"
    code, _, stderr = run_cli("train", "--model-factory", factory, "--steps", "2", "--out", original,
                              "--no-progress")
    assert code == 0, stderr

    import prunelora.evaluation.evaluate as evaluation

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the evaluation ran before the probe layer was checked")

    monkeypatch.setattr(evaluation, "mia_all", no_evaluation)
    report = tmp_path / "report.json"
    line = one_error_line(run_cli("eval", original, "--model-factory", factory, "--forget-class", "3",
                                  "--probe-layer", "score", "--json", report), "eval")
    assert "probe layer 'score'" in line and "(2,)" in line
    assert not report.exists()
