"""`evaluate()` shares its work without changing a metric: one forward pass per split yields the
logits and every probed feature, one probe fit per layer serves the probe and the class residue,
the references' features and the throughput are kept between calls (`EvaluationCache`), and the
attacks share their feature columns. Each is checked against the separate pieces it replaced."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from prunelora.checkpoint import load_checkpoint
from prunelora.evaluation import attacks as attacks_module
from prunelora.evaluation import metrics as metrics_module
from prunelora.evaluation.attacks import mia_all
from prunelora.evaluation.cache import EvaluationCache, fingerprint, structure_key
from prunelora.evaluation.evaluate import evaluate, forgotten_classes
from prunelora.evaluation.features import CLASSIFIER_INPUT_KEY, capture_features, model_pass
from prunelora.evaluation.metrics import split_accuracies
from prunelora.evaluation.probe import fit_probe, whole_test_set
from prunelora.evaluation.relearn import RelearnConfig, heldout_accuracy, relearn_steps
from prunelora.evaluation.representation import (
    CLASSIFIER_INPUT,
    capture_layers,
    linear_cka,
    probe_residue,
    stage_names,
)
from prunelora.models import create_model
from prunelora.models.classifier import find_module
from prunelora.training.loop import predict

PARTS = ("forget", "retain", "test_retain", "test_forget", "val")
RELEARN = RelearnConfig(max_steps=4, repeats=2, budgets=(2,))
TIMING = {"throughput"}


@pytest.fixture(scope="module")
def original(checkpoint_dir) -> nn.Module:
    return load_checkpoint(checkpoint_dir)[0].eval()


@pytest.fixture(scope="module")
def judged(original) -> nn.Module:
    """A model unlike the original (its head re-initialised), the one evaluated."""
    torch.manual_seed(1)
    model = copy.deepcopy(original)
    model.head.reset_parameters()
    return model


@pytest.fixture(scope="module")
def retrain(original) -> nn.Module:
    """A stand-in retrain: the original's architecture, re-initialised."""
    torch.manual_seed(2)
    model = copy.deepcopy(original)
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()
    return model


@pytest.fixture(scope="module")
def shared(judged, original, retrain, class3_splits):
    target = heldout_accuracy(original, class3_splits, RELEARN, device="cpu")
    return evaluate(judged, class3_splits, device="cpu", probe_layer="layers.1", relearn=RELEARN,
                    relearn_target=target, original_model=original, reference_model=retrain,
                    throughput=False, cache=EvaluationCache())


def pieces(model, splits, original, retrain, relearn_target) -> dict[str, float]:
    """The metrics as the separate pieces compute them, each with its own forward pass (what
    `evaluate()` ran before it shared them)."""
    outputs = {part: predict(model, getattr(splits, part), device="cpu") for part in PARTS}
    m = split_accuracies(outputs, forgotten_classes(splits))  # val: the retained classes' only
    for name, result in mia_all(outputs["retain"], outputs["test_retain"], outputs["forget"]).items():
        m[f"MIA-{name}"], m[f"MIA-{name}-acc"] = result.efficacy, result.attack_accuracy
    dataset, forgotten = whole_test_set(splits)
    for layer, module, where in ((None, model.head, "input"), ("layers.1", find_module(model, "layers.1"), "output")):
        x, y = capture_features(model, dataset, module, where, device="cpu")
        found = fit_probe(x.numpy().astype(np.float64), y.numpy(), forgotten.numpy(), 0)
        suffix = "" if layer is None else f"@{layer}"
        m[f"Probe-FA{suffix}"], m[f"Probe-TA{suffix}"] = found.probe_fa, found.probe_ta
    layers = stage_names(model)
    mine, y = capture_layers(model, dataset, layers, device="cpu")
    for name in [*layers, CLASSIFIER_INPUT]:
        found = probe_residue(mine[name].numpy().astype(np.float64), y.numpy(), forgotten.numpy(), 0, name)
        suffix = "" if name == CLASSIFIER_INPUT else f"@{name}"
        m[f"Probe-Residue{suffix}"] = found.residue
        if suffix:
            m[f"Probe-FA{suffix}"], m[f"Probe-TA{suffix}"] = found.probe_fa, found.probe_ta
    mask = forgotten.numpy()
    for label, other in (("original", original), ("retrain", retrain)):
        theirs, _ = capture_layers(other, dataset, layers, device="cpu")
        for name in [*layers, CLASSIFIER_INPUT]:
            suffix = "" if name == CLASSIFIER_INPUT else f"@{name}"
            for part, rows in (("forget", mask), ("retain", ~mask)):
                m[f"CKA-{label}-{part}{suffix}"] = linear_cka(mine[name][rows].numpy(), theirs[name][rows].numpy())
    result = relearn_steps(model, splits, relearn_target, RELEARN, device="cpu")
    m["relearn_steps"], m["relearn_capped"] = float(result.steps), float(result.capped)
    m.update({f"relearn_acc@{k}": v for k, v in result.budget_accuracy.items()})
    return m


def test_evaluate_gives_the_metrics_of_its_separate_pieces(shared, judged, original, retrain, class3_splits):
    target = heldout_accuracy(original, class3_splits, RELEARN, device="cpu")
    expected = pieces(judged, class3_splits, original, retrain, target)
    for key, value in expected.items():
        got = shared.metrics[key]
        if key.startswith("CKA"):
            # the features come from passes over the test set's two parts instead of over the whole
            # test set in one: other batches, so float rounding may differ in the last bits
            assert got == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert got == value or (math.isnan(got) and math.isnan(value)), key


def test_one_pass_per_split_gives_predicts_logits_and_the_probes_features(judged, class3_splits):
    layers = stage_names(judged)
    outputs, captured = model_pass(judged, class3_splits, layers, device="cpu")
    assert list(outputs) == list(PARTS)
    for part in PARTS:
        logits, targets = predict(judged, getattr(class3_splits, part), device="cpu")
        assert torch.equal(outputs[part][0], logits) and torch.equal(outputs[part][1], targets), part
    separate, _ = capture_layers(judged, whole_test_set(class3_splits)[0], layers, device="cpu")
    assert set(captured) == {*layers, CLASSIFIER_INPUT_KEY}
    for name in layers:
        assert torch.allclose(captured[name], separate[name], atol=1e-6), name
    assert torch.allclose(captured[CLASSIFIER_INPUT_KEY], separate[CLASSIFIER_INPUT], atol=1e-6)


def test_each_image_is_sent_through_the_model_once_and_references_once_per_cache(judged, original, retrain,
                                                                                class3_splits):
    seen: dict[str, int] = {"judged": 0, "original": 0, "retrain": 0}
    handles = [model.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(
        name, seen[name] + len(args[0]))) for name, model in (("judged", judged), ("original", original),
                                                              ("retrain", retrain))]
    cache = EvaluationCache()
    options = dict(device="cpu", probe_layer="layers.1", relearn=None, throughput=False, macs=False,
                   original_model=original, reference_model=retrain, cache=cache)
    try:
        evaluate(judged, class3_splits, **options)
        test_size = len(class3_splits.test_retain) + len(class3_splits.test_forget)
        # every image once, plus the checks before any work: the first two records of each split,
        # and two to check the probe layer's output
        checks = sum(min(2, len(getattr(class3_splits, part))) for part in PARTS) + 2
        assert seen["judged"] == sum(len(getattr(class3_splits, part)) for part in PARTS) + checks
        assert seen["original"] == seen["retrain"] == test_size
        evaluate(judged, class3_splits, **options)  # the references' features come from the cache
        assert seen["original"] == seen["retrain"] == test_size
        assert seen["judged"] == 2 * (sum(len(getattr(class3_splits, part)) for part in PARTS) + checks)
    finally:
        for handle in handles:
            handle.remove()


def test_one_probe_fit_per_layer(judged, class3_splits, monkeypatch):
    fits = []
    real_fit = LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))
    evaluate(judged, class3_splits, device="cpu", attacks=(), probe_layer="layers.1", relearn=None, throughput=False,
             macs=False)
    assert len(fits) == len(stage_names(judged)) + 1  # every stage (layers.1 among them) and the head's input


def test_a_cache_changes_no_metric(shared, judged, original, retrain, class3_splits):
    target = heldout_accuracy(original, class3_splits, RELEARN, device="cpu")
    plain = evaluate(judged, class3_splits, device="cpu", probe_layer="layers.1", relearn=RELEARN,
                     relearn_target=target, original_model=original, reference_model=retrain, throughput=False)
    assert {k: v for k, v in plain.metrics.items() if k not in TIMING} == {
        k: v for k, v in shared.metrics.items() if k not in TIMING}


def test_fingerprint_follows_the_weights_and_structure_key_only_the_structure(original):
    copied = copy.deepcopy(original)
    assert fingerprint(copied) == fingerprint(original)
    with torch.no_grad():
        copied.head.bias[0] += 1e-3
    assert fingerprint(copied) != fingerprint(original)
    assert structure_key(copied) == structure_key(original)
    wider = create_model("resnet8", 10, 1, 8, width=0.5)
    assert structure_key(wider) != structure_key(original)


def test_throughput_is_measured_once_per_structure(original):
    cache, measured = EvaluationCache(), []
    sample = torch.zeros(1, 1, 8, 8)

    def measure(value):
        return lambda: measured.append(value) or value

    copied = copy.deepcopy(original)
    with torch.no_grad():
        copied.head.weight.mul_(2)  # other weights, the same structure
    assert cache.throughput(original, sample, "cpu", measure(10.0)) == 10.0
    assert cache.throughput(copied, sample, "cpu", measure(20.0)) == 10.0
    assert cache.throughput(create_model("resnet8", 10, 1, 8, width=0.5), sample, "cpu", measure(30.0)) == 30.0
    assert cache.throughput(original, torch.zeros(1, 1, 16, 16), "cpu", measure(40.0)) == 40.0
    assert measured == [10.0, 30.0, 40.0]


def test_reference_features_are_kept_per_model_and_data_least_recently_used_out(original, retrain, class3_splits,
                                                                                fraction_splits):
    cache = EvaluationCache(max_entries=2)
    computed = []

    def get(model, splits):
        return cache.features(model, splits, ["layers.0"], "cpu", lambda: computed.append(1) or {"x": torch.ones(2)})

    get(original, class3_splits)
    get(copy.deepcopy(original), class3_splits)  # the same weights: kept
    assert len(computed) == 1
    get(original, fraction_splits)  # other data
    get(retrain, class3_splits)  # a third entry: the least recently used one goes
    assert len(computed) == 3
    get(original, fraction_splits)
    assert len(computed) == 3
    get(original, class3_splits)
    assert len(computed) == 4


def test_attacks_compute_each_feature_column_once(judged, class3_splits, monkeypatch):
    outputs = {part: predict(judged, getattr(class3_splits, part), device="cpu")
               for part in ("retain", "test_retain", "forget")}
    calls = []
    real = dict(metrics_module.MIA_FEATURES)
    for name, function in real.items():
        monkeypatch.setitem(metrics_module.MIA_FEATURES, name,
                            lambda *a, name=name, function=function: calls.append(name) or function(*a))
    found = mia_all(outputs["retain"], outputs["test_retain"], outputs["forget"],
                    attacks=("loss-lr", "confidence-svc", "entropy-svc", "m-entropy-svc"))
    assert sorted(calls) == sorted(3 * ["loss", "confidence", "entropy", "m-entropy"])  # member, non-member, D_f
    for name, result in found.items():  # as each attack alone gives it
        alone = attacks_module.mia_efficacy(outputs["retain"], outputs["test_retain"], outputs["forget"], attack=name)
        assert result == alone
