"""PruneLoRA's forgetting objectives (`--objective retain|random-label|neggrad-plus`)."""

from __future__ import annotations

import pytest
import torch

from prunelora.errors import InvalidInputError
from prunelora.methods import get_method, unlearn
from prunelora.methods.common import (
    neggrad_plus_loss,
    objective_data,
    random_label_dataset,
    random_wrong_labels,
)


def test_random_wrong_labels_are_never_the_true_label():
    targets = torch.arange(10).repeat(50)
    wrong = random_wrong_labels(targets, 10, seed=0)
    assert (wrong != targets).all()
    assert wrong.min() >= 0 and wrong.max() <= 9
    assert len(set(wrong.tolist())) == 10  # spread over every class
    assert torch.equal(wrong, random_wrong_labels(targets, 10, seed=0))
    assert not torch.equal(wrong, random_wrong_labels(targets, 10, seed=1))


def test_random_label_dataset_is_retain_plus_relabelled_forget(class3_splits):
    data = random_label_dataset(class3_splits, seed=0)
    n_r, n_f = len(class3_splits.retain), len(class3_splits.forget)
    assert len(data) == n_r + n_f
    assert torch.equal(data.targets[:n_r], class3_splits.retain.targets)
    assert (data.targets[n_r:] != 3).all()  # every forget sample carries a wrong label
    assert torch.equal(data.images[n_r:], class3_splits.forget.images)


def test_neggrad_plus_loss_weights_retain_and_forget(trained, class3_splits):
    model = trained.model.eval()
    x, y = class3_splits.retain.__getitems__(list(range(32)))
    criterion = torch.nn.CrossEntropyLoss()
    loss_fn = neggrad_plus_loss(class3_splits, alpha=0.9, batch_size=16, seed=0, device="cpu")
    with torch.no_grad():
        got = loss_fn(model, x, y)
        from prunelora.methods.common import cycle

        xf, yf = next(cycle(class3_splits.forget, 16, 0))
        expected = 0.9 * criterion(model(x), y) - 0.1 * criterion(model(xf), yf)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("objective", ["retain", "random-label", "neggrad-plus"])
def test_prunelora_objectives_run_and_differ(objective, trained, class3_splits, state_dicts_equal):
    result = unlearn(trained.model, class3_splits, "prunelora", steps=3, objective=objective, progress=False)
    assert result.to_dict()["method"]["config"]["objective"] == objective
    if objective != "retain":
        retain = unlearn(trained.model, class3_splits, "prunelora", steps=3, progress=False)
        assert not state_dicts_equal(result.model.state_dict(), retain.model.state_dict())


def test_forgetting_objectives_raise_the_forget_loss_more(trained, class3_splits):
    """With the same small budget, a forgetting loss pushes D_f's loss above the retain-only objective's."""
    from prunelora.training import predict

    def forget_loss(model):
        logits, targets = predict(model, class3_splits.forget)
        return torch.nn.functional.cross_entropy(logits, targets).item()

    retain = unlearn(trained.model, class3_splits, "prunelora", steps=10, progress=False)
    neggrad = unlearn(trained.model, class3_splits, "prunelora", steps=10, objective="neggrad-plus",
                      neggrad_alpha=0.5, progress=False)
    assert forget_loss(neggrad.model) > forget_loss(retain.model)


def test_bad_objective_and_alpha_are_refused():
    entry = get_method("prunelora")
    with pytest.raises(InvalidInputError, match="'forget-harder'"):
        entry.make_config(objective="forget-harder")
    with pytest.raises(InvalidInputError, match="neggrad_alpha 1.5"):
        entry.make_config(neggrad_alpha=1.5)


def test_forgetting_objective_needs_forget_samples(class3_splits):
    import dataclasses

    empty = dataclasses.replace(class3_splits, forget=class3_splits.forget.subset([]))
    with pytest.raises(InvalidInputError, match="forget set is empty"):
        objective_data("random-label", empty, 0.99, 16, 0, "cpu")
    dataset, loss_fn = objective_data("retain", empty, 0.99, 16, 0, "cpu")
    assert dataset is empty.retain and loss_fn is None
