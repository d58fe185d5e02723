"""Any map-style Dataset: subsets, concatenation, relabelling, labels and loaders for a user's own
dataset (a TensorDataset subclass with its own transform), beside the ImageDataset fast path."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from prunelora.data import (
    ForgetSpec,
    Relabelled,
    concat,
    eval_view,
    make_loader,
    relabel,
    subset,
    targets_of,
)
from prunelora.data.datasets import DatasetBundle


class Flipped(TensorDataset):
    """A user's dataset: float images, integer labels, and a transform of its own (no .targets)."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x.flip(-1) * 2.0, int(y)


def user_dataset(n: int = 40, seed: int = 0) -> Flipped:
    gen = torch.Generator().manual_seed(seed)
    return Flipped(torch.rand(n, 1, 8, 8, generator=gen), torch.arange(n) % 4)


def test_labels_are_read_by_one_pass_when_there_is_no_targets_attribute():
    ds = user_dataset()
    assert not hasattr(ds, "targets")
    assert torch.equal(targets_of(ds), torch.arange(40) % 4)
    # subsets and concatenations of it keep their labels without a transform's say
    assert torch.equal(targets_of(subset(ds, [3, 5])), torch.tensor([3, 1]))
    assert torch.equal(targets_of(concat(subset(ds, [1]), subset(ds, [2]))), torch.tensor([1, 2]))


def test_relabelled_keeps_the_users_inputs_and_transform():
    ds = user_dataset()
    wrong = (targets_of(ds) + 1) % 4
    relabelled = relabel(ds, wrong)
    assert isinstance(relabelled, Relabelled)
    x, y = relabelled[7]
    assert torch.equal(x, ds[7][0]) and int(y) == int(wrong[7])
    assert torch.equal(targets_of(relabelled), wrong)


def test_loader_uses_the_default_collate_and_a_seeded_order():
    ds = user_dataset()
    x, y = next(iter(make_loader(ds, batch_size=8)))
    assert x.shape == (8, 1, 8, 8) and y.dtype == torch.long
    assert torch.equal(x[0], ds[0][0])  # the user's transform ran

    def order(seed):
        return torch.cat([y for _, y in make_loader(subset(ds, range(40)), batch_size=10, shuffle=True, seed=seed)])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert eval_view(ds) is ds  # nothing of prunelora's to switch off


def test_build_splits_and_a_method_on_a_users_dataset():
    """The split builder and a training method take a user's datasets as they are."""
    from prunelora.data import build_splits
    from prunelora.methods import unlearn
    from prunelora.models import create_model

    bundle = DatasetBundle(name="mine", train=user_dataset(80), test=user_dataset(40, seed=1),
                           classes=["a", "b", "c", "d"], mean=(0.0,), std=(1.0,))
    splits = build_splits(bundle, ForgetSpec.from_classes(2))
    assert set(targets_of(splits.forget).tolist()) == {2}
    assert 2 not in set(targets_of(splits.retain).tolist())
    assert len(splits.test_forget) == 10
    torch.manual_seed(0)
    model = create_model("resnet8", 4, 1, 8, width=0.5)
    result = unlearn(model, splits, "random-label", steps=2, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(result.model.state_dict().values(),
                                                      model.state_dict().values(), strict=True))
