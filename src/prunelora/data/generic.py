"""Any map-style `torch.utils.data.Dataset`: the few operations the methods and metrics need.

prunelora's own `ImageDataset` (uint8 tensors, batched fetches) is the fast path; any other
map-style dataset — a user's `Dataset`, a `TensorDataset`, a torchvision dataset with its own
transform — works through `Subset`, `ConcatDataset` and `Relabelled`, with PyTorch's default
collate. Nothing here guesses a normalisation: a user's transform is theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, default_collate

from prunelora.data.images import ImageDataset
from prunelora.errors import InvalidInputError


class Relabelled(Dataset):
    """`dataset` with other labels (e.g. random wrong labels for the forget set), same inputs."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor) -> None:
        if len(targets) != len(dataset):
            raise InvalidInputError(f"{len(targets)} labels for a dataset of {len(dataset)} records")
        self.dataset = dataset
        self.targets = torch.as_tensor(targets, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        label = self.targets[index]
        # the same type as the wrapped dataset's own labels, so that concatenations collate
        return x, (int(label) if not isinstance(y, torch.Tensor) else label.to(y.dtype))


def _is_fast(dataset) -> bool:
    return isinstance(dataset, ImageDataset)


def targets_of(dataset: Dataset) -> torch.Tensor:
    """Integer labels of every record: `.targets` when the dataset has them, else one pass over it.

    Subsets and concatenations of datasets with `.targets` are read without touching the inputs.
    """
    if isinstance(dataset, Subset):
        return targets_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, ConcatDataset):
        parts = [targets_of(d) for d in dataset.datasets]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        out = torch.as_tensor(targets)
    else:
        try:
            out = torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])
        except (TypeError, ValueError, IndexError) as exc:
            raise InvalidInputError(
                f"cannot read labels from {type(dataset).__name__}: each record must be (input, integer label) "
                f"({exc})") from None
    if out.is_floating_point() or out.ndim != 1 or len(out) != len(dataset):
        raise InvalidInputError(f"{type(dataset).__name__}'s labels are not one integer per record")
    return out.long()


def subset(dataset: Dataset, indices: torch.Tensor | Sequence[int], augment: bool | None = None) -> Dataset:
    """The records `indices` of `dataset` (`augment` only applies to `ImageDataset`)."""
    if _is_fast(dataset):
        return dataset.subset(indices, augment=augment)
    idx = torch.as_tensor(indices, dtype=torch.long)
    view = Subset(dataset, idx.tolist())
    return view


def concat(first: Dataset, second: Dataset) -> Dataset:
    """`first` followed by `second`."""
    if _is_fast(first) and _is_fast(second):
        return first.concat(second)
    return ConcatDataset([first, second])


def relabel(dataset: Dataset, targets: torch.Tensor) -> Dataset:
    """The same inputs with other labels."""
    if _is_fast(dataset):
        return dataset.with_targets(targets)
    return Relabelled(dataset, targets)


def eval_view(dataset: Dataset) -> Dataset:
    """The dataset as evaluation sees it: prunelora's augmentation off (a user's own transform is theirs)."""
    return dataset.eval_view() if hasattr(dataset, "eval_view") else dataset


def fetch(dataset: Dataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The records `indices` of `dataset` as one `(inputs, labels)` batch."""
    indices = [int(i) for i in indices]
    if _is_fast(dataset):
        return dataset.__getitems__(indices)
    x, y = default_collate([dataset[i] for i in indices])
    return x, torch.as_tensor(y, dtype=torch.long)


def _identity_collate(batch):
    return batch


def make_loader(dataset: Dataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A standard DataLoader; shuffling uses its own seeded generator, so the order depends on `seed` alone.

    An `ImageDataset` fetches whole batches (`__getitems__`); any other dataset is collated by
    PyTorch's default collate.
    """
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    collate = _identity_collate if _is_fast(dataset) else default_collate
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=collate, drop_last=drop_last)
