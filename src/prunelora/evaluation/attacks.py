"""Membership-inference attacks (MIA): a registry, one registration per attack.

An attack is an :class:`Attack`: its name, the features it reads (names in
:data:`prunelora.evaluation.metrics.MIA_FEATURES`) and how it is fitted and scored. Names are
looked up whole, never parsed: ``m-entropy-svc`` is a name, not a feature plus a classifier.

**Adding an attack** that fits a classifier on features of the model's outputs is one call::

    from sklearn.ensemble import RandomForestClassifier
    from prunelora.evaluation.attacks import register_attack

    register_attack("loss+confidence-rf", features=("loss", "confidence"),
                    classifier=lambda: RandomForestClassifier(random_state=0),
                    summary="random forest on loss and confidence")

It then runs through the shared procedure of :func:`fit_feature_classifier` (balanced, seeded
member / non-member samples, a held-out part for the attack's own accuracy, efficacy on D_f), and
``evaluate(..., attacks=(..., "loss+confidence-rf"))`` and a bench's ``mia: {attacks: [...]}``
accept it.

**Shadow-model attacks** (the extension point; none is implemented yet). LiRA (Carlini et al.,
"Membership Inference Attacks From First Principles", S&P 2022) and its unlearning form U-LiRA
(Hayes et al., "Inexact Unlearning Needs More Careful Evaluations", 2024) do not fit one classifier
on the target's outputs: they train many shadow models, each on a random half of a data pool, and
compare the target's output on every D_f sample with the shadows that did and did not train on it.
Such an attack is registered with its own ``run`` and ``needs_shadow=True``::

    def lira(attack: Attack, inputs: AttackInputs) -> MIAResult:
        shadow = inputs.shadow  # a ShadowData: the pool, where D_f sits in it, how to train a shadow
        ...

    register_attack("lira", features=("confidence",), run=lira, needs_shadow=True, summary="...")

and called as ``mia_efficacy(member, nonmember, forget, attack="lira", shadow=ShadowData(...))``;
without ``shadow`` it is refused with one line. :class:`ShadowData` says what such an attack is
given: a callable that trains a shadow model (for unlearning: trains, then unlearns, with the
target's recipe) on chosen pool samples and returns its outputs on the whole pool. Attacks that need
shadows are not among :func:`default_attacks`, which ``evaluate()`` runs when not told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prunelora.errors import InvalidInputError
from prunelora.evaluation.metrics import MIA_FEATURES, Outputs

__all__ = [
    "Attack",
    "AttackInputs",
    "MIAResult",
    "ShadowData",
    "default_attacks",
    "fit_feature_classifier",
    "get_attack",
    "list_attacks",
    "mia_all",
    "mia_efficacy",
    "register_attack",
]

_MIN_PER_CLASS = 4


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


@dataclass(frozen=True)
class ShadowData:
    """What a shadow-model attack (LiRA, U-LiRA) is given beyond the target model's outputs.

    ``pool_size``: the number of samples in the data pool shadows are trained from (typically the
    original's training set, D_f and D_r together). ``forget_index``: the positions of D_f in the
    pool, in the order of the ``forget`` outputs. ``train_shadow(in_index, seed)``: trains one
    shadow model exactly as the target was made (for unlearning: train on the pool samples
    ``in_index``, then unlearn the D_f samples among them with the same method) and returns its
    ``(logits, targets)`` on every pool sample, shape ``(pool_size, C)`` / ``(pool_size,)``.
    """

    pool_size: int
    forget_index: np.ndarray
    train_shadow: Callable[[np.ndarray, int], Outputs]


@dataclass(frozen=True)
class AttackInputs:
    """Everything an attack's ``run`` receives. Each output is a ``(logits, targets)`` pair.

    ``member``: outputs on a sample of D_r; ``nonmember``: on test samples of the same classes;
    ``forget``: on D_f. ``seed``, ``max_samples`` (per class) and ``heldout_fraction`` steer the
    sampling. ``shadow``: for attacks with ``needs_shadow`` (see :class:`ShadowData`), else None.
    ``tables``: feature columns already computed, ``(role, feature) -> values``, shared by the
    attacks of one :func:`mia_all` call (each column is computed once); None computes them here.
    """

    member: Outputs
    nonmember: Outputs
    forget: Outputs
    seed: int = 0
    max_samples: int = 5000
    heldout_fraction: float = 0.3
    shadow: ShadowData | None = None
    tables: dict | None = field(default=None, compare=False, repr=False)


AttackRun = Callable[["Attack", AttackInputs], MIAResult]


@dataclass(frozen=True)
class Attack:
    """One registered attack: ``run(attack, inputs) -> MIAResult`` fits and scores it.

    ``classifier`` (a factory of an unfitted scikit-learn classifier) is set for the attacks that
    go through :func:`fit_feature_classifier`; ``needs_shadow``: ``run`` reads ``inputs.shadow``.
    """

    name: str
    features: tuple[str, ...]
    summary: str
    run: AttackRun
    classifier: Callable[[], Any] | None = None
    needs_shadow: bool = False


_ATTACKS: dict[str, Attack] = {}


def register_attack(name: str, *, features: Sequence[str], summary: str,
                    classifier: Callable[[], Any] | None = None, run: AttackRun | None = None,
                    needs_shadow: bool = False) -> Attack:
    """Register an attack under ``name``; give exactly one of ``classifier`` or ``run``.

    ``classifier``: a no-argument factory of an unfitted scikit-learn classifier, fitted on
    ``features`` (one column each) by :func:`fit_feature_classifier`. ``run``: your own procedure,
    ``run(attack, inputs) -> MIAResult``, e.g. a shadow-model attack (``needs_shadow=True``; see the
    module docstring). A name already registered, an unknown feature or no features are refused.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"an attack name must be a non-empty string, not {name!r}")
    if name in _ATTACKS:
        raise InvalidInputError(f"MIA attack {name!r} is already registered; pick another name")
    features = (features,) if isinstance(features, str) else tuple(features)
    unknown = [f for f in features if f not in MIA_FEATURES]
    if not features or unknown:
        raise InvalidInputError(
            f"attack {name!r}: features {list(features)!r} must be one or more of {', '.join(MIA_FEATURES)}"
        )
    if (classifier is None) == (run is None):
        raise InvalidInputError(f"attack {name!r}: give exactly one of classifier= or run=")
    attack = Attack(name, features, summary, run or fit_feature_classifier, classifier, needs_shadow)
    _ATTACKS[name] = attack
    return attack


def get_attack(name: str) -> Attack:
    """The registered attack called ``name``; an unknown name is refused with the accepted ones."""
    if not isinstance(name, str) or name not in _ATTACKS:
        raise InvalidInputError(f"unknown MIA attack {name!r}; accepted: {', '.join(_ATTACKS)}")
    return _ATTACKS[name]


def list_attacks() -> dict[str, str]:
    """Registered attack names with their one-line summaries, in registration order."""
    return {name: attack.summary for name, attack in _ATTACKS.items()}


def default_attacks() -> tuple[str, ...]:
    """The attacks that need nothing but the model's outputs (no shadows): what ``evaluate`` runs."""
    return tuple(name for name, attack in _ATTACKS.items() if not attack.needs_shadow)


# --------------------------------------------------------------------------------------------
# the shared procedure of classifier attacks
# --------------------------------------------------------------------------------------------


def _features(attack: Attack, outputs: Outputs, role: str, tables: dict | None = None) -> np.ndarray:
    """The attack's features of one split: shape ``(N, len(attack.features))``, float64 (a column
    already in ``tables`` is reused; a new one is put there)."""
    if not (isinstance(outputs, Sequence) and len(outputs) == 2):
        raise InvalidInputError(f"{role} must be a (logits, targets) pair")
    columns = []
    for name in attack.features:
        if tables is not None and (role, name) in tables:
            values = tables[(role, name)]
        else:
            values = MIA_FEATURES[name](outputs[0], outputs[1])
            if tables is not None:
                tables[(role, name)] = values
        if not np.all(np.isfinite(values)):
            raise InvalidInputError(
                f"{role} outputs give non-finite {name!r} values (are there inf/nan logits?)"
            )
        columns.append(values)
    return np.stack(columns, axis=1)


def fit_feature_classifier(attack: Attack, inputs: AttackInputs) -> MIAResult:
    """Fit ``attack.classifier()`` on members vs non-members and measure how much of D_f looks like
    non-members.

    Procedure (all randomness from ``numpy.random.default_rng(inputs.seed)``):

    1. Balance: draw ``n = min(len(member), len(nonmember), max_samples)`` samples, without
       replacement, from the members (label 1) and from the non-members (label 0).
    2. Split each class into a held-out part of ``h = round(n * heldout_fraction)`` (kept in
       ``[1, n - 2]``) and a fit part of ``n - h`` — stratified, as both classes split alike.
    3. Fit the classifier on the attack's features of the fit part (one column per feature).
    4. ``attack_accuracy = 100 * balanced_accuracy(held-out labels, predictions)``.
    5. ``efficacy = 100 * (1/|D_f|) * sum_{x in D_f} [attack(x) == 0]`` (``nan`` if D_f empty).
    """
    from sklearn.metrics import balanced_accuracy_score

    x_member = _features(attack, inputs.member, "member", inputs.tables)
    x_nonmember = _features(attack, inputs.nonmember, "nonmember", inputs.tables)
    x_forget = _features(attack, inputs.forget, "forget", inputs.tables)
    for role, values in (("members", x_member), ("non-members", x_nonmember)):
        if len(values) < _MIN_PER_CLASS:
            raise InvalidInputError(
                f"MIA needs at least {_MIN_PER_CLASS} {role} to fit and check an attack; "
                f"got {len(values)}"
            )

    n = min(len(x_member), len(x_nonmember), inputs.max_samples)
    n_held = min(max(round(n * inputs.heldout_fraction), 1), n - 2)
    rng = np.random.default_rng(inputs.seed)
    # A random choice without replacement is already shuffled, so its first n_held entries
    # are a uniformly random held-out part.
    member_idx = rng.choice(len(x_member), size=n, replace=False)
    nonmember_idx = rng.choice(len(x_nonmember), size=n, replace=False)
    m_held, m_fit = x_member[member_idx[:n_held]], x_member[member_idx[n_held:]]
    nm_held, nm_fit = x_nonmember[nonmember_idx[:n_held]], x_nonmember[nonmember_idx[n_held:]]

    x_fit = np.concatenate([m_fit, nm_fit])
    y_fit = np.concatenate([np.ones(len(m_fit)), np.zeros(len(nm_fit))]).astype(np.int64)
    x_held = np.concatenate([m_held, nm_held])
    y_held = np.concatenate([np.ones(n_held), np.zeros(n_held)]).astype(np.int64)

    clf = attack.classifier()
    clf.fit(x_fit, y_fit)
    attack_acc = 100.0 * float(balanced_accuracy_score(y_held, clf.predict(x_held)))
    if len(x_forget) == 0:
        efficacy = float("nan")
    else:
        efficacy = 100.0 * float(np.mean(clf.predict(x_forget) == 0))

    return MIAResult(
        attack=attack.name,
        efficacy=efficacy,
        attack_accuracy=attack_acc,
        n_members=len(m_fit),
        n_nonmembers=len(nm_fit),
        n_heldout=2 * n_held,
        n_forget=len(x_forget),
    )


# --------------------------------------------------------------------------------------------
# running attacks
# --------------------------------------------------------------------------------------------


def mia_efficacy(
    member: Outputs,
    nonmember: Outputs,
    forget: Outputs,
    attack: str = "confidence-svc",
    seed: int = 0,
    max_samples: int = 5000,
    heldout_fraction: float = 0.3,
    shadow: ShadowData | None = None,
    tables: dict | None = None,
) -> MIAResult:
    """Run one registered attack and measure how much of D_f it calls non-member.

    Each of ``member`` (outputs on a sample of D_r), ``nonmember`` (on test data) and ``forget``
    (on D_f) is a ``(logits, targets)`` pair. Classifier attacks follow
    :func:`fit_feature_classifier`; ``shadow`` is what a shadow-model attack needs (see
    :class:`ShadowData`); ``tables``: feature columns shared with other attacks on the same
    outputs (see :class:`AttackInputs`). Raises ``InvalidInputError`` for an unknown attack, fewer than 4 members
    or non-members, a ``heldout_fraction`` outside ``(0, 1)``, or a shadow attack without ``shadow``.
    """
    found = get_attack(attack)
    if not 0.0 < heldout_fraction < 1.0:
        raise InvalidInputError(f"heldout_fraction must be in (0, 1); got {heldout_fraction}")
    if max_samples < _MIN_PER_CLASS:
        raise InvalidInputError(f"max_samples must be at least {_MIN_PER_CLASS}; got {max_samples}")
    if found.needs_shadow and shadow is None:
        raise InvalidInputError(f"MIA attack {attack!r} trains shadow models: pass shadow=ShadowData(...)")
    return found.run(found, AttackInputs(member, nonmember, forget, seed, max_samples, heldout_fraction, shadow,
                                         tables))


def mia_all(
    member: Outputs,
    nonmember: Outputs,
    forget: Outputs,
    attacks: Sequence[str] | None = None,
    seed: int = 0,
    max_samples: int = 5000,
    shadow: ShadowData | None = None,
) -> dict[str, MIAResult]:
    """Run :func:`mia_efficacy` for each attack (same seed, hence the same samples); name -> result.

    ``attacks=None``: :func:`default_attacks`, in registration order. The attacks share their
    feature columns (the losses, confidences, entropies of each split are computed once).
    """
    if attacks is None:
        attacks = default_attacks()
    elif isinstance(attacks, str):  # a bare string would otherwise be iterated letter by letter
        attacks = (attacks,)
    for attack in attacks:  # fail before fitting anything
        get_attack(attack)
    tables: dict = {}
    return {
        attack: mia_efficacy(
            member, nonmember, forget, attack=attack, seed=seed, max_samples=max_samples, shadow=shadow,
            tables=tables,
        )
        for attack in attacks
    }


# --------------------------------------------------------------------------------------------
# the attacks we report
# --------------------------------------------------------------------------------------------


def _logistic_regression() -> Any:
    # sklearn is imported here so that importing prunelora stays cheap for commands that never
    # evaluate. lbfgs is deterministic; max_iter raised because raw losses are not standardised
    # (kept raw to match the reference code).
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", solver="lbfgs", max_iter=1000)


def _rbf_svc() -> Any:
    from sklearn.svm import SVC

    return SVC(C=3, gamma="auto", kernel="rbf")


register_attack("loss-lr", features=("loss",), classifier=_logistic_regression,
                summary="logistic regression on the per-sample loss (the PruneLoRA paper's code)")
register_attack("confidence-svc", features=("confidence",), classifier=_rbf_svc,
                summary="RBF SVC (C=3) on the true-class probability (the sparsity-unlearning and "
                        "SalUn papers' MIA-Efficacy; `MIA` in reports)")
register_attack("entropy-svc", features=("entropy",), classifier=_rbf_svc,
                summary="RBF SVC (C=3) on the entropy of the softmax")
register_attack("m-entropy-svc", features=("m-entropy",), classifier=_rbf_svc,
                summary="RBF SVC (C=3) on the modified entropy of Song & Mittal (2021)")
