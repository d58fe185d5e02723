"""The forgetting baselines of the field (ga, neggrad-plus, random-label, l1-sparse), what is
particular to each: bn_mode, their options' checks, the property each method is built on, and
their options on the command line. The contract every method follows is tests/test_method_matrix.py."""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import forget_loss
from torch import nn

from prunelora.checkpoint import META
from prunelora.errors import InvalidInputError
from prunelora.methods import unlearn
from prunelora.methods.l1_sparse import l1_weight
from prunelora.training.loop import accuracy_on

METHODS = ("ga", "neggrad-plus", "random-label", "l1-sparse")
STEPS = 3


def run(method: str, model: nn.Module, splits, **options):
    return unlearn(model, splits, method, progress=False, **{"steps": STEPS, **options})


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var"))}


# --------------------------------------------------------------------------- bn_mode


@pytest.mark.parametrize("method", METHODS)
def test_bn_mode_freeze_keeps_the_running_statistics(method, trained, class3_splits):
    before = bn_buffers(trained.model)
    assert before
    frozen = bn_buffers(run(method, trained.model, class3_splits, bn_mode="freeze").model)
    updated = bn_buffers(run(method, trained.model, class3_splits).model)
    assert all(torch.equal(frozen[k], before[k]) for k in before)
    assert not all(torch.equal(updated[k], before[k]) for k in before)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("method,option,value,message", [
    ("neggrad-plus", "neggrad_alpha", 0.0, "neggrad_alpha 0.0 is outside (0, 1)"),
    ("neggrad-plus", "neggrad_alpha", 1.0, "neggrad_alpha 1.0 is outside (0, 1)"),
    ("neggrad-plus", "neggrad_alpha", -0.5, "neggrad_alpha -0.5"),
    ("neggrad-plus", "neggrad_alpha", float("nan"), "neggrad_alpha nan"),
    ("l1-sparse", "l1_gamma", -1e-4, "l1_gamma -0.0001 must be"),
    ("l1-sparse", "l1_gamma", float("inf"), "l1_gamma inf must be"),
    ("ga", "lr", 0.0, "learning rate 0.0"),
    ("random-label", "steps", 0, "steps 0"),
    ("random-label", "bn_mode", "off", "bn_mode 'off'"),
])
def test_bad_hyper_parameters_are_named(method, option, value, message, trained, class3_splits):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        unlearn(trained.model, class3_splits, method, progress=False, **{option: value})


@pytest.mark.parametrize("method,option", [("ga", "neggrad_alpha"), ("random-label", "l1_gamma"),
                                           ("neggrad-plus", "scrub_gamma"), ("l1-sparse", "neggrad_alpha")])
def test_option_of_another_method_is_named(method, option, trained, class3_splits):
    with pytest.raises(InvalidInputError, match=f"'{option}'"):
        unlearn(trained.model, class3_splits, method, **{option: 0.5})


# --------------------------------------------------------------------------- what each method does


def test_l1_weight_decays_linearly_from_gamma_to_zero():
    assert l1_weight(0, 5, 0.2) == 0.2
    assert l1_weight(2, 5, 0.2) == pytest.approx(0.1)
    assert l1_weight(4, 5, 0.2) == 0.0
    assert l1_weight(0, 1, 0.2) == 0.2  # a one-step run keeps the penalty
    for bad in [(-1, 5), (5, 5), (0, 0)]:
        with pytest.raises(ValueError):
            l1_weight(*bad, 0.2)


def test_l1_sparse_records_the_weights_it_used(trained, class3_splits):
    # 7 steps of batch 256 over 1088 retain samples cross an epoch boundary (5 batches per epoch).
    gamma, steps = 1e-3, 7
    result = run("l1-sparse", trained.model, class3_splits, steps=steps, l1_gamma=gamma)
    weights = result.record.details["l1_weights"]
    assert len(weights) == result.cost.steps == steps
    assert len(result.record.history) == 2
    assert weights[0] == gamma
    assert weights[-1] == pytest.approx(0.0, abs=1e-15)
    assert weights == [pytest.approx(l1_weight(i, steps, gamma)) for i in range(steps)]
    drops = [a - b for a, b in zip(weights, weights[1:], strict=False)]
    assert all(d == pytest.approx(gamma / (steps - 1)) for d in drops)


def test_l1_sparse_penalty_shrinks_the_weights(trained, class3_splits):
    def l1(model):
        return sum(p.abs().sum().item() for p in model.parameters())

    plain = run("l1-sparse", trained.model, class3_splits, steps=5, l1_gamma=0.0)
    sparse = run("l1-sparse", trained.model, class3_splits, steps=5, l1_gamma=0.05)
    assert l1(sparse.model) < l1(plain.model)


def test_ga_raises_the_forget_loss(trained, class3_splits):
    before = forget_loss(trained.model, class3_splits.forget)
    after = forget_loss(run("ga", trained.model, class3_splits).model, class3_splits.forget)
    # Measured (CPU, seed 0): 1.21 -> 1.53.
    assert after > before + 0.05


def test_neggrad_plus_raises_the_forget_loss_and_keeps_retain_accuracy(trained, class3_splits):
    ra_before = accuracy_on(trained.model, class3_splits.retain)
    loss_before = forget_loss(trained.model, class3_splits.forget)
    out = run("neggrad-plus", trained.model, class3_splits, steps=5).model
    # Measured (CPU, seed 0): D_f loss 1.21 -> 1.48, RA 85.7 -> 86.8.
    assert forget_loss(out, class3_splits.forget) > loss_before + 0.05
    assert abs(accuracy_on(out, class3_splits.retain) - ra_before) <= 3


# --------------------------------------------------------------------------- the CLI


def test_unlearn_command_passes_and_checks_method_options(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "ng"
    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--method", "neggrad-plus", "--neggrad-alpha", "0.9",
                              "--forget-class", "3", "--steps", "2", "--out", out, "--no-progress")
    assert code == 0, stderr
    assert json.loads((out / META).read_text())["method"]["config"]["neggrad_alpha"] == 0.9

    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--method", "ga", "--l1-gamma", "0.1",
                              "--forget-class", "3", "--steps", "2", "--out", tmp_path / "ga", "--no-progress")
    assert code == 2
    assert "--l1-gamma" in stderr and "'ga'" in stderr
    assert not (tmp_path / "ga").exists()
