"""A user's dataset, checked before any training and guarded while it is read.

A dataset factory's `(train, test)` are the user's code: a record may come back as a float64 or
uint8 image, a label may be a float or 10^9, `__getitem__` may raise at record 500 in the middle
of an epoch. `check_user_dataset` looks at a few records (and every label) before anything trains;
`GuardedDataset` turns an exception of `__getitem__` into one line naming the factory and the record
(see `prunelora.usercode`).
"""

from __future__ import annotations

import numbers

import torch
from torch.utils.data import Dataset

from prunelora.data.generic import targets_of
from prunelora.errors import InvalidInputError
from prunelora.usercode import call_user

MAX_CLASSES = 100_000  # a label of 10^9 would otherwise make 10^9 class names
CHECKED_RECORDS = 4  # records of each part whose input and label are looked at before training


class GuardedDataset(Dataset):
    """`dataset`, whose `__getitem__` and `__len__` errors become one line naming `what` and the record.

    Attributes other than dunders (`targets`, ...) are the wrapped dataset's, so labels are still
    read without touching the inputs where the dataset has them.
    """

    def __init__(self, dataset: Dataset, what: str) -> None:
        self.dataset = dataset
        self.what = what

    def __len__(self) -> int:
        return call_user(self.what, len, self.dataset)

    def __getitem__(self, index: int):
        return call_user(f"{self.what} (record {index})", self.dataset.__getitem__, index)

    def __getattr__(self, name: str):
        # only reached for what this wrapper lacks; dunders stay ours (no unguarded __getitems__)
        if name.startswith("__") or name in ("dataset", "what"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _is_integer_label(label) -> bool:
    if isinstance(label, bool):
        return False
    if isinstance(label, torch.Tensor):
        return label.ndim == 0 and not label.is_floating_point() and label.dtype != torch.bool
    return isinstance(label, numbers.Integral)


def check_records(dataset: Dataset, what: str, shape: tuple[int, ...] | None = None,
                  count: int = CHECKED_RECORDS) -> tuple[int, ...]:
    """Refuse, in one line naming `what` and the record, a dataset whose first `count` records are
    not `(float32 image tensor (C, H, W), integer label)` of one shape (`shape`, when given).

    Args:
        dataset: the user's dataset (a `GuardedDataset`, so that a failing record is named).
        what: how the message names it (e.g. `"dataset factory d.py:build's train set"`).
        shape: the input shape every record must have (None: the first record's).
        count: how many records are looked at.

    Returns:
        The records' input shape.

    Raises:
        InvalidInputError: a record that is not such a pair.
    """
    for index in range(min(count, len(dataset))):
        record = dataset[index]
        if not isinstance(record, (tuple, list)) or len(record) != 2:
            kind = f"a {len(record)}-tuple" if isinstance(record, (tuple, list)) else type(record).__name__
            raise InvalidInputError(f"{what}: record {index} is {kind}; each record must be (input tensor, "
                                    "integer label)")
        x, label = record
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            found = f"a tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(f"{what}: the input of record {index} is {found}; accepted: an image tensor "
                                    "(C, H, W)")
        if x.dtype != torch.float32:
            raise InvalidInputError(f"{what}: the input of record {index} is {x.dtype}; accepted: torch.float32 "
                                    "(convert it in your transform, e.g. x.float() / 255)")
        if shape is not None and tuple(x.shape) != tuple(shape):
            raise InvalidInputError(f"{what}: record {index} is an image of shape {tuple(x.shape)}, the first "
                                    f"training record one of {tuple(shape)}; every image must have the same shape")
        shape = tuple(x.shape)
        if not _is_integer_label(label):
            shown = f"a {label.dtype} tensor of shape {tuple(label.shape)}" if isinstance(label, torch.Tensor) \
                else repr(label)[:40]
            raise InvalidInputError(f"{what}: the label of record {index} is {shown}; accepted: an integer "
                                    "class index")
    return tuple(shape) if shape is not None else ()


def checked_labels(dataset: Dataset, what: str, num_classes: int | None = None) -> torch.Tensor:
    """Every label of `dataset`, refused unless each is in [0, `num_classes`).

    Args:
        dataset: the user's dataset.
        what: how the message names it.
        num_classes: the number of class names given (None: at most `MAX_CLASSES` classes).

    Returns:
        The labels, as `targets_of` reads them.

    Raises:
        InvalidInputError: a label below 0 or at least the bound (checked before any class name
            is made from the labels).
    """
    labels = targets_of(dataset)
    limit = MAX_CLASSES if num_classes is None else num_classes
    if len(labels):
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            names = f"the {num_classes} class names given" if num_classes is not None else \
                f"at most {MAX_CLASSES:,} classes"
            raise InvalidInputError(f"{what}: label {bad} is outside [0, {limit}) ({names})")
    return labels
