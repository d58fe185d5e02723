"""The membership-inference attack registry: the reported attacks give exactly what a plain
re-implementation of the documented procedure gives, and new attacks (classifier or shadow-model)
are one registration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import scored_outputs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.svm import SVC

from prunelora.errors import InvalidInputError
from prunelora.evaluation import attacks as registry
from prunelora.evaluation.attacks import (
    Attack,
    AttackInputs,
    MIAResult,
    ShadowData,
    default_attacks,
    get_attack,
    list_attacks,
    mia_all,
    mia_efficacy,
    register_attack,
)
from prunelora.evaluation.metrics import confidence, entropy, loss, modified_entropy

N_CLASSES = 10


# The four reported attacks written out by hand: feature function and classifier, as documented.
REFERENCE = {
    "loss-lr": (loss, lambda: LogisticRegression(class_weight="balanced", solver="lbfgs", max_iter=1000)),
    "confidence-svc": (confidence, lambda: SVC(C=3, gamma="auto", kernel="rbf")),
    "entropy-svc": (entropy, lambda: SVC(C=3, gamma="auto", kernel="rbf")),
    "m-entropy-svc": (modified_entropy, lambda: SVC(C=3, gamma="auto", kernel="rbf")),
}


def _reference_mia(member, nonmember, forget, attack, seed, max_samples=5000, heldout=0.3) -> MIAResult:
    """The procedure of the attacks' docstring, step by step, independent of the registry."""
    feature, make = REFERENCE[attack]
    x_m, x_n, x_f = feature(*member), feature(*nonmember), feature(*forget)
    n = min(len(x_m), len(x_n), max_samples)
    h = min(max(round(n * heldout), 1), n - 2)
    rng = np.random.default_rng(seed)
    pick_m = rng.choice(len(x_m), size=n, replace=False)  # members first, then non-members
    pick_n = rng.choice(len(x_n), size=n, replace=False)
    held = np.r_[x_m[pick_m[:h]], x_n[pick_n[:h]]].reshape(-1, 1)
    fit = np.r_[x_m[pick_m[h:]], x_n[pick_n[h:]]].reshape(-1, 1)
    clf = make().fit(fit, np.r_[np.ones(n - h), np.zeros(n - h)].astype(np.int64))
    acc = 100.0 * balanced_accuracy_score(np.r_[np.ones(h), np.zeros(h)].astype(np.int64), clf.predict(held))
    eff = 100.0 * float(np.mean(clf.predict(x_f.reshape(-1, 1)) == 0)) if len(x_f) else float("nan")
    return MIAResult(attack, eff, float(acc), n - h, n - h, 2 * h, len(x_f))


CASES = [  # (member, nonmember, forget, seed, max_samples)
    (scored_outputs(300, 3.0, 1, 2.0), scored_outputs(300, 1.0, 2, 2.0), scored_outputs(100, 2.0, 3, 2.0), 0, 5000),
    (scored_outputs(500, 5.0, 4), scored_outputs(200, 4.0, 5), scored_outputs(50, 4.5, 6), 7, 150),  # capped, unequal
    (scored_outputs(40, 2.0, 7, 3.0), scored_outputs(60, 1.0, 8, 3.0), scored_outputs(30, 1.0, 9, 3.0), 3, 5000),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_reported_attacks_match_a_plain_reimplementation_exactly(case: int) -> None:
    member, nonmember, forget, seed, max_samples = CASES[case]
    results = mia_all(member, nonmember, forget, seed=seed, max_samples=max_samples)
    assert tuple(results) == tuple(REFERENCE)  # the reported attacks, in the reported order
    for name, result in results.items():
        expected = _reference_mia(member, nonmember, forget, name, seed, max_samples)
        assert result == expected, name  # exact: the same samples, features and classifier
    # a held-out fraction other than the default goes through the same procedure
    for name in REFERENCE:
        got = mia_efficacy(member, nonmember, forget, attack=name, seed=seed, heldout_fraction=0.5)
        assert got == _reference_mia(member, nonmember, forget, name, seed, heldout=0.5)


def test_list_attacks_and_defaults() -> None:
    assert list(list_attacks()) == ["loss-lr", "confidence-svc", "entropy-svc", "m-entropy-svc"]
    assert all(isinstance(s, str) and s for s in list_attacks().values())
    assert default_attacks() == tuple(list_attacks())
    assert get_attack("m-entropy-svc").features == ("m-entropy",)
    with pytest.raises(InvalidInputError, match=r"unknown MIA attack 'nope'; accepted: loss-lr, confidence-svc"):
        get_attack("nope")
    with pytest.raises(InvalidInputError, match="unknown MIA attack"):
        get_attack(["loss-lr"])  # not a name at all: refused, not a TypeError


@pytest.fixture
def private_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Attack]:
    """Attacks registered in a test stay in that test."""
    copy = dict(registry._ATTACKS)
    monkeypatch.setattr(registry, "_ATTACKS", copy)
    return copy


def test_duplicate_and_malformed_registrations_are_refused(private_registry) -> None:
    before = dict(private_registry)
    with pytest.raises(InvalidInputError, match="'loss-lr' is already registered"):
        register_attack("loss-lr", features=("loss",), classifier=SVC, summary="again")
    with pytest.raises(InvalidInputError, match=r"features \['logits'\] must be one or more of loss"):
        register_attack("logit-svc", features=("logits",), classifier=SVC, summary="unknown feature")
    with pytest.raises(InvalidInputError, match="features"):
        register_attack("nothing-svc", features=(), classifier=SVC, summary="no feature")
    with pytest.raises(InvalidInputError, match="exactly one of classifier= or run="):
        register_attack("both", features=("loss",), classifier=SVC, run=lambda a, i: None, summary="")
    with pytest.raises(InvalidInputError, match="exactly one of classifier= or run="):
        register_attack("neither", features=("loss",), summary="")
    with pytest.raises(InvalidInputError, match="non-empty string"):
        register_attack(" ", features=("loss",), classifier=SVC, summary="")
    assert private_registry == before  # nothing half-registered
    assert get_attack("loss-lr").classifier is not SVC  # the first registration stands


def test_a_new_attack_is_one_registration_and_its_name_is_never_parsed(private_registry) -> None:
    member, nonmember, forget, seed, _ = CASES[0]
    # named like a loss attack, but the registration says confidence + RBF SVC: the name is opaque
    register_attack("loss-lr-lookalike", features="confidence", summary="test",
                    classifier=lambda: SVC(C=3, gamma="auto", kernel="rbf"))
    got = mia_efficacy(member, nonmember, forget, attack="loss-lr-lookalike", seed=seed)
    reference = _reference_mia(member, nonmember, forget, "confidence-svc", seed)
    assert (got.efficacy, got.attack_accuracy) == (reference.efficacy, reference.attack_accuracy)
    assert got.attack == "loss-lr-lookalike"
    # two features: two columns for the classifier
    seen = {}

    class Recording(LogisticRegression):
        def fit(self, x, y):
            seen["shape"] = x.shape
            return super().fit(x, y)

    register_attack("loss+confidence-lr", features=("loss", "confidence"), classifier=Recording, summary="test")
    assert "loss+confidence-lr" in default_attacks()
    both = mia_all(member, nonmember, forget, seed=seed)
    assert seen["shape"] == (2 * 210, 2)
    assert both["loss+confidence-lr"].n_forget == 100 and 0.0 <= both["loss+confidence-lr"].efficacy <= 100.0


def test_shadow_attacks_receive_the_shadow_data_and_are_refused_without_it(private_registry) -> None:
    member, nonmember, forget, seed, _ = CASES[0]
    calls = []

    def train_shadow(in_index: np.ndarray, shadow_seed: int):
        calls.append((tuple(in_index), shadow_seed))
        return scored_outputs(6, 1.0, seed=shadow_seed)

    def shadow_run(attack: Attack, inputs: AttackInputs) -> MIAResult:
        # a stand-in for LiRA: trains two shadows on halves of the pool, scores nothing real
        pool = np.arange(inputs.shadow.pool_size)
        for k, half in enumerate((pool[::2], pool[1::2])):
            inputs.shadow.train_shadow(half, inputs.seed + k)
        return MIAResult(attack.name, 50.0, 50.0, 0, 0, 0, len(inputs.shadow.forget_index))

    register_attack("toy-lira", features=("confidence",), run=shadow_run, needs_shadow=True, summary="test")
    assert "toy-lira" in list_attacks() and "toy-lira" not in default_attacks()
    assert set(mia_all(member, nonmember, forget)) == set(REFERENCE)  # defaults never need shadows
    with pytest.raises(InvalidInputError, match="'toy-lira' trains shadow models: pass shadow="):
        mia_efficacy(member, nonmember, forget, attack="toy-lira")
    shadow = ShadowData(pool_size=6, forget_index=np.array([1, 4]), train_shadow=train_shadow)
    result = mia_efficacy(member, nonmember, forget, attack="toy-lira", seed=seed + 10, shadow=shadow)
    assert result == MIAResult("toy-lira", 50.0, 50.0, 0, 0, 0, 2)
    assert calls == [((0, 2, 4), 10), ((1, 3, 5), 11)]


def test_empty_forget_set_gives_nan_through_the_registry() -> None:
    member, nonmember, _, seed, _ = CASES[0]
    empty = (torch.empty(0, N_CLASSES), torch.empty(0, dtype=torch.long))
    for name in REFERENCE:
        res = mia_efficacy(member, nonmember, empty, attack=name, seed=seed)
        assert math.isnan(res.efficacy) and res.n_forget == 0


def test_evaluate_reports_a_registered_attack(private_registry, checkpoint_dir, class3_splits) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from prunelora.checkpoint import load_checkpoint
    from prunelora.evaluation.evaluate import evaluate

    register_attack("loss+confidence-rf", features=("loss", "confidence"), summary="test",
                    classifier=lambda: RandomForestClassifier(n_estimators=10, random_state=0))
    model, _ = load_checkpoint(checkpoint_dir)
    m = evaluate(model, class3_splits, probe=False, relearn=None, throughput=False, macs=False).metrics
    assert {"MIA-loss+confidence-rf", "MIA-loss+confidence-rf-acc", "MIA-loss-lr"} <= set(m)  # the defaults too
    assert 0.0 <= m["MIA-loss+confidence-rf"] <= 100.0
    assert m["MIA"] == m["MIA-confidence-svc"]
