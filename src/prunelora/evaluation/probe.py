"""Representation probe: is the forgotten class still linearly readable from the features?

Output metrics (UA, FA, the membership attacks) read the logits; a model can reach retrain's
logits while its features still separate the forgotten class (only the last layer changed). The
probe fits a linear classifier on frozen features of half the test set, all classes included, and
scores it on the other half:

- ``Probe-FA``: probe accuracy (%) on the forgotten classes' test images of the scoring half;
- ``Probe-TA``: on the retained classes' ones;
- ``Probe.Gap`` = |Probe-FA − retrain's Probe-FA|. The reference is the retrain, not 0: features
  learned from the other classes still separate a class never seen.

Only defined for class-wise forgetting (otherwise no test image belongs to a forgotten class).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from prunelora.data import Splits, concat
from prunelora.errors import InvalidInputError
from prunelora.evaluation.features import capture_features
from prunelora.models.classifier import find_classifier, find_module


@dataclass(frozen=True)
class ProbeResult:
    """One probe. `layer`: the probed module (`input of head` for the classifier's input).
    `n_forget`/`n_retain`: scored test images of forgotten / retained classes; `se_fa`: the binomial
    standard error of Probe-FA, sqrt(p(1-p)/n_forget), in points."""

    layer: str
    probe_fa: float
    probe_ta: float
    n_fit: int
    n_forget: int
    n_retain: int
    dim: int
    se_fa: float

    def to_dict(self) -> dict:
        return asdict(self)


def whole_test_set(splits: Splits) -> tuple[Dataset, torch.Tensor]:
    """The whole test set (retained then forgotten classes) and a mask of its forgotten-class images."""
    a, b = splits.test_retain, splits.test_forget
    forgotten = torch.cat([torch.zeros(len(a), dtype=torch.bool), torch.ones(len(b), dtype=torch.bool)])
    return concat(a, b), forgotten


def halves(targets: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, score) indices: each class split in two halves at random (seeded)."""
    rng = np.random.default_rng(seed)
    fit, score = [], []
    y = targets.numpy()
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fit.append(idx[: len(idx) // 2])
        score.append(idx[len(idx) // 2:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(score))


def probe_predictions(features: np.ndarray, targets: np.ndarray, seed: int = 0, *, fits: dict | None = None,
                      key: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probe fitted on one half of `features` and its predictions on the other: `(fit indices,
    score indices, predicted classes of the score half)`.

    The probe: `StandardScaler` then `LogisticRegression` (lbfgs, deterministic; `random_state=seed`),
    fitted on the fit half's standardised features of all classes (`halves`). `fit_probe` and the
    class residue (`prunelora.evaluation.representation.probe_residue`) read the same fit: given a
    `fits` dict, a fit made earlier under the same `key` (and seed) is reused, so one layer's probe
    is fitted once per evaluation. The caller keys the same features by the same key.
    """
    memo_key = (key, seed, features.shape)
    if fits is not None and memo_key in fits:
        return fits[memo_key]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit, score = halves(torch.as_tensor(targets), seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(features[fit], targets[fit])
    result = (fit, score, probe.predict(features[score]))
    if fits is not None:
        fits[memo_key] = result
    return result


def fit_probe(features: np.ndarray, targets: np.ndarray, forgotten: np.ndarray, seed: int = 0,
              layer: str = "", *, fits: dict | None = None, key: object = None) -> ProbeResult:
    """Fit the probe on one half of `features` and score it on the other (both halves stratified).

    The probe: `StandardScaler` then `LogisticRegression` (lbfgs, deterministic; `random_state=seed`),
    fitted on the fit half's standardised features of all classes (see `probe_predictions`, which
    `fits` and `key` are passed to).
    """
    if not forgotten.any():
        raise InvalidInputError("the probe needs test images of a forgotten class (class-wise forgetting)")
    fit, _ = halves(torch.as_tensor(targets), seed)
    if len(np.unique(targets[fit])) < 2:
        raise InvalidInputError("the probe needs test images of at least two classes")
    fit, score, predicted = probe_predictions(features, targets, seed, fits=fits, key=key)
    correct = predicted == targets[score]
    on_forgotten = forgotten[score]
    fa = 100.0 * float(correct[on_forgotten].mean())
    ta = 100.0 * float(correct[~on_forgotten].mean()) if (~on_forgotten).any() else float("nan")
    n_forget = int(on_forgotten.sum())
    p = fa / 100.0
    return ProbeResult(layer=layer, probe_fa=fa, probe_ta=ta, n_fit=len(fit), n_forget=n_forget,
                       n_retain=int((~on_forgotten).sum()), dim=int(features.shape[1]),
                       se_fa=100.0 * math.sqrt(p * (1 - p) / n_forget))


def probe(model: nn.Module, splits: Splits, layer: str | None = None, *, seed: int = 0,
          device: str | torch.device | None = None,
          captured: tuple[torch.Tensor, torch.Tensor] | None = None, fits: dict | None = None) -> ProbeResult | None:
    """The representation probe of `model` on `splits`; None when no test class was forgotten.

    `layer=None` probes the classifier's input (found by `find_classifier`); a module name (as in
    `named_modules()`, e.g. `layers.1` of the CIFAR ResNets, `blocks.1` of the ViT) probes that
    module's output, pooled over space or tokens (`pool_features`). `captured`: that layer's
    `(features, targets)` of the whole test set (`whole_test_set`'s order), already captured
    (`evaluate()` captures them in its own pass: `prunelora.evaluation.features.model_pass`); None
    makes a pass for them. `fits`: see `probe_predictions` (the key is the layer: `("output", layer)` or
    `("input",)`).
    """
    if layer is not None:
        module, where, label = find_module(model, layer), "output", layer
    else:
        name, module = find_classifier(model)
        where, label = "input", f"input of {name}"
    if len(splits.test_forget) == 0:
        return None
    dataset, forgotten = whole_test_set(splits)
    if captured is None:
        captured = capture_features(model, dataset, module, where, device=device)
    features, targets = captured
    return fit_probe(features.numpy().astype(np.float64), targets.numpy(), forgotten.numpy(), seed, label,
                     fits=fits, key=probe_key(layer))


def probe_key(layer: str | None) -> tuple:
    """The key a layer's probe fit is shared under (`probe_predictions`): what enters the classifier
    (`layer=None`) or what leaves the module `layer`."""
    return ("input",) if layer is None else ("output", layer)
