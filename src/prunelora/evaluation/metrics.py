"""Unlearning metrics: the accuracy family, membership-inference attacks and Avg.Gap.

Every function here is pure: it takes model outputs (logits, shape ``(N, C)``) and integer
targets (shape ``(N,)``) as torch tensors or numpy arrays and returns numbers; nothing runs a
model. Definitions (the README's "Metrics" section):

- ``UA  = 100 * (1 - Acc(D_f))``, ``RA = Acc(D_r)``, ``TA = Acc(test-retain)``
- ``MIA-Efficacy`` = percent of D_f that an attack, trained on members (a sample of D_r) vs
  non-members (test samples), classifies as *non-member*.
- ``Avg.Gap`` = mean of ``|method - retrain|`` over UA, RA, TA and MIA-Efficacy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from prunelora.errors import InvalidInputError

__all__ = [
    "ATTACKS",
    "MIA_FEATURES",
    "MIAResult",
    "accuracy",
    "avg_gap",
    "confidence",
    "entropy",
    "loss",
    "mia_all",
    "mia_efficacy",
    "modified_entropy",
    "per_sample_loss",
    "unlearning_accuracy",
]

ArrayLike = torch.Tensor | np.ndarray
Outputs = tuple[ArrayLike, ArrayLike]
"""``(logits, targets)`` of one data split."""

ATTACKS: tuple[str, ...] = ("loss-lr", "confidence-svc", "entropy-svc", "m-entropy-svc")
"""Accepted attack names. ``loss-lr``: logistic regression on the per-sample loss (the
PruneLoRA paper's code). ``<feature>-svc``: ``SVC(C=3, gamma="auto", kernel="rbf")`` on that
single feature (``confidence-svc`` is the variant reported by the sparsity-unlearning and
SalUn papers)."""

# Floor for 1 - p before the log in the m-entropy: the same constant as the reference
# implementation of Song & Mittal (2021), so values match theirs wherever theirs are finite.
_LOG_FLOOR = 1e-30

_MIN_PER_CLASS = 4


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

    ``Acc = 100 * (1/N) * sum_n [argmax_c logits[n, c] == targets[n]]``, in ``[0, 100]``.
    An empty split has no accuracy: returns ``nan``.
    """
    lg, tg = _check_outputs(logits, targets)
    if tg.numel() == 0:
        return float("nan")
    return 100.0 * float((lg.argmax(dim=1) == tg).to(torch.float64).mean())


def unlearning_accuracy(forget_logits: ArrayLike, forget_targets: ArrayLike) -> float:
    """Unlearning accuracy in percent: ``UA = 100 - Acc(D_f) = 100 * (1 - acc(D_f))``.

    ``nan`` for an empty forget set.
    """
    return 100.0 - accuracy(forget_logits, forget_targets)


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
# membership-inference attacks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MIAResult:
    """Outcome of one membership-inference attack.

    ``efficacy``: percent of D_f predicted non-member (``nan`` if D_f is empty).
    ``attack_accuracy``: balanced accuracy (percent) on held-out members vs non-members; about 50
    means the attack cannot tell them apart, so its efficacy carries little information.
    ``n_members`` / ``n_nonmembers``: samples of each class the attack was fitted on.
    ``n_heldout``: held-out samples, both classes together. ``n_forget``: size of D_f.
    """

    attack: str
    efficacy: float
    attack_accuracy: float
    n_members: int
    n_nonmembers: int
    n_heldout: int
    n_forget: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable) of all fields."""
        return asdict(self)


def _check_attack(attack: str) -> None:
    if attack not in ATTACKS:
        raise InvalidInputError(f"unknown MIA attack {attack!r}; accepted: {', '.join(ATTACKS)}")


def _make_classifier(attack: str) -> Any:
    # sklearn is imported here so that importing prunelora stays cheap for commands that never
    # evaluate (and the module does no work at import time).
    if attack == "loss-lr":
        from sklearn.linear_model import LogisticRegression

        # lbfgs is deterministic; max_iter raised because raw losses are not standardised
        # (kept raw to match the reference code).
        return LogisticRegression(class_weight="balanced", solver="lbfgs", max_iter=1000)
    from sklearn.svm import SVC

    return SVC(C=3, gamma="auto", kernel="rbf")


def _feature(attack: str, outputs: Outputs, role: str) -> np.ndarray:
    if not (isinstance(outputs, Sequence) and len(outputs) == 2):
        raise InvalidInputError(f"{role} must be a (logits, targets) pair")
    name = attack.rsplit("-", 1)[0]  # "m-entropy-svc" -> "m-entropy", "loss-lr" -> "loss"
    values = MIA_FEATURES[name](outputs[0], outputs[1])
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(
            f"{role} outputs give non-finite {name!r} values (are there inf/nan logits?)"
        )
    return values


def mia_efficacy(
    member: Outputs,
    nonmember: Outputs,
    forget: Outputs,
    attack: str = "confidence-svc",
    seed: int = 0,
    max_samples: int = 5000,
    heldout_fraction: float = 0.3,
) -> MIAResult:
    """Fit one membership-inference attack and measure how much of D_f looks like non-members.

    Procedure (all randomness from ``numpy.random.default_rng(seed)``):

    1. Balance: draw ``n = min(len(member), len(nonmember), max_samples)`` samples, without
       replacement, from the members (outputs on a sample of D_r; label 1) and from the
       non-members (outputs on test data; label 0).
    2. Split each class into a held-out part of ``h = round(n * heldout_fraction)`` (kept in
       ``[1, n - 2]``) and a fit part of ``n - h`` — stratified, as both classes split alike.
    3. Fit the attack on the single feature of the fit part.
    4. ``attack_accuracy = 100 * balanced_accuracy(held-out labels, predictions)``.
    5. ``efficacy = 100 * (1/|D_f|) * sum_{x in D_f} [attack(x) == 0]`` (``nan`` if D_f empty).

    Each argument is a ``(logits, targets)`` pair. Raises ``ValueError`` for an unknown attack,
    fewer than 4 members or non-members, or a ``heldout_fraction`` outside ``(0, 1)``.
    """
    from sklearn.metrics import balanced_accuracy_score

    _check_attack(attack)
    if not 0.0 < heldout_fraction < 1.0:
        raise InvalidInputError(f"heldout_fraction must be in (0, 1); got {heldout_fraction}")
    if max_samples < _MIN_PER_CLASS:
        raise InvalidInputError(f"max_samples must be at least {_MIN_PER_CLASS}; got {max_samples}")

    x_member = _feature(attack, member, "member")
    x_nonmember = _feature(attack, nonmember, "nonmember")
    x_forget = _feature(attack, forget, "forget")
    for role, values in (("members", x_member), ("non-members", x_nonmember)):
        if len(values) < _MIN_PER_CLASS:
            raise InvalidInputError(
                f"MIA needs at least {_MIN_PER_CLASS} {role} to fit and check an attack; "
                f"got {len(values)}"
            )

    n = min(len(x_member), len(x_nonmember), max_samples)
    n_held = min(max(round(n * heldout_fraction), 1), n - 2)
    rng = np.random.default_rng(seed)
    # A random choice without replacement is already shuffled, so its first n_held entries
    # are a uniformly random held-out part.
    member_idx = rng.choice(len(x_member), size=n, replace=False)
    nonmember_idx = rng.choice(len(x_nonmember), size=n, replace=False)
    m_held, m_fit = x_member[member_idx[:n_held]], x_member[member_idx[n_held:]]
    nm_held, nm_fit = x_nonmember[nonmember_idx[:n_held]], x_nonmember[nonmember_idx[n_held:]]

    x_fit = np.concatenate([m_fit, nm_fit])[:, None]
    y_fit = np.concatenate([np.ones(len(m_fit)), np.zeros(len(nm_fit))]).astype(np.int64)
    x_held = np.concatenate([m_held, nm_held])[:, None]
    y_held = np.concatenate([np.ones(n_held), np.zeros(n_held)]).astype(np.int64)

    clf = _make_classifier(attack)
    clf.fit(x_fit, y_fit)
    attack_acc = 100.0 * float(balanced_accuracy_score(y_held, clf.predict(x_held)))
    if len(x_forget) == 0:
        efficacy = float("nan")
    else:
        efficacy = 100.0 * float(np.mean(clf.predict(x_forget[:, None]) == 0))

    return MIAResult(
        attack=attack,
        efficacy=efficacy,
        attack_accuracy=attack_acc,
        n_members=len(m_fit),
        n_nonmembers=len(nm_fit),
        n_heldout=2 * n_held,
        n_forget=len(x_forget),
    )


def mia_all(
    member: Outputs,
    nonmember: Outputs,
    forget: Outputs,
    attacks: Sequence[str] = ATTACKS,
    seed: int = 0,
    max_samples: int = 5000,
) -> dict[str, MIAResult]:
    """Run :func:`mia_efficacy` for each attack (same seed, hence the same samples); name -> result."""
    if isinstance(attacks, str):  # a bare string would otherwise be iterated letter by letter
        attacks = (attacks,)
    for attack in attacks:  # fail before fitting anything
        _check_attack(attack)
    return {
        attack: mia_efficacy(
            member, nonmember, forget, attack=attack, seed=seed, max_samples=max_samples
        )
        for attack in attacks
    }


# --------------------------------------------------------------------------------------------
# gap to the retrained reference
# --------------------------------------------------------------------------------------------


def avg_gap(
    method: Mapping[str, float],
    reference: Mapping[str, float],
    keys: Sequence[str] = ("UA", "RA", "TA", "MIA"),
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
