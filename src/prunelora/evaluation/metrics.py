"""Unlearning metrics: the accuracy family, the features membership-inference attacks read, Avg.Gap.

Every function here is pure: it takes model outputs (logits, shape ``(N, C)``) and integer
targets (shape ``(N,)``) as torch tensors or numpy arrays and returns numbers; nothing runs a
model. The attacks themselves are registered in :mod:`prunelora.evaluation.attacks`.
Definitions (docs/concepts/metrics.md, "Metrics"):

- ``UA  = 100 * (1 - Acc(D_f))``, ``RA = Acc(D_r)``, ``TA = Acc(test-retain)``
- ``MIA-Efficacy`` = percent of D_f that an attack, trained on members (a sample of D_r) vs
  non-members (test samples), classifies as *non-member*.
- ``Avg.Gap`` = mean of ``|method - retrain|`` over UA, RA, TA and MIA-Efficacy; ``Out.Gap`` the same
  over UA, RA and TA alone (no attack in it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from prunelora.errors import InvalidInputError
from prunelora.training.loop import top1_accuracy

__all__ = [
    "GAP_KEYS",
    "MIA_FEATURES",
    "OUTPUT_GAP_KEYS",
    "accuracy",
    "avg_gap",
    "confidence",
    "entropy",
    "loss",
    "modified_entropy",
    "per_sample_loss",
    "split_accuracies",
    "unlearning_accuracy",
]

ArrayLike = torch.Tensor | np.ndarray
Outputs = tuple[ArrayLike, ArrayLike]
"""``(logits, targets)`` of one data split."""

# Floor for 1 - p before the log in the m-entropy: the same constant as the reference
# implementation of Song & Mittal (2021), so values match theirs wherever theirs are finite.
_LOG_FLOOR = 1e-30


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _check_outputs(logits: ArrayLike, targets: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logits, targets)`` as float64 / int64 CPU tensors after checking shapes.

    float64 because the MIA features of confident models are differences of numbers close to 1,
    where float32 rounding would flatten the feature the attack relies on.
    """
    lg = torch.as_tensor(logits).detach().cpu()
    tg = torch.as_tensor(targets).detach().cpu()
    if lg.ndim != 2:
        raise InvalidInputError(f"logits must have shape (N, C); got shape {tuple(lg.shape)}")
    if tg.ndim != 1:
        raise InvalidInputError(f"targets must have shape (N,); got shape {tuple(tg.shape)}")
    if lg.shape[0] != tg.shape[0]:
        raise InvalidInputError(
            f"logits and targets disagree on the number of samples: {lg.shape[0]} vs {tg.shape[0]}"
        )
    if tg.is_floating_point() or tg.is_complex():
        raise InvalidInputError(f"targets must be integer class indices; got dtype {tg.dtype}")
    if tg.numel() and (int(tg.min()) < 0 or int(tg.max()) >= lg.shape[1]):
        raise InvalidInputError(
            f"targets must lie in [0, {lg.shape[1] - 1}] for {lg.shape[1]} classes; "
            f"got values in [{int(tg.min())}, {int(tg.max())}]"
        )
    return lg.to(torch.float64), tg.to(torch.int64)


# --------------------------------------------------------------------------------------------
# accuracy family
# --------------------------------------------------------------------------------------------


def accuracy(logits: ArrayLike, targets: ArrayLike) -> float:
    """Top-1 accuracy in percent.

    ``Acc = 100 * (1/N) * sum_n [argmax_c logits[n, c] == targets[n]]``, in ``[0, 100]``
    (`prunelora.training.top1_accuracy`, after the shapes are checked).
    An empty split has no accuracy: returns ``nan``.
    """
    return top1_accuracy(*_check_outputs(logits, targets))


def unlearning_accuracy(forget_logits: ArrayLike, forget_targets: ArrayLike) -> float:
    """Unlearning accuracy in percent: ``UA = 100 - Acc(D_f) = 100 * (1 - acc(D_f))``.

    ``nan`` for an empty forget set.
    """
    return 100.0 - accuracy(forget_logits, forget_targets)


SPLIT_METRICS: dict[str, str] = {"forget": "UA", "retain": "RA", "test_retain": "TA", "test_forget": "FA",
                                 "val": "val"}
"""A split's part (a `Splits` attribute) -> the accuracy metric measured on it."""


def split_accuracies(outputs: Mapping[str, Outputs], forget_classes: Sequence[int] = ()) -> dict[str, float]:
    """The accuracy family from the outputs of each part of a split: UA on ``forget``, RA on
    ``retain``, TA on ``test_retain``, FA on ``test_forget``, val on ``val``.

    The one definition of these metrics: `evaluate` and the accuracies a checkpoint records
    (`prunelora.api.split_metrics`) both call it.

    Args:
        outputs: part name (a key of `SPLIT_METRICS`) -> ``(logits, targets)``; only the parts
            given are measured, in the order given.
        forget_classes: the forgotten classes (class-wise forgetting): ``val`` is then measured on the
            validation images of the other classes only, as TA is (a model that forgot a class gets
            its validation images wrong on purpose; counted in, they would read as damage).

    Returns:
        Metric name -> percent (NaN for an empty part).

    Raises:
        InvalidInputError: a part name that is not one of `SPLIT_METRICS`.
    """
    out: dict[str, float] = {}
    for part, (logits, targets) in outputs.items():
        if part not in SPLIT_METRICS:
            raise InvalidInputError(f"unknown split part {part!r}; accepted: {', '.join(SPLIT_METRICS)}")
        if part == "val" and len(forget_classes):
            labels = torch.as_tensor(targets).cpu()
            kept = ~torch.isin(labels, torch.tensor([int(c) for c in forget_classes], dtype=labels.dtype))
            logits, targets = torch.as_tensor(logits).cpu()[kept], labels[kept]
        value = accuracy(logits, targets)
        out[SPLIT_METRICS[part]] = 100.0 - value if part == "forget" else value
    return out


def per_sample_loss(logits: ArrayLike, targets: ArrayLike) -> torch.Tensor:
    """Cross-entropy of every sample (no reduction), float64, shape ``(N,)``.

    ``loss_n = -log softmax(logits[n])[targets[n]] = logsumexp_c logits[n, c] - logits[n, y_n]``.
    """
    lg, tg = _check_outputs(logits, targets)
    return F.cross_entropy(lg, tg, reduction="none")


# --------------------------------------------------------------------------------------------
# MIA features: each maps (logits, targets) -> 1-D float64 numpy array
# --------------------------------------------------------------------------------------------


def loss(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Per-sample cross-entropy as a feature: ``-log p_y`` with ``p = softmax(logits)``."""
    return per_sample_loss(logits, targets).numpy().astype(np.float64, copy=False)


def confidence(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Softmax probability of the true class: ``p_y = softmax(logits)[y]``."""
    lg, tg = _check_outputs(logits, targets)
    probs = torch.softmax(lg, dim=1)
    return probs.gather(1, tg[:, None]).squeeze(1).numpy()


def entropy(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Shannon entropy (nats) of the softmax: ``H = -sum_i p_i * log p_i``.

    ``targets`` is unused by the formula; it is accepted so all features share one signature.
    """
    lg, _ = _check_outputs(logits, targets)
    # log_softmax stays finite where p underflows to 0, so p * log p is 0 there, never nan.
    log_p = torch.log_softmax(lg, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).numpy()


def modified_entropy(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Modified entropy of Song & Mittal (2021), "Systematic Evaluation of Privacy Risks".

    ``Mentr = -(1 - p_y) * log(p_y) - sum_{i != y} p_i * log(1 - p_i)``, ``p = softmax(logits)``.

    Unlike the entropy it uses the label, so a confident *wrong* prediction scores high.
    ``log p_y`` comes from ``log_softmax`` (exact, finite); ``1 - p_i`` is clamped to at least
    1e-30 before its log, since it rounds to 0 for a saturated wrong class.
    """
    lg, tg = _check_outputs(logits, targets)
    log_p = torch.log_softmax(lg, dim=1)
    p = log_p.exp()
    log_one_minus_p = torch.log(torch.clamp(1.0 - p, min=_LOG_FLOOR))
    is_true = F.one_hot(tg, num_classes=lg.shape[1]).to(torch.bool)
    terms = torch.where(is_true, (1.0 - p) * log_p, p * log_one_minus_p)
    return -terms.sum(dim=1).numpy()


MIA_FEATURES: dict[str, Callable[[ArrayLike, ArrayLike], np.ndarray]] = {
    "loss": loss,
    "confidence": confidence,
    "entropy": entropy,
    "m-entropy": modified_entropy,
}
"""Feature name -> function ``(logits, targets) -> 1-D float64 numpy array``."""


# --------------------------------------------------------------------------------------------
# gap to the retrained reference
# --------------------------------------------------------------------------------------------


GAP_KEYS: tuple[str, ...] = ("UA", "RA", "TA", "MIA")
"""The metrics Avg.Gap averages over (MIA: the `confidence-svc` efficacy)."""
OUTPUT_GAP_KEYS: tuple[str, ...] = ("UA", "RA", "TA")
"""The metrics Out.Gap averages over: the outputs' accuracies alone, no membership attack (whose
efficacy is a coin flip where the attack is at chance; see `prunelora.evaluation.chance`)."""


def avg_gap(
    method: Mapping[str, float],
    reference: Mapping[str, float],
    keys: Sequence[str] = GAP_KEYS,
) -> float:
    """Average absolute gap to a reference (usually retrain from scratch).

    ``Avg.Gap = (1/|K|) * sum_{k in K} |method[k] - reference[k]|``. A ``nan`` value gives ``nan``.
    Raises ``ValueError`` if a key is missing from either mapping or ``keys`` is empty.
    """
    if isinstance(keys, str):
        keys = (keys,)
    if len(keys) == 0:
        raise InvalidInputError("avg_gap needs at least one key")
    for name, mapping in (("method", method), ("reference", reference)):
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise InvalidInputError(
                f"avg_gap: {name} has no value for {', '.join(map(repr, missing))}"
            )
    gaps = [abs(float(method[k]) - float(reference[k])) for k in keys]
    # math.fsum propagates nan, which is what we want: a missing measurement is not a 0 gap.
    return math.fsum(gaps) / len(gaps)
