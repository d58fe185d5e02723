"""Representation metrics: did the model forget the class in its features, or only hide it?

Output metrics and the classifier-input probe (`prunelora.evaluation.probe`) leave two questions
open, which this module answers from the features of one forward pass over the test set:

- **Is the class still readable, or did every class get sharper?** A repair on D_r can raise the
  probe's accuracy on the forgotten class (Probe-FA) simply because it sharpens all features. The
  *class residue* subtracts that general sharpness:

      Probe-Residue = Probe-FA − mean over retained classes c of the probe's accuracy on c

  (in points, on the same scoring half, the same probe). The mean is per class (balanced), so a
  large retained class does not dominate. A model that sharpened every class moves both terms
  together and keeps its residue; a model that keeps the forgotten class readable while a retrain
  would not sits above the retrain's residue. `Residue.Gap` = |Probe-Residue − retrain's| is read
  like `Probe.Gap` (the retrain, not 0, is the reference: a class never seen is still partly
  separable by the other classes' features, so its residue is negative but not −100).
- **How far did the features move, and towards what?** Linear CKA (Kornblith et al., 2019,
  "Similarity of Neural Network Representations Revisited") between this model's features and the
  original's, and the retrain's, on held-out (test) images of the forgotten classes and, apart, of
  the retained ones. A model that forgot should sit nearer the retrain than the original on the
  forgotten class, and near both on the retained classes.
- **Where does the class stay readable?** The same probe on every stage's output (the CIFAR
  ResNets' `layers.N`, the ViTs' `blocks.N`, torchvision's `layerN`), pooled over space or tokens,
  from one pass with one forward hook per stage.

Only defined for class-wise forgetting (a forgotten test class must exist).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from prunelora.data import Splits
from prunelora.data.generic import eval_view, make_loader
from prunelora.errors import InvalidInputError
from prunelora.evaluation.cache import EvaluationCache
from prunelora.evaluation.features import CLASSIFIER_INPUT_KEY, features_of_test_set
from prunelora.evaluation.probe import probe_key, probe_predictions, whole_test_set
from prunelora.models.classifier import find_classifier, find_module, pool_features
from prunelora.training.loop import resolve_device

CLASSIFIER_INPUT = "classifier"
"""The key of the classifier's input among the probed layers."""


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear centred kernel alignment between two feature matrices of the same samples.

    CKA(X, Y) = ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F · ||Yᶜᵀ Yᶜ||_F) with Xᶜ, Yᶜ centred over samples
    (the feature-space form: O(n·d²), no n×n Gram matrix). 1 for the same features up to an
    orthogonal transform and an isotropic scaling; near 0 for unrelated ones.

    Args:
        x: `(n, d1)` features of n samples.
        y: `(n, d2)` features of the same n samples, in the same order.

    Returns:
        CKA in [0, 1]; NaN when either side has no variance (constant features).

    Raises:
        InvalidInputError: the two do not hold the same number of samples, or fewer than 2.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) != len(y) or len(x) < 2:
        raise InvalidInputError(f"CKA needs the same samples on both sides, at least 2; got {len(x)} and {len(y)}")
    x = x - x.mean(0)
    y = y - y.mean(0)
    norm_x = np.linalg.norm(x.T @ x)
    norm_y = np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        return float("nan")
    return float(np.linalg.norm(y.T @ x) ** 2 / (norm_x * norm_y))


def stage_names(model: nn.Module) -> list[str]:
    """The names of the model's stages, shallow to deep: each item of a top-level `layers` or
    `blocks` container (the registry's ResNets and ViTs, timm's ViTs), else torchvision's
    `layer1`..`layer4`, else `features.N` of an `nn.Sequential` feature extractor; [] when the model
    has none of these (only the classifier's input is probed then)."""
    for attribute in ("layers", "blocks", "stages"):
        container = getattr(model, attribute, None)
        if isinstance(container, (nn.Sequential, nn.ModuleList)) and len(container):
            return [f"{attribute}.{i}" for i in range(len(container))]
    found = [name for name in ("layer1", "layer2", "layer3", "layer4") if isinstance(getattr(model, name, None), nn.Module)]
    return found


@torch.no_grad()
def capture_layers(model: nn.Module, dataset, layers: list[str], *, batch_size: int = 256,
                   device: str | torch.device | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Features of every sample of `dataset` at several places, from one forward pass per batch.

    Args:
        model: any classifier (`find_classifier` must find its head).
        dataset: images and labels.
        layers: module names whose outputs are pooled (`pool_features`); the classifier's input is
            always captured too, under `CLASSIFIER_INPUT`.
        batch_size: images per forward pass.
        device: where to run (None: the default device).

    Returns:
        `({name: (n, d) float32 CPU features}, targets)`, in the dataset's order.

    Raises:
        InvalidInputError: a layer name the model does not have, or a module that runs more than
            once per forward pass.
    """
    device = resolve_device(device)
    modules = {name: find_module(model, name) for name in layers}
    _, head = find_classifier(model)
    store: dict[str, list[torch.Tensor]] = {name: [] for name in [*layers, CLASSIFIER_INPUT]}
    targets: list[torch.Tensor] = []
    was_training = model.training
    model.to(device).eval()

    def output_hook(name: str):
        return lambda _m, _a, out: store[name].append(pool_features(out).detach().float().cpu())

    try:
        with ExitStack() as stack:
            for name, module in modules.items():
                stack.callback(module.register_forward_hook(output_hook(name)).remove)
            stack.callback(head.register_forward_pre_hook(
                lambda _m, args: store[CLASSIFIER_INPUT].append(torch.flatten(args[0], 1).detach().float().cpu())).remove)
            for x, y in make_loader(eval_view(dataset), batch_size=batch_size):
                model(x.to(device))
                targets.append(y)
                for name, values in store.items():
                    if len(values) != len(targets):
                        raise InvalidInputError(f"module {name!r} ran {len(values) - len(targets) + 1} times in one "
                                                "forward pass (expected once); probe a module on the main path")
    finally:
        model.train(was_training)
    return {name: torch.cat(values) for name, values in store.items()}, torch.cat(targets)


@dataclass(frozen=True)
class LayerProbe:
    """One probed layer: Probe-FA / Probe-TA (%, as `prunelora.evaluation.probe`), the residue
    (points; see the module docstring) and the probe's accuracy on each class of the scoring half."""

    layer: str
    probe_fa: float
    probe_ta: float
    residue: float
    per_class: dict[int, float]
    dim: int

    def to_dict(self) -> dict:
        return asdict(self) | {"per_class": {str(k): v for k, v in self.per_class.items()}}


def probe_residue(features: np.ndarray, targets: np.ndarray, forgotten: np.ndarray, seed: int = 0,
                  layer: str = "", *, fits: dict | None = None, key: object = None) -> LayerProbe:
    """Fit the probe (standardised features, logistic regression, the halves of
    `prunelora.evaluation.probe.halves`) and read its per-class accuracies.

    Args:
        features: `(n, d)` features of the whole test set.
        targets: `(n,)` labels.
        forgotten: `(n,)` bool mask of the forgotten classes' images.
        seed: the split into halves and the probe's seed.
        layer: a label for the result.
        fits: fits made earlier, shared with `prunelora.evaluation.probe.fit_probe` under `key`
            (see `prunelora.evaluation.probe.probe_predictions`): one layer's probe is fitted once.
        key: the key of these features in `fits`.

    Returns:
        The layer's Probe-FA, Probe-TA, residue and per-class accuracies.

    Raises:
        InvalidInputError: no forgotten image, no retained image or fewer than two classes.
    """
    if not forgotten.any() or forgotten.all():
        raise InvalidInputError("the class residue needs test images of forgotten and of retained classes")
    _, score, predicted = probe_predictions(features, targets, seed, fits=fits, key=key)
    correct = predicted == targets[score]
    y, on_forgotten = targets[score], forgotten[score]
    per_class = {int(c): 100.0 * float(correct[y == c].mean()) for c in np.unique(y)}
    retained = sorted({int(c) for c in np.unique(y[~on_forgotten])})
    fa = 100.0 * float(correct[on_forgotten].mean())
    return LayerProbe(layer=layer, probe_fa=fa, probe_ta=100.0 * float(correct[~on_forgotten].mean()),
                      residue=fa - float(np.mean([per_class[c] for c in retained])), per_class=per_class,
                      dim=int(features.shape[1]))


@dataclass
class RepresentationResult:
    """`probes`: layer -> LayerProbe (stages shallow to deep, then `CLASSIFIER_INPUT`);
    `cka`: `{"original"|"retrain": {layer: {"forget": CKA, "retain": CKA}}}` for the models given."""

    probes: dict[str, LayerProbe]
    cka: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics: `Probe-Residue` (classifier input), `Probe-FA@<stage>`, `Probe-TA@<stage>`,
        `Probe-Residue@<stage>`, and `CKA-<original|retrain>-<forget|retain>` at the classifier
        input (`@<stage>` for the stages)."""
        out: dict[str, float] = {}
        for layer, p in self.probes.items():
            if layer == CLASSIFIER_INPUT:
                out["Probe-Residue"] = p.residue
            else:
                out |= {f"Probe-FA@{layer}": p.probe_fa, f"Probe-TA@{layer}": p.probe_ta,
                        f"Probe-Residue@{layer}": p.residue}
        for other, layers in self.cka.items():
            for layer, parts in layers.items():
                suffix = "" if layer == CLASSIFIER_INPUT else f"@{layer}"
                for part, value in parts.items():
                    out[f"CKA-{other}-{part}{suffix}"] = value
        return out

    def to_dict(self) -> dict:
        return {"probes": {k: v.to_dict() for k, v in self.probes.items()}, "cka": self.cka}


def _subsample(mask: np.ndarray, limit: int, seed: int) -> np.ndarray:
    index = np.flatnonzero(mask)
    if len(index) > limit:
        index = np.sort(np.random.default_rng(seed).choice(index, limit, replace=False))
    return index


def representation(model: nn.Module, splits: Splits, *, original: nn.Module | None = None,
                   retrain: nn.Module | None = None, stages: bool = True, seed: int = 0,
                   cka_max_images: int = 2000, device: str | torch.device | None = None,
                   captured: tuple[dict[str | None, torch.Tensor], torch.Tensor] | None = None,
                   fits: dict | None = None, cache: EvaluationCache | None = None) -> RepresentationResult | None:
    """The representation metrics of `model` (see the module docstring); None without a forgotten
    test class.

    Args:
        model: the model to judge.
        splits: its splits (the test set's forgotten and retained classes are used).
        original: the model before unlearning (adds CKA to it).
        retrain: a retrain on D_r (adds CKA to it).
        stages: also probe every stage's output (`stage_names`), not only the classifier input.
        seed: the probe's halves and seed, and which retained images CKA uses.
        cka_max_images: at most this many images per part (forget / retain) enter CKA.
        device: where to run the forward passes.
        captured: `model`'s test-set features and targets, already captured
            (`prunelora.evaluation.features.features_of_test_set`: `evaluate()` captures them in its own
            pass); None makes a pass for them.
        fits: probe fits shared with the probe (`prunelora.evaluation.probe.probe_predictions`).
        cache: where the original's and the retrain's features may be kept from one call to the
            next (`EvaluationCache`; a bench compares many models with the same two).

    Returns:
        The probes per layer and the CKA values, or None when no test image is of a forgotten class.
    """
    if len(splits.test_forget) == 0:
        return None
    layers = stage_names(model) if stages else []
    _, forgotten_mask = whole_test_set(splits)
    forgotten = forgotten_mask.numpy()
    if captured is None or any(name not in captured[0] for name in [*layers, CLASSIFIER_INPUT_KEY]):
        captured = _own_features(model, splits, layers, device)
    features = _named(captured[0], layers)
    y = captured[1].numpy()
    probes = {name: probe_residue(features[name].numpy().astype(np.float64), y, forgotten, seed, name, fits=fits,
                                  key=probe_key(None if name == CLASSIFIER_INPUT else name))
              for name in [*layers, CLASSIFIER_INPUT]}
    parts = {"forget": _subsample(forgotten, cka_max_images, seed), "retain": _subsample(~forgotten, cka_max_images, seed)}
    cka: dict[str, dict[str, dict[str, float]]] = {}
    for label, other in (("original", original), ("retrain", retrain)):
        if other is None:
            continue
        # Stages are compared by name, so only where the other model has the same stage.
        shared = [name for name in layers if name in stage_names(other)]
        theirs = reference_features(other, splits, shared, device=device, cache=cache)
        cka[label] = {name: {part: linear_cka(features[name][index].numpy(), theirs[name][index].numpy())
                             for part, index in parts.items()}
                      for name in [*shared, CLASSIFIER_INPUT]}
    return RepresentationResult(probes, cka)


def _own_features(model: nn.Module, splits: Splits, layers: list[str], device) -> tuple[dict, torch.Tensor]:
    outputs, features = features_of_test_set(model, splits, layers, device=device)
    return features, torch.cat([outputs["test_retain"][1], outputs["test_forget"][1]])


def _named(features: dict[str | None, torch.Tensor], layers: list[str]) -> dict[str, torch.Tensor]:
    """Captured features under representation's names (the classifier's input as `CLASSIFIER_INPUT`)."""
    return {**{name: features[name] for name in layers}, CLASSIFIER_INPUT: features[CLASSIFIER_INPUT_KEY]}


def reference_features(model: nn.Module, splits: Splits, layers: list[str], *,
                       device: str | torch.device | None = None,
                       cache: EvaluationCache | None = None) -> dict[str, torch.Tensor]:
    """A compared model's (the original's, a retrain's) test-set features at `layers` and at the
    classifier's input (`CLASSIFIER_INPUT`), from the same passes as the judged model's own
    (`prunelora.evaluation.features.features_of_test_set`), or from `cache` when it holds them.

    Args:
        model: the compared model.
        splits: the splits whose test set is passed through it.
        layers: stage names (the classifier's input is always included).
        device: where to run.
        cache: an `EvaluationCache` (None: computed now, kept nowhere).

    Returns:
        `{name: (n, d) float32 CPU features}` of the whole test set (`whole_test_set`'s order).
    """
    def compute() -> dict[str | None, torch.Tensor]:
        return features_of_test_set(model, splits, layers, device=device)[1]

    found = compute() if cache is None else cache.features(model, splits, layers, device, compute)
    return _named(found, layers)
