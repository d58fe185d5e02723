"""`compare`: every comparison with the reference, once; and the accuracy family, once."""

from __future__ import annotations

import math

import pytest
import torch

from prunelora.errors import InvalidInputError
from prunelora.evaluation.compare import GAP_KEYS, compare
from prunelora.evaluation.metrics import accuracy, avg_gap, split_accuracies
from prunelora.evaluation.relearn import _accuracy
from prunelora.training import top1_accuracy

REFERENCE = {"UA": 100.0, "RA": 99.0, "TA": 97.0, "MIA": 90.0, "Probe-FA": 40.0, "Probe-FA@layers.1": 30.0,
             "relearn_steps": 20.0, "relearn_capped": 0.0, "wall_time_s": 10.0}


def test_gap_keys_are_avg_gaps_default():
    method = {"UA": 90.0, "RA": 95.0, "TA": 93.0, "MIA": 70.0}
    assert avg_gap(method, REFERENCE) == avg_gap(method, REFERENCE, GAP_KEYS) == pytest.approx((10 + 4 + 4 + 20) / 4)


def test_compare_computes_every_gap():
    method = {"UA": 90.0, "RA": 95.0, "TA": 93.0, "MIA": 70.0, "Probe-FA": 55.0, "Probe-FA@layers.1": 29.0,
              "relearn_steps": 5.0, "relearn_capped": 0.0, "wall_time_s": 2.5}
    out = compare(method, REFERENCE)
    assert out["Avg.Gap"] == pytest.approx(9.5)
    assert out["Probe.Gap"] == pytest.approx(15.0) and out["Probe.Gap@layers.1"] == pytest.approx(1.0)
    assert out["relearn_ratio"] == pytest.approx(0.25) and out["relearn_ref_capped"] == 0.0
    assert out["time_ratio"] == pytest.approx(0.25)
    assert compare(method, REFERENCE, reference_wall_time_s=5.0)["time_ratio"] == pytest.approx(0.5)


def test_compare_of_a_model_with_itself_is_zero_gap():
    out = compare(REFERENCE, REFERENCE)
    assert out == {"Avg.Gap": 0.0, "Out.Gap": 0.0, "Probe.Gap": 0.0, "Probe.Gap@layers.1": 0.0, "relearn_ref_capped": 0.0,
                   "relearn_ratio": 1.0, "time_ratio": 1.0}


def test_compare_leaves_out_what_one_side_lacks():
    method = {"UA": 90.0, "RA": 95.0, "TA": 93.0}  # no attack run: no MIA
    out = compare(method, {"UA": 100.0, "RA": 99.0, "TA": 97.0, "MIA": 90.0})
    assert math.isnan(out["Avg.Gap"])
    assert out["Out.Gap"] == pytest.approx((10.0 + 4.0 + 4.0) / 3)  # UA, RA, TA need no attack
    assert set(out) == {"Avg.Gap", "Out.Gap"}


def test_capped_relearning_is_passed_on():
    out = compare({**REFERENCE, "relearn_steps": 100.0, "relearn_capped": 1.0},
                  {**REFERENCE, "relearn_capped": 1.0})
    assert out["relearn_ref_capped"] == 1.0
    assert math.isnan(out["relearn_ratio"])  # both capped: no ratio is known


def test_split_accuracies_is_the_accuracy_family():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    targets = torch.tensor([0, 1, 1, 1])
    empty = (torch.empty(0, 2), torch.empty(0, dtype=torch.long))
    out = split_accuracies({"forget": (logits, targets), "retain": (logits, targets), "test_forget": empty})
    assert list(out) == ["UA", "RA", "FA"]
    assert out["RA"] == 75.0 and out["UA"] == 25.0 and math.isnan(out["FA"])
    with pytest.raises(InvalidInputError, match="unknown split part 'train'"):
        split_accuracies({"train": (logits, targets)})


def test_every_accuracy_is_the_one_formula():
    torch.manual_seed(0)
    logits, targets = torch.randn(50, 4), torch.randint(0, 4, (50,))
    expected = top1_accuracy(logits, targets)
    assert accuracy(logits, targets) == expected
    model = torch.nn.Identity()
    assert _accuracy(model, logits, targets, batch_size=7) == expected
    assert math.isnan(top1_accuracy(torch.empty(0, 4), torch.empty(0, dtype=torch.long)))
