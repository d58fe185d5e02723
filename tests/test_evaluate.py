"""`evaluate()` on a real model and on hand-made models whose answers are known, `check_reference`
and `inference_throughput`."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunelora.checkpoint import load_checkpoint
from prunelora.data import ForgetSpec, ImageDataset, Splits
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks
from prunelora.evaluation.evaluate import (
    GAP_KEYS,
    Evaluation,
    check_reference,
    evaluate,
    inference_throughput,
)

RATES = ("UA", "RA", "TA", "FA", "val", "MIA") + tuple(f"MIA-{a}" for a in default_attacks()) \
    + tuple(f"MIA-{a}-acc" for a in default_attacks())


# --------------------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def model(checkpoint_dir) -> nn.Module:
    """A private copy of the session's trained resnet8 (evaluate moves it and sets eval mode)."""
    net, _ = load_checkpoint(checkpoint_dir)
    return net


@pytest.fixture(scope="module")
def real(model, class3_splits) -> Evaluation:
    return evaluate(model, class3_splits, device="cpu")


def test_real_model_metrics_are_finite_and_in_range(real, model, class3_splits):
    m = real.metrics
    for key in RATES:
        assert key in m, key
        assert math.isfinite(m[key]), (key, m[key])
        assert 0.0 <= m[key] <= 100.0, (key, m[key])
    assert m["MIA"] == m["MIA-confidence-svc"]
    n_params = sum(p.numel() for p in model.parameters())
    assert m["params"] == n_params
    assert 0 < m["nonzero_params"] <= n_params
    assert m["sparsity"] == pytest.approx(1.0 - m["nonzero_params"] / n_params)
    assert math.isfinite(m["throughput"]) and m["throughput"] > 0
    assert "Avg.Gap" not in m  # no reference given
    # the size its model.safetensors would have: every float32 tensor, plus a small header
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert state_bytes / 2**20 < m["size_mb"] < state_bytes / 2**20 + 0.1


def test_real_model_accuracies_agree_with_the_splits(real, model, class3_splits):
    """UA/RA/TA/FA recomputed by hand from the model's predictions."""
    def acc(dataset) -> float:
        x, y = dataset[list(range(len(dataset)))]
        with torch.no_grad():
            return 100.0 * float((model.eval()(x).argmax(1) == y).double().mean())

    m = real.metrics
    assert m["UA"] == pytest.approx(100.0 - acc(class3_splits.forget))
    assert m["RA"] == pytest.approx(acc(class3_splits.retain))
    assert m["TA"] == pytest.approx(acc(class3_splits.test_retain))
    assert m["FA"] == pytest.approx(acc(class3_splits.test_forget))
    # after class-wise forgetting val counts the retained classes' images only
    retained_val = [i for i in range(len(class3_splits.val)) if int(class3_splits.val[i][1]) != 3]
    assert m["val"] == pytest.approx(acc(torch.utils.data.Subset(class3_splits.val, retained_val)))


def test_real_model_mia_details(real, class3_splits):
    assert set(real.mia) == set(default_attacks())
    for attack, res in real.mia.items():
        assert res["attack"] == attack
        assert res["efficacy"] == real.metrics[f"MIA-{attack}"]
        assert res["attack_accuracy"] == real.metrics[f"MIA-{attack}-acc"]
        assert res["n_forget"] == len(class3_splits.forget)
        # balanced: as many members as non-members, fewer than the smaller of D_r and test-retain
        assert res["n_members"] == res["n_nonmembers"] > 0
        assert res["n_members"] + res["n_heldout"] // 2 == min(
            len(class3_splits.retain), len(class3_splits.test_retain))
    assert real.to_dict() == {"metrics": real.metrics, "mia": real.mia, "attacks_at_chance": real.attacks_at_chance,
                              "probe": real.probe, "relearn": real.relearn, "representation": real.representation}


def test_real_model_losses_for_the_histograms(real, class3_splits):
    # D_f, the retained classes' test images, members (D_r) and the forgotten class's own test images
    assert set(real.losses) == {"forget", "test", "retain", "test_forget"}
    assert len(real.losses["forget"]) == len(class3_splits.forget)
    assert len(real.losses["test"]) == len(class3_splits.test_retain)
    assert all(math.isfinite(v) and v >= 0 for part in real.losses.values() for v in part)


def test_keep_losses_subsamples(model, class3_splits):
    ev = evaluate(model, class3_splits, attacks=(), throughput=False, keep_losses=10, device="cpu")
    assert len(ev.losses["forget"]) == len(ev.losses["test"]) == 10
    assert ev.mia == {} and "MIA" not in ev.metrics  # no attacks asked for


def test_reference_equal_to_itself_gives_zero_gap(real, model, class3_splits):
    again = evaluate(model, class3_splits, reference=real.metrics, throughput=False, device="cpu")
    assert again.metrics["Avg.Gap"] == 0.0
    for key in GAP_KEYS:  # deterministic: the same model gives the same numbers
        assert again.metrics[key] == real.metrics[key]


def test_gap_is_the_mean_absolute_difference(real, model, class3_splits):
    shifted = dict(real.metrics, UA=real.metrics["UA"] - 8.0, RA=real.metrics["RA"] + 4.0)
    ev = evaluate(model, class3_splits, reference=shifted, throughput=False, device="cpu")
    assert ev.metrics["Avg.Gap"] == pytest.approx((8.0 + 4.0) / 4)


def test_gap_without_an_mia_in_the_reference_is_nan(real, model, class3_splits):
    reference = {k: v for k, v in real.metrics.items() if k != "MIA"}
    ev = evaluate(model, class3_splits, reference=reference, attacks=("loss-lr",), throughput=False,
                  device="cpu")
    assert math.isnan(ev.metrics["Avg.Gap"])


def test_size_mb_matches_the_checkpoint_file(model, class3_splits, checkpoint_dir):
    ev = evaluate(model, class3_splits, attacks=(), throughput=False, device="cpu")
    on_disk = (checkpoint_dir / "model.safetensors").stat().st_size / 2**20
    assert ev.metrics["size_mb"] == pytest.approx(on_disk, abs=1e-3)  # only the header metadata differs


def test_inference_throughput_is_positive(model, class3_splits):
    sample = class3_splits.retain[0][0].unsqueeze(0)
    ips = inference_throughput(model, sample, batch_size=8, repeats=2, device="cpu")
    assert math.isfinite(ips) and ips > 0


# --------------------------------------------------------------------------- check_reference

ORIGINAL = {"kind": "original", "run_id": "orig-1", "forget": None}
FORGET3 = ForgetSpec.from_classes(3).to_dict()
RETRAIN = {"kind": "retrain", "run_id": "re-1", "forget": FORGET3, "original": {"run_id": "orig-1"}}
UNLEARNED = {"kind": "unlearned", "run_id": "un-1", "forget": FORGET3, "original": {"run_id": "orig-1"}}


def test_check_reference_accepts_a_retrain_of_the_same_original_and_forget_set():
    check_reference(UNLEARNED, RETRAIN)
    check_reference(RETRAIN, RETRAIN)
    check_reference({**ORIGINAL, "forget": FORGET3}, RETRAIN)  # the original itself, judged on class 3


@pytest.mark.parametrize("reference, needle", [
    ({**UNLEARNED}, "not a retrain"),
    ({**ORIGINAL, "forget": FORGET3}, "not a retrain"),
    ({**RETRAIN, "original": {"run_id": "orig-2"}}, "another original"),
    ({**RETRAIN, "original": None}, "another original"),
    ({**RETRAIN, "forget": ForgetSpec.from_classes(5).to_dict()}, "different set"),
    ({**RETRAIN, "forget": ForgetSpec(kind="fraction", fraction=0.1).to_dict()}, "different set"),
], ids=["unlearned", "original", "other-original", "no-original", "other-class", "fraction"])
def test_check_reference_refuses(reference, needle):
    with pytest.raises(InvalidInputError, match=needle):
        check_reference(UNLEARNED, reference)


# --------------------------------------------------------------------------- hand-made answers

N_CLASSES = 4
FORGOTTEN = 0


class Oracle(nn.Module):
    """Reads its prediction off the image: pixel 0 is the predicted class, pixel 1 the logit scale.

    Images are 1x1x2 uint8 and the datasets use mean 0, std 1, so the model sees pixel / 255.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))  # a parameter, so that params/sparsity are defined

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = torch.round(x.flatten(1) * 255).long()
        pred, scale = codes[:, 0], codes[:, 1].float()
        return self.gain * scale[:, None] * nn.functional.one_hot(pred, N_CLASSES).float()


def _dataset(targets: list[int], predictions: list[int], scale: int) -> ImageDataset:
    images = torch.tensor([[p, scale] for p in predictions], dtype=torch.uint8).reshape(-1, 1, 1, 2)
    return ImageDataset(images, torch.tensor(targets), mean=(0.0,), std=(1.0,))


def _hand_splits(test_forget_size: int = 12) -> Splits:
    retained = [c for c in range(N_CLASSES) if c != FORGOTTEN]
    retain_t = retained * 10  # 30 samples
    test_t = retained * 8  # 24 samples
    forget_t = [FORGOTTEN] * 15
    wrong = (FORGOTTEN + 1) % N_CLASSES
    return Splits(
        # members: right and very confident; non-members: right but unsure; D_f: always wrong
        retain=_dataset(retain_t, retain_t, scale=20),
        test_retain=_dataset(test_t, test_t, scale=1),
        forget=_dataset(forget_t, [wrong] * len(forget_t), scale=20),
        test_forget=_dataset([FORGOTTEN] * test_forget_size, [wrong] * test_forget_size, scale=20),
        val=_dataset(retained, retained, scale=1),
        forget_indices=torch.arange(len(forget_t)), retain_indices=torch.arange(len(retain_t)),
        val_indices=torch.arange(len(retained)), spec=ForgetSpec.from_classes(FORGOTTEN),
        num_classes=N_CLASSES,
    )


def test_perfect_on_retain_and_always_wrong_on_forget():
    ev = evaluate(Oracle(), _hand_splits(), device="cpu", probe=False)
    m = ev.metrics
    assert m["UA"] == 100.0
    assert m["RA"] == 100.0
    assert m["TA"] == 100.0
    assert m["FA"] == 0.0
    assert m["val"] == 100.0
    # members (loss ~0) and non-members (loss ~0.74) are perfectly separable by the loss, and a wrong
    # D_f has a larger loss than any non-member: the loss attack calls all of D_f non-member.
    assert m["MIA-loss-lr-acc"] == 100.0
    assert m["MIA-loss-lr"] == 100.0
    assert m["MIA-confidence-svc-acc"] == 100.0
    assert m["MIA"] == 100.0
    assert m["params"] == 1 and m["nonzero_params"] == 1 and m["sparsity"] == 0.0


def test_member_looking_forget_set_gives_zero_efficacy():
    """D_f predicted right and as confidently as D_r: every attack calls it member."""
    splits = _hand_splits()
    forget_t = [FORGOTTEN] * 15
    splits.forget = _dataset(forget_t, forget_t, scale=20)
    m = evaluate(Oracle(), splits, throughput=False, device="cpu", probe=False).metrics
    assert m["UA"] == 0.0
    assert m["MIA-loss-lr"] == 0.0
    assert m["MIA"] == 0.0


def test_empty_test_forget_gives_nan_fa():
    """Sample-wise forgetting has no forgotten test classes: FA is nan, not 0."""
    m = evaluate(Oracle(), _hand_splits(test_forget_size=0), throughput=False, device="cpu", probe=False).metrics
    assert math.isnan(m["FA"])
    assert m["UA"] == 100.0 and m["RA"] == 100.0


def test_half_wrong_forget_set():
    splits = _hand_splits()
    targets = [FORGOTTEN] * 10
    preds = [FORGOTTEN] * 5 + [(FORGOTTEN + 1) % N_CLASSES] * 5
    splits.forget = _dataset(targets, preds, scale=20)
    m = evaluate(Oracle(), splits, attacks=(), throughput=False, device="cpu", probe=False).metrics
    assert m["UA"] == 50.0
    assert m["RA"] == 100.0


def test_sparsity_counts_zeroed_weights():
    class Half(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.oracle = Oracle()
            self.zeros = nn.Parameter(torch.zeros(3))  # counted, never used

        def forward(self, x):
            return self.oracle(x)

    m = evaluate(Half(), _hand_splits(), attacks=(), throughput=False, device="cpu", probe=False).metrics
    assert m["params"] == 4 and m["nonzero_params"] == 1
    assert m["sparsity"] == pytest.approx(0.75)


def test_evaluation_never_sees_augmented_images(model, digits):
    """With an augmenting recipe D_r keeps its random crops and flips for training, but every
    prediction made for evaluation (RA, the attacks' members) uses the un-augmented view: two
    evaluations of one model agree exactly, and equal those of the un-augmented splits."""
    from prunelora.data import build_splits, load_dataset

    augmented = load_dataset("digits")
    augmented.train.augment = True  # what a bundle loaded with an augmenting recipe looks like
    splits = build_splits(augmented, ForgetSpec.from_classes(3))
    assert splits.retain.augment  # training still augments
    first = evaluate(model, splits, device="cpu", throughput=False, macs=False)
    second = evaluate(model, splits, device="cpu", throughput=False, macs=False)
    plain = evaluate(model, build_splits(digits, ForgetSpec.from_classes(3)), device="cpu", throughput=False,
                     macs=False)
    for key in ("RA", "UA", "TA", "MIA", "MIA-loss-lr"):
        assert first.metrics[key] == second.metrics[key] == plain.metrics[key], key
