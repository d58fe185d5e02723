"""SalUn, SCRUB and SSD, what is particular to each: their options' checks, and each method's own
property: SSD trains nothing and only dampens; SalUn never moves a masked-out weight, whatever the
optimizer; SCRUB raises the forget loss and keeps retain accuracy. The contract every method
follows (SCRUB's steps and SalUn's trainable half included) is tests/test_method_matrix.py."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import forget_loss
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.methods import unlearn
from prunelora.training.loop import accuracy_on


def run(method: str, model: nn.Module, splits, **options):
    return unlearn(model, splits, method, progress=False, **options)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("method,option,value", [
    ("salun", "mask_fraction", 0.0),
    ("salun", "mask_fraction", 1.5),
    ("salun", "mask_fraction", -0.1),
    ("scrub", "msteps", 0),
    ("scrub", "msteps", 4),  # more max rounds than the 3 rounds
    ("scrub", "epochs", 2.5),
    ("scrub", "temperature", 0.0),
    ("scrub", "scrub_alpha", -1.0),
    ("scrub", "scrub_gamma", -0.5),
    ("scrub", "forget_batch_size", 0),
    ("ssd", "selection_weighting", 0.0),
    ("ssd", "dampening_constant", -1.0),
    ("ssd", "batch_size", 0),
])
def test_bad_hyper_parameter_is_named(method, option, value, class3_splits, trained):
    with pytest.raises(InvalidInputError, match=f"{option} {value}"):
        run(method, trained.model, class3_splits, **{option: value})


def test_scrub_needs_some_min_objective(class3_splits, trained):
    with pytest.raises(InvalidInputError, match="scrub_alpha and scrub_gamma"):
        run("scrub", trained.model, class3_splits, scrub_alpha=0.0, scrub_gamma=0.0)


@pytest.mark.parametrize("option", ["lr", "steps", "optimizer"])
def test_ssd_takes_no_training_options(option, class3_splits, trained):
    with pytest.raises(InvalidInputError, match=f"'{option}'"):
        run("ssd", trained.model, class3_splits, **{option: 1})


# --------------------------------------------------------------------------- SSD


def test_ssd_takes_no_optimizer_step(monkeypatch, splits, trained, state_dicts_equal):
    def forbidden(*args, **kwargs):
        raise AssertionError("SSD must not construct or step an optimizer")

    for cls in (torch.optim.Optimizer, torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        monkeypatch.setattr(cls, "step", forbidden)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", forbidden)
    result = run("ssd", trained.model, splits)
    assert not state_dicts_equal(result.model.state_dict(), trained.model.state_dict())
    assert result.cost.steps == 0 and result.cost.trainable_params == 0


def test_ssd_only_dampens(splits, trained):
    before = trained.model.state_dict()
    result = run("ssd", trained.model, splits)
    after = result.model.state_dict()
    params = {n for n, _ in trained.model.named_parameters()}
    changed_total = 0
    for key, old in before.items():
        new = after[key]
        if key not in params:  # BatchNorm statistics: importances are taken in eval mode
            assert torch.equal(new, old), key
            continue
        changed = new != old
        changed_total += int(changed.sum())
        assert (new[changed].abs() < old[changed].abs()).all(), f"{key}: a weight grew"
        assert (new[changed] * old[changed] >= 0).all(), f"{key}: a weight changed sign"
    assert changed_total > 0
    assert changed_total <= result.record.details["ssd"]["selected_params"]


def test_ssd_selects_fewer_weights_as_alpha_grows(class3_splits, trained):
    selected = [run("ssd", trained.model, class3_splits, selection_weighting=alpha).record.details["ssd"]["selected_params"]
                for alpha in (2.0, 10.0, 50.0)]
    assert selected[0] >= selected[1] >= selected[2]
    assert selected[0] > selected[2]


# --------------------------------------------------------------------------- SalUn


def _forget_saliency(model: nn.Module, splits) -> dict[str, torch.Tensor]:
    """|∇ mean CE(D_f)| per parameter in eval mode, computed here in one batch."""
    model = copy.deepcopy(model).eval()
    x, y = splits.forget.__getitems__(list(range(len(splits.forget))))
    loss = F.cross_entropy(model(x), y)
    names, params = zip(*model.named_parameters(), strict=True)
    grads = torch.autograd.grad(loss, params)
    return {n: g.abs() for n, g in zip(names, grads, strict=True)}


@pytest.mark.parametrize("recipe", [
    dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4),
    dict(optimizer="adamw", lr=1e-2, weight_decay=0.05),
])
def test_salun_never_moves_a_masked_out_weight(recipe, splits, trained):
    before = {n: p.detach().clone() for n, p in trained.model.named_parameters()}
    result = run("salun", trained.model, splits, steps=5, **recipe)
    masks = result.saliency_mask
    after = dict(result.model.named_parameters())
    assert set(masks) == set(before)
    moved_in = 0
    for name, mask in masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask]), f"{name}: a masked-out weight moved"
        moved_in += int((after[name][mask] != before[name][mask]).sum())
    masked_in = sum(int(m.sum()) for m in masks.values())
    assert moved_in > 0.9 * masked_in  # the masked-in weights do train


def test_salun_mask_keeps_the_largest_forget_gradients_globally(class3_splits, trained):
    saliency = _forget_saliency(trained.model, class3_splits)
    result = run("salun", trained.model, class3_splits, steps=1, mask_fraction=0.3)
    masks = result.saliency_mask
    inside = torch.cat([saliency[n][m] for n, m in masks.items()])
    outside = torch.cat([saliency[n][~m] for n, m in masks.items()])
    total = inside.numel() + outside.numel()
    assert inside.numel() == round(0.3 * total) == result.cost.trainable_params
    # global ranking (not per layer): every kept weight is at least as salient as every dropped one,
    # up to the rounding of summing D_f's gradient in batches
    assert inside.min() >= outside.max() - 1e-4 * saliency_max(saliency)
    # ... and the mask is not a per-layer quota: layers keep different fractions
    fractions = {n: m.float().mean().item() for n, m in masks.items() if m.numel() > 100}
    assert max(fractions.values()) - min(fractions.values()) > 0.1


def saliency_max(saliency: dict[str, torch.Tensor]) -> float:
    return max(s.max().item() for s in saliency.values())


def test_salun_full_mask_trains_every_weight(class3_splits, trained):
    result = run("salun", trained.model, class3_splits, steps=2, mask_fraction=1.0)
    assert result.cost.trainable_params == sum(p.numel() for p in trained.model.parameters())


# --------------------------------------------------------------------------- SCRUB


def test_scrub_raises_forget_loss_and_keeps_retain_accuracy(class3_splits, trained):
    # The conftest model is trained only 2 epochs, so min steps on D_r alone would lower the D_f
    # loss too; a learning rate above the authors' 5e-4 makes the max steps show within 15 steps.
    # Measured (CPU, seed 0): D_f loss 1.21 -> 2.33, RA 85.7 -> 90.1.
    model = trained.model
    result = run("scrub", model, class3_splits, steps=3, lr=0.02)
    assert forget_loss(result.model, class3_splits.forget) > forget_loss(model, class3_splits.forget) + 0.5
    assert accuracy_on(result.model, class3_splits.retain) >= accuracy_on(model, class3_splits.retain) - 5
    phases = [h["phase"] for h in result.record.history]
    assert phases == ["max", "min", "max", "min", "min"]  # msteps=2 of epochs=3 rounds


def test_scrub_distils_from_a_separate_teacher(class3_splits, trained):
    # Were the teacher the student itself, KL(teacher || student) would be ~0 with no gradient:
    # the max passes would report ~0 and the KL weight `scrub_alpha` would change nothing (measured:
    # 1e-7 apart). With the frozen original as teacher they are 5e-3 apart.
    a = run("scrub", trained.model, class3_splits, steps=2, lr=0.02)
    b = run("scrub", trained.model, class3_splits, steps=2, lr=0.02, scrub_alpha=0.5)
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    assert max((pa[n] - pb[n]).abs().max().item() for n in pa) > 1e-3
    assert a.record.history[0]["loss"] < -1e-2  # max passes report the negated KL to the teacher
