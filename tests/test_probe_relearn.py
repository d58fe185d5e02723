"""The representation probe and the relearning time on digits with a tiny network: the original's
features carry the forgotten class more than a retrain's; a model masked only at its head keeps
the original's features and relearns fast; both metrics are deterministic and leave the model alone."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from prunelora.checkpoint import load_checkpoint
from prunelora.data import ImageDataset
from prunelora.errors import InvalidInputError
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.probe import fit_probe, probe
from prunelora.evaluation.relearn import (
    RelearnConfig,
    heldout_accuracy,
    relearn_parts,
    relearn_ratio,
    relearn_steps,
)
from prunelora.training.loop import TrainConfig, fit, predict

FORGOTTEN = 3


def mlp(seed: int) -> nn.Sequential:
    """A tiny network with a 4-wide penultimate layer: too narrow to keep a class it never saw apart."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))


def both(a: ImageDataset, b: ImageDataset) -> ImageDataset:
    return ImageDataset(torch.cat([a.images, b.images]), torch.cat([a.targets, b.targets]),
                        a.mean.flatten().tolist(), a.std.flatten().tolist())


def mask_at_head(model: nn.Sequential, splits) -> nn.Sequential:
    """A copy whose forgotten class is hidden at the head alone: its bias lowered just enough (plus 1)
    that the class never wins on D_f or its test images; the features are untouched."""
    masked = copy.deepcopy(model)
    logits = torch.cat([predict(masked, splits.forget, device="cpu")[0],
                        predict(masked, splits.test_forget, device="cpu")[0]])
    others = logits.clone()
    others[:, FORGOTTEN] = -math.inf
    margin = float((logits[:, FORGOTTEN] - others.max(1).values).max())
    with torch.no_grad():
        masked[-1].bias[FORGOTTEN] -= margin + 1.0
    return masked


# A gentle learning rate (no other change to the default protocol) so that the steps resolve the
# difference between a retrain and a masked model on a network this small.
GENTLE = RelearnConfig(lr=0.001)


@pytest.fixture(scope="module")
def models(class3_splits) -> dict[str, nn.Module]:
    """original (D_r + D_f), retrain (D_r only) and the original masked at its head."""
    recipe = TrainConfig(epochs=30, optimizer="adam", lr=0.01, weight_decay=0.0, batch_size=64, seed=0)
    original = mlp(0)
    fit(original, both(class3_splits.retain, class3_splits.forget), recipe, progress=False, device="cpu")
    retrain = mlp(0)
    fit(retrain, class3_splits.retain, recipe, progress=False, device="cpu")
    return {"original": original.eval(), "retrain": retrain.eval(),
            "masked": mask_at_head(original, class3_splits).eval()}


@pytest.fixture(scope="module")
def target(models, class3_splits) -> float:
    return heldout_accuracy(models["original"], class3_splits, GENTLE, device="cpu")


@pytest.fixture(scope="module")
def evaluations(models, class3_splits, target) -> dict:
    """evaluate() of each model, the masked one against the retrain as reference."""
    out = {}
    for name in ("original", "retrain", "masked"):
        reference = out["retrain"].metrics if name == "masked" else None
        out[name] = evaluate(models[name], class3_splits, reference=reference, attacks=(), throughput=False,
                             macs=False, device="cpu", relearn=GENTLE, relearn_target=target)
    return out


# --------------------------------------------------------------------------- the probe


def test_the_original_features_carry_the_forgotten_class_more_than_a_retrain(evaluations):
    original, retrain = evaluations["original"], evaluations["retrain"]
    assert original.metrics["Probe-FA"] > retrain.metrics["Probe-FA"]
    # the retrain's features still separate the class it never saw above chance (10%)
    assert retrain.metrics["Probe-FA"] > 10.0
    details = original.probe["classifier"]
    assert details["layer"] == "input of 5" and details["dim"] == 4  # the last nn.Linear's input
    assert details["n_forget"] + details["n_retain"] + details["n_fit"] == 450  # the whole digits test set
    p = original.metrics["Probe-FA"] / 100
    assert details["se_fa"] == pytest.approx(100 * math.sqrt(p * (1 - p) / details["n_forget"]))


def test_a_head_mask_hides_the_outputs_but_not_the_features(evaluations):
    original, masked = evaluations["original"].metrics, evaluations["masked"].metrics
    assert masked["UA"] == 100.0 and masked["FA"] == 0.0  # its outputs look forgotten ...
    assert masked["Probe-FA"] == original["Probe-FA"]  # ... its features are the original's
    assert masked["Probe-TA"] == original["Probe-TA"]
    gap = abs(masked["Probe-FA"] - evaluations["retrain"].metrics["Probe-FA"])
    assert masked["Probe.Gap"] == gap > 0


def test_hand_made_features(class3_splits):
    """One-hot features of the class: the probe is perfect; constant features: it cannot tell."""
    targets = np.repeat(np.arange(10), 20)
    forgotten = targets == FORGOTTEN
    perfect = fit_probe(np.eye(10)[targets], targets, forgotten)
    assert perfect.probe_fa == 100.0 and perfect.probe_ta == 100.0 and perfect.se_fa == 0.0
    blind = fit_probe(np.ones((200, 3)), targets, forgotten)
    assert blind.probe_fa == 0.0  # every prediction is one (retained) class
    assert blind.n_forget == 10 and blind.n_fit == 100


def test_probe_is_undefined_without_a_forgotten_test_class(fraction_splits, models):
    assert probe(models["original"], fraction_splits) is None
    ev = evaluate(models["original"], fraction_splits, attacks=(), throughput=False, macs=False, device="cpu",
                  relearn=None)
    assert math.isnan(ev.metrics["Probe-FA"]) and math.isnan(ev.metrics["Probe-TA"])
    assert "skipped" in ev.probe["classifier"]


def test_probe_of_an_earlier_layer(checkpoint_dir, class3_splits):
    net, _ = load_checkpoint(checkpoint_dir)
    ev = evaluate(net, class3_splits, attacks=(), throughput=False, macs=False, device="cpu",
                  probe_layer="layers.1", relearn=None)
    for key in ("Probe-FA", "Probe-FA@layers.1", "Probe-TA@layers.1"):
        assert 0.0 <= ev.metrics[key] <= 100.0, key
    assert ev.probe["layers.1"]["dim"] == 32 and ev.probe["classifier"]["dim"] == 64
    assert ev.relearn == {"skipped": "turned off"}


def test_a_wrong_probe_layer_fails_before_any_work(checkpoint_dir, class3_splits, monkeypatch):
    import prunelora.evaluation.evaluate as module

    net, _ = load_checkpoint(checkpoint_dir)
    monkeypatch.setattr(module, "model_pass", lambda *a, **k: pytest.fail("evaluated before refusing"))
    with pytest.raises(InvalidInputError, match="no module 'layer9'.*--no-probe"):
        evaluate(net, class3_splits, probe_layer="layer9", device="cpu")


# --------------------------------------------------------------------------- relearning


def test_a_head_mask_relearns_faster_than_a_retrain(evaluations):
    original, retrain, masked = (evaluations[k].metrics for k in ("original", "retrain", "masked"))
    assert original["relearn_steps"] == 0  # already at its own level
    assert masked["relearn_capped"] == retrain["relearn_capped"] == 0.0
    assert 0 < masked["relearn_steps"] < retrain["relearn_steps"]
    assert masked["relearn_ratio"] == masked["relearn_steps"] / retrain["relearn_steps"] < 1.0
    curve = evaluations["retrain"].relearn["curve"]
    assert len(curve) == retrain["relearn_steps"] + 1 and curve[0] == 0.0  # it never predicts class 3
    assert curve[-1] >= evaluations["retrain"].relearn["target"] > curve[-2]


def test_relearning_is_deterministic_and_leaves_the_model_alone(models, class3_splits, target, state_dicts_equal):
    model = models["retrain"]
    before = copy.deepcopy(model.state_dict())
    first = relearn_steps(model, class3_splits, target, GENTLE, device="cpu")
    torch.manual_seed(123)  # the caller's random state plays no part
    second = relearn_steps(model, class3_splits, target, GENTLE, device="cpu")
    assert first == second
    assert state_dicts_equal(model.state_dict(), before)
    assert not model.training  # its mode too


def test_probe_is_deterministic(models, class3_splits):
    a = probe(models["retrain"], class3_splits, seed=0, device="cpu")
    assert a == probe(models["retrain"], class3_splits, seed=0, device="cpu")
    assert a.n_fit == probe(models["retrain"], class3_splits, seed=1, device="cpu").n_fit


def test_the_cap(models, class3_splits, target):
    """A model still short of the target after max_steps gets max_steps and is marked capped."""
    result = relearn_steps(models["retrain"], class3_splits, target, RelearnConfig(max_steps=1), device="cpu")
    assert result.steps == 1 and result.capped and result.curve[-1] < result.target


def test_the_relearn_set_and_the_held_out_part(class3_splits):
    n = len(class3_splits.forget)
    relearn, heldout = relearn_parts(class3_splits, RelearnConfig())
    assert len(relearn) == max(10, math.ceil(0.01 * n))  # 1% of D_f, at least 10 images
    assert len(heldout) == n - len(relearn)
    assert not set(relearn.tolist()) & set(heldout.tolist())
    other, _ = relearn_parts(class3_splits, RelearnConfig(seed=1))
    assert set(other.tolist()) != set(relearn.tolist())
    assert len(relearn_parts(class3_splits, RelearnConfig(max_eval=7))[1]) == 7


def test_public_api():
    import prunelora

    assert prunelora.RelearnConfig is RelearnConfig and prunelora.heldout_accuracy is heldout_accuracy
    assert {"RelearnConfig", "heldout_accuracy"} <= set(prunelora.__all__)


def test_relearning_is_skipped_with_a_reason_without_the_original(models, class3_splits):
    ev = evaluate(models["masked"], class3_splits, attacks=(), throughput=False, macs=False, device="cpu",
                  probe=False)
    assert "relearn_steps" not in ev.metrics
    assert "original" in ev.relearn["skipped"]


@pytest.mark.parametrize(("steps", "reference", "capped", "reference_capped", "expected"), [
    (5, 20, False, False, 0.25),
    (0, 0, False, False, 1.0),
    (3, 0, False, False, float("nan")),
    (50, 50, True, True, float("nan")),
    (50, 10, True, False, 5.0),
])
def test_relearn_ratio(steps, reference, capped, reference_capped, expected):
    value = relearn_ratio(steps, reference, capped, reference_capped)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize(("field", "value"), [("max_steps", 0), ("fraction", 1.5), ("target_fraction", 0.0),
                                              ("lr", -1.0), ("min_images", 2.5)])
def test_relearn_config_refuses_bad_values(field, value):
    with pytest.raises(InvalidInputError, match=field):
        RelearnConfig(**{field: value})
