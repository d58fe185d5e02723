"""Representation metrics: linear CKA's defining properties, the class residue separating "every
class got sharper" from "the class is still readable", and the per-stage probe of one pass."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from prunelora.checkpoint import load_checkpoint
from prunelora.errors import InvalidInputError
from prunelora.evaluation.evaluate import evaluate
from prunelora.evaluation.representation import (
    CLASSIFIER_INPUT,
    capture_layers,
    linear_cka,
    probe_residue,
    representation,
    stage_names,
)
from prunelora.models import create_model

FORGOTTEN = 3


# --------------------------------------------------------------------------- linear CKA


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))


def test_cka_of_features_with_themselves_is_one(features):
    assert linear_cka(features, features) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(features):
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    assert linear_cka(features, 7.5 * features @ q) == pytest.approx(1.0, abs=1e-10)
    other = np.random.default_rng(2).normal(size=(300, 5))
    assert linear_cka(features @ q * 0.1, other) == pytest.approx(linear_cka(features, other), abs=1e-10)


def test_cka_is_not_invariant_to_an_anisotropic_scaling(features):
    stretch = np.diag([10.0] + [1.0] * 11)
    assert linear_cka(features, features @ stretch) < 0.99


def test_cka_of_unrelated_features_is_low(features):
    noise = np.random.default_rng(3).normal(size=(300, 12))
    assert linear_cka(features, noise) < 0.2


def test_cka_refuses_mismatched_samples(features):
    with pytest.raises(InvalidInputError, match="same samples.*300 and 299"):
        linear_cka(features, features[:-1])
    assert math.isnan(linear_cka(features, np.ones((300, 3))))


# --------------------------------------------------------------------------- the class residue


def clustered(retained: float, forgotten: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ten Gaussian classes, class c centred at `retained`·e_c (the forgotten class at `forgotten`·e_3)."""
    targets = np.repeat(np.arange(10), 100)
    means = np.eye(10) * retained
    means[FORGOTTEN, FORGOTTEN] = forgotten
    return means[targets] + np.random.default_rng(seed).normal(size=(len(targets), 10)), targets


def test_the_residue_tells_a_sharper_model_from_one_that_keeps_the_class():
    """Two models whose Probe-FA are alike, far above the retrain's: one sharpened every class (its
    retained classes too), the other kept the forgotten class readable with retained classes as
    the retrain's. Probe.Gap cannot tell them apart; the residue's gap to the retrain can."""
    results = {}
    for name, (retained, forgotten) in {"retrain": (2.0, 0.8), "sharper": (3.5, 1.4), "keeps": (2.0, 2.5)}.items():
        x, y = clustered(retained, forgotten)
        results[name] = probe_residue(x, y, y == FORGOTTEN, seed=0, layer=name)
    retrain, sharper, keeps = results["retrain"], results["sharper"], results["keeps"]
    assert sharper.probe_fa > retrain.probe_fa + 30 and keeps.probe_fa > retrain.probe_fa + 30
    assert abs(sharper.probe_fa - keeps.probe_fa) < 5  # the probe alone: the same verdict
    assert sharper.probe_ta > keeps.probe_ta + 20  # ... the sharper one sharpened the others
    sharper_gap, keeps_gap = abs(sharper.residue - retrain.residue), abs(keeps.residue - retrain.residue)
    assert keeps_gap > 2.5 * sharper_gap


def test_the_residue_is_fa_minus_the_mean_retained_class_accuracy():
    x, y = clustered(2.0, 1.0, seed=4)
    result = probe_residue(x, y, y == FORGOTTEN)
    retained = [v for c, v in result.per_class.items() if c != FORGOTTEN]
    assert result.per_class[FORGOTTEN] == result.probe_fa
    assert result.residue == pytest.approx(result.probe_fa - np.mean(retained))
    with pytest.raises(InvalidInputError, match="forgotten and of retained"):
        probe_residue(x, y, np.zeros(len(y), dtype=bool))


# --------------------------------------------------------------------------- on models


@pytest.fixture(scope="module")
def original(checkpoint_dir) -> nn.Module:
    return load_checkpoint(checkpoint_dir)[0].eval()


def test_stage_names_of_the_registry_models():
    assert stage_names(create_model("resnet8", num_classes=10, in_channels=1)) == ["layers.0", "layers.1", "layers.2"]
    vit = create_model("vit-tiny", num_classes=10, in_channels=1, image_size=8)
    assert stage_names(vit) == [f"blocks.{i}" for i in range(len(vit.blocks))]
    assert stage_names(nn.Sequential(nn.Flatten(), nn.Linear(4, 2))) == []


def test_one_pass_captures_every_stage_and_the_classifier_input(original, class3_splits):
    layers = stage_names(original)
    found, targets = capture_layers(original, class3_splits.test_retain, layers, device="cpu")
    assert set(found) == {*layers, CLASSIFIER_INPUT}
    assert all(len(v) == len(targets) == len(class3_splits.test_retain) for v in found.values())
    # the last stage's pooled output is what enters the head of the CIFAR ResNets
    assert torch.allclose(found[layers[-1]], found[CLASSIFIER_INPUT], atol=1e-5)


def test_cka_of_a_model_with_itself_is_one_and_with_a_fresh_model_lower(original, class3_splits):
    torch.manual_seed(0)
    fresh = copy.deepcopy(original)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters") and module is not fresh:
            module.reset_parameters()
    result = representation(original, class3_splits, original=original, retrain=fresh, device="cpu")
    metrics = result.metrics()
    for part in ("forget", "retain"):
        assert metrics[f"CKA-original-{part}"] == pytest.approx(1.0, abs=1e-6)
        assert metrics[f"CKA-retrain-{part}"] < 0.95
        for layer in stage_names(original):
            assert metrics[f"CKA-original-{part}@{layer}"] == pytest.approx(1.0, abs=1e-6)
    assert {f"Probe-FA@{layer}" for layer in stage_names(original)} <= set(metrics)


def test_evaluate_reports_the_representation_metrics(original, class3_splits):
    reference = evaluate(original, class3_splits, attacks=(), throughput=False, macs=False, device="cpu",
                         relearn=None).metrics
    ev = evaluate(original, class3_splits, reference=reference, attacks=(), throughput=False, macs=False,
                  device="cpu", relearn=None, original_model=original, reference_model=original)
    m = ev.metrics
    assert m["Residue.Gap"] == 0.0 and m["Probe.Gap@layers.0"] == 0.0
    assert m["CKA-original-forget"] == pytest.approx(1.0, abs=1e-6)
    assert m["CKA-retrain-retain"] == pytest.approx(1.0, abs=1e-6)
    assert ev.representation["probes"]["layers.2"]["dim"] == 64
    assert ev.to_dict()["representation"] == ev.representation
    assert -100.0 <= m["Probe-Residue"] <= 100.0


def test_evaluate_without_a_forgotten_test_class(original, fraction_splits):
    ev = evaluate(original, fraction_splits, attacks=(), throughput=False, macs=False, device="cpu", relearn=None)
    assert math.isnan(ev.metrics["Probe-Residue"])
    assert "skipped" in ev.representation


def test_the_report_shows_the_representation_columns_and_the_cka_panel(tmp_path):
    from prunelora.evaluation.report import _plot_hiding, markdown_table

    def cell(gap: float, residue: float, to_original: float, to_retrain: float) -> dict:
        return {"Avg.Gap": (gap, 0.0), "Probe.Gap": (residue, 0.0), "Residue.Gap": (residue, 0.5),
                "CKA-original-forget": (to_original, 0.0), "CKA-retrain-forget": (to_retrain, 0.0)}

    summary = {"retrain": cell(0.0, 0.0, 0.6, 1.0), "hides": cell(0.2, 8.0, 0.98, 0.6)}
    table = markdown_table(summary)
    assert "| Residue.Gap | CKA→orig (f) | CKA→retrain (f) |" in table
    assert "| hides |" in table and "8.0 ± 0.5" in table and "0.98 ± 0.00" in table
    _plot_hiding(summary, "class", tmp_path / "hiding.png")
    assert (tmp_path / "hiding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
